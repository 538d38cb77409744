"""Provider API clients against the HTTP emulators: participants fetched, limited, retried, classified."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from adapters.errors import FatalError, RateLimitedError
from tests.adapters.providers import samples
from tests.adapters.providers.api_tenant import AZURE_TENANT, api_tenant, provider_emulator
from tests.emulators.providers.server import ProviderEmulator
from worker.config.tenants import Tenant, parse_tenants
from worker.core.model import CallKind, Direction, Person
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


@pytest.fixture()
def emulator() -> Iterator[ProviderEmulator]:
    with provider_emulator() as emu:
        yield emu


_tenant = api_tenant


@pytest.fixture()
def tenant(emulator: ProviderEmulator, tmp_path: Any) -> Tenant:
    return _tenant(emulator, tmp_path)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _event(provider: str, source_ref: str, **fields: Any) -> CallEvent:
    base: dict[str, Any] = {
        "tenant": "acme",
        "provider": provider,
        "call_id": f"{provider}:{source_ref}",
        "event_id": source_ref,
        "kind": CallKind.MEETING,
        "received_at": T0,
        "source_ref": source_ref,
    }
    base.update(fields)
    return CallEvent(**base)


def test_aircall_adds_conference_participants_from_the_call(emulator, tenant, redis_client):
    call = samples.aircall_call(42)
    call["participants"].append({"id": "x2", "type": "external", "phone_number": "+44 20 7946 0000"})
    emulator.state.aircall_calls["42"] = call
    event = _event(
        "aircall", "42", kind=CallKind.CALL, started_at=T0, participants=(Person(phone="+33 6 12 34 56 78"),)
    )
    done = complete_event(event, tenant, redis_client, session=requests.Session())
    assert done.complete
    assert Person(phone="+44 20 7946 0000") in done.participants
    assert Person(email="jane@acme.com", phone="+33 6 12 34 56 78", name="Jane Doe") in done.participants
    assert done.organizer.email == "rep@ourco.com"
    assert done.started_at == dt.datetime.fromtimestamp(call["started_at"], dt.UTC)
    assert emulator.calls("/v1/calls") == ["GET /v1/calls/42"]


def test_ringover_fills_the_external_number_from_the_call_record(emulator, tenant, redis_client):
    emulator.state.ringover_calls["77"] = {
        "call_id": "77",
        "direction": "in",
        "from_number": "33612345678",
        "to_number": "33189000000",
        "start_time": "2026-03-10T09:00:00Z",
        "end_time": "2026-03-10T09:10:00Z",
        "user": {"email": "rep@ourco.com", "firstname": "Rep", "lastname": "One"},
    }
    done = complete_event(_event("ringover", "77", kind=CallKind.CALL), tenant, redis_client)
    assert done.direction == Direction.INBOUND
    assert done.participants == (Person(phone="+33612345678"),)
    assert done.started_at == T0 and done.ended_at == T0 + dt.timedelta(minutes=10)


def _zoom_rows(count: int) -> list[dict[str, Any]]:
    rows = [
        {"id": "h", "user_id": "1", "name": "Rep One", "user_email": "rep@ourco.com"},
        {"id": "c", "user_id": "2", "name": "Colleague", "user_email": "colleague@ourco.com"},
        {"id": "j", "user_id": "3", "name": "Jane Doe", "user_email": "Jane@Acme.com"},
        {"id": "j2", "user_id": "3", "name": "Jane Doe", "user_email": "jane@acme.com"},
        {"id": "g", "user_id": "4", "name": "Guest Without Email", "user_email": ""},
    ]
    rows += [
        {"id": f"p{i}", "user_id": str(100 + i), "name": f"P {i}", "user_email": f"p{i}@client.test"}
        for i in range(count - len(rows))
    ]
    return rows


def test_zoom_pages_the_report_with_a_double_encoded_uuid_and_keeps_guests_by_name(
    emulator, tenant, redis_client
):
    uuid = "/ajXp112QmuoKj4854875==//"
    emulator.state.zoom_participants[uuid] = _zoom_rows(305)
    event = _event("zoom", uuid, started_at=T0, organizer=Person(email="rep@ourco.com"))
    done = complete_event(event, tenant, redis_client)
    assert done.complete
    assert done.participants[:2] == (
        Person(email="jane@acme.com", name="Jane Doe"),
        Person(name="Guest Without Email"),
    )
    assert len(done.participants) == 2 + 300
    assert done.internal == (
        Person(email="rep@ourco.com", name="Rep One"),
        Person(email="colleague@ourco.com", name="Colleague"),
    )
    pages = [c for c in emulator.calls("/v2/past_meetings/") if c.endswith("/participants")]
    assert len(pages) == 2
    assert pages[0] == "GET /v2/past_meetings/%252FajXp112QmuoKj4854875%253D%253D%252F%252F/participants"
    assert emulator.calls("/oauth/token") == ["POST /oauth/token"]


def test_zoom_retries_a_5xx_and_waits_what_a_429_asks(emulator, tenant, redis_client):
    emulator.state.zoom_participants["u1"] = _zoom_rows(5)
    emulator.fail_next("/v2/past_meetings/", 503)
    emulator.fail_next("/v2/past_meetings/", 429, {"Retry-After": "2"})
    sleeps = Sleeps()
    done = complete_event(_event("zoom", "u1", started_at=T0), tenant, redis_client, sleep=sleeps)
    assert done.complete and len(done.participants) == 2
    assert len([c for c in emulator.calls("/v2/past_meetings/") if c.endswith("/participants")]) == 3
    assert sleeps[-1] == 2.0 and len(sleeps) == 2


def test_zoom_refreshes_a_revoked_token_once(emulator, tenant, redis_client):
    emulator.state.zoom_participants["u2"] = _zoom_rows(5)
    emulator.revoke_tokens()
    complete_event(_event("zoom", "u2", started_at=T0), tenant, redis_client)
    emulator.fail_next("/v2/past_meetings/", 401, body={"code": 124, "message": "Invalid access token."})
    complete_event(_event("zoom", "u2", started_at=T0), tenant, redis_client)
    assert len(emulator.calls("/oauth/token")) == 2


def test_a_daily_limit_is_not_waited_for(emulator, tenant, redis_client):
    emulator.state.zoom_participants["u3"] = _zoom_rows(5)
    emulator.fail_next("/v2/past_meetings/", 429, {"Retry-After": "3600", "X-RateLimit-Type": "Daily-limit"})
    sleeps = Sleeps()
    with pytest.raises(RateLimitedError) as info:
        complete_event(_event("zoom", "u3", started_at=T0), tenant, redis_client, sleep=sleeps)
    assert info.value.daily and info.value.retry_after == 3600.0 and sleeps == []


def test_an_unknown_meeting_is_fatal_not_retried(emulator, tenant, redis_client):
    with pytest.raises(FatalError) as info:
        complete_event(_event("zoom", "missing", started_at=T0), tenant, redis_client)
    assert info.value.status == 404
    assert len(emulator.calls("/v2/past_meetings/")) == 1


def test_wrong_zoom_credentials_are_fatal(emulator, tenant, redis_client):
    emulator.state.zoom_client = ("zoom-account", "zoom-client", "rotated")
    with pytest.raises(FatalError, match="credentials refused"):
        complete_event(_event("zoom", "u1", started_at=T0), tenant, redis_client)


def test_provider_requests_go_through_the_tenants_redis_rate_limiter(emulator, tenant, redis_client):
    emulator.state.zoom_participants["u4"] = _zoom_rows(5)
    complete_event(_event("zoom", "u4", started_at=T0), tenant, redis_client)
    # the token, the report, and the past meeting read for hidden guests (refused: scope 4711)
    assert redis_client.zcard("callmatch:ratelimit:zoom:acme:requests") == 3


def test_google_meet_resolves_users_by_directory_and_guests_by_calendar(emulator, tenant, redis_client):
    state = emulator.state
    state.meet_records["rec1"] = {
        "name": "conferenceRecords/rec1",
        "startTime": "2026-03-10T09:00:00.123456Z",
        "endTime": "2026-03-10T09:40:00Z",
        "space": "spaces/sp1",
    }
    state.meet_participants["rec1"] = [
        {
            "name": "conferenceRecords/rec1/participants/1",
            "signedinUser": {"user": "users/111", "displayName": "Rep One"},
        },
        {
            "name": "conferenceRecords/rec1/participants/2",
            "signedinUser": {"user": "users/222", "displayName": "Jane Doe"},
        },
        {"name": "conferenceRecords/rec1/participants/3", "anonymousUser": {"displayName": "Visitor"}},
        {"name": "conferenceRecords/rec1/participants/4", "phoneUser": {"displayName": "+1 ***-***-0000"}},
    ]
    state.meet_spaces["sp1"] = {"name": "spaces/sp1", "meetingCode": "abc-mnop-xyz"}
    state.directory_users["111"] = {"primaryEmail": "rep@ourco.com"}
    state.calendar_events["rep@ourco.com"] = [
        {"id": "other", "summary": "Other", "conferenceData": {"conferenceId": "zzz-zzzz-zzz"}},
        {
            "id": "ev1",
            "summary": "Acme renewal",
            "organizer": {"email": "rep@ourco.com"},
            "conferenceData": {"conferenceId": "abc-mnop-xyz"},
            "attendees": [
                {"email": "rep@ourco.com", "organizer": True},
                {"email": "jane@acme.com", "displayName": "Jane Doe"},
                {"email": "room-1@resource.calendar.google.com", "resource": True},
                {"email": "bob@acme.com"},
            ],
        },
    ]
    done = complete_event(_event("google_meet", "conferenceRecords/rec1"), tenant, redis_client)
    assert done.started_at == dt.datetime(2026, 3, 10, 9, 0, 0, 123456, tzinfo=dt.UTC)
    assert done.organizer == Person(email="rep@ourco.com")
    assert done.title == "Acme renewal"
    assert done.participants == (
        Person(name="Jane Doe"),
        Person(name="Visitor"),
        Person(name="+1 ***-***-0000"),
        Person(email="jane@acme.com", name="Jane Doe"),
        Person(email="bob@acme.com"),
    )
    assert done.internal == ()
    assert done.to_call().participants == done.participants


def _graph_user(user_id: str, name: str, tenant: str = AZURE_TENANT) -> dict[str, Any]:
    return {"identity": {"user": {"id": user_id, "displayName": name, "tenantId": tenant}}}


def test_teams_pages_participants_and_resolves_our_users(emulator, tenant, redis_client):
    state = emulator.state
    state.graph_records["r1"] = {
        "id": "r1",
        "type": "groupCall",
        "startDateTime": "2026-03-10T09:00:00.0000000Z",
        "endDateTime": "2026-03-10T09:30:00.1234567Z",
        "organizer_v2": _graph_user("u-rep", "Rep One"),
    }
    state.graph_participants["r1"] = [
        _graph_user("u-rep", "Rep One"),
        _graph_user("u-col", "Colleague"),
        _graph_user("u-ext", "Partner Person", tenant="other-tenant"),
        {"identity": {"guest": {"id": "g1", "displayName": "Guest Jane"}}},
        {"identity": {"phone": {"id": "+33612345678"}}},
    ]
    state.graph_users["u-rep"] = {"mail": "rep@ourco.com"}
    state.graph_users["u-col"] = {"userPrincipalName": "colleague@ourco.com"}
    done = complete_event(_event("teams", "r1"), tenant, redis_client)
    assert done.kind == CallKind.MEETING
    assert done.started_at == T0
    assert done.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert done.internal == (Person(email="colleague@ourco.com", name="Colleague"),)
    assert done.participants == (
        Person(name="Partner Person"),
        Person(name="Guest Jane"),
        Person(phone="+33612345678"),
    )
    assert len(emulator.calls("/v1.0/communications/callRecords/r1/participants_v2")) == 3
    assert emulator.calls("/v1.0/users/") == ["GET /v1.0/users/u-rep", "GET /v1.0/users/u-col"]


def test_a_peer_to_peer_teams_record_is_a_call(emulator, tenant, redis_client):
    emulator.state.graph_records["p2p"] = {
        "id": "p2p",
        "type": "peerToPeer",
        "startDateTime": "2026-03-10T09:00:00Z",
    }
    done = complete_event(_event("teams", "p2p"), tenant, redis_client)
    assert done.kind == CallKind.CALL and done.participants == ()


def test_without_api_credentials_the_event_is_kept_as_the_webhook_said(tmp_path, redis_client):
    tenant = parse_tenants(
        samples.tenant_document(str(tmp_path)), "t.yaml", tmp_path, samples.ENVIRON
    ).tenants["acme"]
    event = _event("zoom", "u1", started_at=T0)
    kept = complete_event(event, tenant, redis_client)
    assert kept.notes == (
        "participants not fetched from zoom (no API credentials): the webhook's data alone",
    )
    assert kept.with_details(notes=()) == event


def test_a_webhook_becomes_a_complete_call_through_the_queue(emulator, tenant, redis_client, redis_url):
    import redis as redis_lib
    from fastapi.testclient import TestClient

    from tests.worker.ingest.conftest import queued_events
    from worker.config.tenants import Tenants
    from worker.ingest.app import create_app
    from worker.ingest.enqueue import CeleryEnqueuer
    from worker.pipeline.celery_app import create_celery

    emulator.state.zoom_participants["4444AAAiAAAAAiAiAiiAii=="] = _zoom_rows(5)
    app = create_app(
        Tenants({"acme": tenant}),
        CeleryEnqueuer(create_celery(redis_url)),
        redis_lib.Redis.from_url(redis_url),
        clock=lambda: samples.NOW,
    )
    with TestClient(app) as client:
        delivery = samples.zoom()
        assert (
            client.post("/webhooks/acme/zoom", content=delivery.body, headers=delivery.headers).status_code
            == 200
        )
    [message] = queued_events(redis_client)
    call = complete_event(CallEvent.from_json(message), tenant, redis_client).to_call()
    assert call.id == "zoom:4444AAAiAAAAAiAiAiiAii==" and call.kind == CallKind.MEETING
    assert call.participants == (
        Person(email="jane@acme.com", name="Jane Doe"),
        Person(name="Guest Without Email"),
    )
    assert call.organizer.email == "rep@ourco.com"


def test_zoom_names_the_host_by_id_and_the_client_asks_for_the_email(emulator, tenant, redis_client):
    emulator.state.zoom_participants["u5"] = _zoom_rows(5)
    emulator.state.zoom_users["z8yCxjabcdEFGHfp8uQ"] = {
        "id": "z8yCxjabcdEFGHfp8uQ",
        "first_name": "Rep",
        "last_name": "One",
        "email": "Rep@OurCo.com",
    }
    event = _event("zoom", "u5", started_at=T0, organizer_ref="z8yCxjabcdEFGHfp8uQ")
    done = complete_event(event, tenant, redis_client)
    assert done.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert Person(email="rep@ourco.com", name="Rep One") not in done.participants
    assert emulator.calls("/v2/users/") == ["GET /v2/users/z8yCxjabcdEFGHfp8uQ"]
