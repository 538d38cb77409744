"""End to end, the ways a call used to get lost, made to happen for real.

A redis-server with its append-only file fsynced on every write (so SIGKILL loses
nothing it acknowledged), the receiver, real Celery workers and beat, the
Salesforce emulator. Workers and Redis are SIGKILLed at precise points by hooks in
the emulator (which stands for Salesforce, so a hook there is "the CRM got the
request"); every wait is a condition with a deadline.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.stack import BIN, ROOT, TENANT, RedisProcess, Stack, running_stack
from worker.pipeline.celery_app import create_celery
from worker.pipeline.store import CallStatus
from worker.pipeline.tasks import FETCH_TASK


@pytest.fixture(scope="module")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis-aof")).start()
    yield server
    server.stop()


@pytest.fixture()
def stack(redis_process: RedisProcess, tmp_path: Path) -> Iterator[Stack]:
    if redis_process.proc is None or redis_process.proc.poll() is not None:
        redis_process.start()
    with running_stack(redis_process.url(), tmp_path) as stack:
        stack.start_beat()  # beat's sweep is part of the system: it is what wakes a call whose message was lost
        yield stack


def _on_task_insert(stack: Stack, hook: Callable[[], None], *, before: bool) -> None:
    """Run `hook` once, when Salesforce receives the Task insert: before or after it performs it."""
    org = stack.emulator.org
    original = org.insert
    fired = threading.Event()

    def insert(object_name: str, values: dict[str, Any], **options: Any) -> str:
        if object_name != "Task" or fired.is_set():
            return original(object_name, values, **options)
        fired.set()
        if before:
            hook()
            return original(object_name, values, **options)
        record_id = original(object_name, values, **options)
        hook()
        return record_id

    org.insert = insert  # type: ignore[method-assign]  # the emulator's hook point, not our code


def _killer(redis_process: RedisProcess) -> tuple[Callable[[], None], threading.Event]:
    """A hook that SIGKILLs Redis and starts it again a second later; the event is set once it answers."""
    restarted = threading.Event()

    def kill_redis() -> None:
        redis_process.kill()

        def restart() -> None:
            redis_process.start()
            restarted.set()

        threading.Timer(1.0, restart).start()

    return kill_redis, restarted


@pytest.mark.parametrize("moment", ["during", "right_after"])
def test_a_worker_killed_during_or_right_after_the_write_leaves_exactly_one_activity(
    stack: Stack, moment: str
) -> None:
    call_id = "aircall:9101" if moment == "during" else "aircall:9102"
    _on_task_insert(stack, stack.kill_worker, before=moment == "during")
    assert (
        stack.post_aircall(int(call_id.split(":")[1]), "jane@acme.com", "+33 6 12 34 56 78").status_code
        == 200
    )
    wait_until(
        lambda: stack.worker.poll() is not None, timeout=60, what="the worker to be killed at the write"
    )
    wait_until(
        lambda: len(stack.tasks_for(call_id)) == 1,
        timeout=10,
        what="Salesforce to perform the write the killed worker sent",
    )
    record = stack.record(call_id)
    assert record is not None and record.status is not CallStatus.WRITTEN and record.next_stage == "write"
    stack.start_worker()
    record = stack.wait_status(call_id, CallStatus.WRITTEN)
    assert record.attempts["write"] >= 2
    assert len(stack.tasks_for(call_id)) == 1


def test_redis_killed_and_restarted_mid_stage_loses_nothing(
    stack: Stack, redis_process: RedisProcess
) -> None:
    kill_redis, restarted = _killer(redis_process)
    _on_task_insert(stack, kill_redis, before=False)
    assert stack.post_aircall(9103, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
    wait_until(restarted.is_set, timeout=60, what="Redis to be killed at the write and restarted")
    record = stack.wait_status("aircall:9103", CallStatus.WRITTEN, timeout=90)
    assert record.decision is not None and record.decision["opportunity_id"] == "006O1"
    assert len(stack.tasks_for("aircall:9103")) == 1
    assert stack.worker.poll() is None, "the worker reconnected and carried on"


class _RuleThatKillsRedis(dict[str, str]):
    """Salesforce's validation rules, whose first look kills Redis: the fatal error then meets no Redis."""

    def __init__(self, rules: dict[str, str], hook: Callable[[], None]):
        super().__init__(rules)
        self.hook: Callable[[], None] | None = hook

    def get(self, key: str, default: Any = None) -> Any:
        if key == "Task" and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return super().get(key, default)


def test_a_dead_letter_that_cannot_be_recorded_while_redis_is_down_is_recorded_once_it_is_back(
    stack: Stack, redis_process: RedisProcess
) -> None:
    kill_redis, restarted = _killer(redis_process)
    stack.emulator.validation_rules = _RuleThatKillsRedis(
        {"Task": "Calls must have a Subject approved by RevOps"}, kill_redis
    )
    assert stack.post_aircall(9104, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
    wait_until(restarted.is_set, timeout=60, what="Redis to be killed at the write and restarted")
    record = stack.wait_status("aircall:9104", CallStatus.DEAD, timeout=90)
    assert record.error is not None and "FIELD_CUSTOM_VALIDATION_EXCEPTION" in record.error["reason"]
    assert [d.call_id for d in stack.store.dead_letters()] == ["aircall:9104"]
    assert stack.tasks_for("aircall:9104") == []


def test_a_message_lost_with_its_worker_costs_a_delay_not_the_call(stack: Stack) -> None:
    stack.kill_worker()
    assert stack.post_aircall(9105, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
    assert stack.redis.delete("callmatch") == 1, "the only message of the call is gone"
    stack.start_worker()
    record = stack.wait_status("aircall:9105", CallStatus.WRITTEN, timeout=90)
    assert record.attempts == {"fetch": 1, "associate": 1, "write": 1}
    assert len(stack.tasks_for("aircall:9105")) == 1
    assert stack.store.owed() == 0


def test_stage_retries_then_succeeds_and_gives_up_into_a_replayable_dead_letter(stack: Stack) -> None:
    stack.emulator.inject("status", times=6, status=503)  # more than one attempt's own retries
    assert stack.post_aircall(9106, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
    record = stack.wait_status("aircall:9106", CallStatus.WRITTEN, timeout=90)
    assert record.attempts["associate"] >= 2 and len(stack.tasks_for("aircall:9106")) == 1

    stack.emulator.inject("status", times=1000, status=503)
    try:
        assert stack.post_aircall(9107, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
        record = stack.wait_status("aircall:9107", CallStatus.DEAD, timeout=120)
    finally:
        stack.emulator.faults.clear()
    assert record.error is not None and record.error["stage"] == "associate"
    assert record.error["reason"].startswith("gave up after 3 attempts")
    replay = stack.callmatch("dead-letters", "replay", "aircall:9107")
    assert replay.returncode == 0, replay.stderr
    stack.wait_status("aircall:9107", CallStatus.WRITTEN)
    assert len(stack.tasks_for("aircall:9107")) == 1 and stack.store.dead_letters() == []


def test_a_rate_limited_stage_waits_and_then_succeeds(stack: Stack) -> None:
    stack.emulator.inject("limit_daily", times=1)  # the client never waits out a daily limit itself
    assert stack.post_aircall(9108, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
    record = stack.wait_status("aircall:9108", CallStatus.WRITTEN, timeout=90)
    assert record.attempts["associate"] >= 2
    log = (stack.log_dir / "worker.log").read_text()
    assert '"action": "rate_limited"' in log and "REQUEST_LIMIT_EXCEEDED" in log
    assert len(stack.tasks_for("aircall:9108")) == 1


def test_a_task_whose_record_is_missing_ends_as_a_listed_dead_letter(stack: Stack) -> None:
    create_celery(stack.env["CALLMATCH_REDIS_URL"]).send_task(FETCH_TASK, args=[TENANT, "aircall:ghost"])
    wait_until(lambda: stack.store.dead_count() == 1, timeout=60, what="the orphan task's dead letter")
    [letter] = stack.store.dead_letters()
    assert letter.call_id == "aircall:ghost" and "no record" in letter.reason
    assert "aircall:ghost" in stack.callmatch("dead-letters", "list").stdout


def _add_tenant(stack: Stack, name: str) -> None:
    path = Path(stack.env["CALLMATCH_TENANTS"])
    text = path.read_text()
    block = text[text.index(f"  {TENANT}:\n") :].replace(f"  {TENANT}:\n", f"  {name}:\n", 1)
    path.write_text(text + block)


def test_a_worker_started_before_a_tenant_was_added_picks_it_up(stack: Stack) -> None:
    _add_tenant(stack, "beta")
    document_call = 9109
    import httpx

    from tests.e2e.stack import aircall_document

    response = httpx.post(
        f"{stack.api_url}/webhooks/beta/aircall",
        json=aircall_document(document_call, "jane@acme.com", "+33 6 12 34 56 78"),
        timeout=10,
    )
    assert response.status_code == 200 and response.json()["accepted"] == ["aircall:9109"]

    def written() -> bool:
        record = stack.store.get("beta", "aircall:9109")
        return record is not None and record.status is CallStatus.WRITTEN

    wait_until(written, timeout=60, what=f"the new tenant's call to be written; see {stack.log_dir}")


def test_a_call_for_a_tenant_no_worker_knows_is_a_dead_letter_replayable_once_configured(
    stack: Stack,
) -> None:
    from worker.ingest.events import CallEvent

    event = {
        "version": 1,
        "tenant": "gamma",
        "provider": "aircall",
        "call_id": "aircall:9110",
        "event_id": "call.ended:9110",
        "kind": "call",
        "received_at": "2026-03-10T10:00:00Z",
        "started_at": "2026-03-10T09:30:00Z",
        "ended_at": "2026-03-10T09:52:00Z",
        "direction": "outbound",
        "organizer": {"email": "rep@ourco.com", "phone": None, "name": "Rep One"},
        "participants": [{"email": "jane@acme.com", "phone": "+33 6 12 34 56 78", "name": None}],
        "complete": True,
    }
    assert CallEvent.from_json(event).call_id == "aircall:9110"
    create_celery(stack.env["CALLMATCH_REDIS_URL"]).send_task(
        "callmatch.process_call", args=[event], ignore_result=True
    )

    def buried() -> bool:
        record = stack.store.get("gamma", "aircall:9110")
        return record is not None and record.status is CallStatus.DEAD

    wait_until(buried, timeout=60, what="the unknown tenant's call to become a dead letter")
    [letter] = stack.store.dead_letters(tenant="gamma")
    assert letter.stage == "fetch" and "unknown tenant" in letter.reason
    _add_tenant(stack, "gamma")
    replay = stack.callmatch("dead-letters", "replay", "--all")
    assert replay.returncode == 0 and "aircall:9110" in replay.stdout, replay.stderr

    def written() -> bool:
        record = stack.store.get("gamma", "aircall:9110")
        return record is not None and record.status is CallStatus.WRITTEN

    wait_until(written, timeout=60, what="the replayed call to be written")
    assert stack.store.dead_letters() == []


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_worker_and_beat_refuse_a_bad_tenants_file_with_one_line(
    stack: Stack, tmp_path: Path, role: str
) -> None:
    bad = tmp_path / "bad-tenants.yaml"
    bad.write_text(
        Path(stack.env["CALLMATCH_TENANTS"]).read_text().replace("kind: salesforce", "kind: dynamics")
    )
    argv = [str(BIN / "celery"), "-A", "worker.pipeline.tasks:app", role, "--loglevel", "INFO"]
    if role == "worker":
        argv += ["-Q", "callmatch", "-c", "1"]
    proc = subprocess.run(
        argv,
        env={**stack.env, "CALLMATCH_TENANTS": str(bad)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"callmatch {role}:")]
    assert (
        len(lines) == 1 and str(bad) in lines[0] and f"tenant {TENANT}" in lines[0] and "crm.kind" in lines[0]
    )


def test_a_2xx_survives_redis_being_killed_right_after_it(stack: Stack, redis_process: RedisProcess) -> None:
    import httpx

    assert httpx.get(f"{stack.api_url}/readyz", timeout=5).json()["durability"] == "fsync-always"
    stack.kill_worker()
    assert stack.post_aircall(9111, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
    redis_process.kill()
    redis_process.start()
    record = stack.record("aircall:9111")
    assert record is not None and record.next_stage == "fetch", "the acknowledged call is still kept"
    stack.start_worker()
    stack.wait_status("aircall:9111", CallStatus.WRITTEN, timeout=60)
    assert len(stack.tasks_for("aircall:9111")) == 1
