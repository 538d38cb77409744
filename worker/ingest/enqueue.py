"""Putting events on the Celery queue by task name, without importing the worker's code.

Two ways, one message. `enqueue` publishes with `send_task` (a Redis round trip of its
own). `prepare` runs that very `send_task` with kombu's publish-batch slot filled by a
recorder: Celery and kombu build, serialise and route the message exactly as they would
(protocol 2 headers with `callmatch_sent_at`, delivery_tag, priority, base64 body, the
`callmatch` queue's priority list), and kombu hands over its final `LPUSH list message`
instead of sending it. The receiver sends that LPUSH inside its acceptance script, so
de-duplication, the record and the queue message cost one round trip together.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from worker.ingest.events import CallEvent
from worker.pipeline.celery_app import PROCESS_CALL_TASK, QUEUE, sent_now


class Enqueuer(Protocol):
    def enqueue(self, event: CallEvent) -> None: ...


@dataclass(frozen=True)
class QueuedMessage:
    """kombu's final command for one message: LPUSH `payload` onto the Redis list `key`."""

    key: str
    payload: bytes | str


@runtime_checkable
class MessagePreparer(Protocol):
    """An enqueuer that can also give the message to push itself (the receiver's one round trip)."""

    def enqueue(self, event: CallEvent) -> None: ...

    def prepare(self, event: CallEvent) -> QueuedMessage | None: ...

    def same_redis(self, client: Any) -> bool: ...


def _where(kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Which Redis server and database a client's connection arguments point at."""
    if kwargs.get("path"):
        return ("unix", kwargs["path"], int(kwargs.get("db") or 0))
    return (
        "tcp",
        kwargs.get("host") or "localhost",
        int(kwargs.get("port") or 6379),
        int(kwargs.get("db") or 0),
    )


class _Recorder:
    """Stands in kombu's per-thread publish batch: keeps the Redis commands instead of running them.

    kombu (>= 5.7) publishes through `Producer._batch_local.current.publish(channel, message, ...)`
    when a batch is open; the Redis channel then routes the message and calls `add("lpush", list,
    payload)` on the batch it is given, with no I/O of its own.
    """

    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple[Any, ...]]] = []

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> Any:
        return channel.basic_publish(message, _publish_batch=self, **kwargs)

    def add(self, name: str, *args: Any) -> None:
        self.commands.append((name, args))


class CeleryEnqueuer:
    """`send_task("callmatch.process_call", [event JSON])` on the `callmatch` queue, sent or prepared."""

    def __init__(self, app: Any, queue: str = QUEUE):
        self.app = app
        self.queue = queue
        self._producer: Any = None
        self._lock = threading.Lock()

    def _send_task(self, event: CallEvent, producer: Any = None) -> None:
        # argsrepr is what monitoring tools show of a task: the call id, never the participants.
        self.app.send_task(
            PROCESS_CALL_TASK,
            args=[event.to_json()],
            queue=self.queue,
            retry=False,
            ignore_result=True,
            argsrepr=f"[<{event.call_id}>]",
            kwargsrepr="{}",
            headers=sent_now(),
            producer=producer,
        )

    def enqueue(self, event: CallEvent) -> None:
        self._send_task(event)

    def same_redis(self, client: Any) -> bool:
        """Whether the broker is `client`'s Redis database (only then can one script keep and enqueue)."""
        from redis.connection import parse_url

        url = self.app.conf.broker_url
        if not isinstance(url, str) or not url.startswith(("redis://", "unix://")) or ";" in url:
            return False
        try:
            pool_kwargs = client.connection_pool.connection_kwargs
            return _where(parse_url(url)) == _where(pool_kwargs)  # type: ignore[no-untyped-call]
        except (AttributeError, ValueError):
            return False

    def prepare(self, event: CallEvent) -> QueuedMessage | None:
        """The LPUSH `send_task` would send for `event`, not sent; None if kombu would send anything else.

        The first call opens a channel (one PING) and declares the queue as `send_task` does;
        after that nothing here touches Redis.
        """
        recorder = _Recorder()
        with self._lock:
            if self._producer is None:
                channel = self.app.connection_for_write().channel()
                self._producer = self.app.amqp.Producer(channel, auto_declare=False)
            producer = self._producer
            producer._batch_local.current = recorder
            try:
                self._send_task(event, producer)
            finally:
                del producer._batch_local.current
        if len(recorder.commands) != 1 or recorder.commands[0][0] != "lpush":
            return None  # an expiring queue or a fanout: not the plain list push the script does
        key, payload = recorder.commands[0][1]
        return QueuedMessage(key=str(key), payload=payload)
