"""Google Meet pushes through the real receiver: every envelope Pub/Sub documents, and what must not be 400.

Pub/Sub redelivers a push answered 4xx or 5xx until it expires: a verified push
that names no event type (`ce-type`) can never become valid, so it is
acknowledged (200), counted as ignored and logged. The OIDC token is still checked first.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests.adapters.providers import samples
from tests.adapters.providers import samples_google_meet as sg
from tests.adapters.providers.test_google_meet import _seed, emulator, tenant  # noqa: F401 (fixtures)
from tests.emulators.providers.server import ProviderEmulator
from tests.worker.ingest.conftest import post, queued_events
from worker.config.tenants import Tenant
from worker.core.model import CallKind, Person
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent


def _ignored_count() -> float:
    labels = {"tenant": "acme", "provider": "google_meet", "outcome": "ignored"}
    return REGISTRY.get_sample_value("callmatch_webhooks_total", labels) or 0.0


def test_the_documented_push_becomes_one_event(client: TestClient, redis_client: redis.Redis) -> None:
    response = post(client, "google_meet", sg.push())
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == [f"google_meet:{sg.RECORD_ID}"]
    [message] = queued_events(redis_client)
    event = CallEvent.from_json(message)
    assert event.source_ref == sg.RECORD and event.event_id == f"{sg.RECORD_ID}-ended"
    assert event.kind == CallKind.MEETING and event.ended_at is not None


@pytest.mark.parametrize(
    "attrs",
    [
        {},  # no attributes at all
        {k: v for k, v in sg.attributes().items() if k != "ce-type"},
        {**sg.attributes(), "ce-type": ""},
    ],
    ids=["no-attributes", "no-ce-type", "empty-ce-type"],
)
def test_a_push_without_ce_type_is_acknowledged_ignored_counted_and_logged(
    client: TestClient, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture, attrs: dict[str, str]
) -> None:
    before = _ignored_count()
    caplog.set_level(logging.INFO)
    response = post(client, "google_meet", sg.push(sg.push_document(attrs=attrs)))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == [] and "without ce-type" in response.json()["ignored"]
    assert queued_events(redis_client) == []
    assert _ignored_count() == before + 1
    assert any("without ce-type" in r.getMessage() for r in caplog.records)


def test_a_push_without_ce_type_still_needs_a_valid_token(
    client: TestClient, redis_client: redis.Redis
) -> None:
    forged = samples.google_token(key=samples.OTHER_KEY)
    response = post(client, "google_meet", sg.push(sg.push_document(attrs={}), token=forged))
    assert response.status_code == 401
    unwrapped = sg.unwrapped(event_type=None, token=forged)
    assert post(client, "google_meet", unwrapped).status_code == 401


def test_a_push_with_neither_message_nor_ce_type_is_acknowledged(
    client: TestClient, redis_client: redis.Redis
) -> None:
    response = post(
        client, "google_meet", samples.google(body=samples.dumps({"subscription": "projects/p/s"}))
    )
    assert response.status_code == 200 and response.json()["accepted"] == []


def test_message_id_in_snake_case_names_the_event_when_there_is_no_ce_id(
    client: TestClient, redis_client: redis.Redis
) -> None:
    document = sg.push_document()
    del document["message"]["attributes"]["ce-id"], document["message"]["messageId"]
    assert post(client, "google_meet", sg.push(document)).status_code == 200
    [message] = queued_events(redis_client)
    assert message["event_id"] == "12074830511234567"


def test_an_unwrapped_push_reads_the_attributes_from_headers(
    client: TestClient, redis_client: redis.Redis
) -> None:
    response = post(client, "google_meet", sg.unwrapped())
    assert response.status_code == 200, response.text
    [message] = queued_events(redis_client)
    event = CallEvent.from_json(message)
    assert event.source_ref == sg.RECORD and event.event_id == f"{sg.RECORD_ID}-ended"
    # The same conference pushed wrapped is the same event: de-duplicated.
    again = post(client, "google_meet", sg.push())
    assert again.json()["accepted"] == [] and len(again.json()["duplicates"]) == 1


def test_an_unwrapped_push_without_ce_type_is_acknowledged(
    client: TestClient, redis_client: redis.Redis
) -> None:
    response = post(client, "google_meet", sg.unwrapped(event_type=None))
    assert response.status_code == 200 and "without ce-type" in response.json()["ignored"]
    assert queued_events(redis_client) == []


@pytest.mark.parametrize(
    "event_type",
    [
        "google.workspace.meet.conference.v2.started",
        "google.workspace.meet.participant.v2.joined",
        "google.workspace.meet.participant.v2.left",
        "google.workspace.meet.recording.v2.fileGenerated",
        "google.workspace.meet.transcript.v2.fileGenerated",
    ],
)
def test_other_meet_events_are_acknowledged_not_enqueued(
    client: TestClient, redis_client: redis.Redis, event_type: str
) -> None:
    for delivery in (sg.push(sg.push_document(event_type)), sg.unwrapped(event_type)):
        response = post(client, "google_meet", delivery)
        assert response.status_code == 200 and response.json()["ignored"]
    assert queued_events(redis_client) == []


def test_an_ended_push_with_broken_data_is_still_400(client: TestClient, redis_client: redis.Redis) -> None:
    """A push that names the ended event but whose data is unusable is refused, naming the field."""
    response = post(client, "google_meet", sg.push(sg.push_document(payload={"conferenceRecord": {}})))
    assert response.status_code == 400
    assert response.json() == {"error": "missing", "field": "message.data.conferenceRecord.name"}


def test_a_push_becomes_a_call_with_the_calendar_guests(
    emulator: ProviderEmulator,  # noqa: F811
    tenant: Tenant,  # noqa: F811
    make_client: Any,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    """Receiver, queue, then the fetch through the emulator: the guests' emails are on the call."""
    _seed(emulator)
    response = post(make_client(), "google_meet", sg.push())
    assert response.status_code == 200
    [message] = queued_events(redis_client)
    done = complete_event(CallEvent.from_json(json.loads(json.dumps(message))), tenant, redis_client)
    call = done.to_call()
    assert call.id == f"google_meet:{sg.RECORD_ID}" and call.title == "Acme renewal"
    assert Person(email="jane.doe@acme.com", name="Jane Doe") in call.participants
    assert call.organizer.email == "rep@ourco.com"
