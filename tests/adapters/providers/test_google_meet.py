"""Google Meet through the provider emulator: guests' emails from the calendar event, each lookup best effort.

Meet participants carry no email. The directory names our users, the calendar
event (found by the space's meeting code) names the guests. The directory, the
space and the calendar only add information: a 403/404 there is noted on the
event and the fetch goes on; the conference record itself stays the call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from adapters.errors import FatalError
from adapters.providers.google_meet import client as meet
from tests.adapters.providers import samples_google_meet as sg
from tests.adapters.providers.api_tenant import api_tenant, provider_emulator
from tests.emulators.providers.server import ProviderEmulator
from worker.config.tenants import Tenant
from worker.core.model import CallKind, Person
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent

T0 = dt.datetime(2026, 3, 10, 9, 45, tzinfo=dt.UTC)
SA_EMAIL = "callmatch@acme-project.iam.gserviceaccount.com"
GUESTS = (
    Person(name="Jane Doe"),
    Person(name="Visitor"),
    Person(name="+33 6** ** ** 78"),
)


@pytest.fixture()
def emulator() -> Iterator[ProviderEmulator]:
    with provider_emulator() as emu:
        yield emu


@pytest.fixture()
def tenant(emulator: ProviderEmulator, tmp_path: Path) -> Tenant:
    """`acme` whose five providers read the emulator (Teams in Entra tenant OUR_TENANT; Meet through a delegated admin)."""
    return api_tenant(emulator, tmp_path)


def _event(record: str = sg.RECORD) -> CallEvent:
    return CallEvent(
        tenant="acme",
        provider="google_meet",
        call_id=f"google_meet:{record.split('/', 1)[1]}",
        event_id=f"{record}-ended",
        kind=CallKind.MEETING,
        received_at=T0,
        ended_at=T0,
        source_ref=record,
    )


def _seed(emu: ProviderEmulator, events: list[dict[str, Any]] | None = None) -> None:
    state = emu.state
    state.meet_records[sg.RECORD_ID] = sg.conference_record()
    state.meet_participants[sg.RECORD_ID] = sg.participants()
    state.meet_spaces[sg.SPACE.split("/", 1)[1]] = sg.space()
    state.directory_users.update(sg.directory())
    state.calendar_events["rep@ourco.com"] = events if events is not None else [sg.calendar_event()]


def test_guests_emails_come_from_the_calendar_event_found_by_meeting_code(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    # The matching event is on the second page of the rep's calendar (250 a page).
    _seed(emulator, [*sg.other_events(260), sg.calendar_event()])
    done = complete_event(_event(), tenant, redis_client)
    assert done.complete
    assert done.started_at == dt.datetime(2026, 3, 10, 9, 0, 2, 451000, tzinfo=dt.UTC)
    assert done.title == "Acme renewal"
    assert done.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert done.internal == (Person(email="colleague@ourco.com", name="Colleague"),)
    assert done.participants == (
        *GUESTS,
        Person(email="jane.doe@acme.com", name="Jane Doe"),
        Person(email="bob@acme.com"),
    )
    assert len(emulator.calls("/calendar/v3/calendars/rep@ourco.com/events")) == 2
    # The guest's users/{id} is no user of our domain: a 404 is the normal answer, not worth a note.
    assert done.notes == ()


def test_a_calendar_event_matched_by_its_meet_link_alone(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator, [sg.calendar_event(with_conference=False)])
    done = complete_event(_event(), tenant, redis_client)
    assert Person(email="bob@acme.com") in done.participants


def test_without_directory_delegation_403_is_noted_and_guests_stay_by_name(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator)
    emulator.state.directory_denied = True
    done = complete_event(_event(), tenant, redis_client)
    assert done.complete
    assert done.notes == (meet.DIRECTORY_DENIED_NOTE, meet.NO_OWNER_NOTE)
    assert len(emulator.calls("/admin/directory/v1/users/")) == 1  # not asked again for this call
    assert done.participants == (
        Person(name="Rep One"),
        Person(name="Colleague"),
        *GUESTS,
    )
    assert emulator.calls("/calendar/") == []
    assert "@" not in " ".join(done.notes)


def test_a_refused_calendar_is_noted_and_the_participants_kept(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator)
    emulator.fail_next("/calendar/v3/calendars/", 403, times=5, body={"error": {"code": 403}})
    done = complete_event(_event(), tenant, redis_client)
    assert done.notes == (meet.CALENDAR_DENIED_NOTE.replace("{status}", "403"),)
    assert done.participants == GUESTS
    assert done.organizer == Person()
    assert "@" not in " ".join(done.notes)


def test_an_unreadable_space_is_noted(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator)
    emulator.state.meet_spaces.clear()
    done = complete_event(_event(), tenant, redis_client)
    assert done.notes == (meet.SPACE_UNREADABLE_NOTE.replace("{status}", "404"),)
    assert done.participants == GUESTS


def test_a_meeting_with_no_calendar_event_is_noted(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator, sg.other_events(4))
    done = complete_event(_event(), tenant, redis_client)
    assert done.notes == (meet.NO_EVENT_NOTE,)
    assert done.participants == GUESTS and done.title is None


def test_an_unreadable_conference_record_stays_fatal(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    with pytest.raises(FatalError) as refused:
        complete_event(_event("conferenceRecords/gone"), tenant, redis_client)
    assert refused.value.status == 404


def test_participants_are_paged(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator)
    emulator.state.meet_participants[sg.RECORD_ID] += [
        {"name": f"{sg.RECORD}/participants/{100 + i}", "anonymousUser": {"displayName": f"Viewer {i}"}}
        for i in range(300)
    ]
    done = complete_event(_event(), tenant, redis_client)
    assert Person(name="Viewer 299") in done.participants
    assert len(emulator.calls(f"/v2/{sg.RECORD}/participants")) == 2


def test_delegation_of_the_meet_scope_alone_keeps_the_call_and_says_why(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    """Each API's token asks for its own scope: a missing directory scope refuses that token only."""
    _seed(emulator)
    emulator.state.google_delegated_scopes = frozenset({meet.MEET_SCOPE})
    done = complete_event(_event(), tenant, redis_client)
    assert done.complete
    assert done.notes == (meet.DIRECTORY_NOT_DELEGATED_NOTE, meet.NO_OWNER_NOTE)
    assert done.participants == (Person(name="Rep One"), Person(name="Colleague"), *GUESTS)
    assert emulator.calls("/admin/directory/") == []  # the refused token stops before the request
    assert len(emulator.calls("/token")) == 2  # one for Meet, one refused for the directory


def test_without_the_calendar_scope_the_directory_still_names_our_users(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator)
    emulator.state.google_delegated_scopes = frozenset({meet.MEET_SCOPE, meet.DIRECTORY_SCOPE})
    done = complete_event(_event(), tenant, redis_client)
    assert done.notes == (meet.CALENDAR_NOT_DELEGATED_NOTE.replace("{code}", "unauthorized_client"),)
    assert done.internal == (
        Person(email="rep@ourco.com", name="Rep One"),
        Person(email="colleague@ourco.com", name="Colleague"),
    )
    assert done.participants == GUESTS
    assert emulator.calls("/calendar/") == []
