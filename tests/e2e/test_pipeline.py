"""End to end: signed webhook -> receiver -> Redis -> a real Celery worker -> the Salesforce emulator.

Real processes (the receiver under uvicorn, a prefork Celery worker), a real
redis-server, and simple-salesforce talking HTTPS to the emulator. Every wait is a
condition with a deadline.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import wait_until
from tests.e2e.stack import Stack, running_stack
from worker.pipeline.store import CallStatus


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("e2e")
    with running_stack(redis_url.rsplit("/", 1)[0] + "/7", directory) as stack:
        yield stack


def test_a_signed_webhook_becomes_exactly_one_crm_activity(stack: Stack) -> None:
    response = stack.post_aircall(9001, "jane@acme.com", "+33 6 12 34 56 78")
    assert response.status_code == 200 and response.json()["accepted"] == ["aircall:9001"]
    record = stack.wait_status("aircall:9001", CallStatus.WRITTEN)
    assert record.decision is not None and record.decision["opportunity_id"] == "006O1"
    tasks = stack.tasks_for("aircall:9001")
    assert len(tasks) == 1
    assert (tasks[0]["WhoId"], tasks[0]["WhatId"], tasks[0]["TaskSubtype"]) == ("003C1", "006O1", "Call")
    again = stack.post_aircall(9001, "jane@acme.com", "+33 6 12 34 56 78")
    assert again.status_code == 200 and again.json()["duplicates"] == ["aircall:9001"]
    unsigned = httpx.post(
        f"{stack.api_url}/webhooks/acme/aircall", json={"token": "wrong", "event": "call.ended"}, timeout=10
    )
    assert unsigned.status_code == 401
    assert len(stack.tasks_for("aircall:9001")) == 1


def test_worker_killed_mid_task_still_yields_exactly_one_activity(stack: Stack) -> None:
    stack.emulator.latency = 1.5
    try:
        assert stack.post_aircall(9002, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200

        def associating() -> bool:
            record = stack.record("aircall:9002")
            return record is not None and record.attempts.get("associate", 0) >= 1

        wait_until(associating, timeout=30, what="the worker to start associating aircall:9002")
        stack.kill_worker()
    finally:
        stack.emulator.latency = 0.0
    assert stack.record("aircall:9002").status is not CallStatus.WRITTEN  # type: ignore[union-attr]
    stack.start_worker()
    record = stack.wait_status("aircall:9002", CallStatus.WRITTEN)
    assert record.attempts["associate"] >= 2
    assert len(stack.tasks_for("aircall:9002")) == 1


def test_refresh_after_an_opportunity_is_created_links_it(stack: Stack) -> None:
    assert stack.post_aircall(9003, "kim@contoso.com", "+33 6 99 88 77 66").status_code == 200
    record = stack.wait_status("aircall:9003", CallStatus.WRITTEN)
    assert record.decision is not None and record.decision["opportunity_id"] is None
    assert record.decision["account_id"] == "001A2"
    scheduled = stack.redis.zscore("callmatch:refresh", json.dumps(["acme", "aircall:9003"]))
    assert scheduled is None, "R5: the call is months old, its created_after_days window has closed"
    new_id = stack.emulator.org.insert(
        "Opportunity",
        {
            "Name": "Contoso expansion",
            "AccountId": "001A2",
            "OwnerId": "005U1",
            "StageName": "Prospecting",
            "IsClosed": False,
            "IsWon": False,
            "CloseDate": "2026-05-31",
            "CreatedDate": "2026-03-12T08:00:00.000+0000",
            "LastModifiedDate": "2026-03-12T08:00:00.000+0000",
        },
    )
    proc = stack.callmatch("refresh", "aircall:9003")
    assert proc.returncode == 0, proc.stderr

    def linked() -> bool:
        current = stack.record("aircall:9003")
        return current is not None and current.refreshes >= 1 and current.status is CallStatus.WRITTEN

    wait_until(linked, timeout=60, what="the refresh of aircall:9003")
    wait_until(
        lambda: stack.tasks_for("aircall:9003")[0]["WhatId"] == new_id,
        timeout=30,
        what="the Task to point at the new opportunity",
    )
    refreshed = stack.record("aircall:9003")
    assert refreshed is not None and refreshed.decision is not None
    assert refreshed.decision["opportunity_id"] == new_id
    assert any(e["rule"] == "S1.2" for e in refreshed.decision["trace"])
    assert len(stack.tasks_for("aircall:9003")) == 1


def test_an_override_survives_refresh(stack: Stack) -> None:
    assert stack.post_aircall(9004, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
    stack.wait_status("aircall:9004", CallStatus.WRITTEN)
    assert stack.tasks_for("aircall:9004")[0]["WhatId"] == "006O1"
    assert stack.callmatch("override", "aircall:9004", "--opportunity", "006O9").returncode == 0
    wait_until(
        lambda: stack.tasks_for("aircall:9004")[0]["WhatId"] == "006O9",
        timeout=60,
        what="the override to be written",
    )
    before = stack.wait_status("aircall:9004", CallStatus.WRITTEN).refreshes
    assert stack.callmatch("refresh", "aircall:9004").returncode == 0

    def refreshed_again() -> bool:
        current = stack.record("aircall:9004")
        return (
            current is not None
            and current.refreshes > before
            and current.written_at is not None
            and current.decided_at is not None
            and current.written_at >= current.decided_at
        )

    wait_until(refreshed_again, timeout=60, what="the second refresh")
    record = stack.wait_status("aircall:9004", CallStatus.WRITTEN)
    assert record.decision is not None and record.decision["opportunity_id"] == "006O9"
    assert any(e["rule"] == "R4" for e in record.decision["trace"])
    tasks = stack.tasks_for("aircall:9004")
    assert len(tasks) == 1 and tasks[0]["WhatId"] == "006O9"


def test_a_fatal_crm_error_ends_as_a_dead_letter_and_replay_succeeds_once_cleared(stack: Stack) -> None:
    stack.emulator.validation_rules["Task"] = "Calls must have a Subject approved by RevOps"
    try:
        assert stack.post_aircall(9005, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
        record = stack.wait_status("aircall:9005", CallStatus.DEAD)
        assert record.error is not None and record.error["stage"] == "write"
        assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in record.error["reason"]
        listing = stack.callmatch("dead-letters", "list")
        assert "aircall:9005" in listing.stdout and "at write" in listing.stdout
        assert stack.tasks_for("aircall:9005") == []
    finally:
        stack.emulator.validation_rules.clear()
    replay = stack.callmatch("dead-letters", "replay", "aircall:9005")
    assert replay.returncode == 0 and "replayed aircall:9005" in replay.stdout
    stack.wait_status("aircall:9005", CallStatus.WRITTEN)
    assert len(stack.tasks_for("aircall:9005")) == 1
    assert "0 dead letter(s)" in stack.callmatch("dead-letters", "list").stdout


def test_beat_as_a_real_process_refreshes_calls_whose_next_look_is_due(stack: Stack) -> None:
    assert stack.post_aircall(9006, "kim@contoso.com", "+33 6 99 88 77 66").status_code == 200
    before = stack.wait_status("aircall:9006", CallStatus.WRITTEN).refreshes
    stack.store.schedule_refresh("acme", "aircall:9006", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    stack.start_beat({"CALLMATCH_REFRESH_INTERVAL_SECONDS": "1"})
    try:

        def refreshed() -> bool:
            current = stack.record("aircall:9006")
            return current is not None and current.refreshes > before and current.status is CallStatus.WRITTEN

        wait_until(
            refreshed, timeout=60, what=f"beat's refresh_due to refresh aircall:9006; see {stack.log_dir}"
        )
    finally:
        stack.stop_beat()
    assert stack.store.due_refreshes(dt.datetime(2026, 6, 1, tzinfo=dt.UTC)) == []
    assert len(stack.tasks_for("aircall:9006")) == 1
