"""The real processes of an end-to-end test: receiver, Celery workers, beat, the Salesforce emulator.

Shared by the end-to-end modules. Each process logs to the test's directory; every
wait is a condition with a deadline.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from adapters.crm.salesforce.mapping import SalesforceSettings
from tests.conftest import free_port, wait_until
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from worker.config.scenario import parse_scenario
from worker.dev.devstack import worker_command
from worker.pipeline.store import CallRecord, CallStatus, CallStore

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AIRCALL_TOKEN = "e2e-aircall-token"
CALL_START = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
TENANT = "acme"

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

# Short clocks so that retries, redeliveries and the sweep happen within a test's deadline.
FAST_ENV = {
    "CALLMATCH_RETRY_BASE_SECONDS": "0.2",
    "CALLMATCH_RETRY_MAX_SECONDS": "1",
    "CALLMATCH_MAX_RETRIES": "2",
    "CALLMATCH_MAX_RETRY_COUNTDOWN_SECONDS": "2",
    "CALLMATCH_HARD_TIME_LIMIT_SECONDS": "10",
    "CALLMATCH_STALL_SECONDS": "12",
    "CALLMATCH_SWEEP_INTERVAL_SECONDS": "1",
    "CALLMATCH_VISIBILITY_TIMEOUT_SECONDS": "11",
    "CALLMATCH_UNACKED_RESTORE_INTERVAL_SECONDS": "1",
    # Today, for the worker: R5's windows and the receiver's replay checks never depend on the real date.
    "CALLMATCH_NOW": "2026-06-01T00:00:00Z",
}


class RedisProcess:
    """A redis-server with its append-only file fsynced on every write, that a test can SIGKILL and restart."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisProcess:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed: run `make install`"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url(), socket_timeout=1, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, timeout=15, what=f"redis-server on port {self.port}")
        client.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def tenants_file(directory: Path, emulator: SalesforceEmulator, policy: dict[str, str] | None = None) -> Path:
    """The tenant `acme` on the emulator; `policy` adds policy keys (scalars) to `default_region: FR`."""
    more = "".join(f"      {key}: {value}\n" for key, value in (policy or {}).items())
    text = f"""version: 1
tenants:
  {TENANT}:
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
{more}    internal_domains: [ourco.com]
    providers:
      aircall:
        webhook_secret_env: E2E_AIRCALL_TOKEN
"""
    path = directory / "tenants.yaml"
    path.write_text(text)
    return path


def aircall_document(call_id: int, email: str, phone: str) -> dict[str, Any]:
    started = int(CALL_START.timestamp())
    return {
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


@dataclass
class Stack:
    emulator: SalesforceEmulator
    redis: redis.Redis
    store: CallStore
    env: dict[str, str]
    api_url: str
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    beat: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None

    @property
    def worker(self) -> subprocess.Popen[bytes]:
        return self.workers[-1]

    def _spawn(
        self, argv: list[str], log_name: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.log_dir / log_name).open("ab")
        return subprocess.Popen(
            argv,
            env={**self.env, **(extra_env or {})},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_api(self) -> None:
        self.api = self._spawn([str(BIN / "python"), "-m", "worker.ingest.server"], "api.log")

        def ready() -> bool:
            try:
                return httpx.get(f"{self.api_url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, what=f"the receiver to be ready; see {self.log_dir}/api.log")

    def start_worker(self, concurrency: int = 1) -> subprocess.Popen[bytes]:
        proc = self._spawn(worker_command(BIN, concurrency=concurrency), "worker.log")
        self.workers.append(proc)
        return proc

    def kill_worker(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def start_beat(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        argv = [str(BIN / "celery"), "-A", "worker.pipeline.tasks:app", "beat", "--loglevel", "INFO"]
        self.beat = self._spawn(argv, "beat.log", extra_env)
        return self.beat

    def stop_beat(self) -> None:
        if self.beat is not None and self.beat.poll() is None:
            os.killpg(self.beat.pid, signal.SIGTERM)
            self.beat.wait(timeout=20)
        self.beat = None

    def stop(self) -> None:
        self.stop_beat()
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            self.api.wait(timeout=20)

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
        document = aircall_document(call_id, email, phone)
        return httpx.post(f"{self.api_url}/webhooks/{TENANT}/aircall", json=document, timeout=10)

    def record(self, call_id: str) -> CallRecord | None:
        return self.store.get(TENANT, call_id)

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


@contextmanager
def running_stack(
    redis_url: str,
    directory: Path,
    extra_env: dict[str, str] | None = None,
    profile: OrgProfile | None = None,
    crm: dict[str, Any] | None = None,
    policy: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """The emulator, the receiver and one worker on `redis_url`; everything stopped afterwards.

    The org is a plain one after `callmatch setup` (no optional feature, our call-id field)
    unless `profile` says otherwise; its records are `crm` (scenario-v1's `crm`, default CRM),
    and the tenant's policy has `policy`'s keys too.
    """
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    scenario = parse_scenario(
        {"call": {"id": "seed", "started_at": "2026-01-01T00:00:00Z"}, "crm": CRM if crm is None else crm}
    )
    emulator = SalesforceEmulator(seed_org(scenario.crm, profile=profile or OrgProfile.after_setup())).start()
    env = {
        **os.environ,
        "CALLMATCH_REDIS_URL": redis_url,
        "CALLMATCH_TENANTS": str(tenants_file(directory, emulator, policy)),
        "CALLMATCH_PORT": str(free_port()),
        **FAST_ENV,
        "E2E_SF_ACCESS_TOKEN": emulator.issue_token(),
        "E2E_SF_CLIENT_ID": emulator.client_id,
        "E2E_SF_CLIENT_SECRET": emulator.client_secret,
        "E2E_SF_REFRESH_TOKEN": emulator.refresh_token,
        "E2E_AIRCALL_TOKEN": AIRCALL_TOKEN,
        **(extra_env or {}),
    }
    stack = Stack(
        emulator, client, CallStore(client), env, f"http://127.0.0.1:{env['CALLMATCH_PORT']}", directory
    )
    try:
        stack.start_api()
        stack.start_worker()
        yield stack
    finally:
        stack.stop()
        emulator.stop()
        with suppress(redis.RedisError):
            client.flushdb()
