"""HTTP operations on calls: bearer-token protected, same effects as the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.worker.test_service import NOW, event
from worker.admin import mount
from worker.celery_app import create_celery
from worker.crm_factory import CrmFactory
from worker.ops import celery_sender
from worker.service import Pipeline
from worker.store import CallStore, Stage
from worker.tasks import REFRESH_TASK
from worker.tenants import load_tenants

ROOT = Path(__file__).resolve().parents[2]
CALL = "aircall:812731"
AUTH = {"Authorization": "Bearer s3cret-admin"}


@pytest.fixture()
def pipeline(redis_client) -> Pipeline:
    tenants = load_tenants(ROOT / "config" / "tenants.yaml")
    pipe = Pipeline(tenants, CallStore(redis_client, clock=lambda: NOW), CrmFactory(redis_client).crm_for)
    pipe.accept(event())
    pipe.decide("demo", CALL)
    return pipe


@pytest.fixture()
def client(pipeline: Pipeline, redis_client, redis_url) -> TestClient:
    app = FastAPI()
    mount(
        app,
        lambda: pipeline,
        redis_client,
        token="s3cret-admin",
        send=celery_sender(create_celery(redis_url)),
    )
    return TestClient(app)


def queued(redis_client) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in redis_client.lrange("callmatch", 0, -1)]


def test_routes_need_the_bearer_token(client: TestClient, redis_client) -> None:
    assert client.get(f"/calls/demo/{CALL}").status_code == 401
    assert client.get(f"/calls/demo/{CALL}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    off = FastAPI()
    mount(off, lambda: None, redis_client, token="")  # type: ignore[arg-type,return-value]
    refused = TestClient(off).get(f"/calls/demo/{CALL}", headers=AUTH)
    assert refused.status_code == 403 and "CALLMATCH_ADMIN_TOKEN" in refused.json()["detail"]


def test_explain_refresh_override(client: TestClient, pipeline: Pipeline, redis_client) -> None:
    shown = client.get(f"/calls/demo/{CALL}", headers=AUTH)
    assert shown.status_code == 200 and shown.json()["decision"]["opportunity_id"] == "O1"
    assert client.get("/calls/demo/zoom:none", headers=AUTH).status_code == 404
    assert client.post(f"/calls/demo/{CALL}/refresh", headers=AUTH).status_code == 202
    locked = client.post(f"/calls/demo/{CALL}/override", headers=AUTH, json={"account_id": "A9"})
    assert locked.status_code == 202 and locked.json()["locked"] == ["account"]
    assert pipeline.store.require("demo", CALL).overrides == {"account_id": "A9"}
    assert client.post(f"/calls/demo/{CALL}/override", headers=AUTH, json={}).status_code == 400
    assert queued(redis_client) == [REFRESH_TASK, REFRESH_TASK]


def test_dead_letters_and_readyz(client: TestClient, pipeline: Pipeline, redis_client) -> None:
    pipeline.store.bury("demo", CALL, Stage.WRITE, "salesforce: 400 INVALID_FIELD", "fatal")
    listing = client.get("/dead-letters", headers=AUTH).json()
    assert [d["call_id"] for d in listing] == [CALL]
    assert client.post("/dead-letters/replay", headers=AUTH, json={"call_ids": ["nope"]}).status_code == 400
    replayed = client.post("/dead-letters/replay", headers=AUTH, json={"call_ids": [CALL]}).json()
    assert [d["stage"] for d in replayed["replayed"]] == ["write"]
    assert queued(redis_client) == ["callmatch.write"]
    assert client.get("/readyz").json() == {"status": "ready", "tenants": 1, "durability": "none"}
