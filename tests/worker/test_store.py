"""Call records, dead letters and the refresh schedule, in a real Redis."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import pytest

from worker.pipeline.store import (
    RECORD_TTL_SECONDS,
    CallRecord,
    CallStatus,
    CallStore,
    RecordNotFoundError,
    Stage,
    parse_cursor,
    record_key,
    status_key,
)

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


# per-tenant status sets (callmatch status, the calls gauge) ---------------------------------------


def counts(store: CallStore, tenant: str = "acme") -> dict[str, int]:
    return {status: n for status, n in store.status_counts(tenant).items() if n}


def test_each_call_sits_in_its_status_set_whichever_way_it_moves(store: CallStore) -> None:
    assert store.accept("seen:1", 60, "acme", "zoom:1", {}).value == "new"  # the receiver's way in
    store.create("acme", "zoom:2", {})  # the worker's way in (a record lost, made again)
    store.create("beta", "zoom:1", {})
    assert counts(store) == {"received": 2} and counts(store, "beta") == {"received": 1}

    def status(value: CallStatus) -> object:
        return lambda record: setattr(record, "status", value)

    store.update("acme", "zoom:1", status(CallStatus.DECIDED))  # type: ignore[arg-type]
    store.update("acme", "zoom:1", status(CallStatus.WRITTEN))  # type: ignore[arg-type]
    assert counts(store) == {"received": 1, "written": 1}
    store.bury("acme", "zoom:2", Stage.ASSOCIATE, "crm: 400", "fatal")
    assert counts(store) == {"written": 1, "dead": 1}
    store.revive("acme", "zoom:2")
    assert counts(store) == {"written": 1, "fetched": 1}
    assert store.rates("acme") == {"decided": [1, 1], "written": [1, 1]}
    assert store.rates("beta") == {"decided": [0, 0], "written": [0, 0]}


def test_records_kept_before_the_status_sets_are_put_in_them_once(store: CallStore, redis_client) -> None:
    for n in range(7):
        store.create("acme", f"zoom:{n}", {})
    store.bury("acme", "zoom:6", Stage.FETCH, "x", "fatal")
    # As an older version left them: records and index, no status set, no "indexed" mark.
    redis_client.delete(*redis_client.keys("callmatch:status:*"), "callmatch:status-index:ready")
    redis_client.delete("callmatch:call:acme:zoom:5")  # expired since
    assert store.index_statuses(batch=2) == 7
    assert counts(store) == {"received": 5, "dead": 1}
    assert store.index_statuses() == 0, "once only"


def test_an_entry_older_than_a_record_lives_is_not_counted(store: CallStore, redis_client) -> None:
    store.create("acme", "zoom:1", {})
    redis_client.zadd(status_key("acme", "received"), {"zoom:gone": time.time() - RECORD_TTL_SECONDS - 5})
    assert counts(store) == {"received": 1}


def test_the_index_newest_first_from_a_cursor(redis_client) -> None:
    times = iter([T0, T0, T0, T0 + dt.timedelta(seconds=1)])
    store = CallStore(redis_client, clock=lambda: next(times))
    for n in range(4):
        store.create("acme", f"zoom:{n}", {})
    rows = list(store.newest_first(batch=2))
    assert [(r.call_id, r.position) for r in rows] == [
        ("zoom:3", 1),
        ("zoom:2", 1),
        ("zoom:1", 2),
        ("zoom:0", 3),
    ]
    assert [r.call_id for r in store.newest_first(after=parse_cursor(rows[2].cursor))] == ["zoom:0"]
    assert [r.call_id for r in store.newest_first(after=parse_cursor(rows[0].cursor))] == [
        "zoom:2",
        "zoom:1",
        "zoom:0",
    ]
    assert [r.call_id for r in store.newest_first(until=T0.timestamp() + 1)] == ["zoom:2", "zoom:1", "zoom:0"]
    assert list(store.newest_first(since=T0.timestamp() + 2)) == []


def test_a_record_written_by_a_newer_version_is_read_and_written_back_whole(redis_client: Any) -> None:
    """Rolling upgrades: an older worker reads a record with keys it does not know and keeps them."""
    store = CallStore(redis_client)
    store.create("acme", "aircall:newer", {"call_id": "aircall:newer"})
    raw = json.loads(redis_client.get(record_key("acme", "aircall:newer")))
    raw["from_the_future"] = {"kept": True}
    redis_client.set(record_key("acme", "aircall:newer"), json.dumps(raw))

    def touch(r: CallRecord) -> None:
        r.refreshes += 1

    store.update("acme", "aircall:newer", touch)
    again = json.loads(redis_client.get(record_key("acme", "aircall:newer")))
    assert again["from_the_future"] == {"kept": True} and again["refreshes"] == 1
    assert "newer" not in again
