"""The operations API as `python -m worker.ingest.server` serves it: a real receiver process on the real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_until
from tests.worker.ops.conftest import CALL, GLOBAL, TOKENS, bearer, event_of, tenants_text
from worker.config.tenants import load_tenants
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStore

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def receiver(redis_url: str, redis_client, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "tenants.yaml"
    path.write_text(tenants_text())
    pipeline = Pipeline(load_tenants(path), CallStore(redis_client), CrmFactory(redis_client).crm_for)
    for tenant in ("a", "b"):
        pipeline.accept(event_of(tenant))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CALLMATCH_")},
        "CALLMATCH_TENANTS": str(path),
        "CALLMATCH_REDIS_URL": redis_url,
        "CALLMATCH_PORT": str(port),
        "CALLMATCH_ADMIN_TOKEN": GLOBAL,
    }
    log = (tmp_path / "api.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.ingest.server"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # exited: the assertion below says so

    try:
        wait_until(ready, timeout=30, what=f"the receiver; see {tmp_path}/api.log")
        assert proc.poll() is None, (tmp_path / "api.log").read_text()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_the_receiver_serves_the_api_with_tenant_tokens_and_console_sessions(receiver: str) -> None:
    with httpx.Client(base_url=receiver, timeout=10) as client:
        refused = client.get(f"/api/v1/tenants/a/calls/{CALL}", headers=bearer(TOKENS["b-admin"]))
        assert refused.status_code == 403 and refused.json()["field"] == "tenant"
        mine = client.get(f"/api/v1/tenants/b/calls/{CALL}", headers=bearer(TOKENS["b-admin"]))
        assert mine.status_code == 200 and mine.json()["tenant"] == "b"
        assert client.get("/api/v1/tenants", headers=bearer(GLOBAL)).json()[1]["name"] == "b"
        assert client.get(f"/calls/a/{CALL}").status_code == 401

        signed = client.post("/console/session", data={"token": TOKENS["a-admin"]})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert (
            "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        )  # http on 127.0.0.1
        me = client.get("/api/v1/me")
        assert me.status_code == 200 and me.json()["name"] == "a-admin"
        assert client.post(f"/api/v1/tenants/a/calls/{CALL}/refresh").status_code == 403
        csrf = {"X-CSRF-Token": me.json()["csrf_token"]}
        assert client.post(f"/api/v1/tenants/a/calls/{CALL}/refresh", headers=csrf).status_code == 202
        assert client.post("/console/session/delete", headers=csrf).status_code == 303
        assert client.get("/api/v1/me").status_code == 401

        schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert set(schemes) >= {"bearerToken", "consoleSession"}
