"""Sforce-Limit-Info on every response, the tenant's reserve, and one limiter shared by all workers."""

from __future__ import annotations

import pytest

from adapters.crm.salesforce.client import RetrySettings
from adapters.errors import BudgetExhaustedError, RateLimitedError
from adapters.ratelimit import ApiBudget, RedisRateLimiter
from worker.core.model import Contact, CrmSlice

CRM = CrmSlice(contacts=(Contact(id="C1", email="jane@acme.example"),))
SOQL = "SELECT Id FROM Contact"


def test_usage_is_read_from_every_response(salesforce) -> None:
    env = salesforce(CRM, daily_limit=5000)
    env.emulator.stats.api_calls = 17
    client = env.client()
    client.query(SOQL)
    assert (client.usage.used, client.usage.limit, client.remaining) == (18, 5000, 4982)
    env.emulator.inject("limit_concurrent")
    client.query(SOQL)
    assert client.remaining == 4981


def test_stops_before_the_reserve_and_other_workers_see_it(salesforce, redis_client) -> None:
    env = salesforce(CRM, daily_limit=100)
    env.emulator.stats.api_calls = 85
    budget = ApiBudget(redis_client, "salesforce:tenant-a:daily")
    worker_one = env.client(budget=budget, reserve_fraction=0.1)
    sent = 0
    with pytest.raises(BudgetExhaustedError):
        for _ in range(20):
            worker_one.query(SOQL)
            sent += 1
    assert sent == 6
    assert env.emulator.stats.api_calls == 91
    assert budget.remaining() == (9, 100)
    assert worker_one.last_attempts.count == 1

    worker_two = env.client(budget=ApiBudget(redis_client, "salesforce:tenant-a:daily"))
    with pytest.raises(BudgetExhaustedError):
        worker_two.query(SOQL)
    assert env.emulator.stats.api_calls == 91


def test_without_redis_the_client_keeps_its_own_reserve(salesforce) -> None:
    env = salesforce(CRM, daily_limit=50)
    env.emulator.stats.api_calls = 40
    client = env.client(reserve_fraction=0.2)
    client.query(SOQL)
    with pytest.raises(BudgetExhaustedError):
        client.query(SOQL)
    assert env.emulator.stats.api_calls == 41


def test_one_limiter_across_workers_caps_the_tenant(salesforce, redis_client) -> None:
    env = salesforce(CRM)
    retry = RetrySettings(max_attempts=2, max_rate_limit_wait=0.5, sleep=env.sleeps.append)

    def worker():
        limiter = RedisRateLimiter(redis_client, "salesforce:tenant-a:requests", limit=3, period_seconds=60)
        return env.client(limiter=limiter, limiter_timeout=0.0, retry=retry)

    first, second = worker(), worker()
    first.query(SOQL)
    second.query(SOQL)
    first.query(SOQL)
    with pytest.raises(RateLimitedError) as caught:
        second.query(SOQL)
    assert caught.value.retry_after is not None and caught.value.retry_after > 0.5
    assert second.last_attempts.count == 1
    assert env.emulator.stats.api_calls == 3
    other_tenant = RedisRateLimiter(redis_client, "salesforce:tenant-b:requests", limit=3, period_seconds=60)
    env.client(limiter=other_tenant, limiter_timeout=0.0).query(SOQL)
    assert env.emulator.stats.api_calls == 4


def test_the_org_refuses_past_its_daily_limit(salesforce) -> None:
    env = salesforce(CRM, daily_limit=3)
    client = env.client()
    for _ in range(3):
        client.query(SOQL)
    with pytest.raises(BudgetExhaustedError):
        client.query(SOQL)
    fresh = env.client()
    with pytest.raises(RateLimitedError) as caught:
        fresh.query(SOQL)
    assert type(caught.value) is RateLimitedError and caught.value.daily is True
    assert fresh.last_attempts.count == 1
    assert (fresh.usage.used, fresh.remaining) == (3, 0)
    assert env.emulator.stats.api_calls == 3
