"""`override` checks its ids in the CRM before writing; `unlock` gives a field back to the rules.

The scenario CRM of test_service_review (jane C1 and paul C2 tie O1 and O2 under
`on_ambiguity: abstain`), through the real ports, Redis and the console script.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.worker.test_opscli import queued_tasks
from tests.worker.test_service_review import (
    AT,
    JANE,
    PAUL,
    Sent,
    decided,
    preferences,
    refreshed,
    world_pipeline,
    write_world,
)
from worker.config.tenants import load_tenants
from worker.core.port import CrmPort
from worker.ops import actions as ops
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline
from worker.pipeline.tasks import REFRESH_TASK

CALLMATCH = str(Path(sys.executable).parent / "callmatch")


@pytest.fixture()
def tenants_path(tmp_path: Path) -> Path:
    return write_world(tmp_path)


class Ports:
    """The tenant's real scenario ports, kept to read what each one was asked."""

    def __init__(self, factory: CrmFactory):
        self.factory = factory
        self.made: list[CrmPort] = []

    def __call__(self, tenant: Any) -> CrmPort:
        port = self.factory.crm_for(tenant)
        self.made.append(port)
        return port


@pytest.fixture()
def ports(redis_client: Any) -> Ports:
    return Ports(CrmFactory(redis_client))


@pytest.fixture()
def pipeline(redis_client: Any, tenants_path: Path, ports: Ports) -> Pipeline:
    base = world_pipeline(redis_client, tenants_path)
    return Pipeline(load_tenants(tenants_path, environ={}), base.store, ports)


def unchanged(pipeline: Pipeline, call_id: str, before: Any, sent: Sent) -> None:
    after = pipeline.store.require("acme", call_id)
    assert (after.locked, after.overrides, after.changes, after.removed) == (
        before.locked,
        before.overrides,
        before.changes,
        before.removed,
    )
    assert sent.tasks == [] and preferences(pipeline) == {}


def test_an_override_is_checked_in_the_crm_one_read_per_kind(pipeline: Pipeline, ports: Ports) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    ports.made.clear()
    sent = Sent()
    record = ops.override(
        pipeline,
        "aircall:1",
        account_id="A2",
        opportunity_id="O2",
        contact_ids=["C1", "C2"],
        by="ann",
        send=sent,
    )
    assert record.overrides == {"account_id": "A2", "opportunity_id": "O2", "contact_ids": ["C1", "C2"]}
    assert sent.tasks == [(REFRESH_TASK, ["acme", "aircall:1"])]
    (port,) = ports.made
    assert port.stats.by_method == {"accounts_by_ids": 1, "opportunities_by_ids": 1, "contacts_by_ids": 1}


@pytest.mark.parametrize(
    "change, message, field",
    [
        (
            {"opportunity_id": "O7"},
            "not found in tenant acme's CRM: opportunity O7; nothing was changed",
            "opportunity_id",
        ),
        (
            {"account_id": "A9", "contact_ids": ["C1", "C8", "C9"]},
            "not found in tenant acme's CRM: account A9, contact C8, contact C9; nothing was changed",
            "account_id",
        ),
        (
            {"contact_ids": ["O1"]},
            "not found in tenant acme's CRM: contact O1; nothing was changed",
            "contact_ids",
        ),
    ],
)
def test_an_unknown_id_is_refused_by_name_and_nothing_is_written(
    pipeline: Pipeline, change: dict[str, Any], message: str, field: str
) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    before = pipeline.store.require("acme", "aircall:1")
    sent = Sent()
    with pytest.raises(ops.OpsError) as refused:
        ops.override(pipeline, "aircall:1", by="ann", send=sent, **change)
    assert (str(refused.value), refused.value.field) == (message, field)
    unchanged(pipeline, "aircall:1", before, sent)


def test_a_removed_id_is_not_checked_so_a_deleted_record_can_still_be_unlinked(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    record = ops.override(pipeline, "aircall:1", remove=[("opportunity", "O-deleted")], send=Sent())
    assert [r["id"] for r in record.removed] == ["O-deleted"]


def test_override_of_an_unknown_call_never_asks_the_crm(pipeline: Pipeline, ports: Ports) -> None:
    with pytest.raises(LookupError, match="no call 'aircall:404'"):
        ops.override(pipeline, "aircall:404", tenant="acme", opportunity_id="O1", send=Sent())
    assert ports.made == []


# unlock ------------------------------------------------------------------------------------


def test_unlock_gives_the_field_back_to_the_rules_and_forgets_what_this_call_taught(
    pipeline: Pipeline,
) -> None:
    assert decided(pipeline, "aircall:1", JANE, PAUL)["case"] == "ambiguous"
    ops.override(pipeline, "aircall:1", opportunity_id="O1", contact_ids=["C1", "C2"], by="ann", send=Sent())
    assert refreshed(pipeline, "aircall:1")["opportunity_id"] == "O1"
    sent = Sent()
    record = ops.unlock(pipeline, "aircall:1", ["opportunity"], by="bob", send=sent)
    assert record.locked == ["contacts"] and record.overrides == {"contact_ids": ["C1", "C2"]}
    assert record.changes[-1] == {
        "how": "unlock",
        "by": "bob",
        "at": AT,
        "unlocked": ["opportunity"],
        "forgot_preferences": ["C1", "C2"],
    }
    assert record.next_stage == "associate" and sent.tasks == [(REFRESH_TASK, ["acme", "aircall:1"])]
    assert preferences(pipeline) == {}
    again = refreshed(pipeline, "aircall:1")
    assert (again["case"], again["opportunity_id"]) == ("ambiguous", None), "the rules decide again"


def test_unlock_keeps_a_preference_a_later_call_taught(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    ops.override(pipeline, "aircall:1", opportunity_id="O1", by="ann", send=Sent())
    decided(pipeline, "aircall:2", JANE)
    ops.override(pipeline, "aircall:2", opportunity_id="O2", by="bob", send=Sent())
    record = ops.unlock(pipeline, "aircall:1", ["opportunity"], send=Sent())
    assert record.changes[-1]["forgot_preferences"] == ["C2"]
    assert {c: p[1] for c, p in preferences(pipeline).items()} == {"C1": "O2"}


@pytest.mark.parametrize(
    "fields, message",
    [
        ([], "nothing to unlock: name fields among account, opportunity and contacts"),
        (["deal"], "cannot unlock 'deal': fields are account, opportunity and contacts"),
        (
            ["account", "opportunity"],
            "call aircall:1 has no lock on account (locked: opportunity); nothing was changed",
        ),
    ],
)
def test_unlock_refuses_what_is_not_locked(pipeline: Pipeline, fields: list[str], message: str) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    ops.override(pipeline, "aircall:1", opportunity_id="O1", by="ann", send=Sent())
    before = pipeline.store.require("acme", "aircall:1")
    sent = Sent()
    with pytest.raises(ops.OpsError, match=re.escape(message)) as refused:
        ops.unlock(pipeline, "aircall:1", fields, send=sent)
    assert refused.value.field == "fields"
    after = pipeline.store.require("acme", "aircall:1")
    assert (after.locked, after.changes, sent.tasks) == (before.locked, before.changes, [])
    assert len(preferences(pipeline)) == 2


def test_no_action_error_names_a_command_line_flag(pipeline: Pipeline) -> None:
    """The HTTP API answers with these messages: they name fields, never `--flags`."""
    decided(pipeline, "aircall:1", JANE, PAUL)
    decided(pipeline, "aircall:1", PAUL, tenant="beta")
    attempts = [
        lambda: ops.override(pipeline, "aircall:1", tenant="acme", send=Sent()),
        lambda: ops.override(pipeline, "aircall:1", send=Sent(), opportunity_id="O1"),
        lambda: ops.override(pipeline, "aircall:1", tenant="acme", opportunity_id="O7", send=Sent()),
        lambda: ops.override(pipeline, "aircall:1", tenant="acme", remove=[("lead", "L1")], send=Sent()),
        lambda: ops.review_choose(pipeline, "aircall:1", tenant="acme", send=Sent()),
        lambda: ops.review_choose(pipeline, "aircall:1", tenant="acme", opportunity_id="O9", send=Sent()),
        lambda: ops.preferences_forget(pipeline, "acme", []),
        lambda: ops.preferences_forget(pipeline, "acme", ["C1"], everything=True),
        lambda: ops.preferences_list(pipeline, None),
        lambda: ops.unlock(pipeline, "aircall:1", [], tenant="acme", send=Sent()),
        lambda: ops.unlock(pipeline, "aircall:1", ["account"], tenant="acme", send=Sent()),
        lambda: ops.refresh(pipeline, "aircall:404", send=Sent()),
        lambda: ops.replay(pipeline, ["aircall:1"], send=Sent()),
        lambda: ops.calls_list(pipeline, "acme", status="nope"),
    ]
    for attempt in attempts:
        with pytest.raises(ops.OpsError) as refused:
            attempt()
        assert not re.search(r"--\w", str(refused.value)), str(refused.value)
        assert refused.value.field, str(refused.value)


# the command line ---------------------------------------------------------------------------


@pytest.fixture()
def cli(redis_url: str, redis_client: Any, tenants_path: Path) -> Any:
    env = {**os.environ, "CALLMATCH_REDIS_URL": redis_url, "CALLMATCH_TENANTS": str(tenants_path)}
    env["CALLMATCH_NOW"] = "2026-03-10T10:00:00Z"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CALLMATCH, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    return run


def test_override_and_unlock_on_the_command_line(cli: Any, pipeline: Pipeline, redis_client: Any) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    refused = cli("override", "aircall:1", "--tenant", "acme", "--opportunity", "O7", "--contact", "C1")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert (
        refused.stderr
        == "callmatch override: not found in tenant acme's CRM: opportunity O7; nothing was changed\n"
    )
    assert queued_tasks(redis_client) == [] and pipeline.store.require("acme", "aircall:1").locked == []

    done = cli("override", "aircall:1", "--tenant", "acme", "--opportunity", "O1", "--by", "ann")
    assert done.returncode == 0, done.stderr
    unlocked = cli("unlock", "aircall:1", "--tenant", "acme", "--opportunity", "--by", "bob")
    assert unlocked.returncode == 0, unlocked.stderr
    assert unlocked.stdout == (
        "unlocked opportunity on aircall:1 (still locked: -); forgot the preferences it taught C1, C2;"
        " refresh and write-back enqueued\n"
    )
    assert queued_tasks(redis_client) == [REFRESH_TASK, REFRESH_TASK]
    explained = cli("explain", "aircall:1", "--tenant", "acme").stdout.splitlines()
    assert "  override by ann at 2026-03-10T10:00:00Z: opportunity O1" in explained
    assert (
        "  unlock by bob at 2026-03-10T10:00:00Z: unlocked opportunity; forgot the preferences of C1, C2"
        in explained
    )
    assert "  locked by a person: -" in explained

    again = cli("unlock", "aircall:1", "--tenant", "acme", "--opportunity")
    assert (again.returncode, again.stderr) == (
        2,
        "callmatch unlock: call aircall:1 has no lock on opportunity (locked: nothing); nothing was changed\n",
    )
    nothing = cli("unlock", "aircall:1", "--tenant", "acme")
    assert (nothing.returncode, nothing.stderr) == (
        2,
        "callmatch unlock: name what to unlock: --account, --opportunity and/or --contacts\n",
    )
