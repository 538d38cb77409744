"""Graph callRecords notifications through the real receiver, then the record through the emulator.

The documented notification names the record in `resourceData.id` and in
`resource`; Graph sends `created` and later `updated` (a higher `version`) for
the same record, which is one call. Lifecycle notifications are another
engineer's branch and are not exercised here.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from fastapi.testclient import TestClient

from tests.adapters.providers import samples
from tests.adapters.providers import samples_teams as st
from tests.adapters.providers.test_teams import _seed, emulator, tenant  # noqa: F401 (fixtures)
from tests.emulators.providers.server import ProviderEmulator
from tests.worker.ingest.conftest import post, queued_events
from worker.config.tenants import Tenant
from worker.core.model import CallKind, Direction, Person
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent


def test_the_documented_notification_becomes_one_event(client: TestClient, redis_client: redis.Redis) -> None:
    response = post(client, "teams", st.delivery(st.notification()))
    assert response.status_code == 200, response.text
    [message] = queued_events(redis_client)
    event = CallEvent.from_json(message)
    assert event.call_id == f"teams:{st.RECORD_ID}" and event.source_ref == st.RECORD_ID
    assert event.event_id == f"callRecords/{st.RECORD_ID}" and not event.complete


def test_a_notification_naming_the_record_by_resource_only(
    client: TestClient, redis_client: redis.Redis
) -> None:
    notification = st.notification("rec-by-path", resource="/communications/callRecords/rec-by-path")
    del notification["resourceData"]
    assert post(client, "teams", st.delivery(notification)).status_code == 200
    [message] = queued_events(redis_client)
    assert message["source_ref"] == "rec-by-path"


def test_created_then_updated_in_one_delivery_is_one_call(
    client: TestClient, redis_client: redis.Redis
) -> None:
    response = post(
        client, "teams", st.delivery(st.notification("rec-7", "created"), st.notification("rec-7", "updated"))
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == ["teams:rec-7"]
    assert [m["call_id"] for m in queued_events(redis_client)] == ["teams:rec-7"]


def test_a_deleted_change_is_acknowledged_and_not_enqueued(
    client: TestClient, redis_client: redis.Redis
) -> None:
    response = post(client, "teams", st.delivery(st.notification("rec-8", "deleted")))
    assert response.status_code == 200 and response.json()["accepted"] == []
    assert queued_events(redis_client) == []


def test_the_previous_client_state_is_accepted_while_rotating(
    client: TestClient, redis_client: redis.Redis
) -> None:
    notification = st.notification("rec-9", clientState=samples.TEAMS_STATE_OLD)
    assert post(client, "teams", st.delivery(notification)).status_code == 200
    forged = st.notification("rec-10", clientState="someone-else")
    assert post(client, "teams", st.delivery(forged)).status_code == 401


def _through(client: TestClient, redis_client: redis.Redis, api: Tenant, record_id: str) -> CallEvent:
    response = post(client, "teams", st.delivery(st.notification(record_id)))
    assert response.status_code == 200, response.text
    [message] = [m for m in queued_events(redis_client) if m["source_ref"] == record_id]
    return complete_event(CallEvent.from_json(json.loads(json.dumps(message))), api, redis_client)


def test_a_meeting_notification_becomes_a_call_with_emails_from_participants_v2(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,  # noqa: F811
    make_client: Any,
    redis_client: redis.Redis,
) -> None:
    _seed(emulator, [st.rep(), st.colleague(), st.partner(), st.b2b_guest(), st.phone()])
    done = _through(make_client(), redis_client, tenant, st.RECORD_ID)
    call = done.to_call()
    assert call.kind == CallKind.MEETING and call.organizer.email == "rep.one@ourco.com"
    assert [p.email or p.phone for p in call.participants] == [
        "partner.person@partner.test",
        "jane.doe@acme.com",
        "+33612345678",
    ]
    assert emulator.calls("/v1.0/users/") == []


def test_without_user_read_all_the_call_is_kept_and_says_why(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,  # noqa: F811
    make_client: Any,
    redis_client: redis.Redis,
) -> None:
    emulator.state.graph_roles = ("CallRecords.Read.All",)
    _seed(
        emulator, [st.rep(), st.member_without_upn(), st.phone("+14155550100")], st.pstn_outbound_record("p9")
    )
    done = _through(make_client(), redis_client, tenant, "p9")
    assert done.notes[0].startswith("teams: GET /users/{id} answered 403")
    call = done.to_call()
    assert call.kind == CallKind.CALL and call.direction == Direction.OUTBOUND
    assert call.participants == (Person(phone="+14155550100"),)
