"""Two tenants, `a` and `b`, with viewer and admin tokens kept hashed in a real tenants file, on the real Redis.

Tenant `a` has a decided call (also waiting for review), a dead letter (its account locked) and a preference;
tenant `b` has a call of the same id, so a token that crossed tenants would show it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.worker.test_service import NOW, event
from worker.config.tenants import TenantsSource
from worker.config.tokens import hash_token
from worker.ingest.events import CallEvent
from worker.ops.actions import celery_sender
from worker.ops.admin import mount
from worker.pipeline.celery_app import create_celery
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStore, Stage

ROOT = Path(__file__).resolve().parents[3]
CALL = "aircall:812731"
DEAD = "aircall:900"
GLOBAL = "global-admin-token-0123456789"
TOKENS = {
    "a-viewer": "a-viewer-token-0123456789",
    "a-admin": "a-admin-token-0123456789",
    "b-viewer": "b-viewer-token-0123456789",
    "b-admin": "b-admin-token-0123456789",
}
FAST_LN = 14  # the weakest cost the file accepts: the tests check many tokens


@cache
def token_hash(name: str) -> str:
    return hash_token(TOKENS[name], ln=FAST_LN)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tenants_text(viewers_of_a: bool = True) -> str:
    """The tenants file: `a` and `b` on the bundled scenario CRM, each with a viewer and an admin."""
    scenario = ROOT / "config" / "examples" / "basic.json"
    blocks = []
    for name in ("a", "b"):
        viewers = (
            f"""      viewers:
        - name: {name}-viewer
          token_hash: "{token_hash(f"{name}-viewer")}"
"""
            if viewers_of_a or name != "a"
            else ""
        )
        blocks.append(
            f"""  {name}:
    crm:
      kind: scenario
      scenario_file: {scenario}
    policy:
      default_region: FR
    access:
      admins:
        - name: {name}-admin
          token_hash: "{token_hash(f"{name}-admin")}"
{viewers}"""
        )
    return "version: 1\ntenants:\n" + "".join(blocks)


def event_of(tenant: str, call_id: str = CALL) -> CallEvent:
    return CallEvent.from_json({**event(call_id).to_json(), "tenant": tenant})


@dataclass
class World:
    """The pipeline the routes run on, the tenants file it reads, and the app."""

    pipeline: Pipeline
    path: Path
    redis: Any
    app: FastAPI
    make_client: Callable[..., TestClient]

    def snapshot(self) -> dict[str, Any]:
        """Every key of the database with its value: what a refused request must leave as it was."""
        return {key: self.redis.dump(key) for key in sorted(self.redis.keys("*"))}

    def queued(self) -> list[str]:
        return [json.loads(raw)["headers"]["task"] for raw in self.redis.lrange("callmatch", 0, -1)]


def seed(pipeline: Pipeline) -> None:
    """Tenant a: CALL decided, waiting for review, a preference; DEAD a dead letter with its account locked.

    Tenant b: its own CALL.
    """
    for tenant in ("a", "b"):
        pipeline.accept(event_of(tenant))
        pipeline.decide(tenant, CALL)
    pipeline.accept(event_of("a", DEAD))
    pipeline.decide("a", DEAD)
    pipeline.store.bury("a", DEAD, Stage.WRITE, "salesforce: 400 INVALID_FIELD", "fatal")

    def ambiguous(record: Any) -> None:
        record.decision["candidates"] = [{"type": "opportunity", "id": "O1"}]

    def locked_account(record: Any) -> None:
        record.overrides["account_id"] = "A1"
        record.locked = ["account"]

    pipeline.store.update("a", CALL, ambiguous)
    pipeline.store.update("a", DEAD, locked_account)
    pipeline.review.keep("a", CALL, True, NOW)
    pipeline.preferences.record("a", ["C1"], account_id="A1", opportunity_id=None, now=NOW, by="seed")


@pytest.fixture()
def world(redis_client, redis_url, tmp_path) -> World:
    path = tmp_path / "tenants.yaml"
    path.write_text(tenants_text())
    source = TenantsSource(path)
    pipeline = Pipeline(
        source.current,
        CallStore(redis_client, clock=lambda: NOW),
        CrmFactory(redis_client).crm_for,
        source=source,
    )
    seed(pipeline)
    app = FastAPI()
    mount(app, lambda: pipeline, redis_client, token=GLOBAL, send=celery_sender(create_celery(redis_url)))

    def make_client(base_url: str = "https://testserver") -> TestClient:
        return TestClient(app, base_url=base_url)

    return World(pipeline, path, redis_client, app, make_client)
