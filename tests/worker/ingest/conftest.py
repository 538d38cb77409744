"""A receiver for tenant `acme` on the real Redis fixture, with the real Celery producer."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from tests.adapters.providers import samples
from worker.config.tenants import Tenants, parse_tenants
from worker.ingest.app import create_app
from worker.ingest.enqueue import CeleryEnqueuer
from worker.pipeline.celery_app import PROCESS_CALL_TASK, QUEUE, create_celery


def queued_events(client: Any) -> list[dict[str, Any]]:
    """The event JSON of every `callmatch.process_call` message waiting in the `callmatch` list, oldest first."""
    out = []
    for raw in reversed(client.lrange(QUEUE, 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == PROCESS_CALL_TASK
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert kwargs == {} and len(args) == 1
        out.append(args[0])
    return out


@pytest.fixture()
def tenants(tmp_path) -> Tenants:
    return parse_tenants(
        samples.tenant_document(str(tmp_path)), "test-tenants.yaml", tmp_path, samples.ENVIRON
    )


@pytest.fixture()
def make_client(redis_url: str, redis_client: Any, tenants: Tenants) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(broker_url: str | None = None, **options: Any) -> TestClient:
        celery = create_celery(broker_url or redis_url)
        app = create_app(
            tenants,
            CeleryEnqueuer(celery),
            redis.Redis.from_url(redis_url),
            clock=lambda: samples.NOW,
            **options,
        )
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture()
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def post(client: TestClient, provider: str, delivery: samples.Post, tenant: str = "acme") -> Any:
    return client.post(
        f"/webhooks/{tenant}/{provider}",
        content=delivery.body,
        headers=delivery.headers,
        params=delivery.query,
    )
