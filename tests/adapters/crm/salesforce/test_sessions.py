"""Sessions shared by every worker of a tenant: one refresh at a time, rejections after a refresh
retried, and Redis failures retryable; against the emulator and a real redis-server."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

import pytest
import redis

from adapters.crm.salesforce.client import RetrySettings, SalesforceClient
from adapters.crm.salesforce.tenant import SalesforceTenant
from adapters.errors import FatalError, RetryableError
from adapters.ratelimit import ApiBudget, RedisRateLimiter
from adapters.sessions import RedisSessions, Session, SessionSettings
from tests.adapters.crm.redis_down import StoppableRedis
from tests.adapters.crm.salesforce.test_faults import CRM, SOQL
from tests.adapters.crm.salesforce.test_tenant import _tenant
from tests.concurrently import at_once
from tests.conftest import wait_until

KEY = "salesforce:tenant-a"


def store(client: redis.Redis, **settings: Any) -> RedisSessions:
    """What one worker process holds for the tenant (each worker builds its own)."""
    return RedisSessions(client, KEY, SessionSettings(**settings))


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(row["Id"]) for row in rows]


# --- one refresh per tenant across workers ------------------------------------------------------


def test_two_workers_with_expired_sessions_refresh_once(salesforce, redis_client) -> None:
    env = salesforce(CRM)
    first = env.client(sessions=store(redis_client))
    second = env.client(sessions=store(redis_client))
    env.emulator.expire_sessions()

    assert ids(first.query(SOQL)) == ["C1"]
    assert ids(second.query(SOQL)) == ["C1"]

    assert env.emulator.stats.logins == 1, "one token request for the tenant"
    assert (first.refreshes, first.adoptions) == (1, 0)
    assert (second.refreshes, second.adoptions) == (0, 1), "its older token was replaced by the shared one"
    assert second.last_attempts.errors == ["CredentialsExpiredError"]


def test_concurrent_workers_with_expired_sessions_refresh_once(salesforce, redis_client) -> None:
    """Six workers hit the expired session at the same moment: one asks Salesforce, the rest wait or adopt."""
    env = salesforce(CRM)
    workers = [env.client(sessions=store(redis_client)) for _ in range(6)]
    env.emulator.expire_sessions()
    results = at_once(lambda client: ids(client.query(SOQL)), workers)
    assert results == [["C1"]] * len(workers)
    assert env.emulator.stats.logins == 1
    assert sum(c.refreshes for c in workers) == 1
    assert sum(c.adoptions for c in workers) == len(workers) - 1


def test_a_worker_waits_for_the_refresh_another_worker_holds(salesforce, redis_client) -> None:
    env = salesforce(CRM)
    other = store(redis_client)
    lease = other.try_lock()
    assert lease is not None, "the other worker is refreshing"
    client = env.client(sessions=store(redis_client))
    env.emulator.expire_sessions()
    rows: list[list[str]] = []
    reader = threading.Thread(target=lambda: rows.append(ids(client.query(SOQL))))
    reader.start()

    wait_until(lambda: client.sessions.stats.waited == 1, what="the worker to find the lock taken")
    assert rows == [], "it waits instead of refreshing"
    other.publish(Session(token=env.emulator.issue_token(), instance_url=env.emulator.instance_url))
    other.unlock(lease)
    reader.join(timeout=10)

    assert rows == [["C1"]]
    assert env.emulator.stats.logins == 0, "it used the other worker's session"
    assert (client.refreshes, client.adoptions) == (0, 1)


def test_a_lock_left_by_a_crashed_worker_expires_and_a_waiter_refreshes(salesforce, redis_client) -> None:
    env = salesforce(CRM)
    assert store(redis_client, lock_ttl=0.3).try_lock() is not None, "taken, never released"
    client = env.client(sessions=store(redis_client, wait_timeout=10.0))
    env.emulator.expire_sessions()

    assert ids(client.query(SOQL)) == ["C1"]

    assert env.emulator.stats.logins == 1
    assert client.sessions.stats.waited == 1 and client.refreshes == 1


def test_waiting_for_another_refresh_is_bounded(salesforce, redis_client) -> None:
    env = salesforce(CRM)
    assert store(redis_client, lock_ttl=30.0).try_lock() is not None
    client = env.client(sessions=store(redis_client, wait_timeout=0.3))
    env.emulator.expire_sessions()
    began = time.monotonic()

    with pytest.raises(RetryableError, match="did not finish") as raised:
        client.query(SOQL)

    assert time.monotonic() - began < 5.0
    assert raised.value.service == "salesforce"
    assert env.emulator.stats.logins == 0


def test_a_new_worker_starts_with_the_shared_session(salesforce, redis_client) -> None:
    env = salesforce(CRM)
    env.client(access_token=None, sessions=store(redis_client)).query(SOQL)
    late = env.client(access_token=None, sessions=store(redis_client))

    assert ids(late.query(SOQL)) == ["C1"]

    assert env.emulator.stats.logins == 1
    assert late.last_attempts.count == 1 and late.adoptions == 1


def test_the_shared_session_is_short_lived_and_its_token_never_logged(
    salesforce, redis_client, caplog: pytest.LogCaptureFixture
) -> None:
    env = salesforce(CRM)
    sessions = store(redis_client, ttl=120.0)
    client = env.client(access_token=None, sessions=sessions)
    caplog.set_level(logging.DEBUG)

    client.query(SOQL)
    env.emulator.expire_sessions()
    env.client(sessions=store(redis_client)).query(SOQL)

    shared = sessions.shared()
    assert shared is not None and shared.token
    assert shared.token not in caplog.text
    assert shared.token not in repr(shared)
    assert 0 < redis_client.pttl(sessions.redis_key) <= 120_000
    assert not redis_client.exists(sessions.lock_key), "the lock is given back after the refresh"


# --- a rejection right after a refresh ------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_a_rejection_right_after_a_refresh_is_retried_not_fatal(salesforce, redis_client, shared) -> None:
    """Another worker rotated the session between our refresh and our request: refresh again."""
    env = salesforce(CRM)
    client = env.client(sessions=store(redis_client)) if shared else env.client()
    env.emulator.inject("expire", 2)

    assert ids(client.query(SOQL)) == ["C1"]

    assert client.last_attempts.count == 3
    assert client.last_attempts.errors == ["CredentialsExpiredError", "CredentialsExpiredError"]
    assert client.last_attempts.refreshes == 2
    assert env.emulator.stats.logins == 2


@pytest.mark.parametrize("allowed", [1, 3])
def test_persistent_rejection_after_refresh_is_fatal_after_the_configured_count(
    salesforce, redis_client, allowed: int
) -> None:
    env = salesforce(CRM)
    retry = RetrySettings(
        max_attempts=10,
        base_delay=0.01,
        max_delay=0.05,
        sleep=env.sleeps.append,
        max_post_refresh_rejections=allowed,
    )
    client = env.client(retry=retry, sessions=store(redis_client))
    env.emulator.inject("expire", 20)

    with pytest.raises(FatalError, match="right after a refresh") as raised:
        client.query(SOQL)

    assert raised.value.code == "INVALID_SESSION_ID"
    assert client.last_attempts.count == allowed + 1
    assert client.last_attempts.refreshes == allowed
    assert env.emulator.stats.logins == allowed
    assert len(env.sleeps) == allowed - 1, "each refresh after a rejection waited first"


# --- Redis down -----------------------------------------------------------------------------------

RETRY = RetrySettings(max_attempts=3, base_delay=0.01, max_delay=0.02)


def _wired(env: Any, server: StoppableRedis, part: str) -> SalesforceClient:
    options: dict[str, object] = {"retry": dataclasses.replace(RETRY, sleep=env.sleeps.append)}
    if part == "budget":
        options["budget"] = ApiBudget(server.client, f"{KEY}:daily")
    elif part == "limiter":
        options["limiter"] = RedisRateLimiter(server.client, f"{KEY}:requests", 100, 1.0)
    else:
        options["sessions"] = store(server.client)
        options["access_token"] = None
    return env.client(**options)


@pytest.mark.parametrize("part", ["budget", "limiter", "sessions"])
def test_a_read_while_redis_is_down_is_retryable(salesforce, stoppable: StoppableRedis, part: str) -> None:
    env = salesforce(CRM)
    client = _wired(env, stoppable, part)
    assert ids(client.query(SOQL)) == ["C1"], "works while Redis is up"
    calls = env.emulator.stats.api_calls
    stoppable.stop()
    if part == "sessions":
        env.emulator.expire_sessions()

    with pytest.raises(RetryableError) as raised:
        client.query(SOQL)

    assert not isinstance(raised.value, FatalError)
    assert raised.value.service == "redis"
    assert isinstance(raised.value.__cause__, redis.RedisError)
    if part == "sessions":
        assert env.emulator.stats.logins == 1, "no refresh without the tenant's lock"
    else:
        assert client.last_attempts.count == RETRY.max_attempts, "backed off and retried"
        assert env.emulator.stats.api_calls == calls


def test_a_tenant_wired_to_a_stopped_redis_fails_retryable(salesforce, stoppable: StoppableRedis) -> None:
    env = salesforce(CRM)
    retry = dataclasses.replace(RETRY, sleep=env.sleeps.append)
    org = SalesforceTenant.from_config(_tenant(env), stoppable.client, retry=retry)
    assert ids(org.client.query(SOQL)) == ["C1"]
    assert stoppable.client.exists("callmatch:session:salesforce:acme")
    stoppable.stop()

    with pytest.raises(RetryableError) as raised:
        org.client.query(SOQL)

    assert raised.value.service == "redis"
    assert org.client.last_attempts.count == RETRY.max_attempts
