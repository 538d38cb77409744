"""Fairness benchmark: tenant B's live calls while tenant A's 10,000-call backfill runs, on the real stack.

The stack of tests/bench_e2e.py (receiver, one Celery worker, Redis, the Salesforce
emulator at 100 ms per request) with two tenants. First B alone: Aircall webhooks at
a steady rate, each call's wait measured from webhook sent to record written. Then
tenant A gets 10,000 decided calls, seeded through CallStore (not 10,000 webhooks),
and their backfill starts; B's same load runs again while it does. Two backfills:

- `reassociate`: `callmatch reassociate`'s background run (worker/pipeline/reassociate.py),
  its parts sent at BACKFILL_PRIORITY, as the console's API starts it;
- `messages`: 10,000 per-call associate-stage messages at BACKFILL_PRIORITY (each call
  owes its associate stage again, as a refresh asks), the harshest backlog: every
  worker process could take one.

Printed: B's p50/p99 alone and with the backfill, the p99 ratio (target <= 2x), and how
far the backfill went meanwhile. Figures are printed, never asserted.

    python -m tests.bench_fairness [--quick] [--rate 5] [--seconds 30] [--backfill 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from tests.bench_e2e import (
    CRM_RATE,
    DEFAULT_CONCURRENCY,
    LATENCY_SECONDS,
    BenchStack,
    Latencies,
    bench_stack,
    latencies,
    send_calls,
    warm_up,
    written_times,
)
from tests.e2e.stack import BIN, ROOT
from worker.pipeline.celery_app import BACKFILL_PRIORITY, create_celery, queue_keys, sent_now
from worker.pipeline.store import CallRecord, CallStatus, Stage

TENANT_A = "alpha"
TENANT_B = "bravo"
MODES = ("reassociate", "messages")
ASSOCIATE_TASK = "callmatch.associate"  # worker.pipeline.tasks.ASSOCIATE_TASK (not imported: its settings)

_START_RUN = """
import datetime as dt, sys
from worker.pipeline import reassociate
from worker.pipeline.tasks import pipeline
run = reassociate.start(pipeline(), sys.argv[1], dt.timedelta(days=3650), dry_run=False, by="bench")
reassociate.send_next(sys.argv[1], run.run_id)
print(run.run_id, run.total)
"""


def seed_backfill_calls(bench: BenchStack, template: CallRecord, count: int) -> list[str]:
    """`count` decided and written calls of tenant A, copies of one real call under new ids."""
    store = bench.store
    ids = [f"aircall:{500_000 + i}" for i in range(count)]
    decision = template.decision
    written = template.written

    def done(record: CallRecord) -> None:
        record.decision = dict(decision or {})
        record.written = dict(written or {})
        record.status = CallStatus.WRITTEN
        record.next_stage = None
        record.decided_at = template.decided_at
        record.written_at = template.written_at

    for call_id in ids:
        event = {**template.event, "call_id": call_id, "event_id": f"{call_id}:ended"}
        store.create(TENANT_A, call_id, event)
        store.update(TENANT_A, call_id, done)
    return ids


def start_reassociation(bench: BenchStack) -> tuple[str, int, Callable[[], int]]:
    """Tenant A's re-association run in the background (its first part at BACKFILL_PRIORITY)."""
    proc = subprocess.run(
        [str(BIN / "python"), "-c", _START_RUN, TENANT_A],
        env=bench.stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"could not start the re-association run: {proc.stderr[-2000:]}")
    run_id, total = proc.stdout.split()[-2:]
    from worker.pipeline.reassociate import run_key

    def visited() -> int:
        return int(bench.client.hget(run_key(TENANT_A, run_id), "cursor") or 0)

    return f"re-association run of {int(total):,} calls", int(total), visited


def send_backfill_messages(bench: BenchStack, ids: list[str]) -> tuple[str, int, Callable[[], int]]:
    """Each call owes its associate stage again; one associate message each, at BACKFILL_PRIORITY."""
    for call_id in ids:
        bench.store.request_stage(TENANT_A, call_id, Stage.ASSOCIATE)
    celery = create_celery(bench.redis_url)
    with celery.producer_or_acquire() as producer:
        for call_id in ids:
            celery.send_task(
                ASSOCIATE_TASK,
                args=[TENANT_A, call_id],
                priority=BACKFILL_PRIORITY,
                headers=sent_now(),
                producer=producer,
            )
    backfill_list = queue_keys()[-1]
    total = len(ids)

    def taken() -> int:
        return total - int(bench.client.llen(backfill_list))

    return f"{total:,} associate messages at priority {BACKFILL_PRIORITY}", total, taken


def measure_b(bench: BenchStack, first_id: int, rate: float, seconds: float) -> Latencies:
    sent, failures = send_calls(bench, TENANT_B, first_id, rate, seconds)
    written, _ = written_times(bench.client, TENANT_B, sent, timeout=seconds + 60)
    return latencies(sent, written, failures)


def run_mode(
    mode: str, rate: float, seconds: float, backfill: int, concurrency: int, extra_env: dict[str, str]
) -> None:
    with bench_stack([TENANT_A, TENANT_B], concurrency=concurrency, extra_env=extra_env) as bench:
        warm_up(bench, TENANT_B, 1)
        warm_up(bench, TENANT_A, 1)
        alone = measure_b(bench, 1000, rate, seconds)

        template = bench.store.get(TENANT_A, "aircall:1")
        assert template is not None and template.decision is not None
        started = time.perf_counter()
        ids = seed_backfill_calls(bench, template, backfill)
        seeded = time.perf_counter() - started
        started = time.perf_counter()
        if mode == "reassociate":
            what, total, progress = start_reassociation(bench)
        else:
            what, total, progress = send_backfill_messages(bench, ids)
        enqueued = time.perf_counter() - started
        before, api_before = progress(), bench.emulator.stats.api_calls
        window = time.perf_counter()
        loaded = measure_b(bench, 100_000, rate, seconds)
        window = time.perf_counter() - window
        after, api_after = progress(), bench.emulator.stats.api_calls

    ratio = loaded.p99 / alone.p99 if alone.p99 > 0 else float("inf")
    print(f"  backfill: {what} (seeded in {seeded:.1f} s, started in {enqueued:.1f} s)")
    print(f"    B alone          {alone.line()}")
    print(f"    B with backfill  {loaded.line()}")
    print(
        f"    p99 ratio {ratio:.2f}x (target <= 2x); backfill progressed {after - before:,} of {total:,}"
        f" calls in those {window:.0f} s ({(after - before) / window:.1f}/s; {after:,} since it started);"
        f" CRM API calls meanwhile {api_after - api_before:,}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_fairness")
    parser.add_argument("--rate", type=float, default=5.0, help="tenant B's webhooks per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long B's load lasts, each time")
    parser.add_argument("--backfill", type=int, default=10_000, help="tenant A's calls to re-associate")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="worker processes")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="CALLMATCH_BATCH_SIZE for the worker (default: its own)"
    )
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 s of load, 500 backfill calls")
    args = parser.parse_args(argv if argv is not None else [])
    if shutil.which("redis-server") is None:
        print("fairness: skipped (redis-server not installed)")
        return 0
    seconds = 5.0 if args.quick else args.seconds
    backfill = min(args.backfill, 500) if args.quick else args.backfill
    print(
        f"fairness: tenant B's Aircall calls at {args.rate:g}/s for {seconds:g} s, webhook -> written,"
        f" alone then beside tenant A's backfill of {backfill:,} calls; emulated org at"
        f" {LATENCY_SECONDS * 1000:.0f} ms per request, limiter {CRM_RATE:g} requests/s per tenant;"
        f" 1 Celery worker -c {args.concurrency} on {os.cpu_count()} cores"
    )
    extra_env = {} if args.batch_size is None else {"CALLMATCH_BATCH_SIZE": str(args.batch_size)}
    if extra_env:
        print(f"  with CALLMATCH_BATCH_SIZE={args.batch_size}")
    for mode in MODES if args.mode == "both" else (args.mode,):
        run_mode(mode, args.rate, seconds, backfill, args.concurrency, extra_env)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
