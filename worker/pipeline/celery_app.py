"""The Celery application: Redis broker, JSON only, and settings that lose nothing.

Tasks are named by strings so that the HTTP receiver can enqueue
`callmatch.process_call` with `send_task` without importing the worker's code.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from worker.config.settings import settings

PROCESS_CALL_TASK = "callmatch.process_call"
QUEUE = "callmatch"

# Message priorities (kombu's Redis transport: 0 is served first; it keeps one list per step).
# Live calls go first; a re-association's backfill waits behind every live call of every tenant.
LIVE_PRIORITY = 0
BACKFILL_PRIORITY = 9
PRIORITY_STEPS = (LIVE_PRIORITY, 3, 6, BACKFILL_PRIORITY)
PRIORITY_SEPARATOR = "\x06\x16"  # kombu's default, written out: the gauges and the sweep read the lists


def queue_keys(queue: str = QUEUE) -> list[str]:
    """The Redis lists holding `queue`'s waiting messages, most urgent first (kombu's naming)."""
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


# Read once per process, at import (worker.config.settings refuses limits that would run a stage twice).
_SETTINGS = settings()
# The longest countdown a task may ask for on retry (a CRM's daily limit resets
# within the hour we wait at most); the broker must not redeliver before it.
MAX_RETRY_COUNTDOWN_SECONDS = _SETTINGS.max_retry_countdown_seconds
VISIBILITY_TIMEOUT_SECONDS = _SETTINGS.visibility_timeout_seconds
# How often a worker looks for messages a dead worker left unacknowledged (one ZRANGE).
UNACKED_RESTORE_INTERVAL_SECONDS = _SETTINGS.unacked_restore_interval_seconds
# A stage that runs longer than this is killed (its message is redelivered; the sweep also sees it).
HARD_TIME_LIMIT_SECONDS = _SETTINGS.hard_time_limit_seconds
SOFT_TIME_LIMIT_SECONDS = _SETTINGS.soft_time_limit_seconds
# A call whose owed stage has made no progress for this long is re-enqueued by the sweep: longer
# than the longest stage, so a live task is never doubled, short enough that a lost message costs
# minutes, not the call.
STALL_SECONDS = _SETTINGS.stall_seconds
# How often beat looks for stalled calls (one ZRANGEBYSCORE).
SWEEP_INTERVAL_SECONDS = _SETTINGS.sweep_interval_seconds


# Cross-call batching (celery-batches): the consumer holds a batch's messages, unacknowledged, until it
# flushes; it can only fill a batch if the worker may reserve that many messages (the prefetch).
BATCH_SIZE = _SETTINGS.batch_size
BATCH_WAIT_SECONDS = _SETTINGS.batch_wait_seconds


def batch_prefetch_multiplier(concurrency: int, batch_size: int = BATCH_SIZE) -> int:
    """Prefetch per process so that a worker reserves one whole batch plus one message per process.

    1 without batching (today's fairness: a worker takes only what it runs). With it, the
    extra reserved messages are late-acknowledged like any other: a lost worker's are
    redelivered after the visibility timeout, and the sweep sees the calls' stalls.
    """
    if batch_size <= 1:
        return 1
    return -(-(batch_size + concurrency) // max(concurrency, 1))


# Every message we send carries its send time: the sweep compares the oldest waiting message's
# with a stalled call's last progress, so a call still waiting in a backlog is not sent twice.
SENT_AT_HEADER = "callmatch_sent_at"


def sent_now() -> dict[str, float]:
    return {SENT_AT_HEADER: time.time()}


def redis_url() -> str:
    """$CALLMATCH_REDIS_URL as the environment says now (the CLI's tests change it between commands)."""
    return settings().redis_url


def celery_config(url: str) -> dict[str, Any]:
    """No loss by configuration: late acks, redelivery of a lost worker's task, prefetch 1."""
    return {
        "broker_url": url,
        "result_backend": url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": QUEUE,
        "task_routes": {PROCESS_CALL_TASK: {"queue": QUEUE}},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # with batching, a worker raises it from its concurrency (tasks.py)
        # A task running when the broker connection drops keeps running: its message is redelivered
        # and every stage is idempotent (the write under a per-call lock), so nothing is doubled.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_soft_time_limit": SOFT_TIME_LIMIT_SECONDS,
        "task_time_limit": HARD_TIME_LIMIT_SECONDS,
        "task_default_priority": LIVE_PRIORITY,
        "broker_transport_options": {
            "priority_steps": list(PRIORITY_STEPS),
            "sep": PRIORITY_SEPARATOR,
            "queue_order_strategy": "priority",
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            "unacked_restore_interval": UNACKED_RESTORE_INTERVAL_SECONDS,
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        "result_expires": 24 * 3600,
        "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        # Workers outlive any Redis outage: they keep reconnecting instead of exiting after 100 tries.
        "broker_connection_max_retries": None,
        "broker_connection_timeout": 2,
        "enable_utc": True,
        "timezone": "UTC",
    }


def create_celery(url: str | None = None) -> Celery:
    app = Celery("callmatch")
    app.conf.update(celery_config(url or redis_url()))
    return app


app = create_celery()
