"""`callmatch status [--tenant T] [--watch [SECONDS]] [--json]`, run as the console script.

Per tenant: calls per status, decided / written in the last minute and hour; `--watch`
redraws until Ctrl-C (a real process, interrupted with SIGINT).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.worker.test_opscli_calls import Run, build_world, receive
from tests.worker.test_service_review import Clock, world_pipeline, write_world
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStatus, rate_key

CALLMATCH = str(Path(sys.executable).parent / "callmatch")


@pytest.fixture()
def tenants_path(tmp_path: Path) -> Path:
    return write_world(tmp_path)


@pytest.fixture()
def world(redis_client: Any, tenants_path: Path) -> Pipeline:
    return build_world(redis_client, tenants_path)


@pytest.fixture()
def env(redis_url: str, redis_client: Any, tenants_path: Path) -> dict[str, str]:
    return {**os.environ, "CALLMATCH_REDIS_URL": redis_url, "CALLMATCH_TENANTS": str(tenants_path)}


@pytest.fixture()
def cli(env: dict[str, str]) -> Run:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CALLMATCH, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    return run


def test_status_counts_each_tenants_calls_per_status_and_the_rate(cli: Run, world: Pipeline) -> None:
    proc = cli("status", "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    rows = {row["tenant"]: row for row in status["tenants"]}
    assert rows["acme"]["calls"] == {"received": 4, "fetched": 0, "decided": 2, "written": 1, "dead": 1}
    assert rows["acme"]["total"] == 8
    # decided: aircall:1, ringover:2 (since written), aircall:3; written: ringover:2 — all just now
    assert (rows["acme"]["decided_last_minute"], rows["acme"]["decided_last_hour"]) == (3, 3)
    assert (rows["acme"]["written_last_minute"], rows["acme"]["written_last_hour"]) == (1, 1)
    assert (rows["acme"]["dead_letters"], rows["acme"]["waiting_review"]) == (1, 1)
    assert rows["beta"]["calls"]["received"] == 1 and rows["beta"]["total"] == 1
    assert status["dead_letters"] == 1 and status["calls"] == 9 and status["queued"] == {"callmatch": 0}

    text = cli("status").stdout.splitlines()
    assert text[0] == "calls per tenant:"
    assert text[1].split() == [
        "tenant", "received", "fetched", "decided", "written", "dead", "total",
        "decided/min", "decided/h", "written/min", "written/h", "review",
    ]  # fmt: skip
    assert text[2].split() == ["acme", "4", "0", "2", "1", "1", "8", "3", "3", "1", "1", "1"]
    assert "dead letters: 1" in text  # what status showed before is still there


def test_status_of_one_tenant_shows_that_tenant_only(cli: Run, world: Pipeline) -> None:
    proc = cli("status", "--tenant", "beta", "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert [row["tenant"] for row in status["tenants"]] == ["beta"]
    assert (status["tenant"], status["calls"], status["dead_letters"], status["owed"]) == ("beta", 1, 0, 1)
    assert "acme" not in proc.stdout
    assert cli("status", "--tenant", "beta").stdout.startswith("calls of tenant beta:\n")
    unknown = cli("status", "--tenant", "nope")
    assert (unknown.returncode, unknown.stderr) == (2, "callmatch status: unknown tenant 'nope'\n")


def test_rates_count_the_last_minute_and_the_last_hour_apart(world: Pipeline) -> None:
    now = time.time()
    world.store.redis.zadd(
        rate_key("beta", CallStatus.WRITTEN), {"aircall:old": now - 600, "aircall:older": now - 4000}
    )
    assert world.store.rates("beta") == {"decided": [0, 0], "written": [0, 1]}


def _lines(proc: subprocess.Popen[str], count: int, timeout: float = 20.0) -> list[str]:
    """The next `count` lines the process prints, waiting for each with a deadline."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while len(lines) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for line {len(lines) + 1}; got {lines}"
        if selector.select(timeout=left):
            line = proc.stdout.readline()
            assert line, f"the process ended early: {proc.wait()}"
            lines.append(line)
    return lines


def test_watch_redraws_until_ctrl_c(env: dict[str, str], world: Pipeline, tenants_path: Path) -> None:
    proc = subprocess.Popen(
        [CALLMATCH, "status", "--tenant", "acme", "--watch", "0.2", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(_lines(proc, 1)[0])
        assert first["tenants"][0]["total"] == 8 and "at" in first
        clock = Clock()
        receive(world_pipeline(world.store.redis, tenants_path, clock), clock, "zoom:new", clock.now)
        seen = [json.loads(line)["tenants"][0]["total"] for line in _lines(proc, 3)]
        assert seen[-1] == 9, "a redraw shows the call received meanwhile"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_into_a_pipe_appends_each_snapshot(env: dict[str, str], world: Pipeline) -> None:
    proc = subprocess.Popen(
        [CALLMATCH, "status", "--watch", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        heads = [line for line in _lines(proc, 40) if line.startswith("--- ")]
        assert len(heads) >= 2, "two snapshots, one after the other"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watch_refuses_a_bad_interval(cli: Run) -> None:
    for bad in ("0", "-1", "soon"):
        proc = cli("status", "--watch", bad)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
