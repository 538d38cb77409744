"""End to end: signed webhook -> receiver -> Redis -> a real Celery worker -> the Salesforce emulator.

Real processes (the receiver under uvicorn, a prefork Celery worker), a real
redis-server, and simple-salesforce talking HTTPS to the emulator. Every wait is a
condition with a deadline.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from adapters.crm.salesforce.mapping import SalesforceSettings
from tests.conftest import free_port, wait_until
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from worker.devstack import worker_command
from worker.scenario import parse_scenario
from worker.store import CallRecord, CallStatus, CallStore

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AIRCALL_TOKEN = "e2e-aircall-token"
CALL_START = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)

CRM: dict[str, Any] = {
    "users": [{"id": "005U1", "email": "rep@ourco.com"}],
    "accounts": [
        {"id": "001A1", "name": "Acme", "domains": ["acme.com"]},
        {"id": "001A2", "name": "Contoso", "domains": ["contoso.com"]},
    ],
    "contacts": [
        {"id": "003C1", "email": "jane@acme.com", "phones": ["+33 6 12 34 56 78"], "account_ids": ["001A1"]},
        {
            "id": "003C2",
            "email": "kim@contoso.com",
            "phones": ["+33 6 99 88 77 66"],
            "account_ids": ["001A2"],
        },
    ],
    "opportunities": [
        {
            "id": "006O1",
            "account_id": "001A1",
            "owner_id": "005U1",
            "created_at": "2026-02-01T10:00:00Z",
            "updated_at": "2026-03-01T10:00:00Z",
            "close_date": "2026-04-30",
        },
        {
            "id": "006O9",
            "account_id": "001A1",
            "owner_id": "005U1",
            "created_at": "2025-06-01T10:00:00Z",
            "updated_at": "2025-07-01T10:00:00Z",
            "is_closed": True,
            "close_date": "2025-07-01",
        },
    ],
}


@dataclass
class Stack:
    emulator: SalesforceEmulator
    redis: redis.Redis
    store: CallStore
    env: dict[str, str]
    api_url: str
    worker: subprocess.Popen[bytes]
    log_dir: Path

    def start_worker(self) -> None:
        log = (self.log_dir / "worker.log").open("ab")
        self.worker = subprocess.Popen(
            worker_command(BIN, concurrency=1),
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(timeout=10)

    def callmatch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "callmatch"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def post_aircall(self, call_id: int, email: str, phone: str) -> httpx.Response:
        started = int(CALL_START.timestamp())
        document = {
            "resource": "call",
            "event": "call.ended",
            "timestamp": started + 1400,
            "token": AIRCALL_TOKEN,
            "data": {
                "id": call_id,
                "direction": "outbound",
                "status": "done",
                "started_at": started,
                "answered_at": started + 5,
                "ended_at": started + 1320,
                "duration": 1320,
                "raw_digits": phone,
                "user": {"id": 456, "name": "Rep One", "email": "rep@ourco.com"},
                "contact": {"id": 789, "emails": [{"label": "Work", "value": email}], "phone_numbers": []},
            },
        }
        return httpx.post(f"{self.api_url}/webhooks/acme/aircall", json=document, timeout=10)

    def record(self, call_id: str) -> CallRecord | None:
        return self.store.get("acme", call_id)

    def wait_status(self, call_id: str, *statuses: CallStatus, timeout: float = 60) -> CallRecord:
        def reached() -> bool:
            record = self.record(call_id)
            return record is not None and record.status in statuses

        wait_until(
            reached,
            timeout=timeout,
            interval=0.1,
            what=f"{call_id} to reach {', '.join(statuses)}; see {self.log_dir}",
        )
        record = self.record(call_id)
        assert record is not None
        return record

    def tasks_for(self, call_id: str) -> list[dict[str, Any]]:
        return self.emulator.org.find_by("Task", SalesforceSettings().external_id_field, call_id)


def _tenants_file(directory: Path, emulator: SalesforceEmulator) -> Path:
    text = f"""version: 1
tenants:
  acme:
    crm:
      kind: salesforce
      instance_url: {emulator.instance_url}
      ca_file: {emulator.ca_file}
      read_timeout: 10
      login_url: {emulator.instance_url}
      credentials:
        access_token_env: E2E_SF_ACCESS_TOKEN
        client_id_env: E2E_SF_CLIENT_ID
        client_secret_env: E2E_SF_CLIENT_SECRET
        refresh_token_env: E2E_SF_REFRESH_TOKEN
    policy:
      default_region: FR
    internal_domains: [ourco.com]
    providers:
      aircall:
        webhook_secret_env: E2E_AIRCALL_TOKEN
"""
    path = directory / "tenants.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("e2e")
    url = redis_url.rsplit("/", 1)[0] + "/7"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    scenario = parse_scenario({"call": {"id": "seed", "started_at": "2026-01-01T00:00:00Z"}, "crm": CRM})
    emulator = SalesforceEmulator(seed_org(scenario.crm, SalesforceSettings())).start()
    api_port = free_port()
    env = {
        **os.environ,
        "CALLMATCH_REDIS_URL": url,
        "CALLMATCH_TENANTS": str(_tenants_file(directory, emulator)),
        "CALLMATCH_PORT": str(api_port),
        "CALLMATCH_RETRY_BASE_SECONDS": "0.2",
        "CALLMATCH_RETRY_MAX_SECONDS": "1",
        "CALLMATCH_MAX_RETRIES": "2",
        "CALLMATCH_MAX_RETRY_COUNTDOWN_SECONDS": "2",
        "CALLMATCH_VISIBILITY_TIMEOUT_SECONDS": "4",
        "CALLMATCH_UNACKED_RESTORE_INTERVAL_SECONDS": "1",
        "E2E_SF_ACCESS_TOKEN": emulator.issue_token(),
        "E2E_SF_CLIENT_ID": emulator.client_id,
        "E2E_SF_CLIENT_SECRET": emulator.client_secret,
        "E2E_SF_REFRESH_TOKEN": emulator.refresh_token,
        "E2E_AIRCALL_TOKEN": AIRCALL_TOKEN,
    }
    api_log = (directory / "api.log").open("ab")
    api = subprocess.Popen(
        [str(BIN / "python"), "-m", "worker.ingest.server"],
        env=env,
        cwd=ROOT,
        stdout=api_log,
        stderr=subprocess.STDOUT,
    )
    stack = Stack(emulator, client, CallStore(client), env, f"http://127.0.0.1:{api_port}", None, directory)  # type: ignore[arg-type]
    stack.start_worker()

    def ready() -> bool:
        try:
            return httpx.get(f"{stack.api_url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=30, what=f"the receiver to be ready; see {directory}/api.log")
        yield stack
    finally:
        for proc in (api, stack.worker):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM) if proc is stack.worker else proc.terminate()
                proc.wait(timeout=20)
        emulator.stop()
        client.flushdb()


def test_a_signed_webhook_becomes_exactly_one_crm_activity(stack: Stack) -> None:
    response = stack.post_aircall(9001, "jane@acme.com", "+33 6 12 34 56 78")
    assert response.status_code == 200 and response.json()["accepted"] == ["aircall:9001"]
    record = stack.wait_status("aircall:9001", CallStatus.WRITTEN)
    assert record.decision is not None and record.decision["opportunity_id"] == "006O1"
    tasks = stack.tasks_for("aircall:9001")
    assert len(tasks) == 1
    assert (tasks[0]["WhoId"], tasks[0]["WhatId"], tasks[0]["TaskSubtype"]) == ("003C1", "006O1", "Call")
    again = stack.post_aircall(9001, "jane@acme.com", "+33 6 12 34 56 78")
    assert again.status_code == 200 and again.json()["duplicates"] == ["aircall:9001"]
    unsigned = httpx.post(
        f"{stack.api_url}/webhooks/acme/aircall", json={"token": "wrong", "event": "call.ended"}, timeout=10
    )
    assert unsigned.status_code == 401
    assert len(stack.tasks_for("aircall:9001")) == 1


def test_worker_killed_mid_task_still_yields_exactly_one_activity(stack: Stack) -> None:
    stack.emulator.latency = 1.5
    try:
        assert stack.post_aircall(9002, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200

        def associating() -> bool:
            record = stack.record("aircall:9002")
            return record is not None and record.attempts.get("associate", 0) >= 1

        wait_until(associating, timeout=30, what="the worker to start associating aircall:9002")
        stack.kill_worker()
    finally:
        stack.emulator.latency = 0.0
    assert stack.record("aircall:9002").status is not CallStatus.WRITTEN  # type: ignore[union-attr]
    stack.start_worker()
    record = stack.wait_status("aircall:9002", CallStatus.WRITTEN)
    assert record.attempts["associate"] >= 2
    assert len(stack.tasks_for("aircall:9002")) == 1


def test_refresh_after_an_opportunity_is_created_links_it(stack: Stack) -> None:
    assert stack.post_aircall(9003, "kim@contoso.com", "+33 6 99 88 77 66").status_code == 200
    record = stack.wait_status("aircall:9003", CallStatus.WRITTEN)
    assert record.decision is not None and record.decision["opportunity_id"] is None
    assert record.decision["account_id"] == "001A2"
    scheduled = stack.redis.zscore("callmatch:refresh", json.dumps(["acme", "aircall:9003"]))
    assert scheduled is None, "R5: the call is months old, its created_after_days window has closed"
    new_id = stack.emulator.org.insert(
        "Opportunity",
        {
            "Name": "Contoso expansion",
            "AccountId": "001A2",
            "OwnerId": "005U1",
            "StageName": "Prospecting",
            "IsClosed": False,
            "IsWon": False,
            "CloseDate": "2026-05-31",
            "CreatedDate": "2026-03-12T08:00:00.000+0000",
            "LastModifiedDate": "2026-03-12T08:00:00.000+0000",
        },
    )
    proc = stack.callmatch("refresh", "aircall:9003")
    assert proc.returncode == 0, proc.stderr

    def linked() -> bool:
        current = stack.record("aircall:9003")
        return current is not None and current.refreshes >= 1 and current.status is CallStatus.WRITTEN

    wait_until(linked, timeout=60, what="the refresh of aircall:9003")
    wait_until(
        lambda: stack.tasks_for("aircall:9003")[0]["WhatId"] == new_id,
        timeout=30,
        what="the Task to point at the new opportunity",
    )
    refreshed = stack.record("aircall:9003")
    assert refreshed is not None and refreshed.decision is not None
    assert refreshed.decision["opportunity_id"] == new_id
    assert any(e["rule"] == "S1.2" for e in refreshed.decision["trace"])
    assert len(stack.tasks_for("aircall:9003")) == 1


def test_an_override_survives_refresh(stack: Stack) -> None:
    assert stack.post_aircall(9004, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
    stack.wait_status("aircall:9004", CallStatus.WRITTEN)
    assert stack.tasks_for("aircall:9004")[0]["WhatId"] == "006O1"
    assert stack.callmatch("override", "aircall:9004", "--opportunity", "006O9").returncode == 0
    wait_until(
        lambda: stack.tasks_for("aircall:9004")[0]["WhatId"] == "006O9",
        timeout=60,
        what="the override to be written",
    )
    before = stack.wait_status("aircall:9004", CallStatus.WRITTEN).refreshes
    assert stack.callmatch("refresh", "aircall:9004").returncode == 0

    def refreshed_again() -> bool:
        current = stack.record("aircall:9004")
        return (
            current is not None
            and current.refreshes > before
            and current.written_at is not None
            and current.decided_at is not None
            and current.written_at >= current.decided_at
        )

    wait_until(refreshed_again, timeout=60, what="the second refresh")
    record = stack.wait_status("aircall:9004", CallStatus.WRITTEN)
    assert record.decision is not None and record.decision["opportunity_id"] == "006O9"
    assert any(e["rule"] == "R4" for e in record.decision["trace"])
    tasks = stack.tasks_for("aircall:9004")
    assert len(tasks) == 1 and tasks[0]["WhatId"] == "006O9"


def test_a_fatal_crm_error_ends_as_a_dead_letter_and_replay_succeeds_once_cleared(stack: Stack) -> None:
    stack.emulator.validation_rules["Task"] = "Calls must have a Subject approved by RevOps"
    try:
        assert stack.post_aircall(9005, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
        record = stack.wait_status("aircall:9005", CallStatus.DEAD)
        assert record.error is not None and record.error["stage"] == "write"
        assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in record.error["reason"]
        listing = stack.callmatch("dead-letters", "list")
        assert "aircall:9005" in listing.stdout and "at write" in listing.stdout
        assert stack.tasks_for("aircall:9005") == []
    finally:
        stack.emulator.validation_rules.clear()
    replay = stack.callmatch("dead-letters", "replay", "aircall:9005")
    assert replay.returncode == 0 and "replayed aircall:9005" in replay.stdout
    stack.wait_status("aircall:9005", CallStatus.WRITTEN)
    assert len(stack.tasks_for("aircall:9005")) == 1
    assert "0 dead letter(s)" in stack.callmatch("dead-letters", "list").stdout


def test_beat_refresh_due_re_runs_calls_whose_next_look_is_due(stack: Stack) -> None:
    from worker.celery_app import create_celery
    from worker.tasks import REFRESH_DUE_TASK

    assert stack.post_aircall(9006, "kim@contoso.com", "+33 6 99 88 77 66").status_code == 200
    before = stack.wait_status("aircall:9006", CallStatus.WRITTEN).refreshes
    stack.store.schedule_refresh("acme", "aircall:9006", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    create_celery(stack.env["CALLMATCH_REDIS_URL"]).send_task(REFRESH_DUE_TASK, ignore_result=True)

    def refreshed() -> bool:
        current = stack.record("aircall:9006")
        return current is not None and current.refreshes > before and current.status is CallStatus.WRITTEN

    wait_until(refreshed, timeout=60, what="beat's refresh_due to refresh aircall:9006")
    assert stack.store.due_refreshes(dt.datetime.now(dt.UTC)) == []
    assert len(stack.tasks_for("aircall:9006")) == 1
