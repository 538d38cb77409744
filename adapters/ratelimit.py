"""Rate limits and API budgets shared by every worker process through Redis.

Celery's `rate_limit` counts per worker; a CRM's limit counts per org. So every
acquisition goes through one Lua script that reads the Redis server's clock, and
every budget an API reports is stored where all workers (and `callmatch status`)
read the latest figure. A Redis failure on any of these paths is a RetryableError
(service "redis", see adapters.redis_errors), never an unclassified exception.
"""

from __future__ import annotations

import math
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from adapters.errors import BudgetExhaustedError, RateLimitedError
from adapters.redis_errors import redis_call

RATELIMIT_PREFIX = "callmatch:ratelimit:"
BUDGET_PREFIX = "callmatch:budget:"
BUDGET_TTL_SECONDS = 2 * 24 * 3600

# Sliding-window log: one sorted-set member per grant, scored by the server time in
# microseconds (formatted by hand: Lua's default number format would round them). Entries at or before now - period have left the window.
# With a spacing (ARGV[4], microseconds), no two grants are closer than it: the window's grants
# are spread evenly, so delays between our grant and the API's count cannot bunch a whole
# window's grants with the next one's at the boundary. Returns {granted (0/1), now_us, wait_us}.
_ACQUIRE_LUA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local member = ARGV[3]
local function int(n)
  return string.format('%.0f', n)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now - period))
local spacing = tonumber(ARGV[4] or '0')
if spacing > 0 then
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] and now - tonumber(last[2]) < spacing then
    return {0, now, math.max(spacing - (now - tonumber(last[2])), 1)}
  end
end
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, int(now), member)
  redis.call('PEXPIRE', key, int(math.ceil(period / 1000) + 1))
  return {1, now, 0}
end
local blocking = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
local wait = tonumber(blocking[2]) + period - now
if wait < 1 then
  wait = 1
end
return {0, now, wait}
"""

_RECORD_BUDGET_LUA = """
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'used', ARGV[1], 'limit', ARGV[2], 'recorded_at_us',
  string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2])))
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class Limiter(Protocol):
    """What an API client needs from a limiter: block until a request may go out."""

    def acquire(self, timeout: float) -> None: ...


class NullLimiter:
    """No limit (tests, local runs, APIs that police themselves)."""

    def acquire(self, timeout: float) -> None:
        return None


class AllLimiters:
    """Several limits on one request (e.g. HubSpot burst and search): acquire each within one timeout.

    A slot taken from an earlier limiter is not given back when a later one times out;
    it ages out of its window like any other grant.
    """

    def __init__(self, *limiters: Limiter, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limiters = limiters
        self._monotonic = monotonic

    def acquire(self, timeout: float) -> None:
        deadline = self._monotonic() + max(timeout, 0.0)
        for limiter in self.limiters:
            limiter.acquire(max(deadline - self._monotonic(), 0.0))


@dataclass(frozen=True)
class Acquisition:
    """One attempt: granted or the wait until a slot frees, stamped with the Redis server time."""

    granted: bool
    wait: float
    server_time_us: int


def _service_of(key: str) -> str:
    return key.split(":", 1)[0] or "ratelimit"


class RedisRateLimiter:
    """At most `limit` acquisitions in any rolling `period_seconds`, across all processes and machines.

    `key` names the budget, e.g. ``salesforce:tenant-a:requests``; the Redis key is
    ``callmatch:ratelimit:<key>`` and expires one period after its last grant. Each grant
    in the window is one sorted-set entry, so this suits short windows (per second, per
    10 s, per minute); daily quotas belong to ApiBudget.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        key: str,
        limit: int,
        period_seconds: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        spacing_seconds: float = 0.0,
    ) -> None:
        """`spacing_seconds`: the least time between two grants (0: none; `period / limit`
        spreads a window's grants evenly, for a short window such as a per-second limit)."""
        if not key:
            raise ValueError("rate limit key must not be empty")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        period_us = round(period_seconds * 1_000_000)
        if period_us < 1:
            raise ValueError(f"period_seconds must be positive, got {period_seconds}")
        self.key = key
        self.redis_key = RATELIMIT_PREFIX + key
        self.limit = limit
        self.period_seconds = period_seconds
        self._period_us = period_us
        self._spacing_us = max(round(spacing_seconds * 1_000_000), 0)
        self._service = _service_of(key)
        self._redis = redis_client
        self._script = redis_client.register_script(_ACQUIRE_LUA)
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = random.Random()

    def attempt(self) -> Acquisition:
        """Take a slot if one is free; otherwise consume nothing and say how long to wait.

        Redis being unreachable is a RetryableError, so the retry policy backs off as for the API.
        """
        member = os.urandom(8).hex()
        with redis_call(f"rate limiter {self.key}"):
            granted, now_us, wait_us = self._script(
                keys=[self.redis_key], args=[self.limit, self._period_us, member, self._spacing_us]
            )
        return Acquisition(
            granted=bool(int(granted)), wait=int(wait_us) / 1_000_000, server_time_us=int(now_us)
        )

    def try_acquire(self) -> float:
        """0.0 when granted, else the seconds until a slot frees (nothing consumed)."""
        result = self.attempt()
        return 0.0 if result.granted else result.wait

    def acquire(self, timeout: float) -> None:
        """Wait for a slot; raise RateLimitedError when it would take longer than `timeout` seconds."""
        self.acquire_grant(timeout)

    def acquire_grant(self, timeout: float) -> Acquisition:
        """Like `acquire`, returning the grant (its Redis server time) for audits and tests."""
        deadline = self._monotonic() + max(timeout, 0.0)
        while True:
            result = self.attempt()
            if result.granted:
                return result
            remaining = deadline - self._monotonic()
            if result.wait > remaining:
                raise RateLimitedError(
                    self._service,
                    f"local rate limit {self.key} ({self.limit}/{self.period_seconds}s) is full",
                    retry_after=result.wait,
                )
            # A little jitter so waiters woken by the same expiry do not all collide again.
            self._sleep(min(result.wait + self._rng.uniform(0.0, min(0.01, result.wait)), remaining))

    def reset(self) -> None:
        """Forget every grant of this key (operator action, tests)."""
        with redis_call(f"rate limiter {self.key}"):
            self._redis.delete(self.redis_key)


@dataclass(frozen=True)
class BudgetSnapshot:
    """The latest figure an API reported for a budget, with the Redis time it was recorded."""

    key: str
    used: int
    limit: int
    recorded_at_us: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _snapshot(key: str, raw: Mapping[Any, Any]) -> BudgetSnapshot | None:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    try:
        return BudgetSnapshot(
            key=key,
            used=int(fields["used"]),
            limit=int(fields["limit"]),
            recorded_at_us=int(fields.get("recorded_at_us", "0")),
        )
    except (KeyError, ValueError):
        return None


class ApiBudget:
    """A budget the API itself reports (Salesforce ``Sforce-Limit-Info``, HubSpot daily remaining).

    Every response updates it; before spending, `check` stops us while the tenant's
    reserve is still untouched, so the org's own people and integrations keep theirs.
    """

    def __init__(self, redis_client: redis.Redis, key: str) -> None:
        if not key:
            raise ValueError("budget key must not be empty")
        self.key = key
        self.redis_key = BUDGET_PREFIX + key
        self._redis = redis_client
        self._service = _service_of(key)
        self._script = redis_client.register_script(_RECORD_BUDGET_LUA)

    def record(self, used: int, limit: int) -> None:
        """Store the latest usage the API reported (e.g. ``api-usage=1234/15000`` -> 1234, 15000)."""
        if limit < 0 or used < 0:
            raise ValueError(f"budget figures must not be negative: used={used} limit={limit}")
        with redis_call(f"budget {self.key}"):
            self._script(keys=[self.redis_key], args=[int(used), int(limit), BUDGET_TTL_SECONDS])

    def record_remaining(self, remaining: int, limit: int) -> None:
        """Store a figure reported as remaining (HubSpot ``X-HubSpot-RateLimit-Daily-Remaining``)."""
        self.record(max(limit - remaining, 0), limit)

    def snapshot(self) -> BudgetSnapshot | None:
        with redis_call(f"budget {self.key}"):
            raw = self._redis.hgetall(self.redis_key)
        return _snapshot(self.key, raw)

    def remaining(self) -> tuple[int, int] | None:
        """(remaining, limit) from the latest report, or None before any report."""
        snap = self.snapshot()
        return None if snap is None else (snap.remaining, snap.limit)

    def check(self, reserve_fraction: float = 0.1, *, max_age_seconds: float = 600.0) -> None:
        """Raise BudgetExhaustedError when what is left is below `reserve_fraction` of the limit.

        Unknown budgets pass: the first response reports the figure. So do figures older
        than `max_age_seconds` (Redis time): a refused budget gets no new reports, and
        Salesforce's 24-hour window rolls on and HubSpot's day resets without telling us,
        so a stale refusal lets a probe through instead of blocking until the key expires.
        The error's `retry_after` is when the refusal goes stale.
        """
        if not 0.0 <= reserve_fraction <= 1.0:
            raise ValueError(f"reserve_fraction must be within [0, 1], got {reserve_fraction}")
        with redis_call(f"budget {self.key}"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(self.redis_key)
            pipe.time()
            raw, (seconds, micros) = pipe.execute()
        snap = _snapshot(self.key, raw)
        if snap is None:
            return
        age = (int(seconds) * 1_000_000 + int(micros) - snap.recorded_at_us) / 1_000_000
        if age > max_age_seconds:
            return
        reserve = math.ceil(snap.limit * reserve_fraction)
        if snap.remaining < reserve or snap.remaining == 0:
            raise BudgetExhaustedError(
                self._service,
                f"budget {self.key} has {snap.remaining}/{snap.limit} left, reserve is {reserve}",
                retry_after=max(max_age_seconds - age, 0.0),
                daily=True,
            )


_SFORCE_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


def parse_sforce_limit_info(value: str | None) -> tuple[int, int] | None:
    """(used, limit) from ``Sforce-Limit-Info: api-usage=18/5000; per-app-api-usage=...``."""
    if not value:
        return None
    match = _SFORCE_API_USAGE.search(value)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def parse_hubspot_daily(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """(used, limit) from ``X-HubSpot-RateLimit-Daily`` and ``-Daily-Remaining`` (absent for OAuth apps)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        limit = int(lowered["x-hubspot-ratelimit-daily"])
        remaining = int(lowered["x-hubspot-ratelimit-daily-remaining"])
    except (KeyError, ValueError):
        return None
    return max(limit - remaining, 0), limit


def all_budgets(redis_client: redis.Redis) -> list[BudgetSnapshot]:
    """Every recorded budget, sorted by key (for `callmatch status`).

    Not an API call path: Redis errors stay Redis errors, which the CLI reports as such.
    """
    found: list[BudgetSnapshot] = []
    for redis_key in redis_client.scan_iter(match=BUDGET_PREFIX + "*", count=200):
        name = _text(redis_key)
        snap = _snapshot(name[len(BUDGET_PREFIX) :], redis_client.hgetall(name))
        if snap is not None:
            found.append(snap)
    return sorted(found, key=lambda s: s.key)
