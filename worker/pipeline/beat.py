"""Beat's scheduler: redbeat's, made to outlive a Redis outage instead of exiting on the first error.

redbeat keeps the schedule and a lock (one beat at a time) in Redis; out of the box
a Redis restart makes `tick` raise and beat exits, and R5's refreshes stop until a
person restarts it. Here a Redis error skips one tick and tries again shortly; a
lock lost meanwhile is acquired again before anything is sent, so two beats never
schedule together.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redbeat import RedBeatScheduler
from redis.exceptions import LockNotOwnedError

log = logging.getLogger("callmatch.beat")

RETRY_SECONDS = 2.0


class Scheduler(RedBeatScheduler):  # type: ignore[misc]
    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return float(super().tick(*args, **kwargs))
        except LockNotOwnedError:
            log.warning("beat lost its lock while Redis was away; waiting to acquire it again")
            try:
                self.lock.acquire()
            except redis.RedisError as exc:
                log.warning(
                    "beat cannot reach Redis (%s); retrying in %ss", type(exc).__name__, RETRY_SECONDS
                )
            return RETRY_SECONDS
        except redis.RedisError as exc:
            log.warning("beat cannot reach Redis (%s); retrying in %ss", type(exc).__name__, RETRY_SECONDS)
            return RETRY_SECONDS

    def close(self) -> None:
        try:
            super().close()
        except redis.RedisError as exc:  # the lock expires by itself
            log.warning("beat could not release its lock (%s)", type(exc).__name__)
