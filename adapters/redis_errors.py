"""Redis failures inside the adapters, named by what to do: retry later.

Every worker reaches Redis for limits, budgets, shared sessions and ledgers. When
Redis is unreachable, restarting or loading, the API call that needed it may well
succeed later, so it must not be buried as fatal (call_with_retries treats anything
unclassified as fatal). Every adapter access to Redis goes through `redis_call`,
so this is the one place a `redis.RedisError` becomes a RetryableError.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from adapters.errors import RetryableError

SERVICE = "redis"


def redis_failure(error: redis.RedisError, what: str) -> RetryableError:
    """The classified form of a Redis failure; names its type, never the server address or a value."""
    return RetryableError(SERVICE, f"{what}: {type(error).__name__}")


@contextmanager
def redis_call(what: str) -> Iterator[None]:
    """Run Redis commands; a `redis.RedisError` leaves as RetryableError(service="redis")."""
    try:
        yield
    except redis.RedisError as error:
        raise redis_failure(error, what) from error
