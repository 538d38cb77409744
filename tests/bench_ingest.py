"""Ingest benchmark: webhook acknowledgements per second and latency, on loopback, against a real Redis.

Starts its own redis-server and the receiver under uvicorn (one process, as
deployed per core), then a load generator posts signed Aircall and Zoom
deliveries, each a distinct call, with fixed concurrency. Every acknowledged
delivery must be in the `callmatch` queue exactly once; the figures say so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from tests.adapters.providers.samples import aircall_call, zoom_document, zoom_sign
from tests.redis_server import redis_server

ROOT = Path(__file__).resolve().parent.parent
AIRCALL_TOKEN = "bench-aircall-token"
ZOOM_SECRET = "bench-zoom-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
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


async def _load(
    port: int, total: int, concurrency: int, offset: int
) -> tuple[list[float], dict[int, int], float]:
    """Keep-alive connections posting pre-built requests: the generator costs little CPU next to the receiver."""
    requests = [_request_bytes(port, index) for index in range(offset, offset + total)]
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
    return latencies, statuses, time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux), to tell server cost from load-generator cost."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_ingest")
    parser.add_argument("--count", type=int, default=int(os.environ.get("BENCH_INGEST_COUNT", "4000")))
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv if argv is not None else [])
    if shutil.which("redis-server") is None:
        print("ingest: skipped (redis-server not installed)")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="callmatch-bench-ingest-"))
    http_port = _free_port()
    procs: list[subprocess.Popen[bytes]] = []
    resources = contextlib.ExitStack()
    try:
        redis_url = resources.enter_context(redis_server(use_preset=False))
        client = redis.Redis.from_url(redis_url)
        env = dict(
            os.environ,
            CALLMATCH_REDIS_URL=redis_url,
            CALLMATCH_TENANTS=str(_tenants_file(workdir)),
            BENCH_AIRCALL=AIRCALL_TOKEN,
            BENCH_ZOOM=ZOOM_SECRET,
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "worker.ingest.server:build_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(http_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
        base_url = f"http://127.0.0.1:{http_port}"
        _wait(lambda: httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200, 30, "the receiver")
        asyncio.run(_load(http_port, min(200, args.count), args.concurrency, 10_000_000))  # warm-up
        client.delete("callmatch")
        server_cpu = _cpu_seconds(procs[-1].pid)
        own_cpu = time.process_time()
        latencies, statuses, seconds = asyncio.run(_load(http_port, args.count, args.concurrency, 0))
        server_cpu = _cpu_seconds(procs[-1].pid) - server_cpu
        own_cpu = time.process_time() - own_cpu
        queued = int(client.llen("callmatch"))
        replay, replay_statuses, replay_seconds = asyncio.run(
            _load(http_port, args.count // 4, args.concurrency, 0)
        )
        queued_after_replay = int(client.llen("callmatch"))
        ok = statuses.get(200, 0)
        print(
            f"ingest: {args.count:,} signed webhooks (Aircall + Zoom), concurrency {args.concurrency}, "
            f"uvicorn 1 process, real Redis, loopback"
        )
        print(f"  acknowledgements             {ok / seconds:,.0f}/s ({seconds:.2f} s); statuses {statuses}")
        print(
            f"  latency                      p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {_percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )
        print(
            f"  CPU per delivery             receiver {server_cpu / args.count * 1000:.2f} ms, "
            f"load generator {own_cpu / args.count * 1000:.2f} ms (both on the same {os.cpu_count()} cores)"
        )
        print(f"  enqueued exactly once        {queued:,} messages for {ok:,} acknowledged deliveries")
        print(
            f"  replayed deliveries          {len(replay) / replay_seconds:,.0f}/s, "
            f"p99 {_percentile(replay, 0.99) * 1000:.1f} ms; statuses {replay_statuses}; "
            f"queue {queued_after_replay:,} (unchanged: {queued_after_replay == queued})"
        )
        return 0
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        resources.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
