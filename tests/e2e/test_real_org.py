"""End to end on the plainest real Salesforce org: a customer's first day.

No optional feature, no custom field: the first call becomes a dead letter that names
the missing field and the fix; `callmatch doctor` says why the tenant cannot run;
`callmatch setup` creates the field and its field-level security; the dead letter is
replayed and W1 holds (one Task per call, however often it is written again).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, running_stack
from tests.emulators.salesforce.profile import OrgProfile
from worker.pipeline.store import CallStatus


@pytest.fixture(scope="module")
def plain(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("e2e-plain")
    with running_stack(redis_url.rsplit("/", 1)[0] + "/8", directory, profile=OrgProfile.plain()) as stack:
        yield stack


def test_first_call_on_a_plain_org_is_kept_until_setup_then_written_once(plain: Stack) -> None:
    assert plain.post_aircall(9101, "jane@acme.com", "+33 6 12 34 56 78").status_code == 200
    record = plain.wait_status("aircall:9101", CallStatus.DEAD)
    assert record.error is not None and record.error["stage"] == "write"
    assert "Callmatch_Call_Id__c" in record.error["reason"]
    assert "callmatch setup --tenant acme" in record.error["reason"]
    assert not plain.emulator.org.live("Task"), "no half-written activity"

    doctor = plain.callmatch("doctor", "--tenant", "acme")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    failing = [line for line in doctor.stdout.splitlines() if line.startswith("fail")]
    assert any("Callmatch_Call_Id__c" in line for line in failing), doctor.stdout

    dry = plain.callmatch("setup", "--tenant", "acme", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "manual" in dry.stdout and plain.emulator.org.effective_profile() == OrgProfile.plain()

    setup = plain.callmatch("setup", "--tenant", "acme")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "created" in setup.stdout
    again = plain.callmatch("setup", "--tenant", "acme")
    assert again.returncode == 0 and "created" not in again.stdout and "present" in again.stdout

    healthy = plain.callmatch("doctor", "--tenant", "acme")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr

    replay = plain.callmatch("dead-letters", "replay", "aircall:9101")
    assert replay.returncode == 0 and "replayed aircall:9101" in replay.stdout
    written = plain.wait_status("aircall:9101", CallStatus.WRITTEN)
    tasks = plain.tasks_for("aircall:9101")
    assert len(tasks) == 1
    # Without Shared Activities the first contact is the WhoId and no relation rows exist.
    assert tasks[0]["WhoId"] == "003C1"
    assert written.decision is not None and tasks[0]["WhatId"] == written.decision["opportunity_id"]

    refreshed = plain.callmatch("refresh", "aircall:9101", "--tenant", "acme")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    plain.wait_status("aircall:9101", CallStatus.WRITTEN)
    assert len(plain.tasks_for("aircall:9101")) == 1
