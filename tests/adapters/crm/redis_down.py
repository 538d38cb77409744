"""A real redis-server that a test stops midway, as the chaos run killed it under the workers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.redis_server import redis_server


@dataclass
class StoppableRedis:
    """`client` talks to a redis-server of its own; `stop()` terminates that server for good."""

    client: redis.Redis
    _servers: ExitStack

    def stop(self) -> None:
        self._servers.close()
        assert not self.answers(), "redis-server still answers after it was stopped"

    def answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False


@contextmanager
def stoppable_redis() -> Iterator[StoppableRedis]:
    """A fresh redis-server (never the preset one: it is stopped) and a client without
    redis-py's own reconnect retries, so each failed command fails at once."""
    servers = ExitStack()
    try:
        url = servers.enter_context(redis_server(use_preset=False))
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=1.0,
            socket_timeout=1.0,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            yield StoppableRedis(client, servers)
        finally:
            client.close()
    finally:
        servers.close()
