"""Shared fixtures: the contract examples and a real Redis server on a free loopback port."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import free_port, redis_server

__all__ = ["free_port", "redis_server", "wait_until"]

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CALLMATCH_SHARED", ROOT.parent / "shared"))
EXAMPLES_DIR = SHARED / "contracts" / "examples"
BUNDLED_EXAMPLES_DIR = ROOT / "config" / "examples"


def example_dir() -> Path:
    """The contract's examples when shared/ sits beside the checkout, else the bundled copy."""
    return EXAMPLES_DIR if EXAMPLES_DIR.is_dir() else BUNDLED_EXAMPLES_DIR


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
    try:
        with redis_server() as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[object]:
    """A client on a flushed database, so tests never see each other's keys."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
