"""The stage wrapper's branches where Redis itself fails: never a silent end.

A real redis-server that the test stops midway. The Celery task is a stand-in
whose `retry` raises like Celery's (the real-worker versions of these paths are in
tests/e2e/test_failures.py, where Redis is SIGKILLed under a worker).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery.exceptions import Retry

from adapters.errors import FatalError
from tests.adapters.crm.redis_down import StoppableRedis, stoppable_redis
from tests.worker.test_service import NOW, event
from worker.config.tenants import CrmConfig, Tenant, Tenants
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStatus, CallStore, Stage
from worker.pipeline.tasks import run_stage


@dataclass
class _Request:
    retries: int = 0


@dataclass
class _Task:
    """What run_stage uses of a bound Celery task: its retry count, and `retry` raising `Retry`."""

    request: _Request = field(default_factory=_Request)
    retried: list[dict[str, Any]] = field(default_factory=list)

    def retry(self, **options: Any) -> Retry:
        self.retried.append(options)
        return Retry("retry", when=options.get("countdown"))


@pytest.fixture()
def redis_server() -> Iterator[StoppableRedis]:
    with stoppable_redis() as running:
        yield running


def _pipeline(server: StoppableRedis) -> Pipeline:
    tenant = Tenant(name="demo", crm=CrmConfig(kind="scenario"))

    def no_crm(_: Tenant) -> Any:
        raise AssertionError("no CRM is read in these tests")

    return Pipeline(Tenants({"demo": tenant}), CallStore(server.client, clock=lambda: NOW), no_crm)


def test_redis_down_at_the_attempt_counter_is_a_retry_not_a_burial(redis_server: StoppableRedis) -> None:
    pipe = _pipeline(redis_server)
    pipe.accept(event())
    redis_server.stop()
    task = _Task()
    with pytest.raises(Retry):
        run_stage(task, Stage.ASSOCIATE, "demo", "aircall:812731", lambda: "never reached", pipe)
    assert task.retried and task.retried[0]["max_retries"] is not None


def test_redis_down_during_the_burial_is_a_retry_and_the_call_still_owes_its_stage(
    redis_server: StoppableRedis,
) -> None:
    pipe = _pipeline(redis_server)
    pipe.accept(event())

    def fatal_then_redis_dies() -> None:
        redis_server.stop()
        raise FatalError("salesforce", "HTTP 400 FIELD_CUSTOM_VALIDATION_EXCEPTION")

    task = _Task()
    with pytest.raises(Retry):
        run_stage(task, Stage.WRITE, "demo", "aircall:812731", fatal_then_redis_dies, pipe)
    # a retry with no limit: the letter is recorded once Redis is back (the record still owes the stage)
    [retry] = task.retried
    assert retry["max_retries"] is None and retry["countdown"] > 0 and "callmatch_sent_at" in retry["headers"]


def test_an_unexpected_exception_is_retried_then_buried_with_its_type(redis_server: StoppableRedis) -> None:
    pipe = _pipeline(redis_server)
    pipe.accept(event())

    def bug() -> None:
        raise KeyError("compositeResponse")

    first = _Task()
    with pytest.raises(Retry):
        run_stage(first, Stage.ASSOCIATE, "demo", "aircall:812731", bug, pipe)
    last = _Task(request=_Request(retries=99))
    assert run_stage(last, Stage.ASSOCIATE, "demo", "aircall:812731", bug, pipe) is None
    record = pipe.store.require("demo", "aircall:812731")
    assert record.status is CallStatus.DEAD and record.next_stage is None
    assert record.error is not None and "internal error: KeyError" in record.error["reason"]
    assert [d.call_id for d in pipe.store.dead_letters()] == ["aircall:812731"]


def test_a_stage_sends_its_next_stage_at_the_priority_it_came_with() -> None:
    """A backfill's write stays behind live calls: `_priority` reads the message's own priority."""
    from worker.pipeline.celery_app import BACKFILL_PRIORITY, app
    from worker.pipeline.tasks import _priority

    @app.task(bind=True, name="tests.priority_probe")  # type: ignore[untyped-decorator]
    def probe(self: Any) -> int | None:
        return _priority(self)

    assert probe.apply(priority=BACKFILL_PRIORITY).result == BACKFILL_PRIORITY
    assert probe.apply().result is None
