"""The receiver end to end: signed deliveries in, exactly one Celery message per event in Redis."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections.abc import Callable

import pytest

from tests.adapters.providers import samples
from tests.worker.ingest.conftest import post, queued_events
from worker.core.model import CallKind, Direction, Person
from worker.ingest.events import CallEvent

PII = ("jane@acme.com", "rep@ourco.com", "612345678", "6 12 34 56 78", "33612345678")


def valid(provider: str) -> samples.Post:
    makers: dict[str, Callable[[], samples.Post]] = {
        "aircall": samples.aircall,
        "ringover": samples.ringover,
        "zoom": samples.zoom,
        "google_meet": samples.google,
        "teams": samples.teams,
    }
    return makers[provider]()


PROVIDERS = ("aircall", "ringover", "zoom", "google_meet", "teams")


def test_aircall_call_ended_becomes_one_event(client, redis_client):
    response = post(client, "aircall", samples.aircall())
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == ["aircall:812731"]
    [message] = queued_events(redis_client)
    event = CallEvent.from_json(message)
    assert event.tenant == "acme" and event.provider == "aircall"
    assert event.call_id == "aircall:812731" and event.kind == CallKind.CALL
    assert event.direction == Direction.INBOUND
    assert event.started_at == samples.NOW - dt.timedelta(seconds=1800)
    assert event.ended_at == samples.NOW - dt.timedelta(seconds=480)
    assert event.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert event.participants == (
        Person(email="jane@acme.com", phone="+33 6 12 34 56 78", name="Jane Doe"),
        Person(phone="+33 7 00 00 00 01"),
    )
    assert event.internal == (Person(phone="+33 1 89 00 00 00", name="Rep One"),)
    call = event.to_call()
    assert call.id == "aircall:812731" and call.participants == event.participants


def test_ringover_hangup_becomes_one_event_with_the_external_number(client, redis_client):
    response = post(client, "ringover", samples.ringover())
    assert response.status_code == 200, response.text
    [message] = queued_events(redis_client)
    event = CallEvent.from_json(message)
    assert event.call_id == "ringover:8391047621"
    assert event.direction == Direction.OUTBOUND
    assert event.participants == (Person(phone="+33612345678"),)
    assert event.organizer == Person(email="rep@ourco.com", name="Rep One")
    assert event.started_at == samples.NOW - dt.timedelta(seconds=900)
    assert event.ended_at == samples.NOW - dt.timedelta(seconds=300)


def test_ringover_inbound_call_takes_the_caller_number(client, redis_client):
    document = samples.ringover_event("55")
    document["data"]["direction"] = "inbound"
    response = post(client, "ringover", samples.ringover(event=document))
    assert response.status_code == 200
    [message] = queued_events(redis_client)
    assert message["participants"] == [{"email": None, "phone": "+33189000000", "name": None}]


def test_zoom_meeting_ended_becomes_one_meeting_event(client, redis_client):
    response = post(client, "zoom", samples.zoom())
    assert response.status_code == 200, response.text
    [message] = queued_events(redis_client)
    event = CallEvent.from_json(message)
    assert event.call_id == "zoom:4444AAAiAAAAAiAiAiiAii=="
    assert event.kind == CallKind.MEETING
    assert event.started_at == dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    assert event.ended_at == dt.datetime(2026, 3, 10, 9, 45, tzinfo=dt.UTC)
    assert event.organizer.email == "rep@ourco.com" and event.title == "Acme renewal"
    assert event.source_ref == "4444AAAiAAAAAiAiAiiAii==" and not event.complete
    assert event.organizer_ref == "z8yCxjabcdEFGHfp8uQ"


def test_google_meet_conference_ended_becomes_one_event(client, redis_client):
    response = post(client, "google_meet", samples.google())
    assert response.status_code == 200, response.text
    [message] = queued_events(redis_client)
    event = CallEvent.from_json(message)
    assert event.call_id == "google_meet:abc-123"
    assert event.source_ref == "conferenceRecords/abc-123"
    assert event.event_id == "ended-abc-123"
    assert event.ended_at == dt.datetime(2026, 3, 10, 9, 45, 10, tzinfo=dt.UTC)
    assert event.started_at is None and event.kind == CallKind.MEETING


def test_teams_several_notifications_in_one_post_each_enqueued(client, redis_client):
    response = post(client, "teams", samples.teams("rec-1", "rec-2", "rec-3"))
    assert response.status_code == 200, response.text
    messages = queued_events(redis_client)
    assert [m["call_id"] for m in messages] == ["teams:rec-1", "teams:rec-2", "teams:rec-3"]
    assert all(m["source_ref"] == m["call_id"].split(":", 1)[1] for m in messages)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_replayed_delivery_is_acknowledged_and_enqueued_once(client, redis_client, provider):
    delivery = valid(provider)
    first = post(client, provider, delivery)
    second = post(client, provider, delivery)
    assert first.status_code == 200 and second.status_code == 200
    assert len(first.json()["accepted"]) == 1
    assert second.json()["accepted"] == [] and len(second.json()["duplicates"]) == 1
    assert len(queued_events(redis_client)) == 1


def test_a_teams_record_notified_created_then_updated_is_enqueued_once(client, redis_client):
    created = {"value": [samples.teams_notification("rec-9", change="created")]}
    updated = {"value": [samples.teams_notification("rec-9", change="updated")]}
    for document in (created, updated):
        assert post(client, "teams", samples.Post(samples.dumps(document))).status_code == 200
    assert len(queued_events(redis_client)) == 1


def _bad_signature(provider: str) -> samples.Post:
    if provider == "aircall":
        return samples.aircall(token="not-the-token")
    if provider == "ringover":
        return samples.ringover(key="not-the-key-" + "n" * 60)
    if provider == "zoom":
        return samples.zoom(secret="not-the-secret")
    if provider == "google_meet":
        return samples.google(token=samples.google_token(key=samples.OTHER_KEY))
    return samples.teams(state="not-the-state")


def _missing_signature(provider: str) -> samples.Post:
    if provider == "aircall":
        return samples.aircall(token=None)
    if provider == "ringover":
        return samples.ringover(key=None)
    if provider == "zoom":
        return samples.zoom(secret=None)
    if provider == "google_meet":
        return samples.google(token="")
    document = {"value": [samples.teams_notification("rec-1")]}
    del document["value"][0]["clientState"]
    return samples.Post(samples.dumps(document))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("make", [_bad_signature, _missing_signature], ids=["bad", "missing"])
def test_a_bad_or_missing_signature_is_401_and_enqueues_nothing(client, redis_client, provider, make):
    response = post(client, provider, make(provider))
    assert response.status_code == 401, response.text
    assert response.json()["error"]
    assert queued_events(redis_client) == []


@pytest.mark.parametrize(
    "provider, delivery",
    [
        ("aircall", samples.aircall(token=samples.AIRCALL_TOKEN_OLD)),
        ("ringover", samples.ringover(key=samples.RINGOVER_KEY_OLD)),
        ("zoom", samples.zoom(secret=samples.ZOOM_SECRET_OLD)),
        ("teams", samples.teams(state=samples.TEAMS_STATE_OLD)),
    ],
)
def test_the_previous_secret_is_still_accepted_during_a_rotation(client, redis_client, provider, delivery):
    assert post(client, provider, delivery).status_code == 200
    assert len(queued_events(redis_client)) == 1


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_zoom_timestamp_older_or_newer_than_five_minutes_is_401(client, redis_client, skew):
    delivery = samples.zoom(at=samples.NOW + dt.timedelta(seconds=skew))
    response = post(client, "zoom", delivery)
    assert response.status_code == 401
    assert response.json()["field"] == "x-zm-request-timestamp"
    assert queued_events(redis_client) == []


def test_an_expired_google_token_is_401(client, redis_client):
    token = samples.google_token(issued=samples.NOW - dt.timedelta(hours=3))
    assert post(client, "google_meet", samples.google(token=token)).status_code == 401


@pytest.mark.parametrize(
    "token_args",
    [
        {"audience": "https://elsewhere.test/"},
        {"email": "someone@evil.test"},
        {"issuer": "https://evil.test"},
    ],
    ids=["audience", "service-account", "issuer"],
)
def test_a_google_token_for_another_audience_account_or_issuer_is_401(client, redis_client, token_args):
    response = post(client, "google_meet", samples.google(token=samples.google_token(**token_args)))
    assert response.status_code == 401
    assert queued_events(redis_client) == []


def test_a_ringover_body_that_differs_from_the_signed_payload_is_401(client, redis_client):
    forged = samples.ringover_event("1")
    forged["data"]["to_number"] = "33700000000"
    response = post(client, "ringover", samples.ringover(event=forged, signed=samples.ringover_event("1")))
    assert response.status_code == 401
    assert queued_events(redis_client) == []


def _broken(provider: str) -> samples.Post:
    body = b'{"event": "call.ended", '
    if provider == "zoom":
        return samples.zoom(body=body)
    if provider == "google_meet":
        return samples.google(body=body)
    if provider == "ringover":
        headers = dict(samples.ringover().headers)
        return samples.Post(body, headers)
    return samples.Post(body)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_broken_json_is_400_naming_the_body(client, redis_client, provider):
    response = post(client, provider, _broken(provider))
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "not valid JSON", "field": "(body)"}
    assert queued_events(redis_client) == []


def _missing_field(provider: str) -> tuple[samples.Post, str]:
    if provider == "aircall":
        document = json.loads(samples.aircall().body)
        del document["data"]["started_at"]
        return samples.Post(samples.dumps(document)), "data.started_at"
    if provider == "ringover":
        event = samples.ringover_event()
        del event["data"]["call_id"]
        return samples.ringover(event=event), "data.call_id"
    if provider == "zoom":
        document = samples.zoom_document()
        del document["payload"]["object"]["uuid"]
        return samples.zoom(document), "payload.object.uuid"
    if provider == "google_meet":
        document = samples.google_document()
        document["message"]["data"] = "eyJjb25mZXJlbmNlUmVjb3JkIjoge319"  # {"conferenceRecord": {}}
        return samples.google(document), "message.data.conferenceRecord.name"
    notification = samples.teams_notification("rec-1")
    del notification["resourceData"], notification["resource"]
    return samples.Post(samples.dumps({"value": [notification]})), "value[0].resource"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_missing_field_is_400_naming_it(client, redis_client, provider):
    delivery, field = _missing_field(provider)
    response = post(client, provider, delivery)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "missing", "field": field}
    assert queued_events(redis_client) == []


def test_unknown_tenant_and_unknown_provider_are_404(client, redis_client):
    assert post(client, "zoom", samples.zoom(), tenant="nobody").status_code == 404
    assert post(client, "webex", samples.zoom()).status_code == 404
    assert queued_events(redis_client) == []


def test_a_provider_not_configured_for_the_tenant_is_404(make_client, redis_client, tenants, tmp_path):
    from worker.config.tenants import parse_tenants

    document = samples.tenant_document(str(tmp_path))
    del document["tenants"]["acme"]["providers"]["zoom"]
    only = parse_tenants(document, "t.yaml", tmp_path, samples.ENVIRON)
    assert "zoom" not in only.tenants["acme"].providers
    assert "zoom" in tenants.tenants["acme"].providers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_body_over_one_mebibyte_is_413(client, redis_client, provider):
    document = json.loads(valid(provider).body)
    document["padding"] = "x" * (1024 * 1024)
    response = post(client, provider, samples.Post(samples.dumps(document), valid(provider).headers))
    assert response.status_code == 413
    assert queued_events(redis_client) == []


def test_a_chunked_body_over_the_limit_is_413_without_a_content_length(client, redis_client):
    def chunks():
        for _ in range(20):
            yield b"x" * 65536

    response = client.post("/webhooks/acme/aircall", content=chunks())
    assert response.status_code == 413


def test_zoom_url_validation_is_answered_with_the_hashed_token(client, redis_client):
    document = {"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}
    response = post(client, "zoom", samples.zoom(document))
    assert response.status_code == 200
    expected = hmac.new(samples.ZOOM_SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert response.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
    assert queued_events(redis_client) == []


def test_zoom_url_validation_needs_a_valid_signature(client, redis_client):
    document = {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}}
    assert post(client, "zoom", samples.zoom(document, secret="wrong")).status_code == 401


def test_graph_validation_token_is_echoed_as_text(client, redis_client):
    response = client.post("/webhooks/acme/teams", params={"validationToken": "Validation: token 123"})
    assert response.status_code == 200
    assert response.text == "Validation: token 123"
    assert response.headers["content-type"].startswith("text/plain")
    assert queued_events(redis_client) == []


def test_one_bad_client_state_in_a_batch_refuses_the_whole_delivery(client, redis_client):
    document = {
        "value": [samples.teams_notification("rec-1"), samples.teams_notification("rec-2", state="forged")]
    }
    response = post(client, "teams", samples.Post(samples.dumps(document)))
    assert response.status_code == 401
    assert response.json()["field"] == "value[1].clientState"
    assert queued_events(redis_client) == []


@pytest.mark.parametrize(
    "provider, delivery",
    [
        ("aircall", samples.aircall(event="call.created")),
        ("zoom", samples.zoom({"event": "meeting.started", "payload": {"object": {"uuid": "u"}}})),
        (
            "google_meet",
            samples.google(samples.google_document(event_type="google.workspace.meet.conference.v2.started")),
        ),
    ],
)
def test_a_verified_event_of_another_type_is_acknowledged_and_not_enqueued(
    client, redis_client, provider, delivery
):
    response = post(client, provider, delivery)
    assert response.status_code == 200
    assert response.json()["accepted"] == [] and response.json()["ignored"]
    assert queued_events(redis_client) == []


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_email_or_phone_from_a_body_reaches_the_logs(client, redis_client, caplog, provider):
    caplog.set_level(logging.DEBUG)
    for delivery in (
        valid(provider),
        _bad_signature(provider),
        _broken(provider),
        _missing_field(provider)[0],
    ):
        post(client, provider, delivery)
    text = caplog.text
    assert "callmatch.ingest" in {r.name for r in caplog.records}
    for secret in PII:
        assert secret not in text


def test_the_accepted_event_is_logged_masked(client, redis_client, caplog):
    caplog.set_level(logging.INFO, logger="callmatch.ingest")
    post(client, "aircall", samples.aircall())
    assert "j***@acme.com" in caplog.text and "***78" in caplog.text


def test_the_app_serves_its_openapi_description(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/webhooks/{tenant}/{provider}"]["post"]
    assert {"200", "400", "401", "404", "413"} <= set(operation["responses"])
    assert "requestBody" in operation


def test_health_answers_when_redis_answers(client):
    assert client.get("/healthz").json() == {"status": "ok", "tenants": 1}


def test_the_celery_message_headers_show_the_call_id_not_the_participants(client, redis_client):
    post(client, "aircall", samples.aircall())
    [raw] = redis_client.lrange("callmatch", 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["argsrepr"] == "[<aircall:812731>]"
    assert all(value not in json.dumps(headers) for value in PII)


def test_outcomes_are_counted_in_the_metrics(client, redis_client):
    from prometheus_client import REGISTRY

    def value(outcome: str) -> float:
        sample = REGISTRY.get_sample_value(
            "callmatch_webhooks_total", {"tenant": "acme", "provider": "zoom", "outcome": outcome}
        )
        return sample or 0.0

    before = {name: value(name) for name in ("accepted", "duplicate", "refused_401")}
    post(client, "zoom", samples.zoom())
    post(client, "zoom", samples.zoom())
    post(client, "zoom", samples.zoom(secret="wrong"))
    assert value("accepted") == before["accepted"] + 1
    assert value("duplicate") == before["duplicate"] + 1
    assert value("refused_401") == before["refused_401"] + 1
    text = client.get("/metrics").text
    assert "callmatch_webhook_seconds_bucket" in text


def test_the_server_refuses_to_start_on_a_bad_tenants_file(tmp_path, redis_url):
    import subprocess
    import sys

    bad = tmp_path / "tenants.yaml"
    bad.write_text("version: 1\ntenants:\n  acme:\n    crm: {kind: dynamics}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "worker.ingest.server"],
        env={"CALLMATCH_TENANTS": str(bad), "CALLMATCH_REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"callmatch: {bad}: tenant acme: crm.kind: unknown value 'dynamics' (expected one of: scenario, salesforce, hubspot)"
    )


def test_an_expired_ringover_signature_is_401(client, redis_client):
    import jwt

    event = samples.ringover_event("900")
    claims = {"payload": event, "exp": int(samples.NOW.timestamp()) - 120}
    token = jwt.encode(claims, samples.RINGOVER_KEY, algorithm="HS512")
    delivery = samples.Post(samples.dumps(event), {"x-ringover-webhook-signature": token})
    response = post(client, "ringover", delivery)
    assert response.status_code == 401 and response.json()["error"] == "signature expired"
    assert queued_events(redis_client) == []


def test_google_push_tokens_verify_against_keys_fetched_from_a_jwks_url(
    make_client, redis_client, redis_url, tmp_path
):
    from tests.emulators.providers.server import ProviderEmulator
    from worker.config.tenants import parse_tenants
    from worker.ingest.app import create_app
    from worker.ingest.enqueue import CeleryEnqueuer
    from worker.pipeline.celery_app import create_celery

    emulator = ProviderEmulator().start()
    try:
        emulator.state.google_jwks = samples.jwks(samples.GOOGLE_KEY)
        document = samples.tenant_document(str(tmp_path))
        google = document["tenants"]["acme"]["providers"]["google_meet"]
        del google["public_key_env"]
        google["jwks_url"] = f"{emulator.base_url}/oauth2/v3/certs"
        tenants = parse_tenants(document, "t.yaml", tmp_path, samples.ENVIRON)
        import redis as redis_lib
        from fastapi.testclient import TestClient

        app = create_app(
            tenants,
            CeleryEnqueuer(create_celery(redis_url)),
            redis_lib.Redis.from_url(redis_url),
            clock=lambda: samples.NOW,
        )
        with TestClient(app) as jwks_client:
            assert post(jwks_client, "google_meet", samples.google()).status_code == 200
            forged = samples.google(token=samples.google_token(key=samples.OTHER_KEY))
            assert post(jwks_client, "google_meet", forged).status_code == 401
        assert len(queued_events(redis_client)) == 1
        assert emulator.calls("/oauth2/v3/certs") == ["GET /oauth2/v3/certs"]
    finally:
        emulator.stop()
