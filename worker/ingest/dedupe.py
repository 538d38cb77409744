"""Seen-delivery marks in Redis, so a provider's redelivery is acknowledged but enqueued once."""

from __future__ import annotations

import hashlib

import redis

DEFAULT_TTL_SECONDS = 7 * 24 * 3600


class Deduper:
    """`claim` marks a delivery as ours (SET NX with a TTL); `release` undoes it when enqueuing failed."""

    def __init__(
        self, client: redis.Redis, ttl_seconds: int = DEFAULT_TTL_SECONDS, prefix: str = "callmatch:seen"
    ):
        self.client = client
        self.ttl_seconds = ttl_seconds
        self.prefix = prefix

    def key(self, tenant: str, provider: str, event_id: str) -> str:
        digest = hashlib.sha256(event_id.encode()).hexdigest()[:32]
        return f"{self.prefix}:{tenant}:{provider}:{digest}"

    def claim(self, tenant: str, provider: str, event_id: str) -> bool:
        return bool(self.client.set(self.key(tenant, provider, event_id), "1", nx=True, ex=self.ttl_seconds))

    def release(self, tenant: str, provider: str, event_id: str) -> None:
        self.client.delete(self.key(tenant, provider, event_id))
