"""Aircall's shapes through the real receiver: `raw_digits` alone, conference participants, no replay window.

Aircall authenticates with a static token in the body and signs no time, so
there is no replay window: a replayed delivery is the same call id, and
de-duplication acknowledges it without a second event.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.adapters.providers import samples
from tests.adapters.providers import samples_aircall as ac
from tests.worker.ingest.conftest import post, queued_events
from worker.core.model import CallKind, Direction, Person
from worker.ingest.events import CallEvent


def _one(redis_client: Any) -> CallEvent:
    [message] = queued_events(redis_client)
    return CallEvent.from_json(message)


def test_a_call_ended_with_raw_digits_alone_names_the_number(client: TestClient, redis_client: Any) -> None:
    response = post(client, "aircall", ac.ended(ac.bare_call()))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == ["aircall:913402"]
    event = _one(redis_client)
    assert event.call_id == "aircall:913402" and event.source_ref == "913402"
    assert event.kind == CallKind.CALL and event.direction == Direction.OUTBOUND
    assert event.started_at == dt.datetime.fromtimestamp(ac.STARTED, dt.UTC)
    assert event.ended_at == dt.datetime.fromtimestamp(ac.STARTED + 600, dt.UTC)
    assert event.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert event.participants == (Person(phone="+33 6 12 34 56 78"),)
    assert event.internal == ()
    assert not event.complete


@pytest.mark.parametrize("raw_digits", ["anonymous", "", None])
def test_an_anonymous_caller_is_no_participant(
    client: TestClient, redis_client: Any, raw_digits: str | None
) -> None:
    data = ac.bare_call(direction="inbound")
    data["raw_digits"] = raw_digits
    data["contact"] = None
    assert post(client, "aircall", ac.ended(data)).status_code == 200
    event = _one(redis_client)
    assert event.direction == Direction.INBOUND and event.participants == ()


def test_conference_participants_split_into_our_users_and_outside_numbers(
    client: TestClient, redis_client: Any
) -> None:
    assert post(client, "aircall", ac.ended(ac.conference_call())).status_code == 200
    event = _one(redis_client)
    assert event.participants == (
        Person(phone="+33 6 12 34 56 78", name="Jane Doe"),
        Person(phone="+44 20 7946 0000"),
    )
    assert event.internal == (
        Person(phone="+33 1 89 00 00 00", name="Rep One"),
        Person(phone="+33 1 89 00 00 01", name="Colleague"),
    )


def test_a_delivery_replayed_a_day_later_is_a_duplicate_not_a_second_event(
    client: TestClient, redis_client: Any
) -> None:
    document = json.loads(ac.ended(ac.bare_call()).body)
    document["timestamp"] = int((samples.NOW - dt.timedelta(days=1)).timestamp())
    delivery = samples.Post(samples.dumps(document))
    first = post(client, "aircall", delivery)
    again = post(client, "aircall", delivery)
    assert first.status_code == 200 and first.json()["accepted"] == ["aircall:913402"]
    assert (
        again.status_code == 200 and again.json()["accepted"] == [] and len(again.json()["duplicates"]) == 1
    )
    assert len(queued_events(redis_client)) == 1


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: d.update(raw_digits=33612345678), "data.raw_digits"),
        (lambda d: d.update(conference_participants={"id": 1}), "data.conference_participants"),
        (lambda d: d.update(conference_participants=["x"]), "data.conference_participants[0]"),
        (lambda d: d.update(started_at="yesterday"), "data.started_at"),
        (lambda d: d.update(user="Rep One"), "data.user"),
    ],
    ids=["raw-digits-number", "conference-not-a-list", "participant-not-an-object", "start", "user"],
)
def test_junk_is_400_naming_the_field(client: TestClient, redis_client: Any, change: Any, field: str) -> None:
    data = ac.conference_call()
    change(data)
    response = post(client, "aircall", ac.ended(data))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert queued_events(redis_client) == []


def test_a_wrong_token_is_401(client: TestClient, redis_client: Any) -> None:
    response = post(client, "aircall", ac.ended(ac.bare_call(), token="not-the-token"))
    assert response.status_code == 401 and response.json()["field"] == "token"
    assert queued_events(redis_client) == []
