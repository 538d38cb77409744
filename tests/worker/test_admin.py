"""HTTP operations on calls: bearer-token protected, same effects as the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.worker.test_service import NOW, event
from worker.config.tenants import load_tenants
from worker.ops.actions import celery_sender
from worker.ops.admin import mount
from worker.pipeline.celery_app import create_celery
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStore, Stage
from worker.pipeline.tasks import REFRESH_TASK

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


def test_routes_need_the_bearer_token(client: TestClient, pipeline: Pipeline, redis_client) -> None:
    assert client.get(f"/calls/demo/{CALL}").status_code == 401
    assert client.get(f"/calls/demo/{CALL}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    off = FastAPI()
    mount(off, lambda: pipeline, redis_client, token="")  # no global token, and the demo tenant has none
    refused = TestClient(off).get(f"/calls/demo/{CALL}", headers=AUTH)
    assert refused.status_code == 403 and "CALLMATCH_ADMIN_TOKEN" in refused.json()["error"]


def test_explain_refresh_override(client: TestClient, pipeline: Pipeline, redis_client) -> None:
    shown = client.get(f"/calls/demo/{CALL}", headers=AUTH)
    assert shown.status_code == 200 and shown.json()["decision"]["opportunity_id"] == "O1"
    assert client.get("/calls/demo/zoom:none", headers=AUTH).status_code == 404
    assert client.post(f"/calls/demo/{CALL}/refresh", headers=AUTH).status_code == 202
    locked = client.post(f"/calls/demo/{CALL}/override", headers=AUTH, json={"account_id": "A1"})
    assert locked.status_code == 202 and locked.json()["locked"] == ["account"]
    assert pipeline.store.require("demo", CALL).overrides == {"account_id": "A1"}
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


def test_tenant_routes_need_the_bearer_token(client: TestClient) -> None:
    assert client.get("/tenants/demo/doctor").status_code == 401
    assert client.post("/tenants/demo/setup?dry_run=true").status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert client.get("/tenants/demo/doctor", headers=wrong).status_code == 401


def test_doctor_answers_the_report(client: TestClient) -> None:
    answer = client.get("/tenants/demo/doctor", headers=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert body["tenant"] == "demo" and body["can_run"] is True
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["crm.scenario"]["status"] == "ok"
    assert checks["aircall.api"]["status"] == "warn" and checks["aircall.api"]["fix"]
    assert all(set(c) == {"name", "status", "detail", "fix"} for c in body["checks"])
    missing = client.get("/tenants/nope/doctor", headers=AUTH)
    assert missing.status_code == 404 and missing.json() == {"error": "unknown tenant 'nope'"}


def test_doctor_answers_503_when_the_tenant_cannot_run(redis_client, tmp_path) -> None:
    scenario = tmp_path / "crm.json"
    scenario.write_bytes((ROOT / "config" / "examples" / "basic.json").read_bytes())
    document = (
        ROOT.joinpath("config", "tenants.yaml").read_text().replace("examples/basic.json", str(scenario))
    )
    (tmp_path / "tenants.yaml").write_text(document)
    tenants = load_tenants(tmp_path / "tenants.yaml")
    pipe = Pipeline(tenants, CallStore(redis_client, clock=lambda: NOW), CrmFactory(redis_client).crm_for)
    app = FastAPI()
    mount(app, lambda: pipe, redis_client, token="s3cret-admin")
    scenario.unlink()  # the file the tenant reads its CRM from is gone
    answer = TestClient(app).get("/tenants/demo/doctor", headers=AUTH)
    assert answer.status_code == 503
    assert answer.json()["can_run"] is False
    crm = next(c for c in answer.json()["checks"] if c["name"] == "crm.scenario")
    assert crm["status"] == "fail" and "cannot read" in crm["detail"]


def test_setup_answers_the_steps(client: TestClient) -> None:
    dry = client.post("/tenants/demo/setup?dry_run=true", headers=AUTH)
    assert dry.status_code == 200
    assert dry.json()["dry_run"] is True and dry.json()["ok"] is True
    assert [s["outcome"] for s in dry.json()["steps"]] == ["present"]
    real = client.post("/tenants/demo/setup", headers=AUTH)
    assert real.status_code == 200 and real.json()["dry_run"] is False
    assert client.post("/tenants/nope/setup", headers=AUTH).status_code == 404
    assert client.post("/tenants/demo/setup?dry_run=maybe", headers=AUTH).status_code == 422


def test_setup_answers_502_when_a_step_failed(redis_client) -> None:
    from worker.config.tenants import parse_tenants

    document = {
        "version": 1,
        "tenants": {"sf": {"crm": {"kind": "salesforce", "instance_url": "https://127.0.0.1:9"}}},
    }
    tenants = parse_tenants(document)
    pipe = Pipeline(tenants, CallStore(redis_client, clock=lambda: NOW), CrmFactory(redis_client).crm_for)
    app = FastAPI()
    mount(app, lambda: pipe, redis_client, token="s3cret-admin")
    answer = TestClient(app).post("/tenants/sf/setup", headers=AUTH)
    assert answer.status_code == 502
    [step] = answer.json()["steps"]
    assert step["outcome"] == "failed" and step["detail"].startswith("SalesforceConfigError: crm.credentials")
