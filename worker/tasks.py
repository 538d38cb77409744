"""Celery tasks: each takes ids, calls one pipeline method, and owns only retry and ack policy.

Stages chain by sending the next task on success, so each one retries on its own.
Every stage is idempotent on the call id (records are created once, the activity is
upserted by call id), which is what makes `acks_late` with redelivery safe. A stage
that cannot succeed ends as a dead letter with its reason; nothing is dropped.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import redis
from celery import Task, signals
from prometheus_client import start_http_server

from adapters.errors import (
    CredentialsExpiredError,
    ExternalError,
    FatalError,
    RateLimitedError,
    RetryableError,
)
from worker.celery_app import MAX_RETRY_COUNTDOWN_SECONDS, PROCESS_CALL_TASK, app, redis_url
from worker.crm_factory import CrmFactory
from worker.events import CallEvent, EventError, IncompleteEventError
from worker.ingest.enrich import complete_event
from worker.observability import DEAD_LETTERS, EVENTS_IN, RATE_LIMITED, RETRIES, configure_logging, timed
from worker.service import NotReadyError, Pipeline, UnknownTenantError
from worker.store import CallStore, RecordNotFoundError, Stage
from worker.tenants import Tenant, default_tenants_path, load_tenants

FETCH_TASK = "callmatch.fetch"
ASSOCIATE_TASK = "callmatch.associate"
WRITE_TASK = "callmatch.write"
REFRESH_TASK = "callmatch.refresh"
REFRESH_DUE_TASK = "callmatch.refresh_due"

log = logging.getLogger("callmatch.tasks")
T = TypeVar("T")


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


MAX_RETRIES = int(os.environ.get("CALLMATCH_MAX_RETRIES", "8"))
REFRESH_INTERVAL_SECONDS = _env_float("CALLMATCH_REFRESH_INTERVAL_SECONDS", 3600.0)

app.conf.update(
    beat_scheduler="redbeat.RedBeatScheduler",
    redbeat_redis_url=redis_url(),
    redbeat_key_prefix="callmatch:redbeat",
    redbeat_lock_timeout=int(max(REFRESH_INTERVAL_SECONDS, 60) * 5),
    beat_max_loop_interval=min(REFRESH_INTERVAL_SECONDS, 300.0),
    beat_schedule={
        "refresh-calls-without-opportunity": {
            "task": "callmatch.refresh_due",
            "schedule": REFRESH_INTERVAL_SECONDS,
        },
    },
)
RETRY_BASE_SECONDS = _env_float("CALLMATCH_RETRY_BASE_SECONDS", 5.0)
RETRY_MAX_SECONDS = _env_float("CALLMATCH_RETRY_MAX_SECONDS", 600.0)


@lru_cache(maxsize=1)
def pipeline() -> Pipeline:
    """One per worker process, built from the environment the first time a task needs it."""
    client = redis.Redis.from_url(redis_url(), decode_responses=True)
    tenants = load_tenants(os.environ.get("CALLMATCH_TENANTS", str(default_tenants_path())))
    factory = CrmFactory(client)

    def fetch(tenant: Tenant, event: CallEvent) -> CallEvent:
        return complete_event(event, tenant, client)

    return Pipeline(tenants, CallStore(client), factory.crm_for, fetch)


def backoff(retries: int) -> float:
    """Exponential with full jitter, capped below the broker's visibility timeout."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * (2**retries), MAX_RETRY_COUNTDOWN_SECONDS)
    return random.uniform(ceiling / 2, ceiling)


@signals.setup_logging.connect
def _json_logs(**_: Any) -> None:
    configure_logging()


@signals.worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    """The worker's /metrics (all prefork children) on CALLMATCH_WORKER_METRICS_PORT; 0 turns it off."""
    port = int(os.environ.get("CALLMATCH_WORKER_METRICS_PORT", "0"))
    if port and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import CollectorRegistry
        from prometheus_client import multiprocess as prometheus_multiprocess

        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(
            port, addr=os.environ.get("CALLMATCH_WORKER_METRICS_HOST", "127.0.0.1"), registry=registry
        )


@signals.worker_process_shutdown.connect
def _forget_child(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and pid is not None:
        from prometheus_client import multiprocess as prometheus_multiprocess

        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _bury(stage: Stage, tenant: str, call_id: str, reason: str, action: str) -> None:
    DEAD_LETTERS.labels(tenant=tenant, stage=stage.value).inc()
    try:
        letter = pipeline().store.bury(tenant, call_id, stage, reason, action)
        log.error(
            "dead letter",
            extra={
                "tenant": tenant,
                "call_id": call_id,
                "stage": stage.value,
                "reason": reason,
                "attempts": letter.attempts,
            },
        )
    except RecordNotFoundError:
        log.error(
            "dead letter without record",
            extra={"tenant": tenant, "call_id": call_id, "stage": stage.value, "reason": reason},
        )


def run_stage(
    task: Task[Any, Any], stage: Stage, tenant: str, call_id: str, work: Callable[[], T]
) -> T | None:
    """Run one stage: retry what may pass, wait when told, bury what cannot."""
    error: ExternalError
    try:
        pipeline().store.count_attempt(tenant, call_id, stage)
        with timed(stage.value):
            return work()
    except (
        FatalError,
        NotReadyError,
        UnknownTenantError,
        EventError,
        IncompleteEventError,
        RecordNotFoundError,
    ) as exc:
        _bury(stage, tenant, call_id, str(exc), "fatal")
        return None
    except RateLimitedError as exc:
        countdown = exc.retry_after if exc.retry_after is not None else backoff(task.request.retries)
        reason, action, error = str(exc), "rate_limited", exc
    except (RetryableError, CredentialsExpiredError) as exc:
        countdown = backoff(task.request.retries)
        reason, action, error = str(exc), exc.action.value, exc
    except ExternalError as exc:
        _bury(stage, tenant, call_id, str(exc), exc.action.value)
        return None
    except Exception as exc:  # a bug of ours: keep the call, say what happened, never drop it
        log.exception(
            "stage failed unexpectedly", extra={"tenant": tenant, "call_id": call_id, "stage": stage.value}
        )
        _bury(stage, tenant, call_id, f"internal error: {type(exc).__name__}: {exc}", "fatal")
        return None
    if action == "rate_limited":
        RATE_LIMITED.labels(tenant=tenant, stage=stage.value).inc()
    if task.request.retries >= MAX_RETRIES:
        _bury(stage, tenant, call_id, f"gave up after {task.request.retries + 1} attempts: {reason}", action)
        return None
    RETRIES.labels(tenant=tenant, stage=stage.value, action=action).inc()
    log.warning(
        "stage will retry",
        extra={
            "tenant": tenant,
            "call_id": call_id,
            "stage": stage.value,
            "reason": reason,
            "countdown": round(countdown, 1),
        },
    )
    raise task.retry(
        exc=error, countdown=min(countdown, MAX_RETRY_COUNTDOWN_SECONDS), max_retries=MAX_RETRIES
    )


TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": MAX_RETRIES,
}


@app.task(name=PROCESS_CALL_TASK, **TASK_OPTIONS)
def process_call(self: Task[Any, Any], event: dict[str, Any]) -> str | None:
    """A verified "call ended" event: keep it, then start the chain."""
    parsed = CallEvent.from_json(event)
    record, created = pipeline().accept(parsed)
    EVENTS_IN.labels(tenant=parsed.tenant, provider=parsed.provider).inc()
    app.send_task(FETCH_TASK, args=[record.tenant, record.call_id])
    return "accepted" if created else "redelivered"


@app.task(name=FETCH_TASK, **TASK_OPTIONS)
def fetch(self: Task[Any, Any], tenant: str, call_id: str) -> None:
    if run_stage(self, Stage.FETCH, tenant, call_id, lambda: pipeline().fetch(tenant, call_id)) is not None:
        app.send_task(ASSOCIATE_TASK, args=[tenant, call_id])


@app.task(name=ASSOCIATE_TASK, **TASK_OPTIONS)
def associate(self: Task[Any, Any], tenant: str, call_id: str) -> str | None:
    decision = run_stage(self, Stage.ASSOCIATE, tenant, call_id, lambda: pipeline().decide(tenant, call_id))
    if decision is None:
        return None
    app.send_task(WRITE_TASK, args=[tenant, call_id])
    return decision.case.value


@app.task(name=WRITE_TASK, **TASK_OPTIONS)
def write(self: Task[Any, Any], tenant: str, call_id: str) -> str | None:
    written = run_stage(self, Stage.WRITE, tenant, call_id, lambda: pipeline().write(tenant, call_id))
    return None if written is None else written.id


@app.task(name=REFRESH_TASK, **TASK_OPTIONS)
def refresh(self: Task[Any, Any], tenant: str, call_id: str) -> str | None:
    """R1: the rules again on today's CRM data (the associate stage), then the write-back."""
    app.send_task(ASSOCIATE_TASK, args=[tenant, call_id])
    return call_id


@app.task(name=REFRESH_DUE_TASK, bind=True, acks_late=True)
def refresh_due(self: Task[Any, Any]) -> int:
    """R5, from beat: enqueue a refresh for every call whose next look is due."""
    store = pipeline().store
    due = store.due_refreshes(store.now())
    for tenant, call_id in due:
        store.unschedule_refresh(tenant, call_id)
        app.send_task(REFRESH_TASK, args=[tenant, call_id])
    return len(due)
