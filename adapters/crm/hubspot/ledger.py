"""Which HubSpot call or meeting holds each call id (rule W1), shared by every worker.

HubSpot's search index lags writes by a few seconds, so a search alone cannot stop
two workers (or a retry after a timed-out create) from writing the same call twice.
The ledger serialises writers of one call id with a lock and remembers the object it
created, so later writes update it without searching at all. Redis being away is a
RetryableError (service "redis"): the write is tried again later, never buried.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import redis

from adapters.errors import RetryableError
from adapters.redis_errors import redis_call

LEDGER_PREFIX = "callmatch:hubspot:activity:"
LEDGER_TTL_SECONDS = 400 * 24 * 3600

log = logging.getLogger(__name__)


class ActivityLedger(Protocol):
    def find(self, call_id: str) -> tuple[str, str] | None:
        """(object type, object id) written for this call id, if any."""

    def record(self, call_id: str, kind: str, object_id: str) -> None: ...

    def forget(self, call_id: str) -> None: ...

    def hold(self, call_id: str) -> AbstractContextManager[None]:
        """Only one writer of this call id at a time."""


class MemoryLedger:
    """One process's ledger (tests, the embedded CRM)."""

    def __init__(self) -> None:
        self._refs: dict[str, tuple[str, str]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def find(self, call_id: str) -> tuple[str, str] | None:
        return self._refs.get(call_id)

    def record(self, call_id: str, kind: str, object_id: str) -> None:
        self._refs[call_id] = (kind, object_id)

    def forget(self, call_id: str) -> None:
        self._refs.pop(call_id, None)

    @contextmanager
    def hold(self, call_id: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(call_id, threading.Lock())
        with lock:
            yield


class RedisLedger:
    """The tenant's ledger in Redis: `callmatch:hubspot:activity:<tenant>:<call id>` -> `calls:<id>`."""

    def __init__(self, client: redis.Redis, tenant: str, *, lock_timeout: float = 60.0) -> None:
        self._redis = client
        self._prefix = f"{LEDGER_PREFIX}{tenant}:"
        self.lock_timeout = lock_timeout

    def find(self, call_id: str) -> tuple[str, str] | None:
        with redis_call("hubspot activity ledger"):
            raw = self._redis.get(self._prefix + call_id)
        if raw is None:
            return None
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        kind, _, object_id = text.partition(":")
        return (kind, object_id) if object_id else None

    def record(self, call_id: str, kind: str, object_id: str) -> None:
        with redis_call("hubspot activity ledger"):
            self._redis.set(self._prefix + call_id, f"{kind}:{object_id}", ex=LEDGER_TTL_SECONDS)

    def forget(self, call_id: str) -> None:
        with redis_call("hubspot activity ledger"):
            self._redis.delete(self._prefix + call_id)

    @contextmanager
    def hold(self, call_id: str) -> Iterator[None]:
        lock = self._redis.lock(
            self._prefix + "lock:" + call_id, timeout=self.lock_timeout, blocking_timeout=self.lock_timeout
        )
        with redis_call("hubspot activity ledger lock"):
            acquired = lock.acquire()
        if not acquired:
            raise RetryableError("hubspot", "another worker is still writing this call")
        try:
            yield
        finally:
            # A lock we cannot release (expired, or Redis away) frees itself by its timeout;
            # failing here would hide how the write itself ended.
            try:
                lock.release()
            except redis.RedisError as error:
                log.warning("hubspot activity ledger lock not released: %s", type(error).__name__)
