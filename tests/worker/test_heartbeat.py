"""Configuration agreement: each process reports the tenants it runs; `status` warns when they differ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from worker.config.tenants import TenantsSource
from worker.ops.actions import config_warnings
from worker.pipeline.heartbeat import processes, report

ROOT = Path(__file__).resolve().parents[2]
CALLMATCH = str(Path(sys.executable).parent / "callmatch")
DEFAULT = ROOT / "config" / "tenants.yaml"


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "tenants.yaml"
    text = DEFAULT.read_text().replace("scenario_file: examples/", f"scenario_file: {ROOT}/config/examples/")
    target.write_text(text)
    return target


def test_a_changed_file_is_picked_up_and_a_broken_one_is_refused_keeping_the_last_good(
    tmp_path: Path,
) -> None:
    path = _copy(tmp_path)
    source = TenantsSource(path)
    first = source.current.digest
    assert source.reload() is False, "nothing changed"
    path.write_text(path.read_text() + "\n# a comment changes the digest\n")
    assert source.reload() is True and source.current.digest != first
    good = source.current
    path.write_text("version: 1\ntenants: {}\n")
    assert source.reload() is False
    assert source.current is good and source.error is not None and "no tenant defined" in source.error


def test_each_process_reports_its_digest_and_status_warns_when_they_differ(
    tmp_path: Path, redis_client
) -> None:
    path = _copy(tmp_path)
    old = TenantsSource(path)
    report(redis_client, "worker", old, "2026-11-30T00:00:00Z")
    path.write_text(path.read_text() + "\n# edited\n")
    new = TenantsSource(path)
    report(redis_client, "receiver", new, "2026-11-30T00:00:00Z")
    running = processes(redis_client)
    assert {p["role"] for p in running} == {"worker", "receiver"}
    assert all(redis_client.ttl(f"callmatch:process:{p['role']}:{p['host']}:{p['pid']}") > 0 for p in running)
    assert len({p["tenants_digest"] for p in running}) == 2, "the worker last reported the old file"
    [warning] = config_warnings(running, new.current.digest)[:1]
    assert "different tenants files" in warning and old.current.digest in warning
    report(redis_client, "worker", old, "2026-11-30T00:00:00Z")  # its next heartbeat reloads the file first
    assert config_warnings(processes(redis_client), new.current.digest) == []


def test_callmatch_status_lists_processes_and_their_digests(
    tmp_path: Path, redis_url: str, redis_client
) -> None:
    report(redis_client, "worker", TenantsSource(DEFAULT), "2026-11-30T00:00:00Z")
    redis_client.set(
        "callmatch:process:beat:elsewhere:1",
        '{"role": "beat", "host": "elsewhere", "pid": 1, "tenants_digest": "0123456789ab", "tenants": []}',
    )
    env = {**os.environ, "CALLMATCH_REDIS_URL": redis_url, "CALLMATCH_TENANTS": str(DEFAULT)}
    proc = subprocess.run(
        [CALLMATCH, "status"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "worker" in proc.stdout and "beat elsewhere:1 tenants 0123456789ab" in proc.stdout
    assert "WARNING: processes run different tenants files" in proc.stdout
