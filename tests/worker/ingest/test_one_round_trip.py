"""De-duplication, record and queue message in one Redis round trip, with `send_task`'s own message.

Real Redis, the real Celery app and its kombu Redis transport, a real Celery worker
consuming what the receiver pushed. MONITOR tells which commands the receiver sent itself
and which ran inside its script.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient

from tests.adapters.providers import samples
from tests.conftest import free_port, wait_until
from tests.worker.ingest.conftest import post, queued_events
from worker.config.tenants import Tenants
from worker.core.model import CallKind, Direction, Person
from worker.ingest.app import create_app
from worker.ingest.enqueue import CeleryEnqueuer, MessagePreparer
from worker.ingest.events import CallEvent
from worker.pipeline.celery_app import LIVE_PRIORITY, PROCESS_CALL_TASK, QUEUE, SENT_AT_HEADER, create_celery

END = "callmatch-test-end-of-commands"


def _receiver(tenants: Tenants, redis_url: str, broker_url: str | None = None) -> TestClient:
    app = create_app(
        tenants,
        CeleryEnqueuer(create_celery(broker_url or redis_url)),
        redis.Redis.from_url(redis_url),
        clock=lambda: samples.NOW,
    )
    return TestClient(app, raise_server_exceptions=False)


def _commands(redis_url: str, action: Any) -> list[tuple[str, str]]:
    """(client, command) for every command Redis ran during `action` ("lua" for those of a script)."""
    monitor_client = redis.Redis.from_url(redis_url, decode_responses=True)
    marker = redis.Redis.from_url(redis_url)
    marker.ping()  # connected before MONITOR starts: its handshake is not in the list
    seen: list[tuple[str, str]] = []
    with monitor_client.monitor() as monitor:
        action()
        marker.echo(END)  # MONITOR sees it after everything `action` sent
        for command in monitor.listen():
            if command["command"] == f"ECHO {END}":
                break
            seen.append((command["client_type"], command["command"].split(" ", 1)[0].upper()))
    return seen


def _normalised(raw: bytes | str) -> dict[str, Any]:
    """A queue message with what differs by nature (ids, tags, times) replaced by placeholders."""
    message = json.loads(raw)
    headers, properties = message["headers"], message["properties"]
    assert headers["id"] == headers["root_id"] == properties["correlation_id"]
    for key in ("id", "root_id"):
        headers[key] = "<task id>"
    properties["correlation_id"] = "<task id>"
    assert isinstance(headers[SENT_AT_HEADER], float)
    headers[SENT_AT_HEADER] = "<sent at>"
    assert properties["delivery_tag"]
    properties["delivery_tag"] = "<tag>"
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return dict(message)


def _event() -> CallEvent:
    return CallEvent(
        tenant="acme",
        provider="aircall",
        call_id="aircall:5550001",
        event_id="call.ended:5550001",
        kind=CallKind.CALL,
        received_at=samples.NOW,
        direction=Direction.OUTBOUND,
        participants=(Person(phone="+33612345678"),),
    )


def test_the_prepared_message_is_the_one_send_task_sends(redis_url: str, redis_client: Any) -> None:
    celery = create_celery(redis_url)
    enqueuer = CeleryEnqueuer(celery)
    event = _event()
    enqueuer.enqueue(event)
    sent = redis_client.lrange(QUEUE, 0, -1)
    prepared = enqueuer.prepare(event)
    assert prepared is not None and prepared.key == QUEUE
    assert redis_client.lrange(QUEUE, 0, -1) == sent, "preparing sends nothing"
    assert len(sent) == 1
    expected = _normalised(sent[0])
    assert _normalised(prepared.payload) == expected
    assert expected["properties"]["priority"] == LIVE_PRIORITY
    assert expected["properties"]["body_encoding"] == "base64"
    assert expected["properties"]["delivery_info"] == {"exchange": "", "routing_key": QUEUE}
    assert expected["headers"]["task"] == PROCESS_CALL_TASK
    assert expected["headers"]["argsrepr"] == "[<aircall:5550001>]"
    assert expected["body"][0] == [event.to_json()]


def test_the_enqueuer_knows_when_the_broker_is_the_records_redis(redis_url: str) -> None:
    enqueuer = CeleryEnqueuer(create_celery(redis_url))
    assert isinstance(enqueuer, MessagePreparer)
    assert enqueuer.same_redis(redis.Redis.from_url(redis_url))
    other_db = redis_url.rsplit("/", 1)[0] + "/5"
    assert not enqueuer.same_redis(redis.Redis.from_url(other_db))
    assert not enqueuer.same_redis(redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0"))


def test_a_delivery_costs_one_round_trip_and_a_duplicate_is_not_enqueued_twice(
    tenants: Tenants, redis_url: str, redis_client: Any
) -> None:
    receiver = _receiver(tenants, redis_url)
    warm_up = post(receiver, "ringover", samples.ringover())  # loads the script, opens kombu's channel
    assert warm_up.status_code == 200 and warm_up.json()["accepted"]

    responses: list[Any] = []
    first = _commands(redis_url, lambda: responses.append(post(receiver, "aircall", samples.aircall())))
    assert responses[0].status_code == 200 and responses[0].json()["accepted"] == ["aircall:812731"]
    assert [command for client, command in first if client != "lua"] == ["EVALSHA"]
    assert ("lua", "LPUSH") in first
    assert len(queued_events(redis_client)) == 2

    again = _commands(redis_url, lambda: responses.append(post(receiver, "aircall", samples.aircall())))
    assert responses[1].status_code == 200 and responses[1].json()["duplicates"] == ["aircall:812731"]
    assert [command for client, command in again if client != "lua"] == ["EVALSHA"]
    assert ("lua", "LPUSH") not in again
    assert [event["call_id"] for event in queued_events(redis_client)] == [
        warm_up.json()["accepted"][0],
        "aircall:812731",
    ]


def test_with_the_broker_elsewhere_the_receiver_keeps_then_sends(
    tenants: Tenants, redis_url: str, redis_client: Any
) -> None:
    """Another database for the queue: the script cannot push there, so `send_task` does, as before."""
    broker_url = redis_url.rsplit("/", 1)[0] + "/7"
    broker = redis.Redis.from_url(broker_url)
    broker.flushdb()
    receiver = _receiver(tenants, redis_url, broker_url)
    assert post(receiver, "aircall", samples.aircall()).json()["accepted"] == ["aircall:812731"]
    assert queued_events(redis_client) == []
    assert len(queued_events(broker)) == 1


@pytest.fixture()
def consumed(redis_url: str) -> Iterator[list[Any]]:
    """A real Celery worker (threads) on the callmatch queue, its `process_call` recording its arguments."""
    worker_app = create_celery(redis_url)
    received: list[Any] = []
    lock = threading.Lock()

    @worker_app.task(name=PROCESS_CALL_TASK, shared=False, lazy=False)  # type: ignore[untyped-decorator]
    def process_call(event: dict[str, Any]) -> None:
        with lock:
            received.append(event)

    with start_worker(
        worker_app, pool="threads", concurrency=1, perform_ping_check=False, loglevel="WARNING"
    ):
        yield received


def test_a_celery_worker_runs_the_task_the_receiver_pushed(
    tenants: Tenants, redis_url: str, redis_client: Any, consumed: list[Any]
) -> None:
    receiver = _receiver(tenants, redis_url)
    first = post(receiver, "aircall", samples.aircall())
    assert first.json()["accepted"] == ["aircall:812731"]
    wait_until(lambda: len(consumed) == 1, timeout=20, what="the worker to run process_call")
    assert consumed[0]["call_id"] == "aircall:812731"
    assert consumed[0] == CallEvent.from_json(consumed[0]).to_json()
    duplicate = post(receiver, "aircall", samples.aircall())
    assert duplicate.json()["duplicates"] == ["aircall:812731"]
    second = post(receiver, "ringover", samples.ringover())
    call_id = second.json()["accepted"][0]
    wait_until(lambda: len(consumed) == 2, timeout=20, what="the worker to run the second call")
    assert [event["call_id"] for event in consumed] == ["aircall:812731", call_id], "the duplicate never ran"
    wait_until(
        lambda: all(redis_client.llen(key) == 0 for key in (QUEUE,)) and not redis_client.hlen("unacked"),
        timeout=20,
        what="the queue and the unacked hash to be empty",
    )
