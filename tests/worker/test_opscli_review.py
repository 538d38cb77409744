"""`callmatch review list/choose`, `preferences list/forget` and `override --remove-*`, run as the console script.

Two tenants (`acme`, `beta`) on the scenario CRM of test_service_review, abstaining on
ambiguity; the calls are decided in this process, the commands read the same Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.worker.test_opscli import queued_tasks
from tests.worker.test_service_review import JANE, MAX, PAUL, decided, world_pipeline, write_world
from worker.pipeline.service import Pipeline
from worker.pipeline.tasks import REFRESH_TASK

CALLMATCH = str(Path(sys.executable).parent / "callmatch")
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture()
def tenants_path(tmp_path: Path) -> Path:
    return write_world(tmp_path)


@pytest.fixture()
def cli(redis_url: str, redis_client: Any, tenants_path: Path) -> Run:
    env = {
        **os.environ,
        "CALLMATCH_REDIS_URL": redis_url,
        "CALLMATCH_TENANTS": str(tenants_path),
        "USER": "ops-person",
        "CALLMATCH_NOW": "2026-03-10T10:00:00Z",  # the commands' "now", as the in-process pipeline's
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CALLMATCH, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    return run


@pytest.fixture()
def waiting(redis_client: Any, tenants_path: Path) -> Pipeline:
    """Two ambiguous calls, one per tenant, and one that is not."""
    pipeline = world_pipeline(redis_client, tenants_path)
    decided(pipeline, "aircall:1", JANE, PAUL)
    decided(pipeline, "aircall:2", MAX, tenant="beta")
    decided(pipeline, "aircall:3", PAUL)
    return pipeline


def refused(proc: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2 and exactly one line on standard error, nothing on standard output."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr == message + "\n"
    assert proc.stdout == ""


def test_review_list_text_json_and_by_tenant(cli: Run, waiting: Pipeline) -> None:
    proc = cli("review", "list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "2 call(s) waiting for review"
    assert "  acme  aircall:1  contacts C1, C2  account A1" in proc.stdout
    assert "  beta  aircall:2  contacts C3  account -" in proc.stdout
    assert (
        "    candidates: opportunity O1 (tied under S1 (account A1)); opportunity O2 (tied under S1 (account A2))"
        in lines
    )
    assert "aircall:3" not in proc.stdout

    only_acme = json.loads(cli("review", "list", "--tenant", "acme", "--json").stdout)
    assert [(i["tenant"], i["call_id"]) for i in only_acme] == [("acme", "aircall:1")]
    assert [(c["type"], c["id"]) for c in only_acme[0]["candidates"]] == [
        ("opportunity", "O1"),
        ("opportunity", "O2"),
    ]
    assert only_acme[0]["contact_ids"] == ["C1", "C2"] and only_acme[0]["account_id"] == "A1"
    refused(cli("review", "list", "--tenant", "nope"), "callmatch review: unknown tenant 'nope'")


def test_review_choose_applies_the_choice_and_enqueues_the_refresh(
    cli: Run, waiting: Pipeline, redis_client: Any
) -> None:
    proc = cli("review", "choose", "aircall:1", "--opportunity", "O2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("chose O2 for aircall:1 (locked opportunity); refresh and write-back enqueued\n")
    assert queued_tasks(redis_client) == [REFRESH_TASK]
    record = waiting.store.require("acme", "aircall:1")
    assert record.overrides == {"opportunity_id": "O2"}
    assert [(c["how"], c["by"]) for c in record.changes] == [("review", "ops-person")], (
        "--by defaults to $USER"
    )
    assert {p.contact_id: p.set_by for p in waiting.preferences.listing("acme")} == {
        "C1": "ops-person",
        "C2": "ops-person",
    }
    account = cli("review", "choose", "aircall:2", "--account", "A2", "--by", "ann", "--tenant", "beta")
    assert account.returncode == 0, account.stderr
    assert [(p.contact_id, p.account_id, p.set_by) for p in waiting.preferences.listing("beta")] == [
        ("C3", "A2", "ann")
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("aircall:1", "--opportunity", "O9"),
            "callmatch review: opportunity O9 is not one of the call's candidates"
            " (opportunity O1, opportunity O2); use override",
        ),
        (
            ("aircall:1", "--account", "A2"),
            "callmatch review: account A2 is not one of the call's candidates"
            " (opportunity O1, opportunity O2); use override",
        ),
        (("aircall:1",), "callmatch review: review choose: give one of --opportunity or --account"),
        (
            ("aircall:1", "--opportunity", "O1", "--account", "A1"),
            "callmatch review: review choose: give one of --opportunity or --account",
        ),
        (
            ("aircall:3", "--opportunity", "O1"),
            "callmatch review: call aircall:3 is not waiting for review (it has no candidates); use override",
        ),
        (
            ("aircall:404", "--opportunity", "O1"),
            "callmatch review: no tenant has a call 'aircall:404'; name its tenant (--tenant)",
        ),
        (
            ("aircall:1", "--opportunity", "O1", "--tenant", "beta"),
            "callmatch review: no call 'aircall:1' for tenant 'beta'",
        ),
    ],
)
def test_review_choose_refusals(
    cli: Run, waiting: Pipeline, redis_client: Any, args: tuple[str, ...], message: str
) -> None:
    refused(cli("review", "choose", *args), message)
    assert queued_tasks(redis_client) == []
    assert waiting.preferences.listing("acme") == []
    assert waiting.store.require("acme", "aircall:1").changes == []


def test_review_needs_an_action(cli: Run) -> None:
    proc = cli("review")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_preferences_list_and_forget(cli: Run, waiting: Pipeline) -> None:
    waiting.override("acme", "aircall:1", opportunity_id="O1", by="ann")
    listing = cli("preferences", "list", "--tenant", "acme")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines() == [
        "C1  account -  opportunity O1  set 2026-03-10T10:00:00Z by ann (call aircall:1)",
        "C2  account -  opportunity O1  set 2026-03-10T10:00:00Z by ann (call aircall:1)",
        "2 preference(s)",
    ]
    as_json = json.loads(cli("preferences", "list", "--tenant", "acme", "--contact", "C2", "--json").stdout)
    assert as_json == [
        {
            "tenant": "acme",
            "contact_id": "C2",
            "account_id": None,
            "opportunity_id": "O1",
            "set_at": "2026-03-10T10:00:00Z",
            "set_by": "ann",
            "call_id": "aircall:1",
        }
    ]
    assert cli("preferences", "list", "--tenant", "beta").stdout == "0 preference(s)\n"

    refused(
        cli("preferences", "list"), "callmatch preferences: name a tenant (one of: acme, beta) (--tenant)"
    )
    refused(cli("preferences", "list", "--tenant", "nope"), "callmatch preferences: unknown tenant 'nope'")
    refused(
        cli("preferences", "forget", "--tenant", "acme"),
        "callmatch preferences: preferences forget: name contacts with --contact or use --all",
    )
    refused(
        cli("preferences", "forget", "--tenant", "acme", "--contact", "C1", "--all"),
        "callmatch preferences: preferences forget: give --contact or --all, not both",
    )
    assert len(waiting.preferences.listing("acme")) == 2, "nothing forgotten by a refused command"

    some = cli("preferences", "forget", "--tenant", "acme", "--contact", "C1", "--contact", "C9")
    assert (some.returncode, some.stdout) == (0, "1 preference(s) forgotten\n")
    assert [p.contact_id for p in waiting.preferences.listing("acme")] == ["C2"]
    everything = cli("preferences", "forget", "--tenant", "acme", "--all")
    assert (everything.returncode, everything.stdout) == (0, "1 preference(s) forgotten\n")
    assert cli("preferences", "list", "--tenant", "acme").stdout == "0 preference(s)\n"


def test_override_remove_and_explain(cli: Run, waiting: Pipeline, redis_client: Any) -> None:
    proc = cli(
        "override",
        "aircall:1",
        "--remove-contact",
        "C2",
        "--remove-opportunity",
        "O2",
        "--remove-account",
        "A2",
        "--by",
        "bob",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "locked -; removed contact C2, account A2, opportunity O2 on aircall:1; refresh and write-back enqueued\n"
    )
    assert queued_tasks(redis_client) == [REFRESH_TASK]
    record = waiting.store.require("acme", "aircall:1")
    assert [(r["type"], r["id"], r["by"]) for r in record.removed] == [
        ("contact", "C2", "bob"),
        ("account", "A2", "bob"),
        ("opportunity", "O2", "bob"),
    ]
    refused(
        cli("override", "aircall:1", "--opportunity", "O1", "--remove-opportunity", "O1"),
        "callmatch override: opportunity O1 is both set and removed",
    )
    explained = cli("explain", "aircall:1")
    assert explained.returncode == 0, explained.stderr
    assert (
        "  removed by a person: contact C2 (bob, 2026-03-10T10:00:00Z), account A2 (bob, 2026-03-10T10:00:00Z),"
        " opportunity O2 (bob, 2026-03-10T10:00:00Z)"
    ) in explained.stdout.splitlines()
    assert (
        "  override by bob at 2026-03-10T10:00:00Z: removed contact C2, account A2, opportunity O2"
        in explained.stdout.splitlines()
    )
    as_json = json.loads(cli("explain", "aircall:1", "--json").stdout)
    assert as_json["removed"][0] == {"type": "contact", "id": "C2", "by": "bob", "at": "2026-03-10T10:00:00Z"}
    assert as_json["changes"][0]["removed"][2] == {"type": "opportunity", "id": "O2"}
