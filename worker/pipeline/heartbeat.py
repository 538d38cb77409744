"""Every process says, in Redis, which tenants file it runs: `callmatch status` compares them.

A process writes `callmatch:process:<role>:<host>:<pid>` (its role, the digest of the
tenants it runs, and whether its last reload failed) every few seconds with a short
TTL, so a stopped process disappears by itself. The same thread reloads the tenants
file when it changed, so an idle worker also picks up a new file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
from typing import Any

import redis

from worker.config.settings import settings
from worker.config.tenants import TenantsSource

log = logging.getLogger("callmatch.heartbeat")

KEY_PREFIX = "callmatch:process"
INTERVAL_SECONDS = settings().heartbeat_seconds


def process_key(role: str, pid: int | None = None) -> str:
    return f"{KEY_PREFIX}:{role}:{socket.gethostname()}:{pid or os.getpid()}"


def report(client: redis.Redis, role: str, source: TenantsSource, started_at: str) -> None:
    """One heartbeat: what this process runs, for INTERVAL x 3 seconds."""
    source.reload()
    body = {
        "role": role,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "tenants_digest": source.current.digest,
        "tenants": sorted(source.current.tenants),
        "tenants_file": str(source.path),
        "reload_error": source.error,
        "started_at": started_at,
        "seen_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    client.set(process_key(role), json.dumps(body), ex=max(int(INTERVAL_SECONDS * 3), 5))


def start_heartbeat(role: str, source: TenantsSource, url: str) -> threading.Thread:
    """A daemon thread reporting `role` until the process ends; Redis outages are only logged."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    started_at = dt.datetime.now(dt.UTC).isoformat()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                report(client, role, source, started_at)
            except redis.RedisError as exc:
                log.debug("heartbeat not written: %s", type(exc).__name__)
            except Exception:  # the heartbeat must never take a process down
                log.exception("heartbeat failed")
            stop.wait(INTERVAL_SECONDS)

    thread = threading.Thread(target=loop, name=f"callmatch-heartbeat-{role}", daemon=True)
    thread.start()
    return thread


def processes(client: redis.Redis) -> list[dict[str, Any]]:
    """Every live process's last heartbeat, by role then host then pid."""
    out = []
    for key in client.scan_iter(match=f"{KEY_PREFIX}:*", count=500):
        raw = client.get(key)
        if raw is not None:
            out.append(json.loads(raw))
    return sorted(out, key=lambda p: (str(p.get("role")), str(p.get("host")), int(p.get("pid", 0))))
