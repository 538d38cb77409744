"""Call records, dead letters and the refresh schedule, in a real Redis."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from worker.pipeline.store import CallStatus, CallStore, RecordNotFoundError, Stage

T0 = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)


@pytest.fixture()
def store(redis_client) -> CallStore:
    return CallStore(redis_client, clock=lambda: T0)


def test_create_is_idempotent_on_the_call_id(store: CallStore) -> None:
    _, created = store.create("acme", "zoom:1", {"n": 1})
    again, created_again = store.create("acme", "zoom:1", {"n": 2})
    assert created and not created_again
    assert again.event == {"n": 1}
    assert store.get("other", "zoom:1") is None


def test_concurrent_updates_lose_nothing(store: CallStore) -> None:
    store.create("acme", "zoom:1", {})

    def bump() -> None:
        for _ in range(25):
            store.count_attempt("acme", "zoom:1", Stage.WRITE)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.require("acme", "zoom:1").attempts["write"] == 100


def test_update_of_unknown_record_fails_clearly(store: CallStore) -> None:
    with pytest.raises(RecordNotFoundError, match="no call 'x' for tenant 'acme'"):
        store.update("acme", "x", lambda r: None)


def test_dead_letters_are_listable_and_replayable(store: CallStore) -> None:
    store.create("acme", "zoom:1", {})
    store.create("beta", "aircall:2", {})
    store.count_attempt("acme", "zoom:1", Stage.WRITE)
    letter = store.bury("acme", "zoom:1", Stage.WRITE, "salesforce: FIELD_INTEGRITY_EXCEPTION", "fatal")
    store.bury("beta", "aircall:2", Stage.ASSOCIATE, "hubspot: 503", "retry")
    assert letter.attempts == 1
    assert store.require("acme", "zoom:1").status is CallStatus.DEAD
    assert [d.call_id for d in store.dead_letters()] == ["zoom:1", "aircall:2"]
    assert [d.call_id for d in store.dead_letters(tenant="beta")] == ["aircall:2"]
    revived = store.revive("acme", "zoom:1")
    store.forget("acme", "zoom:1")
    assert revived is not None and revived.stage == "associate"  # no decision yet to write
    assert store.dead_count() == 1
    record = store.require("acme", "zoom:1")
    # a write that has no decision to write owes the associate stage first
    assert record.status is CallStatus.FETCHED and record.error is None and "write" not in record.attempts
    assert record.next_stage == "associate"
    assert store.revive("acme", "zoom:1") is None


def test_refresh_schedule(store: CallStore) -> None:
    store.schedule_refresh("acme", "zoom:1", T0 + dt.timedelta(hours=1))
    store.schedule_refresh("acme", "zoom:2", T0 + dt.timedelta(days=1))
    assert store.due_refreshes(T0) == []
    assert store.due_refreshes(T0 + dt.timedelta(hours=2)) == [("acme", "zoom:1")]
    store.unschedule_refresh("acme", "zoom:1")
    assert store.scheduled_refreshes() == 1
