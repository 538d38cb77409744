"""End to end with real processes: Graph's handshake, subscribe, a lifecycle notification, beat's renewal.

The receiver under uvicorn answers the emulator's validation request over HTTP;
`callmatch providers subscribe` runs as the command an operator types; a prefork
Celery worker acts on the lifecycle notification the receiver queued; beat sends the
renewal pass. Every process shares a frozen `CALLMATCH_NOW` with the emulator's clock
(moved between phases by restarting the processes, never by sleeping).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from adapters.providers.teams import subscriptions as graph_client
from tests.adapters.providers import samples
from tests.conftest import free_port, wait_until
from tests.e2e.stack import BIN, FAST_ENV, ROOT
from tests.emulators.providers.server import ProviderEmulator, graph_lifecycle
from tests.worker.test_subscriptions import tenants_document
from worker.dev.devstack import worker_command
from worker.ingest.subscriptions import SubscriptionStore

T0 = dt.datetime(2026, 6, 1, 0, 0, tzinfo=dt.UTC)
PUBLIC = "https://callmatch.example"


class Processes:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.running: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], name: str, **extra: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            env={**self.env, **extra},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.running:
            self.stop(proc)


@pytest.fixture()
def world(redis_url: str, tmp_path: Path) -> Iterator[tuple[ProviderEmulator, Processes, str, redis.Redis]]:
    url = redis_url.rsplit("/", 1)[0] + "/8"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    emulator = ProviderEmulator().start()
    emulator.state.google_public_key = samples.public_pem(samples.OTHER_KEY)
    emulator.state.google_client_email = "callmatch@acme-project.iam.gserviceaccount.com"
    emulator.state.clock = lambda: T0
    document, environ = tenants_document(emulator.base_url, str(tmp_path))
    document["tenants"]["acme"]["crm"] = {
        "kind": "scenario",
        "scenario_file": str(ROOT / "config/examples/basic.json"),
    }
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(json.dumps(document))
    port = free_port()
    env = {
        **os.environ,
        **environ,
        **FAST_ENV,
        "CALLMATCH_REDIS_URL": url,
        "CALLMATCH_TENANTS": str(tenants),
        "CALLMATCH_PORT": str(port),
        "CALLMATCH_NOW": T0.isoformat(),
    }
    processes = Processes(env, tmp_path)
    api_url = f"http://127.0.0.1:{port}"

    def handshake(target: str, token: str) -> bool:
        """Graph's validation POST, to the real receiver over HTTP (the public https name mapped to it)."""
        answer = httpx.post(target.replace(PUBLIC, api_url), params={"validationToken": token}, timeout=10)
        return answer.status_code == 200 and answer.text == token

    emulator.state.graph_validate = handshake
    try:
        yield emulator, processes, api_url, client
    finally:
        processes.stop_all()
        emulator.stop()
        client.flushdb()
        client.close()


def _ready(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_subscribe_then_a_worker_reauthorizes_and_beat_renews(world: Any) -> None:
    emulator, processes, api_url, client = world
    processes.spawn([str(BIN / "python"), "-m", "worker.ingest.server"], "api")
    wait_until(lambda: _ready(api_url), timeout=30, what="the receiver")
    done = subprocess.run(
        [str(BIN / "callmatch"), "providers", "subscribe", "--tenant", "acme", "--provider", "teams"],
        env=processes.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [graph] = emulator.state.graph_subscriptions.values()
    assert done.stdout.startswith(f"subscribed  acme/teams  {graph['id']}")
    store = SubscriptionStore(client)
    created = store.get("acme", "teams")
    assert created is not None and created.renewed_at is None

    # Graph asks for reauthorization an hour later: the receiver queues it, a worker renews.
    later = T0 + dt.timedelta(hours=1)
    emulator.state.clock = lambda: later
    worker = processes.spawn(worker_command(BIN, concurrency=1), "worker", CALLMATCH_NOW=later.isoformat())
    body = graph_lifecycle(emulator, graph["id"], "reauthorizationRequired")
    answer = httpx.post(f"{api_url}/webhooks/acme/teams", content=json.dumps(body), timeout=10)
    assert answer.status_code == 200 and answer.json()["ignored"] == "lifecycle notification queued"

    def renewed_at(moment: dt.datetime) -> bool:
        sub = store.get("acme", "teams")
        return sub is not None and sub.renewed_at == moment

    wait_until(
        lambda: renewed_at(later),
        timeout=60,
        interval=0.2,
        what=f"the worker's renewal; see {processes.log_dir}",
    )
    expected = (later + graph_client.LIFETIME).strftime("%Y-%m-%dT%H:%M:%S")
    assert emulator.state.graph_subscriptions[graph["id"]]["expirationDateTime"].startswith(expected)

    # 40 hours later beat's pass finds it due (past half its lifetime) and a worker renews it.
    processes.stop(worker)
    much_later = T0 + dt.timedelta(hours=40)
    emulator.state.clock = lambda: much_later
    now = {"CALLMATCH_NOW": much_later.isoformat(), "CALLMATCH_SUBSCRIPTION_CHECK_SECONDS": "1"}
    processes.spawn(worker_command(BIN, concurrency=1), "worker2", **now)
    processes.spawn(
        [
            str(BIN / "celery"),
            "-A",
            "worker.pipeline.tasks:app",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(processes.log_dir / "beat-schedule"),
        ],
        "beat",
        **now,
    )
    wait_until(
        lambda: renewed_at(much_later),
        timeout=90,
        interval=0.2,
        what=f"beat's renewal; see {processes.log_dir}",
    )
    final = store.get("acme", "teams")
    assert final is not None and final.id == graph["id"]  # renewed, not replaced
