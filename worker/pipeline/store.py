"""Call records in Redis: one per call, the truth of what happened, why, and what is still owed.

A record holds the event, the decision with its trace, the status, attempts per
stage, fields a person locked, timestamps, and `next_stage`: the stage the call
still owes (None once written or buried). Every record that owes a stage sits in
the progress set with a deadline; a record whose deadline passes has stalled (its
message was lost with a killed worker, or a task ended in error) and the sweep
re-enqueues that stage. The queue only wakes workers: losing a message costs a
delay, never the call. Dead letters and the refresh schedule are sorted sets of
record keys, listable and replayable from any machine.

For `callmatch status` and the metrics, each tenant has one sorted set of call ids per status
(scored by the wall-clock time of the record's last write, so a record's expiry is its entry's
too) and, for the rate, the calls that became decided or written in the last hour.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, cast

import redis

PREFIX = "callmatch"
RECORD_TTL_SECONDS = 180 * 24 * 3600
DEFAULT_STALL_SECONDS = 210
RATE_WINDOW_SECONDS = 3600
"""How far back `rates` can count (the last hour)."""

# The receiver's acceptance, atomically: the de-duplication mark and, on first sight, the record
# with its event in the index and the progress set. 0 = seen before, 1 = new call, 2 = new event
# of a call already kept (nothing more to do: that record carries on). Given a sixth key, a new call's
# queue message (KEYS[6] the list, ARGV[9] the payload) is pushed too: one round trip for all of it.
_ACCEPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[1])
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3]) then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6])
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])
  redis.call('ZADD', KEYS[5], ARGV[8], ARGV[7])
  if KEYS[6] then redis.call('LPUSH', KEYS[6], ARGV[9]) end
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
    newer: dict[str, Any] = field(default_factory=dict, repr=False)
    """Keys a newer version of callmatch stored: kept and written back untouched (rolling upgrades)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        newer = data.pop("newer")
        return {**newer, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallRecord:
        """A stored record, whichever version wrote it: keys this version does not know ride along in `newer`."""
        known = {k: v for k, v in data.items() if k in _RECORD_FIELDS}
        newer = {k: v for k, v in data.items() if k not in _RECORD_FIELDS}
        return cls(**{**known, "status": CallStatus(data["status"]), "newer": newer})

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


_RECORD_FIELDS = frozenset(f.name for f in fields(CallRecord)) - {"newer"}


def record_key(tenant: str, call_id: str) -> str:
    return f"{PREFIX}:call:{tenant}:{call_id}"


def status_key(tenant: str, status: CallStatus | str) -> str:
    """The tenant's calls in this status: call id -> wall-clock time of the record's last write."""
    return f"{PREFIX}:status:{tenant}:{CallStatus(status).value}"


def rate_key(tenant: str, status: CallStatus | str) -> str:
    """The tenant's calls that became `status` (decided, written) in the last hour: call id -> when."""
    return f"{PREFIX}:rate:{tenant}:{CallStatus(status).value}"


STATUS_INDEX_READY = f"{PREFIX}:status-index:ready"
"""Set once the records kept before the status sets existed have been put in them."""
RATED = (CallStatus.DECIDED, CallStatus.WRITTEN)


def _status_index(pipe: Any, tenant: str, call_id: str, status: CallStatus, at: float) -> None:
    """Queue the commands that put a call in its status's set, and out of the others'."""
    for other in CallStatus:
        if other is not status:
            pipe.zrem(status_key(tenant, other), call_id)
    pipe.zadd(status_key(tenant, status), {call_id: at})


def _member(tenant: str, call_id: str) -> str:
    return json.dumps([tenant, call_id])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _unmember(member: object) -> tuple[str, str]:
    tenant, call_id = json.loads(_text(member))
    return str(tenant), str(call_id)


def unmember(member: object) -> tuple[str, str]:
    """(tenant, call id) of a member of the index, progress, dead-letter or refresh set."""
    return _unmember(member)


@dataclass(frozen=True)
class IndexRow:
    """One call of the index, newest first: when it was received (its score), its place among the
    calls received at that same instant (1, 2, ...), tenant and call id.
    """

    score: float
    position: int
    tenant: str
    call_id: str

    @property
    def cursor(self) -> str:
        """Where a listing stopped: the next page starts just after this row.

        It holds the instant and the place only, never a tenant or a call id: a cursor that
        stopped on another tenant's call tells nothing about it.
        """
        raw = json.dumps([self.score, self.position]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(cursor: str) -> tuple[float, int]:
    """(instant, place) of a cursor; ValueError when the text is no cursor a listing gave."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, position = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("not a cursor a listing gave") from None
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
        raise ValueError("not a cursor a listing gave")
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise ValueError("not a cursor a listing gave")
    return float(score), position


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
        self,
        seen_key: str,
        seen_ttl_seconds: int,
        tenant: str,
        call_id: str,
        event: dict[str, Any],
        push: tuple[str, str | bytes] | None = None,
    ) -> Accepted:
        """The receiver's one write: de-duplication mark and record together, or neither.

        `push` = (list, message): LPUSHed in the same script when the call is new (the queue message).
        """
        now = self.now()
        record = CallRecord.new(tenant, call_id, event, _now_iso(now))
        wall = time.time()
        result = self._accept(
            keys=[
                seen_key,
                record_key(tenant, call_id),
                self.index_key,
                self.progress_key,
                status_key(tenant, CallStatus.RECEIVED),
                *([push[0]] if push else []),
            ],
            args=[
                seen_ttl_seconds,
                json.dumps(record.to_json()),
                RECORD_TTL_SECONDS,
                now.timestamp(),
                wall + self.stall_seconds,
                _member(tenant, call_id),
                call_id,
                wall,
                *([push[1]] if push else []),
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
            wall = time.time()
            with self.redis.pipeline() as pipe:
                pipe.zadd(self.progress_key, {member: wall + self.stall_seconds})
                pipe.zadd(status_key(tenant, record.status), {call_id: wall})
                pipe.execute()
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
        leaves the set. The status sets follow it too (and the rate sets when the call becomes
        decided or written). `also(pipe, record)` queues more commands in that transaction.
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
                    before = record.status
                    change(record)
                    now = self.now()
                    record.updated_at = _now_iso(now)
                    wall = time.time()
                    pipe.multi()
                    pipe.set(key, json.dumps(record.to_json()), ex=RECORD_TTL_SECONDS)
                    _status_index(pipe, tenant, call_id, record.status, wall)
                    if record.status is not before and record.status in RATED:
                        rated = rate_key(tenant, record.status)
                        pipe.zadd(rated, {call_id: wall})
                        pipe.zremrangebyscore(rated, "-inf", wall - RATE_WINDOW_SECONDS)
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

    def newest_first(
        self,
        *,
        after: tuple[float, int] | None = None,
        since: float | None = None,
        until: float | None = None,
        batch: int = 500,
    ) -> Iterator[IndexRow]:
        """The index from the newest call down, received in [since, until), starting after `after`.

        `after` is a cursor's (instant, place): the calls received at that instant are read
        again from the one after that place, then the older ones. Calls received meanwhile
        never shift the rows still to read: the upper bound is pinned at the first row.
        """
        low = "-inf" if since is None else repr(since)
        high = "+inf" if until is None else f"({until!r}"
        if after is not None and (until is None or after[0] < until):
            score, skip = after
            if since is None or score >= since:
                tied = cast(list[Any], self.redis.zrevrangebyscore(self.index_key, score, score))
                for place, member in enumerate(tied[skip:], start=skip + 1):
                    yield IndexRow(score, place, *_unmember(member))
            high = f"({score!r}"
        first = cast(
            list[tuple[Any, float]],
            self.redis.zrevrangebyscore(self.index_key, high, low, start=0, num=1, withscores=True),
        )
        if not first:
            return
        high = repr(first[0][1])  # pinned: calls received from now on sit above it
        offset, previous, place = 0, None, 0
        while True:
            rows = cast(
                list[tuple[Any, float]],
                self.redis.zrevrangebyscore(
                    self.index_key, high, low, start=offset, num=batch, withscores=True
                ),
            )
            for member, score in rows:
                place = place + 1 if score == previous else 1
                previous = score
                yield IndexRow(float(score), place, *_unmember(member))
            if len(rows) < batch:
                return
            offset += len(rows)

    def get_many(self, keys: Iterable[tuple[str, str]]) -> list[CallRecord | None]:
        """The records of these (tenant, call id) in one round trip; None where a record is gone."""
        wanted = list(keys)
        if not wanted:
            return []
        raws = self.redis.mget([record_key(tenant, call_id) for tenant, call_id in wanted])
        return [None if raw is None else CallRecord.from_json(json.loads(raw)) for raw in raws]

    # per-tenant counts: status and rate ------------------------------------------------------------

    def status_counts(self, tenant: str) -> dict[str, int]:
        """How many of the tenant's kept calls are in each status (every status named, 0 included)."""
        self.index_statuses()
        oldest = time.time() - RECORD_TTL_SECONDS  # an entry older than this is an expired record's
        with self.redis.pipeline(transaction=False) as pipe:
            for status in CallStatus:
                pipe.zcount(status_key(tenant, status), oldest, "+inf")
            counts = pipe.execute()
        return {status.value: int(n) for status, n in zip(CallStatus, counts, strict=True)}

    def rates(self, tenant: str, windows: Iterable[float] = (60.0, 3600.0)) -> dict[str, list[int]]:
        """Calls that became decided / written within each window (seconds, at most an hour)."""
        spans = list(windows)
        now = time.time()
        with self.redis.pipeline(transaction=False) as pipe:
            for status in RATED:
                for span in spans:
                    pipe.zcount(rate_key(tenant, status), now - min(span, RATE_WINDOW_SECONDS), "+inf")
            counts = [int(n) for n in pipe.execute()]
        return {status.value: counts[i * len(spans) : (i + 1) * len(spans)] for i, status in enumerate(RATED)}

    def index_statuses(self, batch: int = 500) -> int:
        """Put the records kept before the status sets existed in them, once; how many were read.

        Each batch is read under WATCH and written in one transaction, so a worker
        changing a call meanwhile is never overwritten with its older status.
        """
        if self.redis.exists(STATUS_INDEX_READY):
            return 0
        members = [_unmember(m) for m in self.redis.zrange(self.index_key, 0, -1)]
        for start in range(0, len(members), batch):
            chunk = members[start : start + batch]
            keys = [record_key(tenant, call_id) for tenant, call_id in chunk]
            with self.redis.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(*keys)  # type: ignore[no-untyped-call]
                        raws = pipe.mget(keys)
                        # A record's expiry says when it was last written (each write sets it anew).
                        with self.redis.pipeline(transaction=False) as ttls:
                            for key in keys:
                                ttls.pttl(key)
                            left = ttls.execute()
                        now = time.time()
                        pipe.multi()
                        for (tenant, call_id), raw, ms in zip(chunk, raws, left, strict=True):
                            if raw is not None:
                                record = CallRecord.from_json(json.loads(raw))
                                written = (
                                    now - RECORD_TTL_SECONDS + (ms / 1000 if ms > 0 else RECORD_TTL_SECONDS)
                                )
                                _status_index(pipe, tenant, call_id, record.status, written)
                        pipe.execute()
                        break
                    except redis.WatchError:
                        continue
        self.redis.set(STATUS_INDEX_READY, "1")
        return len(members)

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
