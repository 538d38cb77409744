"""The sweep wakes exactly the calls that owe a stage and made no progress by their deadline."""

from __future__ import annotations

from typing import Any

from tests.conftest import wait_until
from worker.pipeline.store import CallStore, Stage
from worker.pipeline.sweep import start_sweeper, sweep_once


def test_only_stalled_calls_that_owe_a_stage_are_woken_once_per_deadline(redis_client: Any) -> None:
    stalled = CallStore(redis_client, stall_seconds=-1)  # every deadline is already past
    stalled.create("acme", "a:owes-fetch", {})
    stalled.create("acme", "a:owes-write", {})
    stalled.update("acme", "a:owes-write", lambda r: setattr(r, "next_stage", "write"))
    stalled.create("acme", "a:done", {})
    stalled.update("acme", "a:done", lambda r: setattr(r, "next_stage", None))
    stalled.create("acme", "a:dead", {})
    stalled.bury("acme", "a:dead", Stage.ASSOCIATE, "fatal", "fatal")
    sent: list[tuple[Stage, str, str]] = []
    assert sweep_once(stalled, lambda *args: sent.append(args)) == 2
    assert sorted(sent) == [(Stage.FETCH, "acme", "a:owes-fetch"), (Stage.WRITE, "acme", "a:owes-write")]
    assert stalled.owed() == 2, "finished and buried calls are not owed"

    patient = CallStore(redis_client, stall_seconds=3600)
    patient.revive_stalled("acme", "a:owes-fetch")
    patient.revive_stalled("acme", "a:owes-write")
    assert sweep_once(patient, lambda *args: sent.append(args)) == 0, "a fresh deadline is not a stall"


def test_the_sweeper_thread_wakes_a_call_whose_message_was_lost(redis_client: Any) -> None:
    store = CallStore(redis_client, stall_seconds=-1)
    store.create("acme", "a:lost", {})
    sent: list[tuple[Stage, str, str]] = []
    import threading

    stop = threading.Event()
    start_sweeper(store, lambda *args: sent.append(args), 0.05, stop)
    try:
        wait_until(lambda: (Stage.FETCH, "acme", "a:lost") in sent, timeout=10, what="the sweeper to wake it")
    finally:
        stop.set()


def test_a_call_whose_message_waits_behind_a_backlog_is_not_sent_twice(redis_client: Any) -> None:
    import json
    import time

    from worker.pipeline.celery_app import SENT_AT_HEADER

    store = CallStore(redis_client, stall_seconds=-1)
    store.create("acme", "a:queued", {})
    sent: list[tuple[Stage, str, str]] = []

    def head_sent_at(seconds: float | None) -> None:
        redis_client.delete("callmatch")
        headers = {} if seconds is None else {SENT_AT_HEADER: seconds}
        redis_client.lpush("callmatch", json.dumps({"headers": headers, "body": ""}))

    head_sent_at(time.time() - 600)  # the oldest waiting message is older than the call's last progress
    assert sweep_once(store, lambda *args: sent.append(args)) == 0 and sent == []
    head_sent_at(None)  # a message of unknown age: nothing is decided this round
    assert sweep_once(store, lambda *args: sent.append(args)) == 0
    head_sent_at(time.time() + 600)  # everything sent before that has been taken: the call's message is gone
    assert sweep_once(store, lambda *args: sent.append(args)) == 1 and sent == [
        (Stage.FETCH, "acme", "a:queued")
    ]
