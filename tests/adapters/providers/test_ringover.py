"""Ringover's call record through the emulator: it adds to the webhook, and its absence is noted."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import redis

from adapters.errors import FatalError
from tests.adapters.providers.api_tenant import api_tenant, emulator  # noqa: F401 (fixture)
from tests.emulators.providers.server import ProviderEmulator
from worker.config.tenants import Tenant
from worker.core.model import CallKind, Direction, Person
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
WEBHOOK_PARTY = Person(phone="+33612345678")


@pytest.fixture()
def tenant(emulator: ProviderEmulator, tmp_path: Path) -> Tenant:  # noqa: F811
    return api_tenant(emulator, tmp_path)


def _event(call_id: str) -> CallEvent:
    return CallEvent(
        tenant="acme",
        provider="ringover",
        call_id=f"ringover:{call_id}",
        event_id=f"hangup:{call_id}",
        kind=CallKind.CALL,
        received_at=T0,
        started_at=T0,
        direction=Direction.INBOUND,
        participants=(WEBHOOK_PARTY,),
        source_ref=call_id,
    )


def test_no_call_record_yet_keeps_the_webhook_and_says_why(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    done = complete_event(_event("1849302761"), tenant, redis_client)
    assert done.complete and done.participants == (WEBHOOK_PARTY,) and done.started_at == T0
    assert done.notes == (
        "ringover: GET /v2/calls/1849302761 answered no call record; participants from the webhook only",
    )


def test_the_call_record_adds_the_user_and_numbers_sent_as_integers(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    record: dict[str, Any] = {
        "call_id": 1849302761,
        "direction": "in",
        "is_internal": 0,
        "from_number": 33612345678,
        "to_number": 33189000000,
        "start_time": "2026-03-10T09:00:00Z",
        "end_time": "2026-03-10T09:10:00Z",
        "user": {"user_id": 77, "firstname": "Rep", "lastname": "One", "email": "rep@ourco.com"},
    }
    emulator.state.ringover_calls["1849302761"] = record
    done = complete_event(_event("1849302761"), tenant, redis_client)
    assert done.notes == ()
    assert done.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert done.participants == (WEBHOOK_PARTY,)
    assert done.ended_at == T0 + dt.timedelta(minutes=10)


def test_a_refused_key_is_fatal(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    emulator.fail_next("/v2/calls/", 403, body={"message": "Forbidden"})
    with pytest.raises(FatalError) as info:
        complete_event(_event("1"), tenant, redis_client)
    assert info.value.status == 403
