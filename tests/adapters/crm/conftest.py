"""Fixtures shared by the CRM adapter tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adapters.crm.redis_down import StoppableRedis, stoppable_redis


@pytest.fixture()
def stoppable() -> Iterator[StoppableRedis]:
    """A redis-server of this test's own, which the test may stop (`stoppable.stop()`)."""
    with stoppable_redis() as running:
        yield running
