"""End-to-end benchmark: signed webhooks to written CRM activities through the real stack.

The receiver under uvicorn, real Celery worker processes, a real redis-server and the
Salesforce emulator answering every API request after a fixed latency (100 ms: a
remote org, not loopback). Aircall "call ended" webhooks go out at a steady rate; each
call's latency runs from the moment its webhook is sent to the moment its record turns
`written` (the wall clock the store keeps in the status index, written right after the
CRM accepted the activity). Printed with cross-call batching on and off when the
worker has the batching setting. Figures are printed, never asserted.

    python -m tests.bench_e2e [--quick] [--rate 20] [--seconds 30] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.e2e.stack import AIRCALL_TOKEN, CRM, FAST_ENV, Stack, aircall_document
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.redis_server import free_port, redis_server
from worker.config.scenario import parse_scenario
from worker.config.settings import Settings
from worker.pipeline.store import CallStatus, CallStore, status_key

# A 2-core deployment: one worker process tree of 4 prefork children (I/O-bound stages:
# twice the cores), beside the receiver on the same machine.
DEFAULT_CONCURRENCY = 4
LATENCY_SECONDS = 0.1
# Requests per second each tenant's limiter allows (Salesforce itself counts per day, not per second).
CRM_RATE = 100.0
PEOPLE = (("jane@acme.com", "+33 6 12 34 56 78"), ("kim@contoso.com", "+33 6 99 88 77 66"))


def batching_available() -> bool:
    """Whether this worker has cross-call batching (CALLMATCH_BATCH_SIZE) to switch on and off."""
    return "batch_size" in Settings.model_fields


def tenants_yaml(emulator: SalesforceEmulator, names: Sequence[str], crm_rate: float = CRM_RATE) -> str:
    """Every tenant on the one emulated org (each its own CRM session and limiter), with Aircall webhooks.

    `crm_rate` is the tenant's own request limiter (rate_limit, per second and burst):
    the default 5/s would cap one tenant at under 2 associations/s, whatever the workers.
    """
    lines = ["version: 1", "tenants:"]
    for name in names:
        lines += [
            f"  {name}:",
            "    crm:",
            "      kind: salesforce",
            "      rate_limit:",
            f"        per_second: {crm_rate:g}",
            f"        burst: {max(1, round(crm_rate))}",
            f"      instance_url: {emulator.instance_url}",
            f"      ca_file: {emulator.ca_file}",
            "      read_timeout: 30",
            f"      login_url: {emulator.instance_url}",
            "      credentials:",
            "        access_token_env: BENCH_SF_ACCESS_TOKEN",
            "        client_id_env: BENCH_SF_CLIENT_ID",
            "        client_secret_env: BENCH_SF_CLIENT_SECRET",
            "        refresh_token_env: BENCH_SF_REFRESH_TOKEN",
            "    policy:",
            "      default_region: FR",
            "    internal_domains: [ourco.com]",
            "    providers:",
            "      aircall:",
            "        webhook_secret_env: BENCH_AIRCALL_TOKEN",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class BenchStack:
    """The running processes and the handles the benchmarks measure with."""

    stack: Stack
    emulator: SalesforceEmulator
    redis_url: str
    concurrency: int

    @property
    def client(self) -> redis.Redis:
        return self.stack.redis

    @property
    def store(self) -> CallStore:
        return self.stack.store


@contextlib.contextmanager
def bench_stack(
    tenants: Sequence[str],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    latency: float = LATENCY_SECONDS,
    crm_rate: float = CRM_RATE,
    extra_env: dict[str, str] | None = None,
) -> Iterator[BenchStack]:
    """redis-server, the emulator, the receiver and one worker; all stopped on the way out, Ctrl-C included."""
    workdir = Path(tempfile.mkdtemp(prefix="callmatch-bench-e2e-"))
    resources = contextlib.ExitStack()
    try:
        url = resources.enter_context(redis_server(use_preset=False))
        scenario = parse_scenario({"call": {"id": "seed", "started_at": "2026-01-01T00:00:00Z"}, "crm": CRM})
        emulator = SalesforceEmulator(seed_org(scenario.crm, profile=OrgProfile.after_setup())).start()
        resources.callback(emulator.stop)
        emulator.latency = latency
        tenants_file = workdir / "tenants.yaml"
        tenants_file.write_text(tenants_yaml(emulator, tenants, crm_rate))
        env = {
            **os.environ,
            "CALLMATCH_REDIS_URL": url,
            "CALLMATCH_TENANTS": str(tenants_file),
            "CALLMATCH_PORT": str(free_port()),
            # The receiver's replay checks and R5's windows against a fixed today (the calls' date).
            "CALLMATCH_NOW": FAST_ENV["CALLMATCH_NOW"],
            "BENCH_SF_ACCESS_TOKEN": emulator.issue_token(),
            "BENCH_SF_CLIENT_ID": emulator.client_id,
            "BENCH_SF_CLIENT_SECRET": emulator.client_secret,
            "BENCH_SF_REFRESH_TOKEN": emulator.refresh_token,
            "BENCH_AIRCALL_TOKEN": AIRCALL_TOKEN,
            **(extra_env or {}),
        }
        client = redis.Redis.from_url(url, decode_responses=True)
        resources.callback(client.close)
        stack = Stack(
            emulator, client, CallStore(client), env, f"http://127.0.0.1:{env['CALLMATCH_PORT']}", workdir
        )
        resources.callback(stack.stop)
        stack.start_api()
        stack.start_worker(concurrency=concurrency)
        yield BenchStack(stack, emulator, url, concurrency)
    finally:
        resources.close()
        if os.environ.get("BENCH_KEEP_LOGS"):
            print(f"  (logs kept in {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def _send(
    api_url: str, tenant: str, first_id: int, rate: float, seconds: float
) -> tuple[dict[str, float], int]:
    """Webhooks at `rate` per second for `seconds`, on schedule: {call id: wall time sent}, failures."""
    count = max(1, round(rate * seconds))
    sent: dict[str, float] = {}
    failures = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as client:

        async def post(index: int) -> None:
            nonlocal failures
            call_id = first_id + index
            email, phone = PEOPLE[index % len(PEOPLE)]
            document = aircall_document(call_id, email, phone)
            sent[f"aircall:{call_id}"] = time.time()
            try:
                response = await client.post(f"/webhooks/{tenant}/aircall", json=document)
                if response.status_code != 200:
                    failures += 1
            except httpx.HTTPError:
                failures += 1

        loop = asyncio.get_running_loop()
        start = loop.time()
        posts = []
        for index in range(count):
            delay = start + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(post(index)))
        await asyncio.gather(*posts)
    return sent, failures


def send_calls(
    bench: BenchStack, tenant: str, first_id: int, rate: float, seconds: float
) -> tuple[dict[str, float], int]:
    return asyncio.run(_send(bench.stack.api_url, tenant, first_id, rate, seconds))


def written_times(
    client: redis.Redis, tenant: str, sent: dict[str, float], timeout: float
) -> tuple[dict[str, float], float]:
    """When each sent call turned `written` (wall clock), waiting until all have or `timeout` passes.

    Returns the times found and the seconds waited after the last webhook.
    """
    key = status_key(tenant, CallStatus.WRITTEN)
    found: dict[str, float] = {}
    started = time.monotonic()
    deadline = started + timeout
    while True:
        rows: list[tuple[Any, float]] = client.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
        for member, score in rows:
            name = member.decode() if isinstance(member, bytes) else str(member)
            if name in sent:
                found[name] = float(score)
        if len(found) == len(sent) or time.monotonic() > deadline:
            return found, time.monotonic() - started
        time.sleep(0.1)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p99 of 600 values is the 594th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latencies:
    sent: int
    written: int
    failures: int
    p50: float
    p99: float
    max: float
    throughput: float

    def line(self) -> str:
        lost = f", {self.sent - self.written} NOT written" if self.written < self.sent else ""
        failed = f", {self.failures} webhooks refused" if self.failures else ""
        return (
            f"p50 {self.p50:6.2f} s  p99 {self.p99:6.2f} s  max {self.max:6.2f} s  "
            f"throughput {self.throughput:5.1f} calls/s ({self.written}/{self.sent} written{lost}{failed})"
        )


def latencies(sent: dict[str, float], written: dict[str, float], failures: int) -> Latencies:
    """Webhook sent -> record written, per call; calls never written count at +inf in p99/max."""
    values = [written[c] - sent[c] for c in sent if c in written]
    missing = len(sent) - len(values)
    padded = values + [float("inf")] * missing
    if not values:
        return Latencies(len(sent), 0, failures, float("inf"), float("inf"), float("inf"), 0.0)
    span = max(written.values()) - min(sent.values())
    return Latencies(
        sent=len(sent),
        written=len(values),
        failures=failures,
        p50=statistics.median(padded),
        p99=percentile(padded, 0.99),
        max=max(padded),
        throughput=len(values) / span if span > 0 else 0.0,
    )


def warm_up(bench: BenchStack, tenant: str, first_id: int) -> None:
    """One call through every worker stage first: imports, CRM session, connections are not measured."""
    sent, _ = send_calls(bench, tenant, first_id, rate=10, seconds=0.5)
    written, _ = written_times(bench.client, tenant, sent, timeout=60)
    if len(written) < len(sent):
        raise RuntimeError(f"warm-up calls were not written in 60 s; see {bench.stack.log_dir}")


def run_e2e(
    rate: float, seconds: float, concurrency: int, latency: float, crm_rate: float, extra_env: dict[str, str]
) -> tuple[Latencies, float]:
    """One measured run on a fresh stack: (latencies, CRM API calls per call)."""
    tenant = "bench"
    with bench_stack(
        [tenant], concurrency=concurrency, latency=latency, crm_rate=crm_rate, extra_env=extra_env
    ) as bench:
        warm_up(bench, tenant, 1)
        before = bench.emulator.stats.api_calls
        sent, failures = send_calls(bench, tenant, 1000, rate, seconds)
        # A backlog drains at the stack's own pace: wait at most as long again as the load, plus a minute.
        written, _ = written_times(bench.client, tenant, sent, timeout=seconds + 60)
        per_call = (bench.emulator.stats.api_calls - before) / max(1, len(written))
        return latencies(sent, written, failures), per_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_e2e")
    parser.add_argument("--rate", type=float, default=20.0, help="webhooks per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load lasts")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="worker processes")
    parser.add_argument("--latency", type=float, default=LATENCY_SECONDS, help="seconds per CRM request")
    parser.add_argument(
        "--crm-rate", type=float, default=CRM_RATE, help="the tenant's CRM requests/s limiter"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 s of load")
    args = parser.parse_args(argv if argv is not None else [])
    if shutil.which("redis-server") is None:
        print("end to end: skipped (redis-server not installed)")
        return 0
    seconds = 5.0 if args.quick else args.seconds
    modes: list[tuple[str, dict[str, str]]] = [("as committed", {})]
    if batching_available():
        batch = str(Settings.model_fields["batch_size"].default)
        modes = [
            (f"batching on (CALLMATCH_BATCH_SIZE={batch})", {"CALLMATCH_BATCH_SIZE": batch}),
            ("batching off (CALLMATCH_BATCH_SIZE=1)", {"CALLMATCH_BATCH_SIZE": "1"}),
        ]
    print(
        f"end to end: Aircall webhooks at {args.rate:g}/s for {seconds:g} s -> written Salesforce Task;"
        f" emulated org at {args.latency * 1000:.0f} ms per request, tenant limiter {args.crm_rate:g} requests/s;"
        f" receiver (uvicorn, 1 process) + 1 Celery worker -c {args.concurrency} on {os.cpu_count()} cores"
    )
    if not batching_available():
        print("  (no CALLMATCH_BATCH_SIZE in this worker: cross-call batching not measured)")
    for label, env in modes:
        result, per_call = run_e2e(args.rate, seconds, args.concurrency, args.latency, args.crm_rate, env)
        print(f"  {label:42} {result.line()}; {per_call:.2f} API calls per call")
    print("  targets: p50 < 2 s, p99 < 10 s at 20 calls/s")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
