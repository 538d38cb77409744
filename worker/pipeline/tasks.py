"""Celery tasks: each takes ids, calls one pipeline method, and owns only retry and ack policy.

Stages chain by sending the next task on success, so each one retries on its own.
Every stage is idempotent on the call id (records are created once, the activity is
upserted by call id under a per-call lock), which is what makes `acks_late` with
redelivery, and the sweep's re-enqueueing, safe. Every way a stage can end is exactly
one of: done, retried later, or a dead letter with its reason. And when even that
cannot be recorded (Redis gone), the call's record still owes the stage, so the
sweep starts it again: a message is only a wake-up call, the record is the truth.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import redis
from celery import Task, signals
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery_batches import Batches, SimpleRequest
from prometheus_client import start_http_server

from adapters.errors import (
    CredentialsExpiredError,
    ExternalError,
    FatalError,
    RateLimitedError,
    RetryableError,
)
from worker.config.settings import settings
from worker.config.tenants import Tenant, TenantsError, TenantsSource, default_tenants_path
from worker.core.observability import (
    DEAD_LETTERS,
    EVENTS_IN,
    RATE_LIMITED,
    RETRIES,
    add_collector,
    before_scrape,
    configure_logging,
    ensure_multiprocess_dir,
    scrape_registry,
    timed,
)
from worker.ingest.enqueue import CeleryEnqueuer
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent, EventError, IncompleteEventError
from worker.ingest.subscriptions import LIFECYCLE_TASK as SUBSCRIPTION_LIFECYCLE_TASK
from worker.ingest.subscriptions import RENEW_TASK as RENEW_SUBSCRIPTIONS_TASK
from worker.ingest.subscriptions import Subscriptions
from worker.pipeline.celery_app import (
    BATCH_SIZE,
    BATCH_WAIT_SECONDS,
    HARD_TIME_LIMIT_SECONDS,
    MAX_RETRY_COUNTDOWN_SECONDS,
    PROCESS_CALL_TASK,
    STALL_SECONDS,
    SWEEP_INTERVAL_SECONDS,
    app,
    batch_prefetch_multiplier,
    create_celery,
    redis_url,
    sent_now,
)
from worker.pipeline.clock import process_clock
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.heartbeat import start_heartbeat
from worker.pipeline.service import BusyError, NotReadyError, Pipeline, UnknownTenantError
from worker.pipeline.store import CallStore, RecordNotFoundError, Stage
from worker.pipeline.sweep import celery_stage_sender, start_sweeper, sweep_once

FETCH_TASK = "callmatch.fetch"
ASSOCIATE_TASK = "callmatch.associate"
WRITE_TASK = "callmatch.write"
ASSOCIATE_BATCH_TASK = "callmatch.associate_batch"
REFRESH_TASK = "callmatch.refresh"
REFRESH_DUE_TASK = "callmatch.refresh_due"
SWEEP_TASK = "callmatch.sweep"
STAGE_TASKS = {Stage.FETCH: FETCH_TASK, Stage.ASSOCIATE: ASSOCIATE_TASK, Stage.WRITE: WRITE_TASK}

log = logging.getLogger("callmatch.tasks")
T = TypeVar("T")


# Read once per process, at import: the task decorators and beat's schedule take them.
_SETTINGS = settings()
MAX_RETRIES = _SETTINGS.max_retries
REFRESH_INTERVAL_SECONDS = _SETTINGS.refresh_interval_seconds
SUBSCRIPTION_CHECK_SECONDS = _SETTINGS.subscription_check_seconds

BEAT_LOOP_SECONDS = max(1.0, min(REFRESH_INTERVAL_SECONDS, 60.0))
app.conf.update(
    beat_scheduler="worker.pipeline.beat:Scheduler",
    redbeat_redis_url=redis_url(),
    redbeat_key_prefix="callmatch:redbeat",
    # The lock is renewed every loop; a beat that died frees it after this long.
    redbeat_lock_timeout=int(max(BEAT_LOOP_SECONDS * 5, 30)),
    beat_max_loop_interval=BEAT_LOOP_SECONDS,
    beat_schedule={
        "refresh-calls-without-opportunity": {
            "task": REFRESH_DUE_TASK,
            "schedule": REFRESH_INTERVAL_SECONDS,
            "options": {"expires": max(REFRESH_INTERVAL_SECONDS, 1.0)},
        },
        # Provider subscriptions (Graph under 3 days, Workspace Events 7): each renewed at half its life.
        "renew-provider-subscriptions": {
            "task": RENEW_SUBSCRIPTIONS_TASK,
            "schedule": SUBSCRIPTION_CHECK_SECONDS,
            "options": {"expires": max(SUBSCRIPTION_CHECK_SECONDS, 1.0)},
        },
    },
)
RETRY_BASE_SECONDS = _SETTINGS.retry_base_seconds
RETRY_MAX_SECONDS = _SETTINGS.retry_max_seconds


def _redis_client() -> redis.Redis:
    """The pipeline's and the sweeper's Redis client: bounded waits, dead connections noticed."""
    return redis.Redis.from_url(
        redis_url(),
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=15,
    )


@lru_cache(maxsize=1)
def pipeline() -> Pipeline:
    """One per worker process, built from the environment the first time a task needs it."""
    return build_pipeline()


def build_pipeline(*, lenient_secrets: bool = False) -> Pipeline:
    """The pipeline on $CALLMATCH_REDIS_URL and the tenants file.

    `lenient_secrets`: for operations that need only Redis (`callmatch status`, `explain`,
    ...), a tenant's secret that cannot be read is noted on the tenant (`Tenant.unresolved`),
    not an error; what calls a CRM checks it first and names the missing variable.
    """
    client = _redis_client()
    source = TenantsSource(default_tenants_path(), lenient=lenient_secrets)
    factory = CrmFactory(client)

    def fetch(tenant: Tenant, event: CallEvent) -> CallEvent:
        return complete_event(event, tenant, client)

    return Pipeline(
        source.current,
        CallStore(client, process_clock(), stall_seconds=STALL_SECONDS),
        factory.crm_for,
        fetch,
        source=source,
        write_lock_seconds=HARD_TIME_LIMIT_SECONDS,
        preference_days=settings().preference_days,
    )


def tenants_source() -> TenantsSource:
    source = pipeline().source
    assert source is not None
    return source


def backoff(retries: int) -> float:
    """Exponential with full jitter, capped below the broker's visibility timeout."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * (2**retries), MAX_RETRY_COUNTDOWN_SECONDS)
    return random.uniform(ceiling / 2, ceiling)


def check_tenants_or_exit(role: str) -> TenantsSource:
    """What the receiver does at start, for a worker or beat: a bad tenants file is exit 2 and one line."""
    try:
        return TenantsSource(default_tenants_path())
    except TenantsError as exc:
        print(f"callmatch {role}: {exc}", file=sys.stderr, flush=True)
        os._exit(2)


@signals.setup_logging.connect
def _json_logs(**_: Any) -> None:
    configure_logging()


@signals.celeryd_init.connect
def _json_logs_from_the_start(**_: Any) -> None:
    """Before the worker's own start-up checks: their warnings (running as root) are JSON lines too."""
    configure_logging()


@signals.worker_init.connect
def _prefetch_for_batches(sender: Any = None, **_: Any) -> None:
    """A worker reserves a whole batch (celery-batches buffers its messages unacknowledged).

    Set on the worker itself, after its options (the CLI passes the configured 1 explicitly)
    and before its consumer is built; a worker that does not batch keeps 1.
    """
    if sender is not None and hasattr(sender, "prefetch_multiplier"):
        sender.prefetch_multiplier = batch_prefetch_multiplier(int(getattr(sender, "concurrency", 1) or 1))


@signals.worker_init.connect
def _check_worker_tenants(**_: Any) -> None:
    source = check_tenants_or_exit("worker")
    start_heartbeat("worker", source, redis_url())


@signals.worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    """Every worker sweeps (one per round across the cluster): no call waits on beat being up."""
    client = _redis_client()
    store = CallStore(client, process_clock(), stall_seconds=STALL_SECONDS)
    start_sweeper(store, celery_stage_sender(create_celery(redis_url()), STAGE_TASKS), SWEEP_INTERVAL_SECONDS)


@signals.beat_init.connect
def _check_beat_tenants(**_: Any) -> None:
    source = check_tenants_or_exit("beat")
    start_heartbeat("beat", source, redis_url())


@signals.worker_process_init.connect
def _child_heartbeat(**_: Any) -> None:
    """Each pool process reports the tenants it runs (it reloads them on its own)."""
    try:
        start_heartbeat("worker-process", tenants_source(), redis_url())
    except TenantsError as exc:  # the file went bad after the worker started: report, keep running
        log.error("worker process cannot read the tenants file: %s", exc)


_metrics_dir_made: list[str] = []


@signals.worker_init.connect
def _prepare_metrics(**_: Any) -> None:
    """Before the pool forks: a multiprocess directory (made when none is given), so children's figures add up."""
    if not settings().worker_metrics_port:
        return
    made = ensure_multiprocess_dir()
    if made is not None:
        _metrics_dir_made.append(made)
        log.info(
            "PROMETHEUS_MULTIPROC_DIR is not set: this worker's processes share their metrics through %s, "
            "removed when it stops",
            made,
            extra={"metrics_dir": made},
        )


@signals.worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    """The worker's /metrics (all prefork children, Redis gauges, known tenants' counters at 0).

    On CALLMATCH_WORKER_METRICS_PORT; 0 turns it off.
    """
    port = settings().worker_metrics_port
    if not port:
        return
    from worker.pipeline.gauges import RedisGauges, zero_counters

    host = settings().worker_metrics_host
    try:
        source = TenantsSource(default_tenants_path())
    except TenantsError as exc:  # the file broke since the worker started: it keeps working, unmeasured
        log.error("cannot serve the worker's metrics: %s", exc)
        return
    add_collector("redis", RedisGauges(_redis_client(), lambda: source.current))

    def zero() -> None:
        source.reload()
        zero_counters(source.current)

    before_scrape("zero", zero)
    try:
        start_http_server(port, addr=host, registry=scrape_registry())
    except OSError as exc:
        log.error("cannot serve the worker's metrics on %s:%s: %s", host, port, exc.strerror or exc)
        return
    log.info("worker metrics on http://%s:%s/metrics", host, port, extra={"metrics_port": port})


@signals.worker_shutdown.connect
def _remove_metrics_dir(**_: Any) -> None:
    for path in _metrics_dir_made:
        shutil.rmtree(path, ignore_errors=True)


@signals.worker_process_shutdown.connect
def _forget_child(pid: int | None = None, **_: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and pid is not None:
        from prometheus_client import multiprocess as prometheus_multiprocess

        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _bury(
    task: Task[Any, Any], store: CallStore, stage: Stage, tenant: str, call_id: str, reason: str, action: str
) -> None:
    """A dead letter with its reason; if Redis cannot take it now, try again later (never drop it)."""
    try:
        _dead_letter(store, stage, tenant, call_id, reason, action)
    except redis.RedisError as exc:
        log.warning(
            "cannot record the dead letter now; will try again",
            extra={"tenant": tenant, "call_id": call_id, "stage": stage.value, "error": type(exc).__name__},
        )
        # The record still owes this stage, so even if this retry cannot be queued the sweep re-runs it.
        raise task.retry(countdown=backoff(0), max_retries=None, headers=sent_now()) from None


def _dead_letter(store: CallStore, stage: Stage, tenant: str, call_id: str, reason: str, action: str) -> None:
    """Keep the call as a dead letter, count and log it; Redis errors are the caller's to handle."""
    letter = store.bury(tenant, call_id, stage, reason, action)
    DEAD_LETTERS.labels(tenant=tenant, stage=stage.value).inc()
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


def _fatal(exc: BaseException) -> tuple[str, str] | None:
    """(reason, action) of a failure that no retry can pass, else None."""
    if isinstance(exc, UnknownTenantError):
        return f"unknown tenant: {exc}; add it to the tenants file, then replay", "fatal"
    if isinstance(exc, FatalError | NotReadyError | EventError | IncompleteEventError):
        return str(exc), "fatal"
    if isinstance(exc, ExternalError) and not isinstance(
        exc, RetryableError | RateLimitedError | CredentialsExpiredError
    ):
        return str(exc), exc.action.value
    return None


def _announce_retry(
    store: CallStore,
    stage: Stage,
    tenant: str,
    call_id: str,
    reason: str,
    action: str,
    countdown: float,
    batch: bool = False,
) -> float:
    """Count, log and note a stage's coming retry (alone or handed on from a batch); the capped countdown."""
    countdown = min(countdown, MAX_RETRY_COUNTDOWN_SECONDS)
    RETRIES.labels(tenant=tenant, stage=stage.value, action=action).inc()
    extra: dict[str, Any] = {
        "tenant": tenant,
        "call_id": call_id,
        "stage": stage.value,
        "reason": reason,
        "action": action,
        "countdown": round(countdown, 1),
    }
    if batch:
        extra["batch"] = True
    log.warning("stage will retry", extra=extra)
    # If Redis cannot take the new deadline, the sweep may start the stage a little early: harmless.
    with contextlib.suppress(redis.RedisError):
        store.postpone(tenant, call_id, countdown)
    return countdown


def run_stage(
    task: Task[Any, Any],
    stage: Stage,
    tenant: str,
    call_id: str,
    work: Callable[[], T],
    pipe: Pipeline | None = None,
) -> T | None:
    """Run one stage: retry what may pass, wait when told, bury what cannot; never end without a trace."""
    countdown: float | None = None
    error: Exception
    if pipe is None:
        try:
            pipe = pipeline()
        except TenantsError as exc:
            # This process never read a valid tenants file (it started after the file broke):
            # nothing can run here until it is fixed; the call waits, it is not buried.
            log.error("cannot run stages: %s", exc, extra={"tenant": tenant, "call_id": call_id})
            raise task.retry(
                countdown=backoff(task.request.retries), max_retries=None, headers=sent_now()
            ) from None
    store = pipe.store
    try:
        pipe.reload_tenants()
        pipe.tenant(tenant)  # an unknown tenant reloads the file once, here, before anything else
        pipe.store.count_attempt(tenant, call_id, stage)
        with timed(stage.value):
            return work()
    except Retry:
        raise
    except RecordNotFoundError as exc:
        _bury(task, store, stage, tenant, call_id, str(exc), "fatal")
        return None
    except BusyError as exc:  # not a failure: another worker is writing this call right now
        log.info("stage waits for another worker", extra={"tenant": tenant, "call_id": call_id})
        raise task.retry(
            countdown=min(exc.wait_seconds, MAX_RETRY_COUNTDOWN_SECONDS), max_retries=None, headers=sent_now()
        ) from None
    except RateLimitedError as exc:
        countdown = exc.retry_after if exc.retry_after is not None else backoff(task.request.retries)
        reason, action, error = str(exc), "rate_limited", exc
    except Exception as exc:
        fatal = _fatal(exc)
        if fatal is not None:
            _bury(task, store, stage, tenant, call_id, *fatal)
            return None
        if isinstance(exc, ExternalError):
            reason, action = str(exc), exc.action.value
        elif isinstance(exc, redis.RedisError):
            reason, action = f"redis unavailable: {type(exc).__name__}", "retry"
        elif isinstance(exc, SoftTimeLimitExceeded):
            reason, action = "stage took longer than its time limit", "retry"
        else:  # a bug of ours: keep the call, say what happened, retry with backoff, then bury
            log.exception(
                "stage failed unexpectedly",
                extra={"tenant": tenant, "call_id": call_id, "stage": stage.value},
            )
            reason, action = f"internal error: {type(exc).__name__}: {exc}", "retry"
        error = exc
    if countdown is None:
        countdown = backoff(task.request.retries)
    if action == "rate_limited":
        RATE_LIMITED.labels(tenant=tenant, stage=stage.value).inc()
    if task.request.retries >= MAX_RETRIES:
        _bury(
            task,
            store,
            stage,
            tenant,
            call_id,
            f"gave up after {task.request.retries + 1} attempts: {reason}",
            action,
        )
        return None
    countdown = _announce_retry(store, stage, tenant, call_id, reason, action, countdown)
    raise task.retry(exc=error, countdown=countdown, max_retries=MAX_RETRIES, headers=sent_now())


TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": MAX_RETRIES,
}


@app.task(name=PROCESS_CALL_TASK, **TASK_OPTIONS)
def process_call(self: Task[Any, Any], event: dict[str, Any]) -> str | None:
    """A verified "call ended" event: its record (recreated from the event if lost), then the fetch stage.

    The fetch stage runs here rather than behind one more message, so the record's
    progress and the message that carries the call on move together (the sweep relies on it).
    """
    try:
        parsed = CallEvent.from_json(event)
    except EventError as exc:
        tenant = str(event.get("tenant", "?")) if isinstance(event, dict) else "?"
        call_id = str(event.get("call_id", "?")) if isinstance(event, dict) else "?"
        _bury(self, pipeline().store, Stage.FETCH, tenant, call_id, f"unusable event: {exc}", "fatal")
        return None
    try:
        _, created = pipeline().accept(parsed)
    except redis.RedisError as exc:
        raise self.retry(
            exc=exc, countdown=backoff(self.request.retries), max_retries=None, headers=sent_now()
        ) from None
    if self.request.retries == 0:
        EVENTS_IN.labels(tenant=parsed.tenant, provider=parsed.provider).inc()
    if created:  # the receiver keeps every record it acknowledges: this one had been lost
        log.warning(
            "call record recreated from its event", extra={"tenant": parsed.tenant, "call_id": parsed.call_id}
        )
    return _fetch_stage(self, parsed.tenant, parsed.call_id)


def _fetch_stage(task: Task[Any, Any], tenant: str, call_id: str) -> str | None:
    if run_stage(task, Stage.FETCH, tenant, call_id, lambda: pipeline().fetch(tenant, call_id)) is None:
        return None
    # With batching, the call joins its tenant's next batch (association and write together).
    app.send_task(
        ASSOCIATE_BATCH_TASK if BATCH_SIZE > 1 else ASSOCIATE_TASK, args=[tenant, call_id], headers=sent_now()
    )
    return "fetched"


@app.task(name=FETCH_TASK, **TASK_OPTIONS)
def fetch(self: Task[Any, Any], tenant: str, call_id: str) -> str | None:
    """The fetch stage on its own: what the sweep and replays send."""
    return _fetch_stage(self, tenant, call_id)


def _priority(task: Task[Any, Any]) -> int | None:
    """The priority the task's message came with: a backfill's next stage stays behind live calls."""
    priority = (task.request.delivery_info or {}).get("priority")
    return int(priority) if isinstance(priority, int) else None


@app.task(name=ASSOCIATE_TASK, **TASK_OPTIONS)
def associate(self: Task[Any, Any], tenant: str, call_id: str) -> str | None:
    decision = run_stage(self, Stage.ASSOCIATE, tenant, call_id, lambda: pipeline().decide(tenant, call_id))
    if decision is None:
        return None
    app.send_task(WRITE_TASK, args=[tenant, call_id], headers=sent_now(), priority=_priority(self))
    return decision.case.value


@app.task(name=WRITE_TASK, **TASK_OPTIONS)
def write(self: Task[Any, Any], tenant: str, call_id: str) -> str | None:
    written = run_stage(self, Stage.WRITE, tenant, call_id, lambda: pipeline().write(tenant, call_id))
    return None if written is None else written.id


def _hand_off(store: CallStore, stage: Stage, tenant: str, call_id: str, exc: BaseException) -> str:
    """A call of a batch that failed: on alone, as its per-call task would after this attempt.

    Retried by its own per-call task (the batch counted as its first attempt, same backoff or
    the CRM's Retry-After, same count), or buried with the per-call path's reason. If Redis
    cannot take the dead letter, the per-call task runs now and buries it itself.
    """
    task_name = STAGE_TASKS[stage]
    fatal = _fatal(exc) or (
        (f"record missing: {exc}", "fatal") if isinstance(exc, RecordNotFoundError) else None
    )
    if isinstance(exc, BusyError):  # not a failure: another worker writes it; wait for its lock
        app.send_task(
            task_name,
            args=[tenant, call_id],
            countdown=min(exc.wait_seconds, MAX_RETRY_COUNTDOWN_SECONDS),
            headers=sent_now(),
        )
        return "busy"
    if fatal is None and MAX_RETRIES == 0:
        fatal = f"gave up after 1 attempts: {exc}", "retry"
    if fatal is not None:
        try:
            _dead_letter(store, stage, tenant, call_id, *fatal)
        except redis.RedisError:
            app.send_task(task_name, args=[tenant, call_id], headers=sent_now())
            return "alone"
        return "dead"
    if isinstance(exc, RateLimitedError):
        action = "rate_limited"
        countdown = exc.retry_after if exc.retry_after is not None else backoff(0)
        RATE_LIMITED.labels(tenant=tenant, stage=stage.value).inc()
    else:
        action = exc.action.value if isinstance(exc, ExternalError) else "retry"
        countdown = backoff(0)
    reason = str(exc) if isinstance(exc, ExternalError) else f"internal error: {type(exc).__name__}"
    countdown = _announce_retry(store, stage, tenant, call_id, reason, action, countdown, batch=True)
    app.send_task(task_name, args=[tenant, call_id], countdown=countdown, retries=1, headers=sent_now())
    return "retry"


def _batch_of_tenant(pipe: Pipeline, tenant: str, call_ids: list[str]) -> dict[str, str]:
    """Associate then write a tenant's calls together; whatever fails goes on alone (`_hand_off`)."""
    store = pipe.store
    outcome: dict[str, str] = {}
    owed: list[str] = []
    for call_id in dict.fromkeys(call_ids):
        try:
            store.count_attempt(tenant, call_id, Stage.ASSOCIATE)
        except Exception as exc:
            outcome[call_id] = _hand_off(store, Stage.ASSOCIATE, tenant, call_id, exc)
        else:
            owed.append(call_id)
    try:
        pipe.tenant(tenant)
        with timed(Stage.ASSOCIATE.value, len(owed)):
            decisions = pipe.decide_batch(tenant, owed)
    except Exception as exc:  # the batch's reads: every call still owes its association
        log.warning(
            "batch association failed; its calls go on alone",
            extra={"tenant": tenant, "calls": len(owed), "error": type(exc).__name__},
        )
        for call_id in owed:
            outcome[call_id] = _hand_off(store, Stage.ASSOCIATE, tenant, call_id, exc)
        return outcome
    decided = [c for c in owed if decisions.get(c) is not None]
    outcome.update({c: "skipped" for c in owed if decisions.get(c) is None})
    for call_id in decided:
        with contextlib.suppress(Exception):  # a count lost is not worth losing the write for
            store.count_attempt(tenant, call_id, Stage.WRITE)
    try:
        with timed(Stage.WRITE.value, len(decided)):
            written = pipe.write_batch(tenant, decided) if decided else {}
    except Exception as exc:  # stops every write (rate limit, credentials, CRM down): each call owes it
        for call_id in decided:
            outcome[call_id] = _hand_off(store, Stage.WRITE, tenant, call_id, exc)
        return outcome
    for call_id in decided:
        result = written.get(call_id)
        if isinstance(result, Exception):
            outcome[call_id] = _hand_off(store, Stage.WRITE, tenant, call_id, result)
        else:
            outcome[call_id] = "written" if result is not None else "skipped"
    return outcome


@app.task(
    name=ASSOCIATE_BATCH_TASK,
    base=Batches,
    flush_every=BATCH_SIZE,
    flush_interval=BATCH_WAIT_SECONDS,
    acks_late=True,
)
def associate_batch(requests: list[SimpleRequest]) -> dict[str, int]:
    """The association and write of the calls that waited together, grouped by tenant (celery-batches).

    celery-batches acknowledges every message of the batch when this returns, and also
    when it raises (it logs and returns): so nothing raises out of here. A call whose
    part fails goes on alone through its per-call task; a lost worker's messages stay
    unacknowledged and come back after the visibility timeout; the sweep covers the rest.
    """
    by_tenant: dict[str, list[str]] = {}
    for request in requests:
        tenant, call_id = request.args
        by_tenant.setdefault(str(tenant), []).append(str(call_id))
    counts: dict[str, int] = {}
    try:
        pipe = pipeline()
        pipe.reload_tenants()
    except Exception as exc:  # no tenants file this process can read: each call waits alone
        log.error("cannot run a batch: %s", type(exc).__name__)
        for tenant, call_ids in by_tenant.items():
            for call_id in call_ids:
                app.send_task(
                    ASSOCIATE_TASK, args=[tenant, call_id], countdown=backoff(0), headers=sent_now()
                )
        return {"alone": len(requests)}
    for tenant, call_ids in by_tenant.items():
        try:
            outcome = _batch_of_tenant(pipe, tenant, call_ids)
        except Exception as exc:  # the last guard (Redis gone while handing off): the sweep re-sends them
            log.exception("batch of a tenant failed", extra={"tenant": tenant, "error": type(exc).__name__})
            continue
        log.info(
            "batch associated",
            extra={
                "tenant": tenant,
                "calls": len(call_ids),
                **{k: list(outcome.values()).count(k) for k in set(outcome.values())},
            },
        )
        for result in outcome.values():
            counts[result] = counts.get(result, 0) + 1
    return counts


@app.task(name=REFRESH_TASK, **TASK_OPTIONS)
def refresh(self: Task[Any, Any], tenant: str, call_id: str) -> str | None:
    """R1: the rules again on today's CRM data (the associate stage), then the write-back."""
    try:
        pipeline().store.request_stage(tenant, call_id, Stage.ASSOCIATE)
    except RecordNotFoundError:
        log.warning("refresh of a call with no record", extra={"tenant": tenant, "call_id": call_id})
        return None
    except redis.RedisError as exc:
        raise self.retry(
            exc=exc, countdown=backoff(self.request.retries), max_retries=MAX_RETRIES, headers=sent_now()
        ) from None
    app.send_task(ASSOCIATE_TASK, args=[tenant, call_id], headers=sent_now(), priority=_priority(self))
    return call_id


@app.task(name=REFRESH_DUE_TASK, bind=True, acks_late=True)
def refresh_due(self: Task[Any, Any]) -> int:
    """R5, from beat: a refresh for every call whose next look is due (owed first, then sent)."""
    store = pipeline().store
    due = store.due_refreshes(store.now())
    for tenant, call_id in due:
        try:
            store.request_stage(tenant, call_id, Stage.ASSOCIATE)
        except RecordNotFoundError:
            pass
        else:
            app.send_task(ASSOCIATE_TASK, args=[tenant, call_id], headers=sent_now())
        store.unschedule_refresh(tenant, call_id)
    return len(due)


@app.task(name=SWEEP_TASK, bind=True, acks_late=True)
def sweep(self: Task[Any, Any]) -> int:
    """One sweep round on demand (workers also sweep on their own timer)."""
    return sweep_once(pipeline().store, celery_stage_sender(app, STAGE_TASKS))


@lru_cache(maxsize=1)
def subscriptions() -> Subscriptions:
    """The provider subscriptions service of this worker process (tenants reloaded with the pipeline's)."""
    pipe = pipeline()
    source = tenants_source()
    return Subscriptions(
        lambda: source.current,
        pipe.store.redis,
        CeleryEnqueuer(app),
        process_clock(),
        call_store=pipe.store,
    )


def renew_subscriptions_once(service: Subscriptions) -> list[list[str]]:
    """One renewal pass; whatever goes wrong waits for the next one (beat and its schedule never see it)."""
    try:
        results = service.renew_due()
    except Exception as exc:  # renew_due already catches per subscription; this is the last guard
        log.warning("subscriptions not renewed this run", extra={"error": type(exc).__name__})
        return []
    for tenant, provider, outcome in results:
        log.info("subscription check", extra={"tenant": tenant, "provider": provider, "outcome": outcome})
    return [list(result) for result in results]


def run_lifecycle(task: Task[Any, Any], service: Subscriptions, notice: dict[str, Any]) -> str:
    """Act on one lifecycle notification: what may pass later is retried, anything else logged with why."""
    try:
        done = service.lifecycle(notice)
    except (RetryableError, RateLimitedError, CredentialsExpiredError, redis.RedisError) as exc:
        raise task.retry(
            exc=exc, countdown=backoff(task.request.retries), max_retries=MAX_RETRIES, headers=sent_now()
        ) from None
    except Exception as exc:  # beat's next renewal pass catches up; say why here
        reason = str(exc) if isinstance(exc, ExternalError) else type(exc).__name__
        log.error(
            "lifecycle notification not acted on",
            extra={"tenant": notice.get("tenant"), "provider": notice.get("provider"), "error": reason},
        )
        return f"failed: {reason}"
    log.info(
        "lifecycle notification",
        extra={"tenant": notice.get("tenant"), "provider": notice.get("provider"), "outcome": done},
    )
    return done


@app.task(name=RENEW_SUBSCRIPTIONS_TASK, bind=True, acks_late=True)
def renew_subscriptions(self: Task[Any, Any]) -> list[list[str]]:
    """From beat: renew what is due, recreate what is gone; a failure waits for the next run, never raises."""
    try:
        tenants_source().reload()
        service = subscriptions()
    except Exception as exc:  # e.g. the tenants file never validated in this process
        log.warning("subscriptions not renewed this run", extra={"error": type(exc).__name__})
        return []
    return renew_subscriptions_once(service)


@app.task(name=SUBSCRIPTION_LIFECYCLE_TASK, bind=True, acks_late=True, max_retries=MAX_RETRIES)
def subscription_lifecycle(self: Task[Any, Any], notice: dict[str, Any]) -> str:
    """A lifecycle notification the receiver queued: renew, recreate, reactivate or close the gap."""
    try:
        tenants_source().reload()
        service = subscriptions()
    except TenantsError as exc:
        log.error("cannot act on lifecycle notifications: %s", exc)
        raise self.retry(
            countdown=backoff(self.request.retries), max_retries=MAX_RETRIES, headers=sent_now()
        ) from None
    return run_lifecycle(self, service, notice)


from worker.pipeline import reassociate as _reassociate  # noqa: E402

reassociate_part = _reassociate.register(pipeline)  # callmatch.reassociate, a re-association's parts
