"""`callmatch explain / override / refresh / dead-letters / status`, run as the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.worker.test_service import event
from worker.pipeline.store import Stage
from worker.pipeline.tasks import ASSOCIATE_TASK, REFRESH_TASK

ROOT = Path(__file__).resolve().parents[2]
CALLMATCH = str(Path(sys.executable).parent / "callmatch")
CALL = "aircall:812731"


@pytest.fixture()
def cli(redis_url: str, redis_client):
    env = {
        **os.environ,
        "CALLMATCH_REDIS_URL": redis_url,
        "CALLMATCH_TENANTS": str(ROOT / "config" / "tenants.yaml"),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CALLMATCH, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    return run


@pytest.fixture()
def decided(redis_client):
    from tests.worker.test_service import NOW
    from worker.config.tenants import load_tenants
    from worker.pipeline.crm_factory import CrmFactory
    from worker.pipeline.service import Pipeline
    from worker.pipeline.store import CallStore

    tenants = load_tenants(ROOT / "config" / "tenants.yaml")
    pipeline = Pipeline(tenants, CallStore(redis_client, clock=lambda: NOW), CrmFactory(redis_client).crm_for)
    pipeline.accept(event())
    pipeline.decide("demo", CALL)
    pipeline.write("demo", CALL)
    return pipeline


def queued_tasks(redis_client) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in redis_client.lrange("callmatch", 0, -1)]


def test_explain_prints_status_result_and_trace(cli, decided) -> None:
    proc = cli("explain", CALL)
    assert proc.returncode == 0, proc.stderr
    assert f"call {CALL} (tenant demo): written" in proc.stdout
    assert "opportunity: O1" in proc.stdout and "[S1.1]" in proc.stdout
    as_json = json.loads(cli("explain", CALL, "--json").stdout)
    assert as_json["status"] == "written" and as_json["written"]["id"] == f"W-{CALL}"


def test_explain_unknown_call_is_a_clear_error(cli, redis_client) -> None:
    proc = cli("explain", "zoom:nope")
    assert proc.returncode == 2
    assert "no call 'zoom:nope' for tenant 'demo'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_override_locks_and_enqueues_a_refresh(cli, decided, redis_client) -> None:
    proc = cli("override", CALL, "--opportunity", "O1", "--contact", "C1")
    assert proc.returncode == 0, proc.stderr
    record = decided.store.require("demo", CALL)
    assert record.locked == ["contacts", "opportunity"] and record.overrides["opportunity_id"] == "O1"
    assert queued_tasks(redis_client) == [REFRESH_TASK]
    assert cli("override", CALL).returncode == 2


def test_refresh_enqueues(cli, decided, redis_client) -> None:
    assert cli("refresh", CALL).returncode == 0
    assert queued_tasks(redis_client) == [REFRESH_TASK]


def test_dead_letters_list_and_replay(cli, decided, redis_client) -> None:
    decided.store.bury("demo", CALL, Stage.ASSOCIATE, "hubspot: 400 PROPERTY_DOESNT_EXIST", "fatal")
    listing = cli("dead-letters", "list")
    assert "hubspot: 400 PROPERTY_DOESNT_EXIST" in listing.stdout and "1 dead letter(s)" in listing.stdout
    assert cli("dead-letters", "replay").returncode == 2
    assert cli("dead-letters", "replay", "zoom:other").returncode == 2
    replay = cli("dead-letters", "replay", CALL)
    assert replay.returncode == 0 and "replayed aircall:812731 (tenant demo) from associate" in replay.stdout
    assert queued_tasks(redis_client) == [ASSOCIATE_TASK]
    assert decided.store.dead_count() == 0


def test_status_counts(cli, decided, redis_client) -> None:
    decided.store.bury("demo", CALL, Stage.WRITE, "salesforce: 503", "retry")
    status = json.loads(cli("status", "--json").stdout)
    assert status["dead_letters"] == 1 and status["calls"] == 1 and status["queued"] == {"callmatch": 0}
    assert "dead letters: 1" in cli("status").stdout


def test_simulate_decides_against_the_crm_and_writes_nothing(cli, redis_client, tmp_path) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event("aircall:sim-1").to_json()))
    proc = cli("simulate", "--tenant", "demo", "--format", "text", str(event_file))
    assert proc.returncode == 0, proc.stderr
    assert "call aircall:sim-1: contacts" in proc.stdout and "[S1.1]" in proc.stdout
    as_json = json.loads(cli("simulate", "--tenant", "demo", str(event_file)).stdout)  # JSON, like decide
    assert as_json["opportunity_id"] == "O1"
    assert redis_client.keys("callmatch:call:*") == []
    assert redis_client.hlen("callmatch:scenario-crm:demo:activities") == 0
    bad = cli("simulate", "--tenant", "demo", str(tmp_path / "missing.json"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
