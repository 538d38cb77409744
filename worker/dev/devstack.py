"""`make run`: Redis, the webhook receiver, a worker and beat on the embedded default tenant.

Everything runs on loopback as child processes of this one; Ctrl-C (or SIGTERM)
stops them all, in reverse order, and waits for them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlparse

from worker.config.settings import settings

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".run"
DEV_METRICS_PORT = 9808


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait(what: str, ready: object, proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    assert callable(ready)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            raise SystemExit(
                f"callmatch run: {what} exited with status {proc.returncode}; see the lines above"
            )
        time.sleep(0.1)
    raise SystemExit(f"callmatch run: {what} did not become ready within {timeout:.0f}s")


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def worker_command(bin_dir: Path, concurrency: int) -> list[str]:
    """A Celery worker on the callmatch queue, as `make run`, compose and the tests start it."""
    return [
        str(bin_dir / "celery"),
        "-A",
        "worker.pipeline.tasks:app",
        "worker",
        "-Q",
        "callmatch",
        "-c",
        str(concurrency),
        "--loglevel",
        "INFO",
    ]


class Stack:
    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True)
        self.children.append((name, proc))
        return proc

    def stop(self) -> None:
        """Terminate children in reverse order; a second Ctrl-C must not cut this short."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> int:
    bin_dir = Path(sys.executable).parent
    configured = settings()
    redis_url = configured.redis_url
    parsed = urlparse(redis_url)
    host, redis_port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    api_port = configured.port
    # The dev stack serves the worker's metrics unless told otherwise (the setting's own default is off).
    metrics_port = (
        configured.worker_metrics_port
        if "worker_metrics_port" in configured.model_fields_set
        else DEV_METRICS_PORT
    )
    tenants = str(configured.tenants or ROOT / "config" / "tenants.yaml")
    RUN_DIR.mkdir(exist_ok=True)
    multiproc = tempfile.mkdtemp(prefix="callmatch-metrics-")
    token = configured.admin_token
    admin_token = (token.get_secret_value() if token else "") or secrets.token_urlsafe(18)
    env = {
        **os.environ,
        "CALLMATCH_REDIS_URL": redis_url,
        "CALLMATCH_TENANTS": tenants,
        "CALLMATCH_PORT": str(api_port),
        "CALLMATCH_WORKER_METRICS_PORT": str(metrics_port),
        "PROMETHEUS_MULTIPROC_DIR": multiproc,
        "CALLMATCH_ADMIN_TOKEN": admin_token,
    }
    stack = Stack()

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        if _reachable(host, redis_port):
            print(f"callmatch run: using the Redis already answering at {host}:{redis_port}")
        else:
            server = shutil.which("redis-server")
            if server is None:
                print(
                    "callmatch run: redis-server is not installed; run `make install` or `docker compose up redis`"
                )
                return 1
            redis_proc = stack.start(
                "redis",
                [
                    server,
                    "--bind",
                    host,
                    "--port",
                    str(redis_port),
                    "--dir",
                    str(RUN_DIR),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--maxmemory-policy",
                    "noeviction",
                    "--save",
                    "",
                    "--loglevel",
                    "warning",
                ],
                env,
            )
            _wait("redis-server", lambda: _reachable(host, redis_port), redis_proc)
        api = stack.start("receiver", [str(bin_dir / "python"), "-m", "worker.ingest.server"], env)
        stack.start("worker", [*worker_command(bin_dir, concurrency=2), "-n", "callmatch@%h"], env)
        stack.start(
            "beat",
            [str(bin_dir / "celery"), "-A", "worker.pipeline.tasks:app", "beat", "--loglevel", "INFO"],
            env,
        )
        _wait("the webhook receiver", lambda: _http_ok(f"http://127.0.0.1:{api_port}/healthz"), api)
        print(
            "\ncallmatch is running on the embedded default tenant `demo` (CRM: config/examples/basic.json)\n"
            f"  webhooks:  POST http://127.0.0.1:{api_port}/webhooks/demo/{{aircall|ringover|zoom}}\n"
            f"  API docs:  http://127.0.0.1:{api_port}/docs\n"
            f"  metrics:   http://127.0.0.1:{api_port}/metrics (receiver), http://127.0.0.1:{metrics_port}/metrics (worker)\n"
            "  try:       make demo   (in another terminal: signed sample webhooks, then the activities and traces)\n"
            "  inspect:   .venv/bin/callmatch status | explain CALL_ID | dead-letters list\n"
            f"  console:   http://127.0.0.1:{api_port}/console/ (sign in with the admin token {admin_token})\n"
            f"  HTTP ops:  curl -H 'Authorization: Bearer {admin_token}' http://127.0.0.1:{api_port}/api/v1/tenants/demo/calls/aircall:812731\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        while True:
            for name, proc in stack.children:
                if proc.poll() is not None:
                    print(f"callmatch run: {name} exited with status {proc.returncode}; stopping", flush=True)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\ncallmatch run: stopping", flush=True)
        return 0
    finally:
        stack.stop()
        shutil.rmtree(multiproc, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
