"""What a 2xx from the receiver is worth: how the Redis server keeps what it acknowledged.

The receiver answers 2xx once the call's record is in Redis. That survives a Redis
crash only if Redis writes it to its append-only file before it answers: AOF on with
`appendfsync always` (on Redis 7.2+ `WAITAOF` would do per write; the servers we
support start at 7.0, so the server setting is what we check). `everysec` can lose the
last second on a machine crash (a killed redis-server loses nothing: the data is in the
kernel's page cache); no AOF loses everything since the last snapshot.
"""

from __future__ import annotations

import logging
from enum import StrEnum

import redis

log = logging.getLogger("callmatch.durability")


class Durability(StrEnum):
    FSYNC_ALWAYS = "fsync-always"  # every acknowledged call survives a crash of Redis or of its machine
    AOF_EVERYSEC = "aof-everysec"  # survives a crash of Redis; a machine crash may lose the last second
    NONE = "none"  # a Redis restart may lose acknowledged calls
    UNKNOWN = "unknown"  # CONFIG is disabled (managed Redis): check the provider's persistence settings


def durability(client: redis.Redis) -> Durability:
    """The server's persistence as far as it lets us read it; never raises on CONFIG being refused."""
    try:
        config = client.config_get("append*")
    except redis.ResponseError:
        return Durability.UNKNOWN

    def text(key: str) -> str:
        value = config.get(key, config.get(key.encode(), b""))  # type: ignore[call-overload]
        return value.decode() if isinstance(value, bytes) else str(value)

    if text("appendonly") != "yes":
        return Durability.NONE
    return Durability.FSYNC_ALWAYS if text("appendfsync") == "always" else Durability.AOF_EVERYSEC


def warn_if_weak(client: redis.Redis) -> Durability:
    """Log, once at start, when a 2xx does not guarantee the call survives a Redis crash."""
    try:
        level = durability(client)
    except redis.RedisError:
        return Durability.UNKNOWN
    if level is Durability.NONE:
        log.warning(
            "redis has no append-only file: acknowledged calls are lost if Redis restarts;"
            " run it with --appendonly yes --appendfsync always"
        )
    elif level is Durability.AOF_EVERYSEC:
        log.warning(
            "redis fsyncs its append-only file once a second: a machine crash may lose the last second"
            " of acknowledged calls; --appendfsync always closes that window"
        )
    return level
