"""An OAuth app's token shared by every worker of a portal: one refresh at a time, a 401 right
after a refresh retried, and Redis failures retryable; against the emulator and a real redis-server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from adapters.crm.hubspot.client import HubSpotClient, OAuthApp, RedisCooldown, TokenSource
from adapters.crm.hubspot.ledger import RedisLedger
from adapters.errors import CredentialsExpiredError, FatalError, RetryableError
from adapters.ratelimit import ApiBudget, RedisRateLimiter
from adapters.sessions import LocalSessions, RedisSessions, Session, SessionSettings
from tests.adapters.crm.hubspot.support import TOKEN, Sleeps, examples, load, portal, settings
from tests.adapters.crm.redis_down import StoppableRedis
from tests.concurrently import at_once
from tests.conftest import wait_until
from tests.emulators.hubspot import HubSpotEmulator

READ = "POST /crm/v3/objects/contacts/batch/read"
TOKEN_ROUTE = "POST /oauth/v1/token"
KEY = "hubspot:t1"
APP = OAuthApp(client_id="client-id", client_secret="client-secret", refresh_token="refresh-emulator")


@pytest.fixture()
def emulator() -> Iterator[HubSpotEmulator]:
    with portal(load(next(p for p in examples() if p.stem == "basic"))) as running:
        yield running


def worker(emulator: HubSpotEmulator, redis_client: redis.Redis, **options: Any) -> HubSpotClient:
    """One worker process's client of the portal, wired as in production (for_tenant)."""
    tokens = TokenSource(oauth=APP, clock=options.pop("clock", time.monotonic))
    return HubSpotClient.for_tenant(settings(emulator, **options), tokens, redis_client, sleep=Sleeps())


def read_contact(client: HubSpotClient) -> list[str]:
    found = client.batch_read("contacts", ["jane@acme.com"], ["email"], id_property="email")
    return [str(o["id"]) for o in found]


# --- one refresh per portal across workers --------------------------------------------------------


def test_two_workers_share_one_token_request(emulator: HubSpotEmulator, redis_client: redis.Redis) -> None:
    first, second = worker(emulator, redis_client), worker(emulator, redis_client)

    assert read_contact(first) == ["C1"]
    assert read_contact(second) == ["C1"]
    assert emulator.requests[TOKEN_ROUTE] == 1, "the second worker started with the shared token"

    emulator.expire_tokens()
    assert read_contact(first) == ["C1"]
    assert read_contact(second) == ["C1"]

    assert emulator.requests[TOKEN_ROUTE] == 2, "one refresh for both rejected workers"
    assert (first.tokens.refreshes, first.tokens.adoptions) == (2, 0)
    assert (second.tokens.refreshes, second.tokens.adoptions) == (0, 2)
    assert emulator.statuses[401] == 2


def test_concurrent_workers_refresh_once(emulator: HubSpotEmulator, redis_client: redis.Redis) -> None:
    workers = [worker(emulator, redis_client) for _ in range(6)]
    results = at_once(read_contact, workers)
    assert results == [["C1"]] * len(workers)
    assert emulator.requests[TOKEN_ROUTE] == 1
    assert sum(c.stats.refreshes for c in workers) == 1
    assert sum(c.stats.adoptions for c in workers) == len(workers) - 1


def test_a_worker_waits_for_the_refresh_another_worker_holds(
    emulator: HubSpotEmulator, redis_client: redis.Redis
) -> None:
    other = RedisSessions(redis_client, KEY)
    lease = other.try_lock()
    assert lease is not None
    client = worker(emulator, redis_client)
    assert isinstance(client.sessions, RedisSessions)
    found: list[list[str]] = []
    reader = threading.Thread(target=lambda: found.append(read_contact(client)))
    reader.start()

    wait_until(lambda: client.sessions.stats.waited == 1, what="the worker to find the lock taken")
    assert found == []
    other.publish(Session(token=emulator.issue_token(), expires_in=float(emulator.token_lifetime)))
    other.unlock(lease)
    reader.join(timeout=10)

    assert found == [["C1"]]
    assert emulator.requests[TOKEN_ROUTE] == 0, "it used the other worker's token"
    assert client.tokens.adoptions == 1


def test_a_token_due_for_refresh_is_refreshed_once_for_all_workers(
    emulator: HubSpotEmulator, redis_client: redis.Redis
) -> None:
    now = [0.0]
    first = worker(emulator, redis_client, clock=lambda: now[0])
    second = worker(emulator, redis_client, clock=lambda: now[0])
    read_contact(first)
    read_contact(second)

    now[0] = emulator.token_lifetime - 30.0  # inside both workers' refresh margin (60 s)
    read_contact(first)
    read_contact(second)

    assert emulator.requests[TOKEN_ROUTE] == 2
    assert emulator.statuses[401] == 0
    assert second.tokens.refreshes == 0 and second.tokens.adoptions == 2


def test_a_private_app_token_is_never_shared(emulator: HubSpotEmulator, redis_client: redis.Redis) -> None:
    client = HubSpotClient.for_tenant(settings(emulator), TokenSource(TOKEN), redis_client, sleep=Sleeps())
    read_contact(client)
    assert isinstance(client.sessions, LocalSessions)
    assert redis_client.keys("callmatch:session*") == []
    emulator.expire_tokens()
    with pytest.raises(CredentialsExpiredError):
        read_contact(client)


def test_the_shared_token_is_short_lived_and_never_logged(
    emulator: HubSpotEmulator, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = worker(emulator, redis_client)
    read_contact(first)
    read_contact(worker(emulator, redis_client))
    sessions = first.sessions
    assert isinstance(sessions, RedisSessions)
    shared = sessions.shared()
    assert shared is not None and shared.expires_in is not None
    assert 0 < shared.expires_in <= emulator.token_lifetime
    assert shared.token not in caplog.text and shared.token not in repr(shared)
    assert 0 < redis_client.pttl(sessions.redis_key) <= SessionSettings().ttl * 1000
    assert not redis_client.exists(sessions.lock_key)


# --- a 401 right after a refresh ------------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_a_401_right_after_a_refresh_is_retried_not_fatal(
    emulator: HubSpotEmulator, redis_client: redis.Redis, shared: bool
) -> None:
    """The token is rotated elsewhere right after our refresh: back off, refresh again, succeed."""
    if shared:
        client = worker(emulator, redis_client)
    else:
        client = HubSpotClient(settings(emulator), TokenSource(oauth=APP), sleep=Sleeps())
    emulator.expire_next(2)

    assert read_contact(client) == ["C1"]

    assert emulator.statuses[401] == 2
    assert emulator.requests[TOKEN_ROUTE] == 3, "the first token, then one refresh per rejection"
    attempts = client.stats.last_attempts
    assert attempts is not None and attempts.count == 3 and attempts.refreshes == 2


@pytest.mark.parametrize("allowed", [1, 3])
def test_persistent_401_after_refresh_is_fatal_after_the_configured_count(
    emulator: HubSpotEmulator, redis_client: redis.Redis, allowed: int
) -> None:
    client = worker(emulator, redis_client, max_attempts=10, max_post_refresh_rejections=allowed)
    emulator.expire_next(20)

    with pytest.raises(FatalError, match="right after a refresh") as raised:
        read_contact(client)

    assert raised.value.status == 401
    assert emulator.requests[READ] == allowed + 1
    assert emulator.requests[TOKEN_ROUTE] == 1 + allowed


# --- Redis down -----------------------------------------------------------------------------------


def _client(emulator: HubSpotEmulator, server: StoppableRedis, part: str) -> HubSpotClient:
    options: dict[str, Any] = {}
    tokens = TokenSource(TOKEN)
    if part == "budget":
        options["budget"] = ApiBudget(server.client, f"{KEY}:daily")
    elif part == "limiter":
        options["limiter"] = RedisRateLimiter(server.client, f"{KEY}:requests", 100, 10.0)
    elif part == "cooldown":
        options["cooldown"] = RedisCooldown(server.client, KEY)
    elif part == "sessions":
        tokens = TokenSource(oauth=APP)
        options["sessions"] = RedisSessions(server.client, KEY)
    else:
        return HubSpotClient.for_tenant(
            settings(emulator, max_attempts=3), TokenSource(oauth=APP), server.client, sleep=Sleeps()
        )
    return HubSpotClient(settings(emulator, max_attempts=3), tokens, sleep=Sleeps(), **options)


@pytest.mark.parametrize("part", ["budget", "limiter", "cooldown", "sessions", "for_tenant"])
def test_a_read_while_redis_is_down_is_retryable(
    emulator: HubSpotEmulator, stoppable: StoppableRedis, part: str
) -> None:
    client = _client(emulator, stoppable, part)
    assert read_contact(client) == ["C1"], "works while Redis is up"
    stoppable.stop()
    if part == "sessions":
        emulator.expire_tokens()
    sent = emulator.requests[READ]

    with pytest.raises(RetryableError) as raised:
        read_contact(client)

    assert not isinstance(raised.value, FatalError)
    assert raised.value.service == "redis"
    assert isinstance(raised.value.__cause__, redis.RedisError)
    if part != "sessions":
        attempts = client.stats.last_attempts
        assert attempts is not None and attempts.count == 3, "backed off and retried"
        assert emulator.requests[READ] == sent, "nothing sent without the shared limits"


_LEDGER_USES: dict[str, Callable[[RedisLedger], object]] = {
    "find": lambda ledger: ledger.find("call-1"),
    "record": lambda ledger: ledger.record("call-1", "calls", "42"),
    "forget": lambda ledger: ledger.forget("call-1"),
    "hold": lambda ledger: ledger.hold("call-2").__enter__(),
}


@pytest.mark.parametrize("use", list(_LEDGER_USES))
def test_the_ledger_while_redis_is_down_is_retryable(stoppable: StoppableRedis, use: str) -> None:
    ledger = RedisLedger(stoppable.client, "t1", lock_timeout=1.0)
    ledger.record("call-1", "calls", "41")
    with ledger.hold("call-2"):
        assert ledger.find("call-1") == ("calls", "41")
    stoppable.stop()

    with pytest.raises(RetryableError) as raised:
        _LEDGER_USES[use](ledger)

    assert raised.value.service == "redis"


def test_a_ledger_lock_lost_with_redis_does_not_hide_the_write(stoppable: StoppableRedis) -> None:
    """Redis dies while the write holds the lock: the write's own outcome is what the caller sees."""
    ledger = RedisLedger(stoppable.client, "t1", lock_timeout=1.0)
    written: list[str] = []
    with ledger.hold("call-3"):
        stoppable.stop()
        written.append("calls:43")
    assert written == ["calls:43"]
