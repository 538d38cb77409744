"""Aircall's public API through the emulator: the call object's conference participants, the call as the call."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import redis

from adapters.errors import FatalError
from tests.adapters.providers import samples_aircall as ac
from tests.adapters.providers.api_tenant import api_tenant, emulator  # noqa: F401 (fixture)
from tests.emulators.providers.server import ProviderEmulator
from worker.config.tenants import Tenant
from worker.core.model import CallKind, Person
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


@pytest.fixture()
def tenant(emulator: ProviderEmulator, tmp_path: Path) -> Tenant:  # noqa: F811
    return api_tenant(emulator, tmp_path)


def _event(call_id: int, **fields: Any) -> CallEvent:
    base: dict[str, Any] = {
        "tenant": "acme",
        "provider": "aircall",
        "call_id": f"aircall:{call_id}",
        "event_id": f"call.ended:{call_id}",
        "kind": CallKind.CALL,
        "received_at": T0,
        "started_at": T0,
        "source_ref": str(call_id),
    }
    base.update(fields)
    return CallEvent(**base)


def test_a_webhook_with_raw_digits_alone_gains_the_conference_from_the_call_object(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    emulator.state.aircall_calls["913402"] = ac.conference_call()
    event = _event(913402, participants=(Person(phone="+33 6 12 34 56 78"),))
    done = complete_event(event, tenant, redis_client)
    assert done.complete and done.notes == ()
    assert done.participants == (
        Person(phone="+33 6 12 34 56 78", name="Jane Doe"),
        Person(phone="+44 20 7946 0000"),
    )
    assert done.internal == (
        Person(phone="+33 1 89 00 00 00", name="Rep One"),
        Person(phone="+33 1 89 00 00 01", name="Colleague"),
    )
    assert done.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert done.started_at == dt.datetime.fromtimestamp(ac.STARTED, dt.UTC)
    assert emulator.calls("/v1/calls") == ["GET /v1/calls/913402"]


def test_participants_and_conference_participants_are_both_read(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    call = ac.bare_call(7)
    call["participants"] = [{"id": "x1", "type": "external", "phone_number": "+49 30 1234567"}]
    call["conference_participants"] = [{"id": "x2", "type": "external", "phone_number": "+1 212 555 0100"}]
    emulator.state.aircall_calls["7"] = call
    done = complete_event(_event(7), tenant, redis_client)
    assert done.participants == (
        Person(phone="+33 6 12 34 56 78"),
        Person(phone="+49 30 1234567"),
        Person(phone="+1 212 555 0100"),
    )


def test_the_call_itself_unreadable_is_fatal(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    with pytest.raises(FatalError) as info:
        complete_event(_event(404404), tenant, redis_client)
    assert info.value.status == 404
