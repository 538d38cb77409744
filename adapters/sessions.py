"""One CRM session per tenant, shared by every worker, and one refresh of it at a time.

When several workers get the same 401 and each refreshes, each gets a new access
token, and a new Salesforce session may revoke the one before it: the others'
next request is rejected again and they refresh again. So the session lives in
Redis, a refresh takes the tenant's lock (`SET NX PX`), a worker that finds the
lock taken waits (bounded) for the session its holder publishes, and a worker whose
rejected token is older than the shared one adopts the shared one without a token
request. The access token is a secret: it is kept in Redis only, with a short TTL,
and never logged (`repr` hides it) or written to a file.

Redis keys (`<key>` is `<crm>:<tenant>`):
- `callmatch:session:<key>`: hash of `token`, `instance_url`, `issued_us` (Redis time of
  publication, strictly increasing: it orders sessions across workers) and, when the
  CRM said how long the token lives, `expires_us`; expires after `SessionSettings.ttl`
  or the token's own lifetime, whichever is shorter;
- `callmatch:session-lock:<key>`: a random lease, `SET NX PX lock_ttl`, deleted only
  by its holder (compare and delete) or by its TTL when the holder died.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import redis

from adapters.errors import RetryableError
from adapters.redis_errors import redis_call

SESSION_PREFIX = "callmatch:session:"
LOCK_PREFIX = "callmatch:session-lock:"

log = logging.getLogger(__name__)

_PUBLISH_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local previous = tonumber(redis.call('HGET', KEYS[1], 'issued_us') or '0')
if now <= previous then
  now = previous + 1
end
local issued = string.format('%.0f', now)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'instance_url', ARGV[2], 'issued_us', issued)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'expires_us', string.format('%.0f', now + tonumber(ARGV[3])))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return issued
"""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Session:
    """An access token and where to use it.

    `issued_us` orders sessions: the store's stamp when it was published (0 for a token
    that came from configuration). `expires_in` is the seconds it had left when read,
    None when the CRM does not say (Salesforce).
    """

    token: str = field(repr=False)
    instance_url: str = ""
    issued_us: int = 0
    expires_in: float | None = None

    def replaces(self, held: Session | None, min_lifetime: float = 0.0) -> bool:
        """Newer than `held` (or nothing held) and not about to expire: worth adopting."""
        newer = held is None or self.issued_us > held.issued_us
        return newer and (self.expires_in is None or self.expires_in > min_lifetime)


@dataclass(frozen=True)
class SessionSettings:
    """How long the shared copy lives, how long a refresh may hold the lock, how long others wait.

    `lock_ttl` should exceed a token request's connect + read timeout, or a slow refresh
    lets a second one start; `wait_timeout` bounds how long a worker waits for another's
    refresh before giving up with a RetryableError (the task retries later).
    """

    ttl: float = 600.0
    lock_ttl: float = 45.0
    wait_timeout: float = 10.0
    poll_interval: float = 0.05


@dataclass
class SessionStats:
    """What renewals did in this process: token requests, adoptions, waits on another's refresh."""

    fetched: int = 0
    adopted: int = 0
    waited: int = 0


class SessionStore(Protocol):
    """Where a client gets a session newer than the one the CRM rejected (or is about to expire)."""

    stats: SessionStats

    def renew(
        self, held: Session | None, fetch: Callable[[], Session], *, min_lifetime: float = 0.0
    ) -> Session:
        """A session that replaces `held`: a newer shared one, else `fetch()`'s, shared."""


class LocalSessions:
    """The same contract within one process (no Redis): one refresh at a time, newer sessions adopted."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: Session | None = None
        self._expires_at: float | None = None
        self.stats = SessionStats()

    def _current(self) -> Session | None:
        if self._latest is None or self._expires_at is None:
            return self._latest
        return replace(self._latest, expires_in=self._expires_at - self._clock())

    def renew(
        self, held: Session | None, fetch: Callable[[], Session], *, min_lifetime: float = 0.0
    ) -> Session:
        with self._lock:
            current = self._current()
            if current is not None and current.replaces(held, min_lifetime):
                self.stats.adopted += 1
                return current
            fresh = fetch()
            floor = max(self._latest.issued_us if self._latest else 0, held.issued_us if held else 0)
            self._latest = replace(fresh, issued_us=floor + 1)
            self._expires_at = None if fresh.expires_in is None else self._clock() + fresh.expires_in
            self.stats.fetched += 1
            return self._latest


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSessions:
    """The tenant's session in Redis, refreshed by one worker at a time (see the module docstring).

    `key` is `<crm>:<tenant>`, e.g. ``salesforce:acme``.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        settings: SessionSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not key:
            raise ValueError("session key must not be empty")
        self.key = key
        self.redis_key = SESSION_PREFIX + key
        self.lock_key = LOCK_PREFIX + key
        self.settings = settings or SessionSettings()
        self.stats = SessionStats()
        self._service = key.split(":", 1)[0]
        self._redis = client
        self._publish = client.register_script(_PUBLISH_LUA)
        self._release = client.register_script(_RELEASE_LUA)
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = random.Random()
        self._stats_lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self._stats_lock:
            setattr(self.stats, what, getattr(self.stats, what) + 1)

    def shared(self) -> Session | None:
        """The session last published for this tenant, with the seconds it has left; None if none."""
        with redis_call(f"session store {self.key}"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(self.redis_key)
            pipe.time()
            raw, (seconds, micros) = pipe.execute()
        return _session(raw, int(seconds) * 1_000_000 + int(micros))

    def publish(self, session: Session) -> Session:
        """Share `session` as the tenant's newest; returns it stamped with its `issued_us`."""
        lifetime_us = "" if session.expires_in is None else str(max(round(session.expires_in * 1e6), 1))
        ttl = self.settings.ttl if session.expires_in is None else min(self.settings.ttl, session.expires_in)
        with redis_call(f"session store {self.key}"):
            issued = self._publish(
                keys=[self.redis_key],
                args=[session.token, session.instance_url, lifetime_us, max(round(ttl * 1000), 1)],
            )
        return replace(session, issued_us=int(_text(issued)))

    def try_lock(self) -> str | None:
        """The lease when this worker may refresh now, None while another one holds the lock."""
        lease = os.urandom(16).hex()
        with redis_call(f"session lock {self.key}"):
            taken = self._redis.set(
                self.lock_key, lease, nx=True, px=max(round(self.settings.lock_ttl * 1000), 1)
            )
        return lease if taken else None

    def unlock(self, lease: str) -> None:
        """Give the lock back if it is still ours; when Redis is away, its TTL gives it back."""
        try:
            self._release(keys=[self.lock_key], args=[lease])
        except redis.RedisError as error:
            log.warning(
                "session lock %s not released (%s); it expires by itself", self.key, type(error).__name__
            )

    def renew(
        self, held: Session | None, fetch: Callable[[], Session], *, min_lifetime: float = 0.0
    ) -> Session:
        """A session replacing `held`: a newer shared one, else one fetched under the lock and shared.

        Waits for another worker's refresh at most `wait_timeout` seconds, then raises
        RetryableError; a holder that died frees the lock after `lock_ttl` and the next
        waiter refreshes. Redis being away is a RetryableError of service "redis".
        """
        deadline = self._monotonic() + self.settings.wait_timeout
        waited = False
        while True:
            current = self.shared()
            if current is not None and current.replaces(held, min_lifetime):
                self._count("adopted")
                return current
            lease = self.try_lock()
            if lease is not None:
                try:
                    # Published between our read and our lock: adopt it, no second refresh.
                    current = self.shared()
                    if current is not None and current.replaces(held, min_lifetime):
                        self._count("adopted")
                        return current
                    fresh = fetch()
                    self._count("fetched")
                    return self.publish(fresh)
                finally:
                    self.unlock(lease)
            if not waited:
                waited = True
                self._count("waited")
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                raise RetryableError(
                    self._service,
                    f"session of {self.key}: another worker's refresh did not finish "
                    f"within {self.settings.wait_timeout:g}s",
                )
            poll = self.settings.poll_interval
            self._sleep(min(poll + self._rng.uniform(0.0, poll), remaining))


def _session(raw: Mapping[Any, Any], now_us: int) -> Session | None:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    token = fields.get("token")
    if not token:
        return None
    try:
        issued = int(fields.get("issued_us", "0"))
        expires = fields.get("expires_us")
        left = None if not expires else (int(expires) - now_us) / 1_000_000
    except ValueError:
        return None
    return Session(
        token=token, instance_url=fields.get("instance_url", ""), issued_us=issued, expires_in=left
    )
