"""A real receiver and a real worker on the embedded `demo` tenant: every line they write on standard
error is JSON, call ids stay readable while emails and phones are masked, and the worker's metrics
port serves every process's figures whether or not PROMETHEUS_MULTIPROC_DIR is given.

The demo's own signed Aircall and Ringover webhooks (`make demo`) go through the whole pipeline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import free_port, wait_until
from worker.core.model import Case
from worker.dev.demo import aircall_delivery, ringover_delivery
from worker.dev.devstack import worker_command
from worker.pipeline.store import CallStatus, CallStore, Stage

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CALLS = ("aircall:812731", "ringover:8391047621")


@dataclass
class Processes:
    directory: Path
    env: dict[str, str]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], **more_env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv,
            env={**self.env, **more_env},
            cwd=ROOT,
            stdout=(self.directory / f"{name}.out").open("wb"),
            stderr=(self.directory / f"{name}.err").open("wb"),
            start_new_session=True,
        )
        self.running[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.running.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def stderr(self, name: str) -> list[str]:
        return (self.directory / f"{name}.err").read_text(encoding="utf-8").splitlines()


@pytest.fixture()
def processes(redis_url: str, tmp_path: Path) -> Iterator[Processes]:
    url = redis_url.rsplit("/", 1)[0] + "/12"
    client = redis.Redis.from_url(url)
    client.flushdb()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "CALLMATCH_REDIS_URL": url,
            "CALLMATCH_TENANTS": str(ROOT / "config" / "tenants.yaml"),
            "CALLMATCH_PORT": str(free_port()),
            "CALLMATCH_WORKER_METRICS_PORT": str(free_port()),
            "CALLMATCH_LOG_LEVEL": "INFO",
        }
    )
    running = Processes(tmp_path, env)
    try:
        yield running
    finally:
        for name in list(running.running):
            running.stop(name)
        client.flushdb()
        client.close()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def json_lines(lines: list[str], who: str) -> list[dict[str, Any]]:
    parsed = []
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{who} stderr line {number} is not JSON: {line!r}")
    return parsed


def deliver_both(api: str, redis_url: str) -> CallStore:
    for provider, (body, headers) in (("aircall", aircall_delivery()), ("ringover", ringover_delivery())):
        response = httpx.post(f"{api}/webhooks/demo/{provider}", content=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
    store = CallStore(redis.Redis.from_url(redis_url, decode_responses=True))

    def written() -> bool:
        records = [store.get("demo", call_id) for call_id in CALLS]
        return all(r is not None and r.status is CallStatus.WRITTEN for r in records)

    wait_until(written, timeout=60, interval=0.1, what="both demo calls to be written")
    return store


def figure(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus exposition (labels in any order)."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if found == labels:
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{labels} in:\n{text}")


def test_every_line_is_json_and_call_ids_are_readable(processes: Processes) -> None:
    env = processes.env
    api = f"http://127.0.0.1:{env['CALLMATCH_PORT']}"
    processes.start("receiver", [str(BIN / "python"), "-m", "worker.ingest.server"])
    processes.start("worker", worker_command(BIN, concurrency=1))
    wait_until(lambda: answers(f"{api}/readyz"), timeout=30, what="the receiver")
    deliver_both(api, env["CALLMATCH_REDIS_URL"])
    assert httpx.get(f"{api}/nowhere", timeout=10).status_code == 404
    secret_query = httpx.post(f"{api}/webhooks/demo/teams?validationToken=do-not-log-me", timeout=10)
    assert secret_query.status_code >= 400
    processes.stop("worker")
    processes.stop("receiver")

    receiver = json_lines(processes.stderr("receiver"), "the receiver")
    worker = json_lines(processes.stderr("worker"), "the worker")
    everything = json.dumps(receiver + worker)
    for call_id in CALLS:  # as `callmatch explain` names them
        assert any(call_id in json.dumps(line) for line in receiver), f"{call_id} in the receiver's lines"
        assert any(call_id in json.dumps(line) for line in worker), f"{call_id} in the worker's lines"
    assert "***21" not in everything and "***31" not in everything
    for personal in ("jane@acme.com", "rep@ourco.com", "+33 6 12 34 56 78", "33612345678", "do-not-log-me"):
        assert personal not in everything, personal
    assert "r***@ourco.com" in everything

    loggers = {line["logger"] for line in receiver}
    assert {"uvicorn.error", "uvicorn.access", "callmatch.ingest"} <= loggers
    access = [line for line in receiver if line["logger"] == "uvicorn.access"]
    assert any(a["message"] == "POST /webhooks/demo/ringover 200" and a["status"] == 200 for a in access)
    assert any(a["path"] == "/webhooks/demo/teams?validationToken=***" for a in access)
    assert any(line["logger"].startswith("celery") for line in worker)


def test_the_worker_serves_metrics_without_a_multiprocess_directory(processes: Processes) -> None:
    env = processes.env
    api = f"http://127.0.0.1:{env['CALLMATCH_PORT']}"
    metrics = f"http://127.0.0.1:{env['CALLMATCH_WORKER_METRICS_PORT']}/metrics"
    processes.start("receiver", [str(BIN / "python"), "-m", "worker.ingest.server"])
    processes.start("worker", worker_command(BIN, concurrency=2))
    wait_until(lambda: answers(f"{api}/readyz") and answers(metrics), timeout=30, what="receiver and metrics")

    said = [line for line in json_lines(processes.stderr("worker"), "the worker") if "metrics_dir" in line]
    assert len(said) == 1 and "PROMETHEUS_MULTIPROC_DIR is not set" in said[0]["message"]
    made = Path(said[0]["metrics_dir"])
    assert made.is_dir()

    before = httpx.get(metrics, timeout=10).text
    assert figure(before, "callmatch_dead_letters_total", stage="fetch", tenant="demo") == 0
    assert figure(before, "callmatch_associations_total", case="contacts", tenant="demo") == 0
    assert figure(before, "callmatch_queue_depth", queue="callmatch") == 0
    assert figure(before, "callmatch_dead_letters_waiting", tenant="demo") == 0
    assert figure(before, "callmatch_redis_up") == 1

    store = deliver_both(api, env["CALLMATCH_REDIS_URL"])
    after = httpx.get(metrics, timeout=10).text  # figures of the pool's children, through the directory
    decided = sum(
        figure(after, "callmatch_associations_total", case=case, tenant="demo")
        for case in [c.value for c in Case]
    )
    assert decided == 2
    assert figure(after, "callmatch_events_total", provider="ringover", tenant="demo") == 1
    assert figure(after, "callmatch_calls", status="written", tenant="demo") == 2
    assert figure(after, "callmatch_stage_seconds_count", stage="write") == 2

    store.bury("demo", "aircall:812731", Stage.WRITE, "crm: 503", "retry")
    gauged = httpx.get(metrics, timeout=10).text
    assert figure(gauged, "callmatch_dead_letters_waiting", tenant="demo") == 1
    receiver_side = httpx.get(f"{api}/metrics", timeout=10).text
    assert figure(receiver_side, "callmatch_dead_letters_waiting", tenant="demo") == 1
    assert (
        figure(
            receiver_side, "callmatch_webhooks_total", outcome="accepted", provider="aircall", tenant="demo"
        )
        == 1
    )
    assert (
        figure(receiver_side, "callmatch_webhooks_total", outcome="duplicate", provider="zoom", tenant="demo")
        == 0
    )

    processes.stop("worker")
    assert not made.exists(), "the directory it made is removed when it stops"


def test_the_worker_uses_the_multiprocess_directory_it_is_given(processes: Processes, tmp_path: Path) -> None:
    env = processes.env
    given = tmp_path / "metrics"
    given.mkdir()
    api = f"http://127.0.0.1:{env['CALLMATCH_PORT']}"
    metrics = f"http://127.0.0.1:{env['CALLMATCH_WORKER_METRICS_PORT']}/metrics"
    processes.start("receiver", [str(BIN / "python"), "-m", "worker.ingest.server"])
    processes.start("worker", worker_command(BIN, concurrency=2), PROMETHEUS_MULTIPROC_DIR=str(given))
    wait_until(lambda: answers(f"{api}/readyz") and answers(metrics), timeout=30, what="receiver and metrics")
    deliver_both(api, env["CALLMATCH_REDIS_URL"])
    after = httpx.get(metrics, timeout=10).text
    assert figure(after, "callmatch_activities_written_total", created="true", tenant="demo") == 2
    assert any(given.glob("counter_*.db"))
    worker = json_lines(processes.stderr("worker"), "the worker")
    assert not any("metrics_dir" in line for line in worker)
    assert any(line["message"].startswith("worker metrics on http://127.0.0.1:") for line in worker)
    processes.stop("worker")
    assert given.is_dir(), "a directory it was given is left alone"
