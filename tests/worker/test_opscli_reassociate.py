"""`callmatch reassociate`, run as the console script on real Redis and the Salesforce emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.stack import TENANT
from tests.worker.test_reassociate import NOW, Org, org  # noqa: F401  (the fixture)

CALLMATCH = str(Path(sys.executable).parent / "callmatch")
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture()
def env(org: Org, redis_url: str) -> dict[str, str]:  # noqa: F811
    org.settings(match_by_domain=True)
    return {
        **os.environ,
        "CALLMATCH_REDIS_URL": redis_url,
        "CALLMATCH_TENANTS": str(org.directory / "tenants.yaml"),
        "CALLMATCH_NOW": NOW.isoformat(),
    }


@pytest.fixture()
def cli(env: dict[str, str]) -> Cli:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CALLMATCH, "reassociate", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def test_usage_errors_name_the_flag_and_its_value(cli: Cli) -> None:
    bad = cli("--tenant", TENANT, "--since", "30x")
    assert (
        bad.returncode == 2
        and bad.stderr == "callmatch reassociate: --since 30x: not a duration (e.g. 30d, 12h)\n"
    )
    unknown = cli("--tenant", "nobody", "--since", "30d")
    assert (
        unknown.returncode == 2
        and "unknown tenant 'nobody'" in unknown.stderr
        and "--tenant" in unknown.stderr
    )
    nothing = cli("--tenant", TENANT, "--resume")
    assert nothing.returncode == 2 and "no unfinished re-association run to resume" in nothing.stderr
    assert "Traceback" not in bad.stderr + unknown.stderr + nothing.stderr


def test_dry_run_then_a_run_stopped_and_resumed_report_the_same(cli: Cli, org: Org) -> None:  # noqa: F811
    before = org.snapshot()
    dry = cli("--tenant", TENANT, "--since", "30d", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    predicted = json.loads(dry.stdout)
    assert predicted["dry_run"] and predicted["state"] == "done" and predicted["total"] == 5
    assert predicted["summary"]["cases"] == {"none -> domain": 3}
    assert f"reassociate {predicted['run_id']}: 5/5 calls (" in dry.stderr and "/s, ETA" in dry.stderr
    assert org.snapshot() == before

    part = cli("--tenant", TENANT, "--since", "30d", "--limit", "2")
    assert part.returncode == 0, part.stderr
    assert "(2 done so far, paused)" in part.stdout
    run_id = part.stdout.split()[1]
    assert f"--resume {run_id}`" in part.stderr
    listing = cli("--tenant", TENANT, "--list")
    assert f"{run_id}  paused   2/5" in listing.stdout and "2 run(s)" in listing.stdout

    done = cli("--tenant", TENANT, "--resume", "--json")
    assert done.returncode == 0, done.stderr
    applied = json.loads(done.stdout)
    assert applied["run_id"] == run_id and applied["state"] == "done" and not applied["dry_run"]
    assert applied["summary"] == predicted["summary"]
    assert {org.decision(c)["account_id"] for c in ("aircall:200", "aircall:201", "aircall:202")} == {"001A3"}
    text = cli("--tenant", TENANT, "--resume", run_id)  # a finished run: its summary again
    assert text.returncode == 0 and "    none -> domain: 3" in text.stdout
    assert "    account_id changed on 3 call(s)" in text.stdout and "@" not in text.stdout


def test_ctrl_c_keeps_the_run_and_resume_finishes_it(env: dict[str, str], cli: Cli, org: Org) -> None:  # noqa: F811
    org.emulator.latency = 0.1  # each call takes a while: Ctrl-C lands in the middle of the run
    proc = subprocess.Popen(
        [CALLMATCH, "reassociate", "--tenant", TENANT, "--since", "30d", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "call(s) to go" in proc.stderr.readline()
    assert "1/5 calls" in proc.stderr.readline()  # a call done: Ctrl-C now
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted; the run is kept" in err and "Traceback" not in err
    listed = cli("--tenant", TENANT, "--list", "--json")
    [stopped] = json.loads(listed.stdout)
    assert stopped["state"] == "paused" and 1 <= stopped["done"] < 5
    org.emulator.latency = 0.0
    resumed = cli("--tenant", TENANT, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["run_id"] == stopped["run_id"]
    summary = json.loads(resumed.stdout)["summary"]
    assert summary["cases"] == {"none -> domain": 3} and summary["unchanged"] == 2
