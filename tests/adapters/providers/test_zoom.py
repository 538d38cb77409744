"""Zoom's guests through the emulator: emails from registrants and invitees, each lookup best effort.

The participants report hides a guest's email unless the guest registered or was
invited. A lookup that only adds information and is refused (400 code 4711 for a
missing scope, 403, 404) is noted in the event, never fatal; the report itself is the call.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import redis

from adapters.errors import FatalError
from tests.adapters.providers import samples_zoom as zs
from tests.adapters.providers.api_tenant import api_tenant, emulator  # noqa: F401 (fixture)
from tests.emulators.providers.server import ProviderEmulator
from worker.config.tenants import Tenant
from worker.core.model import CallKind, Person
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
GRANULAR = (
    "meeting:read:list_past_participants:admin",
    "user:read:user:admin",
    "meeting:read:past_meeting:admin",
    "meeting:read:meeting:admin",
    "meeting:read:list_registrants:admin",
)
EMAILS = ("jane@acme.com", "bob@acme.com", "rep@ourco.com", "guest@partner.test", "other@acme.com")


@pytest.fixture()
def tenant(emulator: ProviderEmulator, tmp_path: Path) -> Tenant:  # noqa: F811
    return api_tenant(emulator, tmp_path)


def _event(**fields: Any) -> CallEvent:
    base: dict[str, Any] = {
        "tenant": "acme",
        "provider": "zoom",
        "call_id": f"zoom:{zs.UUID}",
        "event_id": f"meeting.ended:{zs.UUID}",
        "kind": CallKind.MEETING,
        "received_at": T0,
        "started_at": T0,
        "source_ref": zs.UUID,
        "organizer": Person(email="rep@ourco.com"),
    }
    base.update(fields)
    return CallEvent(**base)


def _seed(emu: ProviderEmulator, registrants: list[dict[str, Any]], invitees: list[str]) -> None:
    state = emu.state
    state.zoom_scopes = GRANULAR
    state.zoom_participants[zs.UUID] = zs.participants()
    state.zoom_past_meetings[zs.UUID] = zs.past_meeting()
    state.zoom_meetings[str(zs.MEETING_ID)] = zs.meeting(invitees)
    state.zoom_registrants[str(zs.MEETING_ID)] = registrants


def test_a_registered_guest_takes_the_registrants_email_and_invitees_join(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    _seed(
        emulator,
        [
            zs.registrant("Jane", "Doe", "Jane@Acme.com"),
            zs.registrant("Nobody", "Came", "other@acme.com"),
            zs.registrant("Bob", "Martin", "pending@acme.com", status="pending"),
        ],
        ["bob@acme.com", "colleague@ourco.com", "cfo@ourco.com"],
    )
    done = complete_event(_event(), tenant, redis_client)
    assert done.participants == (
        Person(email="jane@acme.com", name="Jane Doe"),
        Person(name="Bob Martin"),
        Person(email="guest@partner.test", name="Signed In Guest"),
        Person(email="bob@acme.com"),
    )
    assert done.internal == (
        Person(email="rep@ourco.com", name="Rep One"),
        Person(email="colleague@ourco.com", name="Colleague"),
        Person(email="cfo@ourco.com"),
    )
    assert done.notes == () and done.complete
    assert emulator.calls(f"/v2/meetings/{zs.MEETING_ID}") == [
        f"GET /v2/meetings/{zs.MEETING_ID}/registrants",
        f"GET /v2/meetings/{zs.MEETING_ID}",
    ]


def test_a_guest_shown_under_another_name_is_found_by_its_registrant_id(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    _seed(emulator, [zs.registrant("Jane", "Doe", "jane@acme.com")], [])
    rows = zs.participants()
    rows[2]["name"] = "JD (Acme)"  # the report row that carries registrant_id r-jane
    emulator.state.zoom_participants[zs.UUID] = rows
    done = complete_event(_event(), tenant, redis_client)
    assert Person(email="jane@acme.com", name="JD (Acme)") in done.participants
    assert Person(name="Bob Martin") in done.participants


def test_registrants_are_read_page_after_page(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    crowd = [zs.registrant(f"P{i}", "Crowd", f"p{i}@crowd.test") for i in range(300)]
    _seed(emulator, [*crowd, zs.registrant("Bob", "Martin", "bob.martin@acme.com")], [])
    done = complete_event(_event(), tenant, redis_client)
    assert Person(email="bob.martin@acme.com", name="Bob Martin") in done.participants
    assert Person(name="Jane Doe") in done.participants
    assert len(emulator.calls(f"/v2/meetings/{zs.MEETING_ID}/registrants")) == 2


@pytest.mark.parametrize(
    "scopes, refused",
    [
        (GRANULAR[:3] + GRANULAR[3:4], "registrants"),
        (GRANULAR[:3] + GRANULAR[4:], "meeting"),
    ],
    ids=["no-registrants-scope", "no-meeting-scope"],
)
def test_a_lookup_refused_for_a_missing_scope_is_noted_not_fatal(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
    scopes: tuple[str, ...],
    refused: str,
) -> None:
    _seed(emulator, [zs.registrant("Jane", "Doe", "jane@acme.com")], ["bob@acme.com"])
    emulator.state.zoom_scopes = scopes
    done = complete_event(_event(), tenant, redis_client)
    assert done.complete
    [note] = done.notes
    assert "answered HTTP 400, code 4711 (a scope the app lacks)" in note
    if refused == "registrants":
        assert note.startswith(f"zoom: GET /v2/meetings/{zs.MEETING_ID}/registrants")
        assert Person(name="Jane Doe") in done.participants
        assert Person(email="bob@acme.com") in done.participants
    else:
        assert note.startswith(f"zoom: GET /v2/meetings/{zs.MEETING_ID} answered")
        assert Person(email="jane@acme.com", name="Jane Doe") in done.participants
        assert Person(email="bob@acme.com") not in done.participants
    assert not any(email in note for email in EMAILS)


def test_an_unknown_past_meeting_is_noted_and_the_report_kept(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    _seed(emulator, [], [])
    del emulator.state.zoom_past_meetings[zs.UUID]
    done = complete_event(_event(), tenant, redis_client)
    assert done.notes == (
        "zoom: GET /v2/past_meetings/{uuid} answered HTTP 404, code 3001;"
        " guests' emails from the participants report only",
    )
    assert Person(name="Bob Martin") in done.participants and Person(name="Jane Doe") in done.participants
    assert emulator.calls("/v2/meetings/") == []


def test_a_host_the_api_cannot_show_is_noted(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    _seed(emulator, [], [])
    done = complete_event(_event(organizer=Person(), organizer_ref="gone-user"), tenant, redis_client)
    assert done.organizer == Person()
    assert (
        done.notes[0]
        == "zoom: GET /v2/users/gone-user answered HTTP 404, code 1001; the organizer's email is unknown"
    )


def test_a_report_without_hidden_guests_needs_no_lookup(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    _seed(emulator, [], [])
    emulator.state.zoom_participants[zs.UUID] = [r for r in zs.participants() if r["user_email"]]
    done = complete_event(_event(), tenant, redis_client)
    assert done.participants == (Person(email="guest@partner.test", name="Signed In Guest"),)
    assert emulator.calls("/v2/meetings/") == []
    assert [c for c in emulator.calls("/v2/past_meetings/") if not c.endswith("/participants")] == []


def test_the_report_itself_unreadable_is_still_fatal(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    _seed(emulator, [], [])
    emulator.fail_next("/v2/past_meetings/", 403, body={"code": 200, "message": "No permission."})
    with pytest.raises(FatalError) as info:
        complete_event(_event(), tenant, redis_client)
    assert info.value.status == 403


@pytest.mark.parametrize("granted", ["two", "all"])
def test_doctor_says_which_scopes_would_let_guests_emails_through(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,
    granted: str,
) -> None:
    from adapters.crm.readiness import Status
    from adapters.providers.zoom import client as zoom
    from worker.ingest.apiclient import FetchContext

    if granted == "all":
        emulator.state.zoom_scopes = GRANULAR
    checks = {c.name: c for c in zoom.check(FetchContext(tenant=tenant, config=tenant.providers["zoom"]))}
    scopes = checks["zoom.scopes"]
    assert scopes.status is Status.OK and checks["zoom.api"].status is Status.OK
    if granted == "all":
        assert "hidden" not in scopes.detail
    else:
        assert scopes.detail.endswith(
            "; guests' emails stay hidden without meeting:read:admin or meeting:read:past_meeting:admin"
            " (to find the meeting's id); meeting:read:admin or meeting:read:list_registrants:admin"
            " (to read registrants' emails); meeting:read:admin or meeting:read:meeting:admin"
            " (to read invitees' emails)"
        )
