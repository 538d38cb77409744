"""Call records in Redis: one per call, the worker's memory of what happened and why.

A record holds the event, the decision with its trace, the status, attempts per
stage, fields a person locked, and timestamps. Dead letters and the refresh
schedule are sorted sets of record keys, so they are listable and replayable
from any machine.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import redis

PREFIX = "callmatch"
RECORD_TTL_SECONDS = 180 * 24 * 3600


class CallStatus(StrEnum):
    RECEIVED = "received"
    FETCHED = "fetched"
    DECIDED = "decided"
    WRITTEN = "written"
    DEAD = "dead"


class Stage(StrEnum):
    """The pipeline's steps; each retries on its own and can end as a dead letter."""

    FETCH = "fetch"
    ASSOCIATE = "associate"
    WRITE = "write"


class RecordNotFoundError(LookupError):
    def __init__(self, tenant: str, call_id: str):
        super().__init__(f"no call {call_id!r} for tenant {tenant!r}")
        self.tenant = tenant
        self.call_id = call_id


def _now_iso(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class CallRecord:
    tenant: str
    call_id: str
    event: dict[str, Any]
    status: CallStatus = CallStatus.RECEIVED
    decision: dict[str, Any] | None = None
    written: dict[str, Any] | None = None
    attempts: dict[str, int] = field(default_factory=dict)
    locked: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    created_at: str = ""
    updated_at: str = ""
    decided_at: str | None = None
    written_at: str | None = None
    refreshes: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallRecord:
        return cls(**{**data, "status": CallStatus(data["status"])})


def record_key(tenant: str, call_id: str) -> str:
    return f"{PREFIX}:call:{tenant}:{call_id}"


def _member(tenant: str, call_id: str) -> str:
    return json.dumps([tenant, call_id])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _unmember(member: object) -> tuple[str, str]:
    tenant, call_id = json.loads(_text(member))
    return str(tenant), str(call_id)


@dataclass(frozen=True)
class DeadLetter:
    tenant: str
    call_id: str
    stage: str
    reason: str
    action: str
    attempts: int
    at: str


class CallStore:
    """Everything the pipeline keeps about calls, behind one small API."""

    def __init__(self, client: redis.Redis, clock: Callable[[], dt.datetime] | None = None):
        self.redis = client
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.dead_key = f"{PREFIX}:dead"
        self.dead_info_key = f"{PREFIX}:dead:info"
        self.refresh_key = f"{PREFIX}:refresh"
        self.index_key = f"{PREFIX}:calls"

    def now(self) -> dt.datetime:
        return self.clock()

    def get(self, tenant: str, call_id: str) -> CallRecord | None:
        raw = self.redis.get(record_key(tenant, call_id))
        if raw is None:
            return None
        return CallRecord.from_json(json.loads(raw))

    def require(self, tenant: str, call_id: str) -> CallRecord:
        record = self.get(tenant, call_id)
        if record is None:
            raise RecordNotFoundError(tenant, call_id)
        return record

    def create(self, tenant: str, call_id: str, event: dict[str, Any]) -> tuple[CallRecord, bool]:
        """The record for this call, created on first sight; (record, created)."""
        now = _now_iso(self.now())
        record = CallRecord(tenant=tenant, call_id=call_id, event=event, created_at=now, updated_at=now)
        key = record_key(tenant, call_id)
        created = bool(self.redis.set(key, json.dumps(record.to_json()), nx=True, ex=RECORD_TTL_SECONDS))
        if created:
            self.redis.zadd(self.index_key, {_member(tenant, call_id): self.now().timestamp()})
            return record, True
        return self.require(tenant, call_id), False

    def update(self, tenant: str, call_id: str, change: Callable[[CallRecord], None]) -> CallRecord:
        """Read-modify-write under WATCH, so concurrent workers never lose each other's changes."""
        key = record_key(tenant, call_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = pipe.get(key)
                    if raw is None:
                        raise RecordNotFoundError(tenant, call_id)
                    record = CallRecord.from_json(json.loads(raw))
                    change(record)
                    record.updated_at = _now_iso(self.now())
                    pipe.multi()
                    pipe.set(key, json.dumps(record.to_json()), ex=RECORD_TTL_SECONDS)
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue

    def count_attempt(self, tenant: str, call_id: str, stage: Stage) -> int:
        record = self.update(
            tenant, call_id, lambda r: r.attempts.__setitem__(stage.value, r.attempts.get(stage.value, 0) + 1)
        )
        return record.attempts[stage.value]

    def recent(self, limit: int = 50) -> list[tuple[str, str]]:
        return [_unmember(m) for m in self.redis.zrevrange(self.index_key, 0, limit - 1)]

    # dead letters -------------------------------------------------------------------------------

    def bury(self, tenant: str, call_id: str, stage: Stage, reason: str, action: str) -> DeadLetter:
        """Keep a call that could not go on, with why; it stays until replayed."""
        now = self.now()

        def mark(record: CallRecord) -> None:
            record.status = CallStatus.DEAD
            record.error = {"stage": stage.value, "reason": reason, "action": action, "at": _now_iso(now)}

        record = self.update(tenant, call_id, mark)
        letter = DeadLetter(
            tenant=tenant,
            call_id=call_id,
            stage=stage.value,
            reason=reason,
            action=action,
            attempts=record.attempts.get(stage.value, 0),
            at=_now_iso(now),
        )
        member = _member(tenant, call_id)
        with self.redis.pipeline() as pipe:
            pipe.zadd(self.dead_key, {member: now.timestamp()})
            pipe.hset(self.dead_info_key, member, json.dumps(asdict(letter)))
            pipe.execute()
        return letter

    def dead_letters(self, tenant: str | None = None, limit: int = 1000) -> list[DeadLetter]:
        members = self.redis.zrange(self.dead_key, 0, -1)
        out = []
        for member in members:
            if tenant is not None and _unmember(member)[0] != tenant:
                continue
            raw = self.redis.hget(self.dead_info_key, _text(member))
            if raw is not None:
                out.append(DeadLetter(**json.loads(raw)))
            if len(out) >= limit:
                break
        return out

    def dead_count(self) -> int:
        return int(self.redis.zcard(self.dead_key))

    def unbury(self, tenant: str, call_id: str) -> DeadLetter | None:
        """Take a call out of the dead letters; the caller re-enqueues its stage."""
        member = _member(tenant, call_id)
        raw = self.redis.hget(self.dead_info_key, member)
        if raw is None:
            return None
        letter = DeadLetter(**json.loads(raw))
        with self.redis.pipeline() as pipe:
            pipe.zrem(self.dead_key, member)
            pipe.hdel(self.dead_info_key, member)
            pipe.execute()

        def revive(record: CallRecord) -> None:
            record.status = (
                CallStatus.DECIDED if record.decision and letter.stage == Stage.WRITE else CallStatus.RECEIVED
            )
            record.error = None
            record.attempts.pop(letter.stage, None)

        self.update(tenant, call_id, revive)
        return letter

    # refresh schedule (R5) ----------------------------------------------------------------------

    def schedule_refresh(self, tenant: str, call_id: str, due: dt.datetime) -> None:
        self.redis.zadd(self.refresh_key, {_member(tenant, call_id): due.timestamp()})

    def unschedule_refresh(self, tenant: str, call_id: str) -> None:
        self.redis.zrem(self.refresh_key, _member(tenant, call_id))

    def due_refreshes(self, now: dt.datetime, limit: int = 500) -> list[tuple[str, str]]:
        members = self.redis.zrangebyscore(self.refresh_key, "-inf", now.timestamp(), start=0, num=limit)
        return [_unmember(m) for m in members]

    def scheduled_refreshes(self) -> int:
        return int(self.redis.zcard(self.refresh_key))

    def iter_records(self, tenant: str | None = None) -> Iterator[CallRecord]:
        for member in self.redis.zrange(self.index_key, 0, -1):
            record_tenant, call_id = _unmember(member)
            if tenant is None or record_tenant == tenant:
                record = self.get(record_tenant, call_id)
                if record is not None:
                    yield record
