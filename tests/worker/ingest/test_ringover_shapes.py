"""Ringover's shapes through the real receiver: flags as 0/1, both JWT claim shapes, the `iat` window.

A token issued more than five minutes ago (or more than 30 seconds ahead of our
clock), or without `iat` at all, is 401: a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from tests.adapters.providers import samples
from tests.adapters.providers import samples_ringover as rs
from tests.worker.ingest.conftest import post, queued_events
from worker.core.model import CallKind, Direction, Person
from worker.ingest.events import CallEvent

HEADER = "x-ringover-webhook-signature"


def _one(redis_client: Any) -> CallEvent:
    [message] = queued_events(redis_client)
    return CallEvent.from_json(message)


@pytest.mark.parametrize("shape", ["payload", "flat"])
def test_the_documented_hangup_with_0_1_flags_becomes_one_event(
    client: TestClient, redis_client: Any, shape: Any
) -> None:
    response = post(client, "ringover", rs.signed(rs.hangup(), shape=shape))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == ["ringover:1849302761"]
    event = _one(redis_client)
    assert event.call_id == "ringover:1849302761" and event.source_ref == "1849302761"
    assert event.event_id == "hangup:1849302761" and event.kind == CallKind.CALL
    assert event.direction == Direction.INBOUND
    assert event.started_at == dt.datetime.fromtimestamp(rs.STARTED, dt.UTC)
    assert event.ended_at == dt.datetime.fromtimestamp(rs.STARTED + 600, dt.UTC)
    assert event.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert event.participants == (Person(phone="+33612345678"),)


def test_an_outbound_hangup_takes_the_callee(client: TestClient, redis_client: Any) -> None:
    assert post(client, "ringover", rs.signed(rs.hangup(direction="outbound"))).status_code == 200
    event = _one(redis_client)
    assert event.direction == Direction.OUTBOUND and event.participants == (Person(phone="+33612345678"),)


@pytest.mark.parametrize("internal", [1, True])
def test_an_internal_call_is_acknowledged_and_not_enqueued(
    client: TestClient, redis_client: Any, internal: int | bool
) -> None:
    response = post(client, "ringover", rs.signed(rs.hangup(is_internal=internal)))
    assert response.status_code == 200
    assert response.json()["accepted"] == [] and response.json()["ignored"] == "internal call"
    assert queued_events(redis_client) == []


@pytest.mark.parametrize("flags", [{"is_internal": False, "is_anonymous": False}, {"is_internal": 0}])
def test_booleans_are_accepted_where_the_docs_show_them(
    client: TestClient, redis_client: Any, flags: dict[str, Any]
) -> None:
    assert post(client, "ringover", rs.signed(rs.hangup(**flags))).status_code == 200
    assert _one(redis_client).participants == (Person(phone="+33612345678"),)


def test_an_anonymous_caller_is_no_participant(client: TestClient, redis_client: Any) -> None:
    document = rs.hangup(is_anonymous=1)
    document["data"]["from_number"] = "anonymous"
    assert post(client, "ringover", rs.signed(document)).status_code == 200
    event = _one(redis_client)
    assert event.participants == () and event.organizer.email == "rep@ourco.com"


def test_a_payload_claim_signed_as_json_text_is_accepted(client: TestClient, redis_client: Any) -> None:
    document = rs.hangup()
    claims = {"url": rs.WEBHOOK_URL, "payload": json.dumps(document), "iat": int(samples.NOW.timestamp())}
    token = jwt.encode(claims, samples.RINGOVER_KEY, algorithm="HS512")
    response = post(client, "ringover", samples.Post(samples.dumps(document), {HEADER: token}))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("shape", ["payload", "flat"])
@pytest.mark.parametrize(
    "issued, reason",
    [
        (samples.NOW - dt.timedelta(seconds=301), "signature issued more than 5 minutes ago"),
        (samples.NOW - dt.timedelta(days=1), "signature issued more than 5 minutes ago"),
        (samples.NOW + dt.timedelta(seconds=31), "signature issued in the future"),
        (None, "signature carries no iat"),
    ],
    ids=["301s-old", "a-day-old", "31s-ahead", "no-iat"],
)
def test_a_stale_future_or_undated_signature_is_401(
    client: TestClient, redis_client: Any, shape: Any, issued: dt.datetime | None, reason: str
) -> None:
    response = post(client, "ringover", rs.signed(rs.hangup(), shape=shape, issued=issued))
    assert response.status_code == 401
    assert response.json() == {"error": reason, "field": HEADER}
    assert queued_events(redis_client) == []


@pytest.mark.parametrize(
    "age", [dt.timedelta(seconds=299), dt.timedelta(seconds=-29)], ids=["299s-old", "29s-ahead"]
)
def test_a_signature_inside_the_window_is_accepted(
    client: TestClient, redis_client: Any, age: dt.timedelta
) -> None:
    assert post(client, "ringover", rs.signed(rs.hangup(), issued=samples.NOW - age)).status_code == 200
    assert len(queued_events(redis_client)) == 1


@pytest.mark.parametrize("shape", ["payload", "flat"])
def test_a_body_that_differs_from_the_signed_event_is_401(
    client: TestClient, redis_client: Any, shape: Any
) -> None:
    forged = rs.hangup()
    forged["data"]["from_number"] = "33700000000"
    response = post(client, "ringover", rs.signed(rs.hangup(), shape=shape, body=samples.dumps(forged)))
    assert response.status_code == 401 and response.json()["error"] == "body differs from the signed payload"
    assert queued_events(redis_client) == []


def test_a_token_signed_with_the_previous_key_is_accepted_during_a_rotation(
    client: TestClient, redis_client: Any
) -> None:
    assert post(client, "ringover", rs.signed(rs.hangup(), key=samples.RINGOVER_KEY_OLD)).status_code == 200


@pytest.mark.parametrize(
    "change, field",
    [
        ({"is_internal": 2}, "data.is_internal"),
        ({"is_internal": "0"}, "data.is_internal"),
        ({"is_anonymous": 0.5}, "data.is_anonymous"),
        ({"call_id": None}, "data.call_id"),
        ({"start_time": "soon"}, "data.start_time"),
    ],
    ids=["flag-2", "flag-text", "flag-float", "call-id", "start"],
)
def test_junk_is_400_naming_the_field(
    client: TestClient, redis_client: Any, change: dict[str, Any], field: str
) -> None:
    document = rs.hangup()
    document["data"].update(change)
    response = post(client, "ringover", rs.signed(document))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert queued_events(redis_client) == []


def test_a_lone_surrogate_in_a_payload_signed_as_text_is_read_as_the_body_is(
    client: TestClient, redis_client: Any
) -> None:
    """Found by `make fuzz`: the signed text was encoded strictly and raised instead of answering 400."""
    body = b'"b0\xed\xaf\xbf"'
    claims = {"payload": json.loads(body), "iat": int(samples.NOW.timestamp())}  # the string 'b0\udbff'
    assert claims["payload"] == "b0\udbff"
    token = jwt.encode(claims, samples.RINGOVER_KEY, algorithm="HS512")
    response = post(client, "ringover", samples.Post(body, {HEADER: token}))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "(body)"
    assert "unreadable payload" not in response.text  # the receiver's answer to an unexpected exception
    assert queued_events(redis_client) == []
