"""Call records in Redis: one per call, the truth of what happened, why, and what is still owed.

A record holds the event, the decision with its trace, the status, attempts per
stage, fields a person locked, timestamps, and `next_stage`: the stage the call
still owes (None once written or buried). Every record that owes a stage sits in
the progress set with a deadline; a record whose deadline passes has stalled (its
message was lost with a killed worker, or a task ended in error) and the sweep
re-enqueues that stage. The queue only wakes workers: losing a message costs a
delay, never the call. Dead letters and the refresh schedule are sorted sets of
record keys, listable and replayable from any machine.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, cast

import redis

PREFIX = "callmatch"
RECORD_TTL_SECONDS = 180 * 24 * 3600
DEFAULT_STALL_SECONDS = 210

# The receiver's acceptance, atomically: the de-duplication mark and, on first sight, the record
# with its event in the index and the progress set. 0 = seen before, 1 = new call, 2 = new event
# of a call already kept (nothing more to do: that record carries on).
_ACCEPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[1])
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3]) then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
  return 1
end
return 2
"""

# Release a lock only if it is still ours.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


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
    removed: list[dict[str, str]] = field(default_factory=list)
    """R6: records a person unlinked (`{"type": "contact", "id": ..., "by": ..., "at": ...}`)."""
    changes: list[dict[str, Any]] = field(default_factory=list)
    """Every change a person made (override, removal, review choice): what, who and when."""
    error: dict[str, Any] | None = None
    created_at: str = ""
    updated_at: str = ""
    decided_at: str | None = None
    written_at: str | None = None
    refreshes: int = 0
    next_stage: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallRecord:
        return cls(**{**data, "status": CallStatus(data["status"])})

    @staticmethod
    def new(tenant: str, call_id: str, event: dict[str, Any], now: str) -> CallRecord:
        """A call seen for the first time: it owes every stage, starting with fetch."""
        return CallRecord(
            tenant=tenant,
            call_id=call_id,
            event=event,
            created_at=now,
            updated_at=now,
            next_stage=Stage.FETCH.value,
        )


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


class Accepted(StrEnum):
    """What the receiver's acceptance found."""

    NEW = "new"  # a new call: its record now exists and owes fetch
    DUPLICATE = "duplicate"  # this delivery was seen before
    KNOWN_CALL = "known_call"  # a new delivery of a call already kept


class CallStore:
    """Everything the pipeline keeps about calls, behind one small API."""

    def __init__(
        self,
        client: redis.Redis,
        clock: Callable[[], dt.datetime] | None = None,
        stall_seconds: float = DEFAULT_STALL_SECONDS,
    ):
        self.redis = client
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.stall_seconds = stall_seconds
        self.dead_key = f"{PREFIX}:dead"
        self.dead_info_key = f"{PREFIX}:dead:info"
        self.refresh_key = f"{PREFIX}:refresh"
        self.index_key = f"{PREFIX}:calls"
        self.progress_key = f"{PREFIX}:progress"
        self._accept = client.register_script(_ACCEPT)
        self._unlock = client.register_script(_UNLOCK)

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

    def accept(
        self, seen_key: str, seen_ttl_seconds: int, tenant: str, call_id: str, event: dict[str, Any]
    ) -> Accepted:
        """The receiver's one write: de-duplication mark and record together, or neither."""
        now = self.now()
        record = CallRecord.new(tenant, call_id, event, _now_iso(now))
        result = self._accept(
            keys=[seen_key, record_key(tenant, call_id), self.index_key, self.progress_key],
            args=[
                seen_ttl_seconds,
                json.dumps(record.to_json()),
                RECORD_TTL_SECONDS,
                now.timestamp(),
                time.time() + self.stall_seconds,
                _member(tenant, call_id),
            ],
        )
        return {0: Accepted.DUPLICATE, 1: Accepted.NEW}.get(int(result), Accepted.KNOWN_CALL)

    def create(self, tenant: str, call_id: str, event: dict[str, Any]) -> tuple[CallRecord, bool]:
        """The record for this call, created on first sight (or again from its event); (record, created)."""
        now = self.now()
        record = CallRecord.new(tenant, call_id, event, _now_iso(now))
        key = record_key(tenant, call_id)
        member = _member(tenant, call_id)
        with self.redis.pipeline() as pipe:
            pipe.set(key, json.dumps(record.to_json()), nx=True, ex=RECORD_TTL_SECONDS)
            pipe.zadd(self.index_key, {member: now.timestamp()}, nx=True)
            created = bool(pipe.execute()[0])
        if created:
            self.redis.zadd(self.progress_key, {member: time.time() + self.stall_seconds})
            return record, True
        return self.require(tenant, call_id), False

    def update(
        self,
        tenant: str,
        call_id: str,
        change: Callable[[CallRecord], None],
        *,
        also: Callable[[Any, CallRecord], None] | None = None,
    ) -> CallRecord:
        """Read-modify-write under WATCH, so concurrent workers never lose each other's changes.

        In the same transaction the progress set follows the record: a call that still owes
        a stage gets a new deadline, now + the stall time in wall-clock seconds (the sweep
        runs on real time even when the domain clock is frozen); one that owes nothing
        leaves the set. `also(pipe, record)` queues more commands in that transaction.
        """
        key = record_key(tenant, call_id)
        member = _member(tenant, call_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = pipe.get(key)
                    if raw is None:
                        raise RecordNotFoundError(tenant, call_id)
                    record = CallRecord.from_json(json.loads(raw))
                    change(record)
                    now = self.now()
                    record.updated_at = _now_iso(now)
                    pipe.multi()
                    pipe.set(key, json.dumps(record.to_json()), ex=RECORD_TTL_SECONDS)
                    if record.next_stage is None:
                        pipe.zrem(self.progress_key, member)
                    else:
                        pipe.zadd(self.progress_key, {member: time.time() + self.stall_seconds})
                    if also is not None:
                        also(pipe, record)
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue

    def count_attempt(self, tenant: str, call_id: str, stage: Stage) -> int:
        """One more attempt at `stage`; it also restarts the stall clock (the stage is alive)."""
        record = self.update(
            tenant, call_id, lambda r: r.attempts.__setitem__(stage.value, r.attempts.get(stage.value, 0) + 1)
        )
        return record.attempts[stage.value]

    def postpone(self, tenant: str, call_id: str, seconds: float) -> None:
        """A stage waits `seconds` for its retry: the sweep must not count that as a stall."""
        due = time.time() + seconds + self.stall_seconds
        self.redis.zadd(self.progress_key, {_member(tenant, call_id): due}, xx=True)

    def request_stage(self, tenant: str, call_id: str, stage: Stage) -> CallRecord:
        """The call owes `stage` again (a refresh, an override, a replay): the sweep now holds it to it."""

        def want(record: CallRecord) -> None:
            record.next_stage = stage.value

        return self.update(tenant, call_id, want)

    def recent(self, limit: int = 50) -> list[tuple[str, str]]:
        return [_unmember(m) for m in self.redis.zrevrange(self.index_key, 0, limit - 1)]

    # progress and its sweep ---------------------------------------------------------------------

    def stalled_count(self) -> int:
        """How many calls owing a stage are past their (wall-clock) deadline."""
        return int(self.redis.zcount(self.progress_key, "-inf", time.time()))

    def stalled_since(self, limit: int = 1000) -> list[tuple[str, str, float]]:
        """Stalled calls with when each last made progress (its deadline less the stall time)."""
        rows = self.redis.zrangebyscore(
            self.progress_key, "-inf", time.time(), start=0, num=limit, withscores=True
        )
        out = []
        for member, score in cast(list[tuple[Any, float]], rows):
            tenant, call_id = _unmember(member)
            out.append((tenant, call_id, float(score) - self.stall_seconds))
        return out

    def owed(self) -> int:
        return int(self.redis.zcard(self.progress_key))

    def revive_stalled(self, tenant: str, call_id: str) -> Stage | None:
        """The stage a stalled call owes, with a fresh deadline; None (and out of the set) if it owes none."""
        record = self.get(tenant, call_id)
        member = _member(tenant, call_id)
        if record is None or record.next_stage is None or record.status is CallStatus.DEAD:
            self.redis.zrem(self.progress_key, member)
            return None
        self.redis.zadd(self.progress_key, {member: time.time() + self.stall_seconds}, xx=True)
        return Stage(record.next_stage)

    # per-call locks -----------------------------------------------------------------------------

    @staticmethod
    def _lock_key(name: str, tenant: str, call_id: str) -> str:
        return f"{PREFIX}:lock:{name}:{tenant}:{call_id}"

    def lock(self, name: str, tenant: str, call_id: str, seconds: float) -> str | None:
        """A lock on one call's `name` step for `seconds`; the token to release it, or None if held."""
        token = uuid.uuid4().hex
        if self.redis.set(
            self._lock_key(name, tenant, call_id), token, nx=True, px=max(1, int(seconds * 1000))
        ):
            return token
        return None

    def lock_ttl(self, name: str, tenant: str, call_id: str) -> float:
        return max(int(self.redis.pttl(self._lock_key(name, tenant, call_id))), 0) / 1000

    def unlock(self, name: str, tenant: str, call_id: str, token: str) -> None:
        self._unlock(keys=[self._lock_key(name, tenant, call_id)], args=[token])

    # dead letters -------------------------------------------------------------------------------

    def bury(self, tenant: str, call_id: str, stage: Stage, reason: str, action: str) -> DeadLetter:
        """Keep a call that could not go on, with why; it stays until replayed.

        The record's DEAD status and the letter are written in one transaction: nobody
        ever sees a dead call without its letter.
        """
        now = self.now()
        member = _member(tenant, call_id)

        def letter_of(attempts: int, why: str) -> DeadLetter:
            return DeadLetter(
                tenant=tenant,
                call_id=call_id,
                stage=stage.value,
                reason=why,
                action=action,
                attempts=attempts,
                at=_now_iso(now),
            )

        def mark(record: CallRecord) -> None:
            record.status = CallStatus.DEAD
            record.next_stage = None
            record.error = {"stage": stage.value, "reason": reason, "action": action, "at": _now_iso(now)}

        def keep_letter(pipe: Any, letter: DeadLetter) -> None:
            pipe.zadd(self.dead_key, {member: now.timestamp()})
            pipe.hset(self.dead_info_key, member, json.dumps(asdict(letter)))

        try:
            record = self.update(
                tenant,
                call_id,
                mark,
                also=lambda pipe, r: keep_letter(pipe, letter_of(r.attempts.get(stage.value, 0), reason)),
            )
        except RecordNotFoundError:
            letter = letter_of(0, f"{reason} (no record was found for this call)")
            with self.redis.pipeline() as pipe:
                keep_letter(pipe, letter)
                pipe.execute()
            return letter
        return letter_of(record.attempts.get(stage.value, 0), reason)

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

    def revive(self, tenant: str, call_id: str) -> DeadLetter | None:
        """Put a dead letter's call back on the stage where it stopped; the letter, with the stage owed.

        The letter itself stays. The record owes that stage again (so the sweep holds it to
        it even if the message is lost); the caller sends the stage's task and only then
        `forget`s the letter.
        """
        raw = self.redis.hget(self.dead_info_key, _member(tenant, call_id))
        if raw is None:
            return None
        letter = DeadLetter(**json.loads(raw))
        owed: list[Stage] = []

        def revive(record: CallRecord) -> None:
            stage = Stage(letter.stage)
            if stage is Stage.WRITE and not record.decision:
                stage = Stage.ASSOCIATE
            record.status = {
                Stage.FETCH: CallStatus.RECEIVED,
                Stage.ASSOCIATE: CallStatus.FETCHED,
                Stage.WRITE: CallStatus.DECIDED,
            }[stage]
            record.next_stage = stage.value
            record.error = None
            record.attempts.pop(letter.stage, None)
            owed[:] = [stage]

        try:
            self.update(tenant, call_id, revive)
        except RecordNotFoundError:
            return None
        return replace(letter, stage=owed[0].value)

    def forget(self, tenant: str, call_id: str) -> None:
        """Drop a dead letter (after its replay was safely queued, or once its call got through)."""
        member = _member(tenant, call_id)
        with self.redis.pipeline() as pipe:
            pipe.zrem(self.dead_key, member)
            pipe.hdel(self.dead_info_key, member)
            pipe.execute()

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
