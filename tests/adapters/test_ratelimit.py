"""The Redis-shared limiter and API budgets, against a real redis-server."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any, cast

import pytest
import redis

from adapters.errors import BudgetExhaustedError, RateLimitedError, RetryableError
from adapters.ratelimit import (
    BUDGET_PREFIX,
    RATELIMIT_PREFIX,
    AllLimiters,
    ApiBudget,
    Limiter,
    NullLimiter,
    RedisRateLimiter,
    all_budgets,
    parse_hubspot_daily,
    parse_sforce_limit_info,
)
from tests.adapters.crm.redis_down import stoppable_redis


def client_of(fixture: object) -> redis.Redis:
    return cast(redis.Redis, fixture)


def server_time_us(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def assert_rolling_window(stamps_us: list[int], limit: int, period_us: int) -> None:
    """No `limit + 1` grants inside any window of `period_us`: each grant is a period after the limit-th before it."""
    ordered = sorted(stamps_us)
    for i in range(len(ordered) - limit):
        gap = ordered[i + limit] - ordered[i]
        assert gap >= period_us, f"grants {i}..{i + limit} fall within {gap}us < period {period_us}us"


def test_limit_grants_then_refuses_with_positive_wait(redis_client: object) -> None:
    client = client_of(redis_client)
    limiter = RedisRateLimiter(client, "salesforce:tenant-a:requests", limit=3, period_seconds=30)

    assert [limiter.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.try_acquire()

    assert 0.0 < wait <= 30.0
    assert wait > 25.0, "the first grant was just now, so its slot frees about a full period later"
    assert client.zcard(RATELIMIT_PREFIX + "salesforce:tenant-a:requests") == 3


def test_refusals_consume_nothing(redis_client: object) -> None:
    client = client_of(redis_client)
    limiter = RedisRateLimiter(client, "hubspot:tenant-a:burst", limit=2, period_seconds=30)
    limiter.try_acquire()
    limiter.try_acquire()

    refusals = [limiter.attempt() for _ in range(5)]

    assert not any(r.granted for r in refusals)
    assert client.zcard(limiter.redis_key) == 2


def test_acquire_without_time_raises_rate_limited_with_retry_after(redis_client: object) -> None:
    limiter = RedisRateLimiter(client_of(redis_client), "hubspot:tenant-a:search", limit=1, period_seconds=10)
    limiter.acquire(timeout=0)

    with pytest.raises(RateLimitedError) as raised:
        limiter.acquire(timeout=1.0)

    assert raised.value.service == "hubspot"
    assert raised.value.retry_after is not None and 1.0 < raised.value.retry_after <= 10.0
    assert not raised.value.daily


def test_acquire_waits_for_the_window_to_roll(redis_client: object) -> None:
    limiter = RedisRateLimiter(
        client_of(redis_client), "salesforce:tenant-b:requests", limit=2, period_seconds=0.2
    )
    first = limiter.acquire_grant(timeout=0)
    limiter.acquire_grant(timeout=0)

    third = limiter.acquire_grant(timeout=5.0)

    assert third.granted
    assert third.server_time_us - first.server_time_us >= 200_000


def test_keys_are_independent(redis_client: object) -> None:
    client = client_of(redis_client)
    a = RedisRateLimiter(client, "hubspot:tenant-a:burst", limit=1, period_seconds=30)
    b = RedisRateLimiter(client, "hubspot:tenant-b:burst", limit=1, period_seconds=30)
    search = RedisRateLimiter(client, "hubspot:tenant-a:search", limit=1, period_seconds=30)

    assert a.try_acquire() == 0.0
    assert a.try_acquire() > 0.0
    assert b.try_acquire() == 0.0
    assert search.try_acquire() == 0.0


def test_same_key_is_shared_between_clients(redis_url: str) -> None:
    one = redis.Redis.from_url(redis_url)
    two = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        one.delete(RATELIMIT_PREFIX + "salesforce:tenant-shared:requests")
        first = RedisRateLimiter(one, "salesforce:tenant-shared:requests", limit=2, period_seconds=30)
        second = RedisRateLimiter(two, "salesforce:tenant-shared:requests", limit=2, period_seconds=30)
        assert first.try_acquire() == 0.0
        assert second.try_acquire() == 0.0
        assert first.try_acquire() > 0.0
        assert second.try_acquire() > 0.0
    finally:
        one.delete(RATELIMIT_PREFIX + "salesforce:tenant-shared:requests")
        one.close()
        two.close()


def test_keys_expire_by_themselves(redis_client: object) -> None:
    client = client_of(redis_client)
    limiter = RedisRateLimiter(client, "salesforce:tenant-a:requests", limit=5, period_seconds=2.5)
    limiter.try_acquire()

    ttl_ms = client.pttl(limiter.redis_key)

    assert limiter.redis_key.startswith("callmatch:ratelimit:")
    assert 0 < ttl_ms <= 2_501


def test_short_key_vanishes_after_its_period(redis_client: object) -> None:
    from tests.conftest import wait_until

    client = client_of(redis_client)
    limiter = RedisRateLimiter(client, "salesforce:tenant-a:short", limit=1, period_seconds=0.05)
    limiter.try_acquire()

    wait_until(lambda: client.exists(limiter.redis_key) == 0, timeout=5, what="the limiter key to expire")


def test_invalid_configuration_is_refused(redis_client: object) -> None:
    client = client_of(redis_client)
    with pytest.raises(ValueError):
        RedisRateLimiter(client, "x", limit=0, period_seconds=1)
    with pytest.raises(ValueError):
        RedisRateLimiter(client, "x", limit=1, period_seconds=0)
    with pytest.raises(ValueError):
        RedisRateLimiter(client, "", limit=1, period_seconds=1)


def test_limiters_satisfy_the_protocol(redis_client: object) -> None:
    limiters: list[Limiter] = [
        NullLimiter(),
        RedisRateLimiter(client_of(redis_client), "proto:t:r", limit=1000, period_seconds=1),
    ]
    for limiter in limiters:
        for _ in range(50):
            limiter.acquire(timeout=0)


def _hammer(redis_url: str, key: str, limit: int, period: float, grants: int, start: Any, out: Any) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(client, key, limit=limit, period_seconds=period)
    start.wait(timeout=30)
    stamps = [limiter.acquire_grant(timeout=30).server_time_us for _ in range(grants)]
    out.put(stamps)
    client.close()


def test_processes_sharing_a_key_never_exceed_the_limit(redis_url: str, redis_client: object) -> None:
    client = client_of(redis_client)
    key, limit, period, workers, grants_each = "salesforce:tenant-mp:requests", 4, 0.25, 4, 6
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(workers)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_hammer, args=(redis_url, key, limit, period, grants_each, start, out))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    try:
        stamps: list[int] = []
        for _ in range(workers):
            stamps.extend(out.get(timeout=60))
    finally:
        for proc in procs:
            proc.join(timeout=30)
    before_check = server_time_us(client)

    assert all(proc.exitcode == 0 for proc in procs)
    assert len(stamps) == workers * grants_each
    assert all(s <= before_check for s in stamps)
    assert_rolling_window(stamps, limit, round(period * 1_000_000))


def test_api_budget_unknown_until_recorded(redis_client: object) -> None:
    budget = ApiBudget(client_of(redis_client), "salesforce:tenant-a:daily")

    assert budget.remaining() is None
    assert budget.snapshot() is None
    budget.check(0.1)


def test_api_budget_record_and_remaining(redis_client: object) -> None:
    client = client_of(redis_client)
    budget = ApiBudget(client, "salesforce:tenant-a:daily")
    before = server_time_us(client)

    budget.record(1234, 15000)

    assert budget.remaining() == (13766, 15000)
    snap = budget.snapshot()
    assert snap is not None and snap.used == 1234 and snap.limit == 15000
    assert before <= snap.recorded_at_us <= server_time_us(client)
    assert client.ttl(BUDGET_PREFIX + "salesforce:tenant-a:daily") > 0


def test_api_budget_latest_figure_is_seen_by_other_clients(redis_url: str, redis_client: object) -> None:
    writer = ApiBudget(client_of(redis_client), "hubspot:tenant-a:daily")
    reader_client = redis.Redis.from_url(redis_url)
    try:
        reader = ApiBudget(reader_client, "hubspot:tenant-a:daily")
        writer.record_remaining(remaining=240_000, limit=250_000)
        assert reader.remaining() == (240_000, 250_000)
        writer.record_remaining(remaining=239_990, limit=250_000)
        assert reader.remaining() == (239_990, 250_000)
    finally:
        reader_client.close()


def test_api_budget_check_keeps_the_reserve(redis_client: object) -> None:
    budget = ApiBudget(client_of(redis_client), "salesforce:tenant-a:daily")

    budget.record(13500, 15000)
    budget.check(0.1)

    budget.record(13501, 15000)
    with pytest.raises(BudgetExhaustedError) as raised:
        budget.check(0.1)
    assert raised.value.daily
    assert raised.value.service == "salesforce"
    assert isinstance(raised.value, RateLimitedError)
    assert raised.value.retry_after is not None and 0.0 < raised.value.retry_after <= 600.0

    budget.check(0.0)
    budget.record(15000, 15000)
    with pytest.raises(BudgetExhaustedError):
        budget.check(0.0)


def test_api_budget_refuses_nonsense(redis_client: object) -> None:
    budget = ApiBudget(client_of(redis_client), "salesforce:tenant-a:daily")
    with pytest.raises(ValueError):
        budget.record(-1, 10)
    with pytest.raises(ValueError):
        budget.check(1.5)


def test_all_budgets_lists_every_tenant(redis_client: object) -> None:
    client = client_of(redis_client)
    ApiBudget(client, "salesforce:tenant-b:daily").record(10, 100)
    ApiBudget(client, "hubspot:tenant-a:daily").record(5, 50)
    RedisRateLimiter(client, "hubspot:tenant-a:burst", limit=1, period_seconds=10).try_acquire()

    listed = all_budgets(client)

    assert [(b.key, b.remaining, b.limit) for b in listed] == [
        ("hubspot:tenant-a:daily", 45, 50),
        ("salesforce:tenant-b:daily", 90, 100),
    ]


def test_wait_is_the_time_until_the_oldest_grant_leaves(redis_client: object) -> None:
    client = client_of(redis_client)
    limiter = RedisRateLimiter(client, "salesforce:tenant-w:requests", limit=2, period_seconds=60)
    first = limiter.attempt()
    limiter.attempt()

    refused = limiter.attempt()

    assert not refused.granted
    expected = (first.server_time_us + 60_000_000 - refused.server_time_us) / 1_000_000
    assert refused.wait == pytest.approx(expected, abs=1e-6)


def test_grants_are_stamped_with_the_redis_server_clock(redis_client: object) -> None:
    client = client_of(redis_client)
    limiter = RedisRateLimiter(client, "salesforce:tenant-clock:requests", limit=5, period_seconds=60)

    before = server_time_us(client)
    grant = limiter.attempt()
    after = server_time_us(client)

    assert grant.granted
    assert before <= grant.server_time_us <= after
    stored = cast(list[tuple[str, float]], client.zrange(limiter.redis_key, 0, -1, withscores=True))
    assert [score for _, score in stored] == [grant.server_time_us]


def test_all_limiters_take_a_slot_from_each(redis_client: object) -> None:
    client = client_of(redis_client)
    burst = RedisRateLimiter(client, "hubspot:tenant-a:burst", limit=10, period_seconds=10)
    search = RedisRateLimiter(client, "hubspot:tenant-a:search", limit=1, period_seconds=10)
    both = AllLimiters(burst, search, NullLimiter())

    both.acquire(timeout=0)
    with pytest.raises(RateLimitedError):
        both.acquire(timeout=0.5)

    assert client.zcard(burst.redis_key) == 2
    assert client.zcard(search.redis_key) == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("api-usage=18/5000", (18, 5000)),
        ("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)", (25, 5000)),
        ("api-usage=110018/100000; api-bursts=1/750", (110018, 100000)),
        ("per-app-api-usage=17/250(appName=x)", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_sforce_limit_info(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_sforce_limit_info(header) == expected


def test_parse_hubspot_daily_headers() -> None:
    headers = {"X-HubSpot-RateLimit-Daily": "250000", "X-HubSpot-RateLimit-Daily-Remaining": "249990"}
    assert parse_hubspot_daily(headers) == (10, 250000)
    assert parse_hubspot_daily({k.lower(): v for k, v in headers.items()}) == (10, 250000)
    assert parse_hubspot_daily({"X-HubSpot-RateLimit-Max": "100"}) is None
    assert (
        parse_hubspot_daily({"X-HubSpot-RateLimit-Daily": "n/a", "X-HubSpot-RateLimit-Daily-Remaining": "1"})
        is None
    )


def test_reported_usage_beyond_the_limit_counts_as_nothing_left(redis_client: object) -> None:
    budget = ApiBudget(client_of(redis_client), "salesforce:tenant-burst:daily")
    figures = parse_sforce_limit_info("api-usage=110018/100000; api-bursts=1/750")
    assert figures is not None

    budget.record(*figures)

    assert budget.remaining() == (0, 100000)
    with pytest.raises(BudgetExhaustedError):
        budget.check(0.0)


def test_unreachable_redis_is_retryable() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from tests.conftest import free_port

    client = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    limiter = RedisRateLimiter(client, "salesforce:tenant-a:requests", limit=1, period_seconds=1)

    with pytest.raises(RetryableError) as raised:
        limiter.acquire(timeout=0)

    assert raised.value.service == "redis"
    client.close()


_AFTER_REDIS_STOPPED: dict[str, Callable[[RedisRateLimiter, ApiBudget], object]] = {
    "limiter acquire": lambda limiter, _: limiter.acquire(timeout=0),
    "limiter try_acquire": lambda limiter, _: limiter.try_acquire(),
    "limiter reset": lambda limiter, _: limiter.reset(),
    "budget record": lambda _, budget: budget.record(11, 100),
    "budget record_remaining": lambda _, budget: budget.record_remaining(89, 100),
    "budget check": lambda _, budget: budget.check(0.1),
    "budget remaining": lambda _, budget: budget.remaining(),
}


@pytest.mark.parametrize("use", list(_AFTER_REDIS_STOPPED), ids=list(_AFTER_REDIS_STOPPED))
def test_a_redis_stopped_under_a_worker_is_retryable(use: str) -> None:
    """Redis killed after the worker connected (the chaos run): every access is RetryableError("redis")."""
    with stoppable_redis() as server:
        limiter = RedisRateLimiter(server.client, "salesforce:tenant-a:requests", limit=5, period_seconds=1)
        budget = ApiBudget(server.client, "salesforce:tenant-a:daily")
        limiter.acquire(timeout=0)
        budget.record(10, 100)
        budget.check(0.1)
        server.stop()

        with pytest.raises(RetryableError) as raised:
            _AFTER_REDIS_STOPPED[use](limiter, budget)

    assert raised.value.service == "redis"
    assert isinstance(raised.value.__cause__, redis.RedisError)


def test_stale_refusal_lets_a_probe_through(redis_client: object) -> None:
    from tests.conftest import wait_until

    budget = ApiBudget(client_of(redis_client), "hubspot:tenant-stale:daily")
    budget.record(250_000, 250_000)
    with pytest.raises(BudgetExhaustedError):
        budget.check(0.1, max_age_seconds=0.2)

    def passes() -> bool:
        try:
            budget.check(0.1, max_age_seconds=0.2)
        except BudgetExhaustedError:
            return False
        return True

    wait_until(passes, timeout=5, what="the exhausted figure to go stale")
    budget.record(249_000, 250_000)
    with pytest.raises(BudgetExhaustedError):
        budget.check(0.1, max_age_seconds=0.2)


def test_threads_sharing_one_limiter_never_exceed_the_limit(redis_client: object) -> None:
    from concurrent.futures import ThreadPoolExecutor

    limiter = RedisRateLimiter(
        client_of(redis_client), "hubspot:tenant-threads:burst", limit=5, period_seconds=0.15
    )

    def grab(_: int) -> list[int]:
        return [limiter.acquire_grant(timeout=30).server_time_us for _ in range(3)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        stamps = [stamp for batch in pool.map(grab, range(8)) for stamp in batch]

    assert len(stamps) == 24
    assert_rolling_window(stamps, 5, 150_000)


def test_spacing_spreads_a_windows_grants_evenly(redis_client: object) -> None:
    """A per-second search limit with spacing: no two grants closer than period / limit, so a
    window's grants cannot reach the API bunched with the next window's."""
    client = cast(redis.Redis, redis_client)
    limiter = RedisRateLimiter(client, "test:spacing", limit=4, period_seconds=1.0, spacing_seconds=0.25)
    first = limiter.attempt()
    second = limiter.attempt()
    assert first.granted and not second.granted
    assert 0.2 < second.wait <= 0.25
    plain = RedisRateLimiter(client, "test:no-spacing", limit=4, period_seconds=1.0)
    assert all(plain.attempt().granted for _ in range(4))
