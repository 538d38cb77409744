"""The sweep: wake the owed stage of every call that made no progress by its deadline.

Messages only wake workers; the call's record says what it still owes. A message
lost with a SIGKILLed worker, or a task that ended while Redis was away, leaves a
record whose deadline passes: the sweep sends its stage again (stages are
idempotent). It runs in every worker's main process, on a timer, so it needs no
other process to be up; a Redis lock makes one worker of the cluster sweep per
interval, and a Redis outage only skips a round.

A call is not woken while its message may still wait in the queue: every message
carries its send time, and a call whose last progress (when its message was sent)
is later than the oldest message still waiting has its message behind that one.
So a backlog longer than the stall time is not doubled by the sweep.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from collections.abc import Callable
from typing import Any

import redis

from worker.pipeline.celery_app import QUEUE, SENT_AT_HEADER, queue_keys, sent_now
from worker.pipeline.store import CallStore, Stage

log = logging.getLogger("callmatch.sweep")

Sender = Callable[[Stage, str, str], None]
LOCK_KEY = "callmatch:sweep:lock"
# Clocks of the machines sending and sweeping may differ by this much.
CLOCK_SKEW_SECONDS = 5.0


def oldest_waiting(client: redis.Redis, queue: str = QUEUE) -> float | None:
    """When the oldest message still in the queue was sent (any priority); +inf when none waits; None if unknown."""
    with client.pipeline(transaction=False) as pipe:
        for key in queue_keys(queue):
            pipe.lindex(key, -1)  # kombu pushes on the left and pops on the right
        heads = pipe.execute()
    oldest = math.inf
    for raw in heads:
        if raw is None:
            continue
        try:
            oldest = min(oldest, float(json.loads(raw)["headers"][SENT_AT_HEADER]))
        except (ValueError, KeyError, TypeError):
            return None
    return oldest


def sweep_once(store: CallStore, send: Sender, limit: int = 1000, queue: str = QUEUE) -> int:
    """One round: every stalled call's owed stage is sent again; returns how many were woken."""
    waiting_since = oldest_waiting(store.redis, queue)
    if waiting_since is None:
        return 0  # a message of unknown age heads the queue: look again next round
    woken = 0
    for tenant, call_id, progressed_at in store.stalled_since(limit):
        if progressed_at >= waiting_since - CLOCK_SKEW_SECONDS:
            continue  # its message was sent after the oldest one still waiting: it is queued, not lost
        stage = store.revive_stalled(tenant, call_id)
        if stage is None:
            continue
        send(stage, tenant, call_id)
        woken += 1
        log.warning("stalled call woken", extra={"tenant": tenant, "call_id": call_id, "stage": stage.value})
    return woken


def start_sweeper(
    store: CallStore, send: Sender, interval_seconds: float, stop: threading.Event | None = None
) -> threading.Thread:
    """A daemon thread sweeping every `interval_seconds`, at most one worker of the cluster per round."""
    halt = stop or threading.Event()
    me = uuid.uuid4().hex

    def loop() -> None:
        while not halt.wait(interval_seconds):
            try:
                ttl_ms = max(int(interval_seconds * 900), 100)
                if store.redis.set(LOCK_KEY, me, nx=True, px=ttl_ms):
                    sweep_once(store, send)
            except redis.RedisError as exc:
                log.info("sweep skipped: redis unavailable (%s)", type(exc).__name__)
            except Exception:  # the sweeper must outlive any one bad record
                log.exception("sweep round failed")

    thread = threading.Thread(target=loop, name="callmatch-sweeper", daemon=True)
    thread.start()
    return thread


def celery_stage_sender(celery: Any, tasks: dict[Stage, str]) -> Sender:
    def send(stage: Stage, tenant: str, call_id: str) -> None:
        celery.send_task(tasks[stage], args=[tenant, call_id], ignore_result=True, headers=sent_now())

    return send
