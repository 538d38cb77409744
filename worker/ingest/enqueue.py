"""Putting events on the Celery queue by task name, without importing the worker's code."""

from __future__ import annotations

from typing import Any, Protocol

from worker.ingest.events import CallEvent
from worker.pipeline.celery_app import PROCESS_CALL_TASK, QUEUE, sent_now


class Enqueuer(Protocol):
    def enqueue(self, event: CallEvent) -> None: ...


class CeleryEnqueuer:
    """`send_task("callmatch.process_call", [event JSON])` on the `callmatch` queue."""

    def __init__(self, app: Any, queue: str = QUEUE):
        self.app = app
        self.queue = queue

    def enqueue(self, event: CallEvent) -> None:
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
        )
