"""A plain install (no extras) runs every process: receiver, worker and beat.

The project is built from what the Dockerfile copies before its `pip install`, into a
fresh venv without system site packages, then each process is started from that venv
with its cwd outside the checkout and PYTHONPATH empty, so an import that only the dev
extra or the source tree satisfies fails here as it would in the image. Each process
must be really up: the receiver answers /healthz, the worker answers a remote-control
ping, beat holds redbeat's lock and has written its schedule to Redis.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
TENANTS = ROOT / "config" / "tenants.yaml"  # the embedded default: runs without secrets
REDBEAT_PREFIX = "callmatch:redbeat"
WORKER_NODE = "packaging-test@callmatch"
START_TIMEOUT = 45.0


def _docker_build_context(dest: Path) -> set[str]:
    """Copy what the Dockerfile copies before `RUN pip install` into `dest`; return the extras it installs."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "COPY" and not any(w.startswith("--from") for w in words):
            *sources, target = (w for w in words[1:] if not w.startswith("--"))
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(src, dest / target, ignore=ignore, dirs_exist_ok=True)
                elif target.endswith("/"):
                    (dest / target).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest / target / src.name)
                else:
                    shutil.copy2(src, dest / target)
        elif words[0] == "RUN" and "pip" in words and "install" in words:
            target = next(w for w in words[words.index("install") + 1 :] if not w.startswith("-"))
            match = re.fullmatch(r"\.(?:\[([a-z0-9_,-]*)\])?", target)
            assert match, f"the Dockerfile installs {target!r}, not the project from its context"
            return set(filter(None, (match.group(1) or "").split(",")))
    raise AssertionError("the Dockerfile has no `RUN pip install` of the project")


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Processes:
    """Children in their own process groups, each logging to a file; all killed by `stop`."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, argv: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.cwd / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append((proc, log))
        return proc, log

    def stop(self) -> None:
        for proc, _log in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _log in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            # Whatever is left of the group (a stuck parent, an orphaned prefork child) goes now.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _up(
    proc: subprocess.Popen[bytes], log: Path, check: Callable[[], bool], what: str, timeout: float
) -> None:
    """Wait until `check()`; a process that exits meanwhile fails at once, with its log."""

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"{what}: exited {proc.returncode} before it was up:\n{log.read_text(errors='replace')}"
            )
        return check()

    try:
        wait_until(ready, timeout=timeout, interval=0.1, what=what)
    except AssertionError as exc:
        if proc.poll() is None:
            raise AssertionError(f"{exc}\n{log.name}:\n{log.read_text(errors='replace')}") from None
        raise


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture()
def plain_install(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], Path]]:
    """A fresh venv with the project installed without extras; its bin, a clean env and an empty cwd."""
    context = tmp_path / "context"
    context.mkdir()
    extras = _docker_build_context(context)
    assert "dev" not in extras, "the image must not install the dev extra"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / "bin"
    outside = tmp_path / "run"
    outside.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CALLMATCH_", "PYTHON", "PROMETHEUS_", "VIRTUAL_ENV", "CELERY"))
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        PYTHONPATH="",
        PYTHONNOUSERSITE="1",
        PYTHONUNBUFFERED="1",
    )
    # pip's cache is kept (no --no-cache-dir): a warm cache makes this a local install.
    _run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(context)],
        env,
        outside,
        timeout=240,  # below pytest's 300 s, so a hung install fails here with pip's output
    )
    _run([str(bin_dir / "python"), "-m", "pip", "check"], env, outside, timeout=60)
    located = _run(
        [str(bin_dir / "python"), "-c", "import adapters, worker; print(worker.__file__, adapters.__file__)"],
        env,
        outside,
        timeout=60,
    )
    for module_file in located.split():
        assert Path(module_file).is_relative_to(venv), f"imported from {module_file}, not from the venv"
    yield bin_dir, env, outside


def test_plain_install_runs_receiver_worker_and_beat(
    plain_install: tuple[Path, dict[str, str], Path], redis_url: str
) -> None:
    bin_dir, env, outside = plain_install
    url = redis_url.rsplit("/", 1)[0] + "/9"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    port = free_port()
    env = {
        **env,
        "CALLMATCH_REDIS_URL": url,
        "CALLMATCH_TENANTS": str(TENANTS),
        "CALLMATCH_PORT": str(port),
        "CALLMATCH_DEMO_AIRCALL_TOKEN": "packaging-aircall-token",
        "CALLMATCH_DEMO_RINGOVER_KEY": "packaging-ringover-key-" + "0" * 48,
        "CALLMATCH_DEMO_ZOOM_SECRET": "packaging-zoom-secret",
    }
    celery = [str(bin_dir / "celery"), "-A", "worker.pipeline.tasks:app"]
    processes = Processes(env, outside)
    try:
        receiver = processes.start("receiver", [str(bin_dir / "python"), "-m", "worker.ingest.server"])
        worker = processes.start(
            "worker",
            [*celery, "worker", "-Q", "callmatch", "-c", "1", "--loglevel", "INFO", "-n", WORKER_NODE],
        )
        beat = processes.start(
            "beat",
            [*celery, "beat", "--loglevel", "INFO", "--schedule", str(outside / "beat-schedule")],
        )

        _up(
            *receiver,
            lambda: _http_ok(f"http://127.0.0.1:{port}/healthz"),
            "receiver /healthz",
            START_TIMEOUT,
        )

        def pong() -> bool:
            ping = subprocess.run(
                [*celery, "inspect", "ping", "-d", WORKER_NODE, "--timeout", "2"],
                env=env,
                cwd=outside,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            return ping.returncode == 0 and "pong" in ping.stdout

        worker_log = worker[1]
        _up(*worker, lambda: "ready" in worker_log.read_text(errors="replace"), "worker ready", START_TIMEOUT)
        _up(*worker, pong, f"a pong from {WORKER_NODE}", START_TIMEOUT)

        def beat_running() -> bool:
            started = "beat: Starting" in beat[1].read_text(errors="replace")
            return started and bool(
                client.exists(f"{REDBEAT_PREFIX}:lock") and client.zcard(f"{REDBEAT_PREFIX}:schedule")
            )

        _up(*beat, beat_running, "beat to start, take redbeat's lock and store its schedule", START_TIMEOUT)
        assert set(client.scan_iter(f"{REDBEAT_PREFIX}*")) >= {
            f"{REDBEAT_PREFIX}:lock",
            f"{REDBEAT_PREFIX}:schedule",
            f"{REDBEAT_PREFIX}:statics",
        }
    finally:
        processes.stop()
        client.flushdb()
        client.close()
