"""Figures for the shared limiter and the retry policy: `python -m tests.bench_ratelimit`.

Uses CALLMATCH_TEST_REDIS_URL when set, else starts a throwaway redis-server on loopback.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import redis

from adapters.ratelimit import RedisRateLimiter
from adapters.retry import call_with_retries
from tests.redis_server import redis_server


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def bench_latency(url: str, n: int = 5000) -> None:
    client = redis.Redis.from_url(url)
    limiter = RedisRateLimiter(client, "bench:latency:requests", limit=n * 2, period_seconds=60)
    limiter.reset()
    timings: list[float] = []
    started = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        limiter.try_acquire()
        timings.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    limiter.reset()
    full = RedisRateLimiter(client, "bench:latency:full", limit=1, period_seconds=60)
    full.try_acquire()
    refusals: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        full.try_acquire()
        refusals.append(time.perf_counter() - t0)
    full.reset()
    client.close()
    print(
        f"try_acquire granted: {n / elapsed:,.0f}/s single process, "
        f"p50 {percentile(timings, 0.5) * 1e6:.0f}us p99 {percentile(timings, 0.99) * 1e6:.0f}us"
    )
    print(
        f"try_acquire refused (window of 1 entry): p50 {percentile(refusals, 0.5) * 1e6:.0f}us "
        f"p99 {percentile(refusals, 0.99) * 1e6:.0f}us"
    )


def _contend(url: str, key: str, limit: int, period: float, seconds: float, start: Any, out: Any) -> None:
    client = redis.Redis.from_url(url)
    limiter = RedisRateLimiter(client, key, limit=limit, period_seconds=period)
    start.wait(timeout=30)
    stop_at = time.monotonic() + seconds
    stamps: list[int] = []
    attempts = 0
    while time.monotonic() < stop_at:
        attempts += 1
        result = limiter.attempt()
        if result.granted:
            stamps.append(result.server_time_us)
        else:
            time.sleep(min(result.wait, max(stop_at - time.monotonic(), 0.0)))
    out.put((stamps, attempts))
    client.close()


def bench_contention(
    url: str, workers: int = 4, limit: int = 50, period: float = 1.0, seconds: float = 3.0
) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(workers), ctx.Queue()
    key = "bench:contention:requests"
    procs = [
        ctx.Process(target=_contend, args=(url, key, limit, period, seconds, start, out))
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    stamps: list[int] = []
    attempts = 0
    for _ in range(workers):
        got, tried = out.get(timeout=60)
        stamps.extend(got)
        attempts += tried
    for proc in procs:
        proc.join(timeout=30)
    stamps.sort()
    period_us = round(period * 1e6)
    worst = 0
    j = 0
    for i, stamp in enumerate(stamps):
        while stamps[j] <= stamp - period_us:
            j += 1
        worst = max(worst, i - j + 1)
    span = (stamps[-1] - stamps[0]) / 1e6 if len(stamps) > 1 else 0.0
    ideal = limit * (span / period) + limit
    print(
        f"{workers} processes, {limit}/{period}s for {seconds}s: {len(stamps)} grants, "
        f"max {worst} in any {period}s window (limit {limit}), "
        f"{len(stamps) / ideal:.0%} of the ideal, {attempts / max(len(stamps), 1):.2f} Redis calls per grant"
    )
    client = redis.Redis.from_url(url)
    client.delete("callmatch:ratelimit:" + key)
    client.close()


def _hubspot_worker(redis_url: str, host: str, tenant: str, seconds: float, start: Any, out: Any) -> None:
    """One worker process of the tenant: sends as fast as the shared limiters let it (a search
    every sixth request), through the production wiring (`HubSpotClient.for_tenant`)."""
    from adapters.crm.hubspot.client import HubSpotClient, HubSpotSettings, TokenSource

    client_redis = redis.Redis.from_url(redis_url)
    client = HubSpotClient.for_tenant(
        HubSpotSettings(tenant=tenant, host=host), TokenSource("pat-emulator-token"), client_redis
    )
    start.wait(timeout=60)
    stop_at = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < stop_at:
        if sent % 6 == 5:
            client.search(
                "contacts",
                [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "x@y.example"}]}],
                ["email"],
            )
        else:
            client.owners_by_email("rep@seller.example")
        sent += 1
    out.put((sent, client.stats.rate_limited))
    client_redis.close()


def bench_hubspot_shared_budget(url: str, workers: int = 4, seconds: float = 30.0) -> None:
    """Issue #15: `workers` processes of one tenant share its HubSpot budget through Redis against the
    emulator enforcing HubSpot's 190 per rolling 10 s and 5 searches per second: the share of the
    configured budget (180 / 10 s) used, and the 429s HubSpot answered."""
    from adapters.crm.hubspot.client import HubSpotSettings
    from tests.emulators.hubspot import HubSpotEmulator, Limits, PortalProfile, Store

    settings = HubSpotSettings(tenant="bench-shared")
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match="*hubspot:bench-shared*"):
        client.delete(key)
    with HubSpotEmulator(Store(profile=PortalProfile.full()), limits=Limits(burst=190, search=5)) as emulator:
        ctx = multiprocessing.get_context("spawn")
        start, out = ctx.Barrier(workers + 1), ctx.Queue()
        procs = [
            ctx.Process(
                target=_hubspot_worker, args=(url, emulator.url, settings.tenant, seconds, start, out)
            )
            for _ in range(workers)
        ]
        for proc in procs:
            proc.start()
        start.wait(timeout=60)
        emulator.reset_counts()
        # the first window is a burst (the whole budget at once): the share is measured after it
        time.sleep(settings.burst_period)
        first = emulator.total()
        steady_from = time.monotonic()
        results = [out.get(timeout=seconds + 60) for _ in range(workers)]
        elapsed = time.monotonic() - steady_from
        served = emulator.total() - first
        for proc in procs:
            proc.join(timeout=30)
        refused = emulator.statuses[429]
    client.close()
    budget = settings.burst_limit * elapsed / settings.burst_period
    print(
        f"hubspot shared budget: {workers} worker processes of one tenant, {elapsed:.1f} s after the first window, against"
        f" HubSpot's 190/10 s + 5 searches/s: {served} requests = {served / budget:.0%} of the configured"
        f" {settings.burst_limit}/{settings.burst_period:g} s budget (target >= 90%), {refused} x 429"
        f" (target 0; the clients retried {sum(r for _, r in results)})"
    )


def bench_retry_overhead(n: int = 20000) -> None:
    started = time.perf_counter()
    for _ in range(n):
        call_with_retries(lambda: 1, service="bench")
    elapsed = time.perf_counter() - started
    print(f"call_with_retries overhead on success: {elapsed / n * 1e6:.1f}us per call")


def main() -> None:
    with redis_server() as url:
        bench_latency(url)
        bench_contention(url)
        bench_hubspot_shared_budget(url)
    bench_retry_overhead()


if __name__ == "__main__":
    main()
