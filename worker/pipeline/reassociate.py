"""Re-association: the rules again on a tenant's past calls, after a settings change (issue #15).

A run is kept in Redis per (tenant, run id): its window, its dry-run flag, the calls it
will visit (fixed when it starts, oldest first), a cursor and the counts so far. Each call
is counted and the cursor moved in ONE transaction, so a run stopped anywhere (Ctrl-C, a
killed process, a `limit`) resumes where it stopped and ends with the summary an
uninterrupted run gives. A call being applied when the run stopped keeps its old decision
in the run (`before`), so the resumed run compares against what the call had, not against
what the interrupted run already stored.

Each call is first decided WITHOUT writing (`plan`: `associate` from the stored result with
people's locks and removals on top, exactly the refresh's `Previous`); an unchanged call is
left alone (nothing stored, nothing written). A changed one, unless it is a dry run, goes
through the refresh path itself: the call owes its associate stage again, `Pipeline.decide`
stores the new result (R1-R5), `Pipeline.write` upserts the activity by call id. Its reads
are therefore made twice (plan, then decide): the price of storing only what changed
through the one code path that stores results.

A run reads only its tenant's status sets and records (keys named by the tenant).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from celery.exceptions import SoftTimeLimitExceeded

from worker.core.model import Decision
from worker.core.observability import redact
from worker.pipeline.celery_app import BACKFILL_PRIORITY, SOFT_TIME_LIMIT_SECONDS, app, sent_now
from worker.pipeline.service import Pipeline
from worker.pipeline.store import PREFIX, CallRecord, CallStatus, Stage, status_key

REASSOCIATE_TASK = "callmatch.reassociate"
BACKFILL_TASKS = frozenset({REASSOCIATE_TASK})
"""Tasks sent at BACKFILL_PRIORITY: every live call of every tenant goes first."""
CHUNK = 20
"""Calls per background task message: between two, the worker takes live calls first."""
RUN_TTL_SECONDS = 30 * 24 * 3600
LOCK_SECONDS = 60
"""One process works on a run at a time; a killed one frees it after this long."""
FIELDS = ("opportunity_id", "account_id", "contact_ids", "lead_ids")
STATUSES = (CallStatus.DECIDED, CallStatus.WRITTEN, CallStatus.DEAD)
"""Where a call with a result is: received/fetched calls are decided by the live pipeline anyway."""

_DURATION = re.compile(r"(\d{1,6})([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ReassociateError(ValueError):
    """A request that cannot be done as asked; `field` names what to correct (`since`, `run_id`)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def parse_since(text: str) -> dt.timedelta:
    """`30d`, `12h`, `90m`, `2w`, `3600s`: how far back the run looks."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise ReassociateError(f"{text}: not a duration (e.g. 30d, 12h)", "since")
    return dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def runs_key(tenant: str) -> str:
    return f"{PREFIX}:reassociate:{tenant}:runs"


def run_key(tenant: str, run_id: str, part: str = "") -> str:
    """The run's hash; `part`: its `todo` list, `before` hash, `failed`/`skipped` lists, `lock`."""
    return f"{PREFIX}:reassociate:{tenant}:{run_id}" + (f":{part}" if part else "")


@dataclass
class Summary:
    """What a run found: per case change, per field, unchanged, skipped and failed (ids readable)."""

    changed: int = 0
    unchanged: int = 0
    cases: dict[str, int] = field(default_factory=dict)
    fields: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "unchanged": self.unchanged,
            "cases": dict(sorted(self.cases.items())),
            "fields": {name: self.fields.get(name, 0) for name in FIELDS},
            "skipped": self.skipped,
            "failed": self.failed,
        }


@dataclass
class Run:
    tenant: str
    run_id: str
    since: str
    until: str
    dry_run: bool
    created_at: str
    by: str
    state: str
    """running (a process has it or a task is queued), paused (stopped; resume continues it), done."""
    total: int
    done: int
    updated_at: str
    summary: Summary

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "run_id": self.run_id,
            "since": self.since,
            "until": self.until,
            "dry_run": self.dry_run,
            "created_at": self.created_at,
            "by": self.by,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "updated_at": self.updated_at,
            "summary": self.summary.to_json(),
        }


@dataclass(frozen=True)
class Outcome:
    """One call's result: changed, unchanged, skipped or failed (with why)."""

    call_id: str
    kind: str
    case_from: str | None = None
    case_to: str | None = None
    fields: tuple[str, ...] = ()
    reason: str = ""


def _client(pipe: Pipeline) -> redis.Redis:
    return pipe.store.redis


def candidates(pipe: Pipeline, tenant: str, since: dt.datetime, until: dt.datetime) -> list[str]:
    """The tenant's calls with a result whose call started or ended in [since, until], oldest first."""
    client = _client(pipe)
    pipe.store.index_statuses()
    ids = sorted({str(i) for status in STATUSES for i in client.zrange(status_key(tenant, status), 0, -1)})
    found: list[tuple[dt.datetime, str]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for call_id, record in zip(chunk, pipe.store.get_many((tenant, c) for c in chunk), strict=True):
            if record is None:
                continue
            try:
                started = _when(record.event["started_at"])
                ended = _when(record.event["ended_at"]) if record.event.get("ended_at") else started
            except (KeyError, TypeError, ValueError):
                continue
            if started <= until and max(started, ended) >= since:
                found.append((started, call_id))
    return [call_id for _, call_id in sorted(found)]


def start(
    pipe: Pipeline,
    tenant: str,
    since: dt.timedelta,
    *,
    dry_run: bool,
    by: str = "cli",
    run_id: str | None = None,
) -> Run:
    """A new run over the tenant's calls of the last `since`: its calls are fixed now.

    `run_id` names it (default: its start time and a random suffix, e.g. r20260320T120000Z-3f9a1c).
    """
    pipe.reload_tenants(force=True)
    pipe.tenant(tenant)
    now = pipe.store.now()
    low = now - since
    todo = candidates(pipe, tenant, low, now)
    run_id = run_id or now.astimezone(dt.UTC).strftime("r%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    meta = {
        "since": _iso(low),
        "until": _iso(now),
        "dry_run": dry_run,
        "created_at": _iso(dt.datetime.now(dt.UTC)),
        "by": by,
        "total": len(todo),
    }
    client = _client(pipe)
    key = run_key(tenant, run_id)
    with client.pipeline() as tx:
        tx.hset(
            key,
            mapping={
                "meta": json.dumps(meta),
                "state": "running",
                "cursor": 0,
                "updated_at": str(meta["created_at"]),
            },
        )
        if todo:
            tx.rpush(run_key(tenant, run_id, "todo"), *todo)
        tx.zadd(runs_key(tenant), {run_id: time.time()})
        for part in ("", "todo"):
            tx.expire(run_key(tenant, run_id, part), RUN_TTL_SECONDS)
        tx.execute()
    return load(pipe, tenant, run_id)


def load(pipe: Pipeline, tenant: str, run_id: str) -> Run:
    """The run as kept: its progress and summary so far."""
    client = _client(pipe)
    data = cast(dict[str, str], client.hgetall(run_key(tenant, run_id)))
    if not data or "meta" not in data:
        raise ReassociateError(f"tenant {tenant} has no re-association run {run_id!r}", "run_id")
    meta = json.loads(data["meta"])
    summary = Summary(
        changed=int(data.get("n:changed", 0)),
        unchanged=int(data.get("n:unchanged", 0)),
        cases={k[5:]: int(v) for k, v in data.items() if k.startswith("case:")},
        fields={k[6:]: int(v) for k, v in data.items() if k.startswith("field:")},
        skipped=[json.loads(x) for x in client.lrange(run_key(tenant, run_id, "skipped"), 0, -1)],
        failed=[json.loads(x) for x in client.lrange(run_key(tenant, run_id, "failed"), 0, -1)],
    )
    return Run(
        tenant=tenant,
        run_id=run_id,
        since=meta["since"],
        until=meta["until"],
        dry_run=bool(meta["dry_run"]),
        created_at=meta["created_at"],
        by=meta.get("by", "?"),
        state=data.get("state", "paused"),
        total=int(meta["total"]),
        done=int(data.get("cursor", 0)),
        updated_at=data.get("updated_at", meta["created_at"]),
        summary=summary,
    )


def runs(pipe: Pipeline, tenant: str) -> list[Run]:
    """The tenant's runs kept, newest first."""
    pipe.tenant(tenant)
    found = []
    for member in cast(list[str], _client(pipe).zrevrange(runs_key(tenant), 0, -1)):
        try:
            found.append(load(pipe, tenant, member))
        except ReassociateError:  # expired
            _client(pipe).zrem(runs_key(tenant), member)
    return found


def latest_unfinished(pipe: Pipeline, tenant: str) -> Run:
    """What `--resume` without a run id continues: the newest run not done."""
    for run in runs(pipe, tenant):
        if run.state != "done":
            return run
    raise ReassociateError(f"tenant {tenant} has no unfinished re-association run to resume", "run_id")


# --- one call --------------------------------------------------------------------------------


def plan(pipe: Pipeline, tenant_name: str, record: CallRecord) -> Decision:
    """The refresh's decision on today's CRM data and settings, stored nowhere (`Pipeline.plan`)."""
    return pipe.plan(pipe.tenant(tenant_name), record, pipe.store.now())


def _as_set(value: Any) -> Any:
    return frozenset(value) if isinstance(value, list | tuple) else value


def differences(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    """The fields whose value changed (contacts and leads compared as sets); the case on its own."""
    return tuple(name for name in FIELDS if _as_set(old.get(name)) != _as_set(new.get(name)))


def _outcome(call_id: str, old: dict[str, Any], new: dict[str, Any]) -> Outcome:
    changed = differences(old, new)
    if not changed and old.get("case") == new.get("case"):
        return Outcome(call_id, "unchanged", old.get("case"), new.get("case"))
    return Outcome(call_id, "changed", old.get("case"), new.get("case"), changed)


def _apply(pipe: Pipeline, tenant: str, call_id: str) -> dict[str, Any]:
    """The refresh path: the call owes its associate stage, decide stores the result, write upserts it."""
    pipe.store.request_stage(tenant, call_id, Stage.ASSOCIATE)
    pipe.decide(tenant, call_id)
    try:
        pipe.write(tenant, call_id)
    except Exception as exc:
        raise _WriteFailed(exc) from exc
    decision = pipe.store.require(tenant, call_id).decision
    assert decision is not None
    return decision


class _WriteFailed(Exception):
    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


def _reason(exc: BaseException) -> str:
    """Why a call failed, for a person: the error named, emails and phones masked, ids kept."""
    if isinstance(exc, _WriteFailed):
        return (
            f"write: {_reason(exc.cause)}; the new result is stored and owes its write (the sweep retries it)"
        )
    text = str(exc) or type(exc).__name__
    return redact(f"{type(exc).__name__}: {text}" if not _is_external(exc) else text)


def _is_external(exc: BaseException) -> bool:
    from adapters.errors import ExternalError

    return isinstance(exc, ExternalError)


def visit(pipe: Pipeline, tenant: str, run_id: str, call_id: str, dry_run: bool) -> Outcome:
    """One call of a run: skipped (and why), unchanged, changed (applied unless dry), or failed (and why)."""
    client = _client(pipe)
    before_key = run_key(tenant, run_id, "before")
    record = pipe.store.get(tenant, call_id)
    kept = cast(str | None, client.hget(before_key, call_id))
    if record is None:
        return Outcome(call_id, "skipped", reason="its record expired")
    if kept is None:
        if record.decision is None:
            return Outcome(call_id, "skipped", reason="not decided yet")
        if record.status is CallStatus.DEAD:
            return Outcome(
                call_id, "skipped", reason="a dead letter: replay it (`callmatch dead-letters replay`)"
            )
        if record.next_stage is not None:
            return Outcome(
                call_id, "skipped", reason=f"owes its {record.next_stage} stage: the pipeline has it"
            )
        old = record.decision
        try:
            planned = plan(pipe, tenant, record).to_json()
        except SoftTimeLimitExceeded:
            raise  # the part's time is up: not the call's failure (the next part visits it again)
        except Exception as exc:
            return Outcome(call_id, "failed", reason=_reason(exc))
        outcome = _outcome(call_id, old, planned)
        if outcome.kind == "unchanged" or dry_run:
            return outcome
        client.hset(before_key, call_id, json.dumps(old))  # a resumed run compares with this, not with ours
        client.expire(before_key, RUN_TTL_SECONDS)
    else:
        old = json.loads(kept)  # this run was applying the call when it stopped: finish it
    try:
        return _outcome(call_id, old, _apply(pipe, tenant, call_id))
    except SoftTimeLimitExceeded:
        raise
    except _WriteFailed as exc:
        if isinstance(exc.cause, SoftTimeLimitExceeded):
            raise exc.cause from None
        return Outcome(call_id, "failed", reason=_reason(exc))
    except Exception as exc:
        return Outcome(call_id, "failed", reason=_reason(exc))


def _commit(pipe: Pipeline, tenant: str, run_id: str, cursor: int, outcome: Outcome) -> None:
    """The call's counts and the cursor past it, in one transaction (only if the cursor is still ours)."""
    client = _client(pipe)
    key = run_key(tenant, run_id)
    with client.pipeline() as tx:
        while True:
            try:
                tx.watch(key)  # type: ignore[no-untyped-call]
                if int(cast(Any, tx.hget(key, "cursor")) or 0) != cursor:
                    raise ReassociateError(f"run {run_id} was moved on by another process", "run_id")
                tx.multi()
                if outcome.kind in ("changed", "unchanged"):
                    tx.hincrby(key, f"n:{outcome.kind}", 1)
                if outcome.kind == "changed":
                    tx.hincrby(key, f"case:{outcome.case_from} -> {outcome.case_to}", 1)
                    for name in outcome.fields:
                        tx.hincrby(key, f"field:{name}", 1)
                if outcome.kind in ("skipped", "failed"):
                    listed = run_key(tenant, run_id, outcome.kind)
                    tx.rpush(listed, json.dumps({"call_id": outcome.call_id, "reason": outcome.reason}))
                    tx.expire(listed, RUN_TTL_SECONDS)
                tx.hdel(run_key(tenant, run_id, "before"), outcome.call_id)
                tx.hset(key, mapping={"cursor": cursor + 1, "updated_at": _iso(dt.datetime.now(dt.UTC))})
                tx.execute()
                return
            except redis.WatchError:
                continue


class _Lock:
    """One process per run: a Redis key with a token, renewed as calls go by."""

    def __init__(self, pipe: Pipeline, tenant: str, run_id: str):
        self.client = _client(pipe)
        self.key = run_key(tenant, run_id, "lock")
        self.token = secrets.token_hex(8)
        self.run_id = run_id

    def __enter__(self) -> _Lock:
        if not self.client.set(self.key, self.token, nx=True, ex=LOCK_SECONDS):
            left = int(cast(Any, self.client.ttl(self.key)))
            raise ReassociateError(
                f"run {self.run_id} is being worked on by another process"
                f" (if that process was killed, it is free again in {max(left, 1)}s)",
                "run_id",
            )
        return self

    def renew(self) -> None:
        if self.client.get(self.key) == self.token:
            self.client.expire(self.key, LOCK_SECONDS)

    def __exit__(self, *exc: object) -> None:
        if self.client.get(self.key) == self.token:
            self.client.delete(self.key)


Progress = Callable[[Run, Outcome], None]


def proceed(
    pipe: Pipeline,
    tenant: str,
    run_id: str,
    *,
    limit: int | None = None,
    seconds: float | None = None,
    on_call: Progress | None = None,
    keep_running: bool = False,
) -> Run:
    """Work through the run from its cursor: all of it, `limit` calls, or what `seconds` allow.

    Stopped before the end (a limit, Ctrl-C), the run is `paused` (`keep_running`: the
    background task that sends its next part leaves it `running`); at the end, `done`.
    """
    pipe.reload_tenants()
    pipe.tenant(tenant)
    run = load(pipe, tenant, run_id)
    client = _client(pipe)
    key = run_key(tenant, run_id)
    todo = run_key(tenant, run_id, "todo")
    state = "paused"
    with _Lock(pipe, tenant, run_id) as lock:
        client.hset(key, "state", "running")
        try:
            visited = 0
            cursor = run.done
            until = None if seconds is None else time.monotonic() + seconds
            while cursor < run.total and (limit is None or visited < limit):
                if until is not None and visited and time.monotonic() > until:
                    break
                call_id = str(client.lindex(todo, cursor))
                outcome = visit(pipe, tenant, run_id, call_id, run.dry_run)
                _commit(pipe, tenant, run_id, cursor, outcome)
                cursor += 1
                visited += 1
                lock.renew()
                if on_call is not None:
                    run.done = cursor
                    on_call(run, outcome)
            if cursor >= run.total:
                state = "done"
            elif keep_running:
                state = "running"
        finally:
            client.hset(key, "state", state)
    return load(pipe, tenant, run_id)


# --- in the background ------------------------------------------------------------------------


def send_next(tenant: str, run_id: str, countdown: float | None = None) -> None:
    """The run's next part, behind every live call (BACKFILL_PRIORITY)."""
    app.send_task(
        REASSOCIATE_TASK,
        args=[tenant, run_id],
        priority=BACKFILL_PRIORITY,
        countdown=countdown,
        ignore_result=True,
        headers=sent_now(),
    )


def register(pipeline: Callable[[], Pipeline]) -> Any:
    """The background task on the worker's Celery app (worker.pipeline.tasks calls this with its pipeline)."""

    @app.task(name=REASSOCIATE_TASK, bind=True, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def reassociate_part(self: Any, tenant: str, run_id: str) -> int:
        """CHUNK calls of a run (or what half the soft time limit allows), then the next part is sent.

        Live calls are served in between (each part waits at BACKFILL_PRIORITY). A part whose
        run another process holds looks again once that process's lock would have expired
        (a killed holder frees it); a part cut by the soft time limit sends the next one; a
        redelivered part starts from the cursor: nothing is counted twice.
        """
        pipe = pipeline()
        try:
            run = proceed(
                pipe, tenant, run_id, limit=CHUNK, seconds=SOFT_TIME_LIMIT_SECONDS / 2, keep_running=True
            )
        except SoftTimeLimitExceeded:
            send_next(tenant, run_id)
            return -1
        except ReassociateError:
            try:
                run = load(pipe, tenant, run_id)
            except ReassociateError:
                return 0  # the run expired
            if run.state == "running" and not run.finished:  # held by another process: look again later
                send_next(tenant, run_id, countdown=LOCK_SECONDS + 1)
            return run.done
        if not run.finished:
            send_next(tenant, run_id)
        return run.done

    return reassociate_part


def summary_lines(run: Run) -> list[str]:
    """The summary for a person: counts, per case, per field, then each skipped and failed call."""
    s = run.summary
    head = f"re-association {run.run_id} of tenant {run.tenant}" + (
        " (dry run: nothing written)" if run.dry_run else ""
    )
    lines = [
        head,
        f"  calls whose call started or ended from {run.since} to {run.until}: {run.total}"
        + ("" if run.finished else f" ({run.done} done so far, {run.state})"),
        f"  {'would change' if run.dry_run else 'changed'}: {s.changed}; unchanged: {s.unchanged};"
        f" skipped: {len(s.skipped)}; failed: {len(s.failed)}",
    ]
    if s.cases:
        lines.append("  per case:")
        lines += [f"    {name}: {count}" for name, count in sorted(s.cases.items())]
    if s.changed:
        lines.append("  per field:")
        lines += [f"    {name} changed on {s.fields.get(name, 0)} call(s)" for name in FIELDS]
    for title, listed in (("skipped", s.skipped), ("failed", s.failed)):
        if listed:
            lines.append(f"  {title}:")
            lines += [f"    {item['call_id']}: {item['reason']}" for item in listed]
    return lines
