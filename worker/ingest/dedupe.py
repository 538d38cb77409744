"""Seen-delivery marks in Redis, so a provider's redelivery is acknowledged but enqueued once.

A mark goes through two states. `pending` (short TTL) is set before enqueuing;
`done` (long TTL) after the queue took the event. A delivery that finds `done`
is a duplicate (2xx, nothing enqueued); one that finds `pending` is told to come
back later (503), because the first attempt may still fail or its process may
have died, in which case the `pending` mark expires and the redelivery enqueues.
No delivery is ever acknowledged without its event being on the queue.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

import redis

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
PENDING_TTL_SECONDS = 30


class Claim(StrEnum):
    NEW = "new"
    PENDING = "pending"
    DONE = "done"


class Deduper:
    def __init__(
        self,
        client: redis.Redis,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        pending_ttl_seconds: int = PENDING_TTL_SECONDS,
        prefix: str = "callmatch:seen",
    ):
        self.client = client
        self.ttl_seconds = ttl_seconds
        self.pending_ttl_seconds = pending_ttl_seconds
        self.prefix = prefix

    def key(self, tenant: str, provider: str, event_id: str) -> str:
        digest = hashlib.sha256(event_id.encode()).hexdigest()[:32]
        return f"{self.prefix}:{tenant}:{provider}:{digest}"

    def claim(self, tenant: str, provider: str, event_id: str) -> Claim:
        key = self.key(tenant, provider, event_id)
        if self.client.set(key, "pending", nx=True, ex=self.pending_ttl_seconds):
            return Claim.NEW
        value = self.client.get(key)
        if value is None:
            return self.claim(tenant, provider, event_id)
        return Claim.DONE if value in (b"done", "done") else Claim.PENDING

    def confirm(self, tenant: str, provider: str, event_id: str) -> None:
        self.client.set(self.key(tenant, provider, event_id), "done", ex=self.ttl_seconds)

    def release(self, tenant: str, provider: str, event_id: str) -> None:
        self.client.delete(self.key(tenant, provider, event_id))
