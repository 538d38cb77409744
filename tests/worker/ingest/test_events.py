"""The event message: JSON round trip, strict reading, and the engine's view of it."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.core.model import CallKind, Direction, Person
from worker.ingest.events import CallEvent, EventError, EventMessage, IncompleteEventError
from worker.pipeline.celery_app import (
    MAX_RETRY_COUNTDOWN_SECONDS,
    PROCESS_CALL_TASK,
    QUEUE,
    create_celery,
)

T0 = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)

people = st.builds(
    Person,
    email=st.none() | st.emails(),
    phone=st.none() | st.from_regex(r"\+[1-9][0-9]{6,12}", fullmatch=True),
    name=st.none() | st.text(max_size=20),
)
times = st.none() | st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)
events = st.builds(
    CallEvent,
    tenant=st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
    provider=st.sampled_from(["aircall", "ringover", "zoom", "google_meet", "teams"]),
    call_id=st.text(min_size=1, max_size=30).filter(str.strip),
    event_id=st.text(min_size=1, max_size=30).filter(str.strip),
    kind=st.sampled_from(CallKind),
    received_at=st.datetimes(timezones=st.just(dt.UTC), min_value=dt.datetime(2000, 1, 1)),
    started_at=times,
    ended_at=times,
    direction=st.none() | st.sampled_from(Direction),
    organizer=people,
    participants=st.lists(people, max_size=4).map(tuple),
    internal=st.lists(people, max_size=2).map(tuple),
    title=st.none() | st.text(max_size=20),
    source_ref=st.none() | st.text(min_size=1, max_size=20),
    organizer_ref=st.none() | st.text(min_size=1, max_size=20),
    complete=st.booleans(),
)


@given(events)
def test_an_event_survives_the_json_message_unchanged(event):
    message = json.loads(json.dumps(event.to_json()))
    assert CallEvent.from_json(message) == event


def test_to_call_keeps_external_participants_and_the_organizer():
    event = CallEvent(
        tenant="acme",
        provider="zoom",
        call_id="zoom:u1",
        event_id="meeting.ended:u1",
        kind=CallKind.MEETING,
        received_at=T0,
        started_at=T0,
        ended_at=T0 + dt.timedelta(minutes=30),
        organizer=Person(email="rep@ourco.com"),
        participants=(Person(email="jane@acme.com"),),
        internal=(Person(email="boss@ourco.com"),),
        title="Renewal",
    )
    call = event.to_call()
    assert call.id == "zoom:u1" and call.kind == CallKind.MEETING
    assert call.participants == (Person(email="jane@acme.com"),)
    assert call.organizer.email == "rep@ourco.com" and call.duration_seconds == 1800
    assert call.title == "Renewal"


def test_to_call_refuses_an_event_whose_start_is_unknown():
    event = CallEvent(
        tenant="acme",
        provider="teams",
        call_id="teams:r",
        event_id="r",
        kind=CallKind.MEETING,
        received_at=T0,
    )
    with pytest.raises(IncompleteEventError, match="fetch the call from teams"):
        event.to_call()


@pytest.mark.parametrize(
    "change, path",
    [
        ({"kind": "video"}, "kind"),
        ({"tenant": None}, "tenant"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"started_at": "2026-03-10T09:30:00"}, "started_at"),
        ({"participants": [{"email": 3}]}, "participants[0].email"),
        ({"direction": "sideways"}, "direction"),
        ({"version": 2}, "version"),
    ],
)
def test_a_bad_message_names_the_field(change, path):
    message = CallEvent(
        tenant="acme", provider="zoom", call_id="zoom:u", event_id="e", kind=CallKind.CALL, received_at=T0
    ).to_json()
    message.update(change)
    with pytest.raises(EventError) as info:
        CallEvent.from_json(message)
    assert info.value.path == path


def test_the_celery_app_is_configured_to_lose_nothing():
    conf = create_celery("redis://127.0.0.1:1/0").conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] > MAX_RETRY_COUNTDOWN_SECONDS
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    assert conf.task_routes[PROCESS_CALL_TASK]["queue"] == QUEUE


def _message(**changes: object) -> dict[str, object]:
    message = CallEvent(
        tenant="acme", provider="zoom", call_id="zoom:u", event_id="e", kind=CallKind.CALL, received_at=T0
    ).to_json()
    message.update(changes)
    return message


@pytest.mark.parametrize(
    "message, path, reason",
    [
        ([], "(event)", "expected an object"),
        (_message(kind=""), "kind", "missing"),
        (_message(kind=3), "kind", "expected a string"),
        (_message(received_at=None), "received_at", "missing"),
        (_message(complete=None), "complete", "expected true or false"),
        (_message(notes=["ok", 3]), "notes", "expected a list of strings"),
        (_message(participants=("a",)), "participants", "expected a list"),
        (_message(internal=["x"]), "internal[0]", "expected an object"),
        (_message(organizer={"name": 1}), "organizer.name", "expected a string"),
        # two bad fields: the one the reader always checked first is named
        (_message(tenant=None, direction="up"), "direction", "expected inbound or outbound"),
        (_message(title=1, organizer={"email": 2}), "organizer.email", "expected a string"),
    ],
)
def test_a_bad_message_names_the_field_and_the_reason(message, path, reason):
    with pytest.raises(EventError) as info:
        CallEvent.from_json(message)
    assert (info.value.path, info.value.reason) == (path, reason)
    assert str(info.value) == f"{path}: {reason}"


def test_a_newer_worker_s_extra_keys_are_ignored_and_empty_lists_are_none():
    event = CallEvent.from_json(
        _message(recording_url="https://x", notes=None, participants=None, direction="")
    )
    assert event.notes == () and event.participants == () and event.direction is None
    schema = EventMessage.model_json_schema()
    assert schema["properties"]["kind"]["enum"] == ["call", "meeting"]
    assert set(schema["required"]) == {"kind", "received_at", "tenant", "provider", "call_id", "event_id"}
