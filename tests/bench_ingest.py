"""Ingest benchmark: webhook acknowledgements per second and latency, beside a bare ASGI endpoint.

One run, one machine, one load generator, the same uvicorn settings (loop and HTTP
implementation as `uvicorn` picks them: uvloop and httptools when installed) for:
- the receiver as it is: de-duplication, record and queue message in ONE Redis round trip;
- the receiver keeping then sending with `send_task` (two round trips: the code before #15);
- a bare raw-ASGI endpoint that reads the body and answers 200 with a small JSON (the ceiling);
- a bare FastAPI route doing the same (what the framework alone costs).
Each is served by 1 and by 2 uvicorn processes, against its own fresh real Redis.

Two loads: a closed loop (32 keep-alive connections posting as fast as answered: the
capacity) and an open loop at a fixed rate (1,000/s by default: latency measured from the
scheduled send time, so a slow answer delays nothing it should not). Every acknowledged
delivery must be in the `callmatch` queue exactly once; the figures say so. Printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.adapters.providers.samples import aircall_call, zoom_document, zoom_sign
from tests.redis_server import redis_server
from worker.pipeline.celery_app import queue_keys

ROOT = Path(__file__).resolve().parent.parent
AIRCALL_TOKEN = "bench-aircall-token"
ZOOM_SECRET = "bench-zoom-secret"
BARE_BODY = b'{"accepted":["aircall:1"],"duplicates":[]}'

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


async def bare_asgi(
    scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """The ceiling: read the body, answer 200 with a JSON of the receiver's size; nothing else."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body"))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BARE_BODY))],
        }
    )
    await send({"type": "http.response.body", "body": BARE_BODY})


def bare_fastapi() -> FastAPI:
    """A FastAPI route with the receiver's path that reads the body and answers: the framework's cost."""
    app = FastAPI()

    @app.post("/webhooks/{tenant}/{provider}")
    async def receive(tenant: str, provider: str, request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"accepted": [f"{provider}:1"], "duplicates": []})

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def receiver_two_round_trips() -> FastAPI:
    """The receiver keeping the call, then sending the message with `send_task` (before #15)."""
    from worker.ingest.server import build_app

    return build_app(one_round_trip=False)


@dataclass(frozen=True)
class Target:
    name: str
    argv: tuple[str, ...]  # uvicorn's app argument(s)
    receiver: bool


TARGETS = (
    Target("receiver, one round trip", ("--factory", "worker.ingest.server:build_app"), True),
    Target("receiver, two round trips", ("--factory", "tests.bench_ingest:receiver_two_round_trips"), True),
    Target("bare ASGI (raw)", ("tests.bench_ingest:bare_asgi",), False),
    Target("bare FastAPI route", ("--factory", "tests.bench_ingest:bare_fastapi"), False),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, redis.RedisError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _tenants_file(workdir: Path) -> Path:
    path = workdir / "tenants.yaml"
    path.write_text(
        "version: 1\n"
        "tenants:\n"
        "  bench:\n"
        "    crm: {kind: scenario, scenario_file: "
        + json.dumps(str(ROOT / "config/examples/basic.json"))
        + "}\n"
        "    internal_domains: [ourco.com]\n"
        "    providers:\n"
        "      aircall: {webhook_secret_env: BENCH_AIRCALL}\n"
        "      zoom: {webhook_secret_env: BENCH_ZOOM}\n"
    )
    return path


def _delivery(index: int) -> tuple[str, bytes, dict[str, str]]:
    if index % 2 == 0:
        document = {
            "event": "call.ended",
            "resource": "call",
            "token": AIRCALL_TOKEN,
            "data": aircall_call(index),
        }
        return "/webhooks/bench/aircall", json.dumps(document).encode(), {"content-type": "application/json"}
    zoom = zoom_document(f"bench-{index}==")
    body = json.dumps(zoom).encode()
    timestamp = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        "x-zm-request-timestamp": timestamp,
        "x-zm-signature": zoom_sign(ZOOM_SECRET, timestamp, body),
    }
    return "/webhooks/bench/zoom", body, headers


def _request_bytes(port: int, index: int) -> bytes:
    path, body, headers = _delivery(index)
    lines = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{port}", f"content-length: {len(body)}"]
    lines += [f"{key}: {value}" for key, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


@dataclass
class Run:
    latencies: list[float]
    statuses: dict[int, int]
    seconds: float

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def rate(self) -> float:
        return self.ok / self.seconds

    def p(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def _closed_loop(port: int, requests: list[bytes], concurrency: int) -> Run:
    """Keep-alive connections posting pre-built requests back to back: the capacity."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in queue:
                started = time.perf_counter()
                status = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return Run(latencies, statuses, time.perf_counter() - started)


async def _open_loop(port: int, requests: list[bytes], rate: float, connections: int) -> Run:
    """Requests sent at a fixed rate on a pool of keep-alive connections; latency from the scheduled time."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        free.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    async def one(request: bytes, scheduled: float) -> None:
        pair = await free.get()
        try:
            status = await _exchange(pair[0], pair[1], request)
        finally:
            free.put_nowait(pair)
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1

    tasks = []
    started = time.perf_counter()
    for index, request in enumerate(requests):
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, scheduled)))
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - started
    while not free.empty():
        free.get_nowait()[1].close()
    return Run(latencies, statuses, seconds)


def _tree_cpu(pid: int) -> float:
    """User + system CPU of a process and its children so far (Linux /proc), in seconds."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except OSError:
            continue
    return total


def _queued(client: redis.Redis) -> int:
    return sum(int(client.llen(key)) for key in queue_keys())


@dataclass
class Figures:
    target: Target
    processes: int
    capacity: Run
    cpu_ms: float
    paced: Run
    queued: int
    accepted: int


def _measure(target: Target, processes: int, args: argparse.Namespace, env: dict[str, str]) -> Figures:
    port = _free_port()
    with contextlib.ExitStack() as resources:
        redis_url = resources.enter_context(redis_server(use_preset=False))
        client = redis.Redis.from_url(redis_url)
        argv = [sys.executable, "-m", "uvicorn", *target.argv, "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--log-level", "warning", "--no-access-log", "--workers", str(processes)]
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=dict(env, CALLMATCH_REDIS_URL=redis_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        resources.callback(_stop, proc)
        _wait(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 404),
            30,
            "up",
        )
        offset = 10_000_000
        warm = [_request_bytes(port, offset + i) for i in range(max(200, 100 * processes))]
        asyncio.run(_closed_loop(port, warm, args.concurrency))
        client.delete(*queue_keys())
        requests = [_request_bytes(port, i) for i in range(args.count)]
        cpu = _tree_cpu(proc.pid)
        capacity = asyncio.run(_closed_loop(port, requests, args.concurrency))
        cpu = _tree_cpu(proc.pid) - cpu
        paced_requests = [_request_bytes(port, 20_000_000 + i) for i in range(args.paced_count)]
        paced = asyncio.run(_open_loop(port, paced_requests, args.rate, args.connections))
        queued = _queued(client) if target.receiver else 0
        return Figures(
            target, processes, capacity, cpu / args.count * 1000, paced, queued, capacity.ok + paced.ok
        )


def _best(runs: list[Figures]) -> Figures:
    """The best capacity (with its CPU) and the best paced run of several: other load only ever slows."""
    capacity = max(runs, key=lambda f: f.capacity.rate())
    paced = min(runs, key=lambda f: f.paced.p(0.99))
    return Figures(
        capacity.target,
        capacity.processes,
        capacity.capacity,
        capacity.cpu_ms,
        paced.paced,
        sum(f.queued for f in runs),
        sum(f.accepted for f in runs),
    )


def _breakdown(tenants_path: Path, environ: dict[str, str], count: int) -> list[tuple[str, float]]:
    """Where a delivery's time goes, stage by stage, in this one process (no HTTP, no other thread).

    The receiver's own steps called directly on the same signed deliveries, against a fresh
    real Redis: wall time per delivery, mean of `count` (each alternately Aircall and Zoom).
    """
    import datetime as dt

    from worker.config.tenants import TenantsSource
    from worker.ingest.dedupe import seen_key
    from worker.ingest.enqueue import CeleryEnqueuer
    from worker.ingest.providers import HANDLERS
    from worker.ingest.webhook import Delivery, WebhookRequest, check_event
    from worker.pipeline.celery_app import create_celery
    from worker.pipeline.store import CallStore

    with redis_server(use_preset=False) as redis_url:
        source = TenantsSource(tenants_path, environ)
        tenant = source.current.get("bench")
        assert tenant is not None
        client = redis.Redis.from_url(redis_url)
        store = CallStore(client)
        enqueuer = CeleryEnqueuer(create_celery(redis_url))
        timings: dict[str, float] = {}

        def timed(name: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = action(*args, **kwargs)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
            return result

        for index in range(-50, count):  # 50 to warm up (script load, kombu's channel), not counted
            if index == 0:
                timings.clear()
            path, body, headers = _delivery(30_000_000 + index)
            provider = path.rsplit("/", 1)[1]
            timed("tenants file check (stat)", source.reload)
            request = WebhookRequest(
                tenant=tenant,
                config=tenant.providers[provider],
                body=body,
                headers=headers,
                url=f"http://127.0.0.1{path}",
                now=dt.datetime.now(dt.UTC),
            )
            handler = HANDLERS[provider]
            delivery = timed("verify signature + parse (pydantic)", handler, request)
            assert isinstance(delivery, Delivery)
            event = delivery.events[0]
            timed("check_event (JSON round trip)", check_event, event)
            message = timed("prepare: send_task's message", enqueuer.prepare, event)
            assert message is not None
            timed(
                "accept + push: 1 EVALSHA",
                store.accept,
                seen_key("bench", provider, event.event_id),
                3600,
                "bench",
                event.call_id,
                event.to_json(),
                push=(message.key, message.payload),
            )
            timed("(before) send_task round trip", enqueuer.enqueue, event)
        return [(name, seconds / count * 1000) for name, seconds in timings.items()]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_ingest")
    parser.add_argument("--count", type=int, default=int(os.environ.get("BENCH_INGEST_COUNT", "4000")))
    parser.add_argument("--concurrency", type=int, default=32, help="closed loop: connections")
    parser.add_argument("--rate", type=float, default=1000.0, help="open loop: deliveries per second")
    parser.add_argument("--paced-count", type=int, default=3000, help="open loop: deliveries")
    parser.add_argument("--connections", type=int, default=64, help="open loop: keep-alive connections")
    parser.add_argument("--processes", default="1,2", help="uvicorn processes, comma-separated")
    parser.add_argument("--only", choices=[t.name for t in TARGETS], action="append")
    parser.add_argument("--repeat", type=int, default=2, help="runs per target; the best is printed")
    parser.add_argument("--breakdown-count", type=int, default=2000, help="deliveries timed stage by stage")
    args = parser.parse_args(argv if argv is not None else [])
    if shutil.which("redis-server") is None:
        print("ingest: skipped (redis-server not installed)")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="callmatch-bench-ingest-"))
    try:
        env = dict(
            os.environ,
            CALLMATCH_TENANTS=str(_tenants_file(workdir)),
            BENCH_AIRCALL=AIRCALL_TOKEN,
            BENCH_ZOOM=ZOOM_SECRET,
        )
        loop = "uvloop" if _importable("uvloop") else "asyncio"
        http = "httptools" if _importable("httptools") else "h11"
        print(
            f"ingest: signed webhooks (Aircall + Zoom, each a distinct call), loopback, real Redis, "
            f"{os.cpu_count()} cores shared by the server, Redis and the load generator; "
            f"uvicorn {_version('uvicorn')} --loop {loop} --http {http}"
        )
        print(
            f"  capacity: closed loop, {args.concurrency} connections, {args.count:,} deliveries; "
            f"paced: open loop at {args.rate:,.0f}/s on {args.connections} connections, {args.paced_count:,} "
            f"deliveries, latency from the scheduled send; best of {args.repeat} interleaved runs; "
            f"load average before {os.getloadavg()[0]:.1f}"
        )
        targets = [t for t in TARGETS if not args.only or t.name in args.only]
        for processes in (int(p) for p in args.processes.split(",")):
            runs: dict[str, list[Figures]] = {t.name: [] for t in targets}
            for _ in range(
                args.repeat
            ):  # interleaved, so a neighbour's burst of load hits every target alike
                for target in targets:
                    runs[target.name].append(_measure(target, processes, args, env))
            rows = [_best(runs[t.name]) for t in targets]
            print(f"  uvicorn {processes} process{'es' if processes > 1 else ''}:")
            print(
                f"    {'':28}{'acks/s':>8} {'p50':>7} {'p99':>7} {'CPU/ack':>8}  |  "
                f"{'paced acks/s':>12} {'p50':>7} {'p99':>7}  queue"
            )
            for row in rows:
                queue = f"{row.queued:,}/{row.accepted:,}" if row.target.receiver else "-"
                print(
                    f"    {row.target.name:28}{row.capacity.rate():>8,.0f} {row.capacity.p(0.5):>5.1f}ms "
                    f"{row.capacity.p(0.99):>5.1f}ms {row.cpu_ms:>6.2f}ms  |  {row.paced.rate():>12,.0f} "
                    f"{row.paced.p(0.5):>5.1f}ms {row.paced.p(0.99):>5.1f}ms  {queue}"
                )
                bad = {s: n for s, n in {**row.capacity.statuses, **row.paced.statuses}.items() if s != 200}
                if bad:
                    print(f"      non-200 answers: {bad}")
            by_name = {row.target.name: row for row in rows}
            ours, bare = by_name.get(TARGETS[0].name), by_name.get(TARGETS[2].name)
            before = by_name.get(TARGETS[1].name)
            if ours and bare:
                print(
                    f"    ratio receiver / bare ASGI: capacity {ours.capacity.rate() / bare.capacity.rate():.2f}, "
                    f"paced p99 {ours.paced.p(0.99) / bare.paced.p(0.99):.1f}x"
                )
            if ours and before:
                print(
                    f"    one round trip / two:       capacity {ours.capacity.rate() / before.capacity.rate():.2f}x, "
                    f"CPU per ack {ours.cpu_ms / before.cpu_ms:.2f}x"
                )
        print(
            f"  load average after {os.getloadavg()[0]:.1f} (this benchmark's own server, Redis and load generator included)"
        )
        stages = _breakdown(workdir / "tenants.yaml", env, args.breakdown_count)
        print(f"  where a delivery's time goes (in-process, one thread, mean of {args.breakdown_count:,}):")
        for name, ms in stages:
            print(f"    {name:40}{ms:>6.3f} ms")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
