"""Shared fixtures: the contract examples and a real Redis server on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CALLMATCH_SHARED", ROOT.parent / "shared"))
EXAMPLES_DIR = SHARED / "contracts" / "examples"
BUNDLED_EXAMPLES_DIR = ROOT / "config" / "examples"


def example_dir() -> Path:
    """The contract's examples when shared/ sits beside the checkout, else the bundled copy."""
    return EXAMPLES_DIR if EXAMPLES_DIR.is_dir() else BUNDLED_EXAMPLES_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: object, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> None:
    """Poll `predicate` until it is truthy; fail with `what` after `timeout` seconds."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server for the whole session (or CALLMATCH_TEST_REDIS_URL when set)."""
    preset = os.environ.get("CALLMATCH_TEST_REDIS_URL")
    if preset:
        yield preset
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make install` (or apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="callmatch-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        wait_until(answers, timeout=15, what="redis-server to answer PING")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[object]:
    """A client on a flushed database, so tests never see each other's keys."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
