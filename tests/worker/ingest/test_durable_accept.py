"""A 2xx means the call is kept: record and de-duplication mark in one Redis transaction.

Real Redis (and a closed port for "Redis down"), the real Celery producer.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from fastapi.testclient import TestClient

from tests.adapters.providers import samples
from tests.conftest import free_port, wait_until
from tests.worker.ingest.conftest import post, queued_events
from worker.config.tenants import Tenants
from worker.ingest.app import create_app
from worker.ingest.dedupe import seen_key
from worker.ingest.enqueue import CeleryEnqueuer
from worker.pipeline.celery_app import create_celery
from worker.pipeline.store import CallStatus, CallStore

CALL = "aircall:812731"
EVENT_ID = "call.ended:812731"


def _app(tenants: Tenants, broker_url: str, store_url: str, **options: Any) -> TestClient:
    app = create_app(
        tenants,
        CeleryEnqueuer(create_celery(broker_url)),
        redis.Redis.from_url(store_url, socket_timeout=2, socket_connect_timeout=2),
        clock=lambda: samples.NOW,
        **options,
    )
    return TestClient(app, raise_server_exceptions=False)


def test_an_accepted_call_is_kept_with_its_event_before_the_answer(client, redis_client):
    response = post(client, "aircall", samples.aircall())
    assert response.status_code == 200 and response.json()["accepted"] == [CALL]
    record = CallStore(redis_client).require("acme", CALL)
    assert record.status is CallStatus.RECEIVED and record.next_stage == "fetch"
    assert record.event["call_id"] == CALL and record.event["participants"]
    assert redis_client.zscore("callmatch:progress", json.dumps(["acme", CALL])) is not None
    key = seen_key("acme", "aircall", EVENT_ID)
    assert redis_client.get(key) == "done" and redis_client.ttl(key) > 6 * 24 * 3600
    assert len(queued_events(redis_client)) == 1


def test_when_only_the_queue_is_down_the_call_is_kept_and_the_sweep_owes_it(tenants, redis_url, redis_client):
    down = _app(tenants, f"redis://127.0.0.1:{free_port()}/0", redis_url)
    response = post(down, "aircall", samples.aircall())
    assert response.status_code == 200 and response.json()["accepted"] == [CALL]
    assert queued_events(redis_client) == []
    record = CallStore(redis_client).require("acme", CALL)
    assert record.next_stage == "fetch"
    deadline = redis_client.zscore("callmatch:progress", json.dumps(["acme", CALL]))
    assert deadline is not None  # the sweep wakes it once this passes
    again = post(_app(tenants, redis_url, redis_url), "aircall", samples.aircall())
    assert again.status_code == 200 and again.json()["duplicates"] == [CALL]
    assert queued_events(redis_client) == []


def test_when_redis_is_down_every_route_answers_json_and_nothing_is_kept(tenants, redis_url, redis_client):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    down = _app(tenants, closed, closed)
    response = post(down, "aircall", samples.aircall())
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.headers["content-type"].startswith("application/json") and response.json()["error"]
    health = down.get("/healthz")
    assert health.status_code == 503 and health.json()["error"]
    assert down.get("/metrics").status_code == 200
    assert CallStore(redis_client).get("acme", CALL) is None
    up = _app(tenants, redis_url, redis_url)
    assert post(up, "aircall", samples.aircall()).json()["accepted"] == [CALL]
    assert len(queued_events(redis_client)) == 1


def test_a_redelivery_after_the_mark_expired_finds_the_call_kept_and_starts_nothing(
    tenants, redis_url, redis_client
):
    short = _app(tenants, redis_url, redis_url, dedupe_ttl_seconds=1)
    assert post(short, "aircall", samples.aircall()).json()["accepted"] == [CALL]
    key = seen_key("acme", "aircall", EVENT_ID)
    assert redis_client.ttl(key) == 1
    wait_until(lambda: redis_client.exists(key) == 0, timeout=5, what="the de-duplication mark to expire")
    again = post(short, "aircall", samples.aircall())
    assert again.status_code == 200 and again.json()["duplicates"] == [CALL]
    assert len(queued_events(redis_client)) == 1, "the call is kept: a late redelivery starts nothing"
    assert redis_client.exists(key) == 1, "and the mark is set again"


def test_a_lone_surrogate_in_an_event_id_still_hashes_to_a_key():
    assert seen_key("acme", "zoom", "\ud800x").startswith("callmatch:seen:acme:zoom:")
