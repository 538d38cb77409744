"""End to end with batching: a burst of one tenant's calls is associated and written in batches.

Real processes (receiver, a prefork Celery worker running celery-batches), a real
redis-server and simple-salesforce against the Salesforce emulator. The same 20
calls' worth of traffic is measured one call at a time (CALLMATCH_BATCH_SIZE=1, the
per-call tasks) and batched; a record the CRM refuses is that call's dead letter alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.crm.salesforce.mapping import SalesforceSettings
from tests.conftest import wait_until
from tests.e2e.stack import BIN, Stack, running_stack
from tests.emulators.salesforce.server import RecordRule
from worker.dev.devstack import worker_command
from worker.pipeline.store import CallStatus

BURST = 20
PEOPLE = [("jane@acme.com", "+33 6 12 34 56 78"), ("kim@contoso.com", "+33 6 99 88 77 66")]


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("e2e-batching")
    env = {"CALLMATCH_BATCH_SIZE": str(BURST), "CALLMATCH_BATCH_WAIT_SECONDS": "1.0"}
    with running_stack(redis_url.rsplit("/", 1)[0] + "/8", directory, extra_env=env) as stack:
        yield stack


def _restart_worker(stack: Stack, batch_size: int) -> None:
    stack.kill_worker()
    env = {"CALLMATCH_BATCH_SIZE": str(batch_size)}
    stack.workers.append(stack._spawn(worker_command(BIN, concurrency=1), "worker.log", env))


def _burst(stack: Stack, first: int) -> list[str]:
    """BURST calls posted at once; the emulator's requests until every one is written."""
    ids = []
    for n in range(first, first + BURST):
        email, phone = PEOPLE[n % 2]
        response = stack.post_aircall(n, email, phone)
        assert response.status_code == 200
        ids.append(f"aircall:{n}")
    return ids


def _all_settled(stack: Stack, ids: list[str], timeout: float = 30) -> None:
    def settled() -> bool:
        records = [stack.record(i) for i in ids]
        return all(r is not None and r.status in (CallStatus.WRITTEN, CallStatus.DEAD) for r in records)

    wait_until(settled, timeout=timeout, interval=0.1, what=f"{len(ids)} calls written; see {stack.log_dir}")


def test_a_burst_is_written_once_per_call_for_fewer_requests_than_one_by_one(stack: Stack) -> None:
    _restart_worker(stack, 1)  # today's path: one call at a time
    before = stack.emulator.stats.requests
    alone = _burst(stack, 15000)
    _all_settled(stack, alone)
    one_by_one = stack.emulator.stats.requests - before

    _restart_worker(stack, BURST)
    before = stack.emulator.stats.requests
    batched = _burst(stack, 15100)
    _all_settled(stack, batched)
    in_batches = stack.emulator.stats.requests - before

    for call_id in alone + batched:
        record = stack.record(call_id)
        assert record is not None and record.status is CallStatus.WRITTEN, call_id
        assert len(stack.tasks_for(call_id)) == 1, call_id

    def decisions(ids: list[str]) -> list[Any]:
        return [
            ((d := stack.store.require("acme", c).decision or {}).get("case"), d.get("opportunity_id"))
            for c in ids
        ]

    assert decisions(batched) == decisions(alone)
    assert in_batches < one_by_one, (in_batches, one_by_one)
    print(f"\n{BURST} calls: {one_by_one} CRM requests one by one, {in_batches} in batches")


def test_a_record_the_crm_refuses_is_that_calls_dead_letter_while_the_others_land(stack: Stack) -> None:
    if not any(w.poll() is None for w in stack.workers):
        _restart_worker(stack, BURST)
    # The org's validation rule refuses the Task of one call, every time (Salesforce checks each record).
    field = SalesforceSettings().external_id_field
    rule = RecordRule("Task", field, "aircall:15205", "Calls need a RevOps subject")
    stack.emulator.record_rules.append(rule)
    try:
        ids = _burst(stack, 15200)
        _all_settled(stack, ids)
    finally:
        stack.emulator.record_rules.remove(rule)
    refused = stack.record("aircall:15205")
    assert refused is not None and refused.status is CallStatus.DEAD
    assert refused.error is not None and "FIELD_CUSTOM_VALIDATION_EXCEPTION" in refused.error["reason"]
    assert stack.tasks_for("aircall:15205") == []
    assert [d.call_id for d in stack.store.dead_letters()] == ["aircall:15205"]
    for call_id in ids:
        if call_id != "aircall:15205":
            assert stack.record(call_id).status is CallStatus.WRITTEN, call_id  # type: ignore[union-attr]
            assert len(stack.tasks_for(call_id)) == 1, call_id
