"""Zoom's shapes through the real receiver, and a real `meeting.ended` completed through the emulator.

Zoom signs `v0:{x-zm-request-timestamp}:{body}`; a timestamp more than five
minutes from our clock, either way, is 401.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from fastapi.testclient import TestClient

from tests.adapters.providers import samples
from tests.adapters.providers import samples_zoom as zs
from tests.adapters.providers.api_tenant import api_tenant, emulator  # noqa: F401 (fixture)
from tests.emulators.providers.server import ProviderEmulator
from tests.worker.ingest.conftest import post, queued_events
from worker.config.tenants import Tenants
from worker.core.model import CallKind, Person
from worker.ingest.app import create_app
from worker.ingest.enqueue import CeleryEnqueuer
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent
from worker.pipeline.celery_app import create_celery


def test_meeting_ended_with_host_id_and_no_host_email(client: TestClient, redis_client: Any) -> None:
    response = post(client, "zoom", samples.zoom(zs.ended_document()))
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == [f"zoom:{zs.UUID}"]
    [message] = queued_events(redis_client)
    event = CallEvent.from_json(message)
    assert event.kind == CallKind.MEETING and event.title == "Acme renewal"
    assert event.source_ref == zs.UUID and event.event_id == f"meeting.ended:{zs.UUID}"
    assert event.organizer == Person() and event.organizer_ref == zs.HOST_ID
    assert event.started_at == dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    assert event.ended_at == dt.datetime(2026, 3, 10, 9, 45, tzinfo=dt.UTC)


@pytest.mark.parametrize("skew", [-301, 301, -86400], ids=["301s-old", "301s-ahead", "a-day-old"])
def test_a_timestamp_outside_five_minutes_is_401(client: TestClient, redis_client: Any, skew: int) -> None:
    delivery = samples.zoom(zs.ended_document(), at=samples.NOW + dt.timedelta(seconds=skew))
    response = post(client, "zoom", delivery)
    assert response.status_code == 401
    assert response.json() == {"error": "stale timestamp", "field": "x-zm-request-timestamp"}
    assert queued_events(redis_client) == []


@pytest.mark.parametrize("skew", [-299, 299])
def test_a_timestamp_inside_five_minutes_is_accepted(
    client: TestClient, redis_client: Any, skew: int
) -> None:
    delivery = samples.zoom(zs.ended_document(), at=samples.NOW + dt.timedelta(seconds=skew))
    assert post(client, "zoom", delivery).status_code == 200
    assert len(queued_events(redis_client)) == 1


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda o: o.update(start_time="yesterday"), "payload.object.start_time"),
        (lambda o: o.update(host_id=12), "payload.object.host_id"),
        (lambda o: o.update(uuid=""), "payload.object.uuid"),
        (lambda o: o.update(topic=["x"]), "payload.object.topic"),
    ],
    ids=["start", "host-id", "uuid", "topic"],
)
def test_junk_is_400_naming_the_field(client: TestClient, redis_client: Any, change: Any, field: str) -> None:
    document = zs.ended_document()
    change(document["payload"]["object"])
    response = post(client, "zoom", samples.zoom(document))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert queued_events(redis_client) == []


def test_a_real_meeting_ended_is_completed_with_host_and_guests_from_the_api(
    emulator: ProviderEmulator,  # noqa: F811
    tmp_path: Path,
    redis_url: str,
    redis_client: Any,
) -> None:
    tenant = api_tenant(emulator, tmp_path)
    state = emulator.state
    state.zoom_scopes = ("meeting:read:admin", "user:read:admin")
    state.zoom_users[zs.HOST_ID] = {
        "id": zs.HOST_ID,
        "first_name": "Rep",
        "last_name": "One",
        "email": "rep@ourco.com",
    }
    state.zoom_participants[zs.UUID] = zs.participants()
    state.zoom_past_meetings[zs.UUID] = zs.past_meeting()
    state.zoom_meetings[str(zs.MEETING_ID)] = zs.meeting(["bob.martin@acme.com"])
    state.zoom_registrants[str(zs.MEETING_ID)] = [zs.registrant("Jane", "Doe", "jane@acme.com")]
    app = create_app(
        Tenants({"acme": tenant}),
        CeleryEnqueuer(create_celery(redis_url)),
        redis_lib.Redis.from_url(redis_url),
        clock=lambda: samples.NOW,
    )
    with TestClient(app) as client:
        assert post(client, "zoom", samples.zoom(zs.ended_document())).status_code == 200
    [message] = queued_events(redis_client)
    done = complete_event(CallEvent.from_json(message), tenant, redis_client)
    assert done.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert done.participants == (
        Person(email="jane@acme.com", name="Jane Doe"),
        Person(name="Bob Martin"),
        Person(email="guest@partner.test", name="Signed In Guest"),
        Person(email="bob.martin@acme.com"),
    )
    assert done.notes == ()
    call = done.to_call()
    assert call.id == f"zoom:{zs.UUID}" and call.organizer.email == "rep@ourco.com"
    assert json.loads(json.dumps(done.to_json()))["participants"][0]["email"] == "jane@acme.com"
