"""Rules v1.1 in the pipeline: the review queue (U1), learned preferences (L1), removals (R6), M7 from tenants.

The pipeline and the ops actions over the scenario CRM and a real Redis. The CRM:
jane (C1) is named on two open opportunities of two accounts, O1 (A1) and O2 (A2),
so with `on_ambiguity: abstain` her calls are `ambiguous` until a person chooses;
max (C3) belongs to both accounts, so even the account ties (U1.1).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.config.tenants import load_tenants
from worker.ingest.events import CallEvent
from worker.ops import actions as ops
from worker.ops.opscli import _record_text
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline, UnknownTenantError
from worker.pipeline.store import CallStore, Stage
from worker.pipeline.tasks import REFRESH_TASK

NOW = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.UTC)
AT = "2026-03-10T10:00:00Z"
JANE = {"email": "jane@acme.com"}
PAUL = {"email": "paul@acme.com"}
MAX = {"email": "max@initech.com"}


def _opportunity(oid: str, account: str, **more: Any) -> dict[str, Any]:
    return {
        "id": oid,
        "account_id": account,
        "owner_id": "U1",
        "created_at": "2026-02-01T10:00:00Z",
        "updated_at": "2026-03-01T10:00:00Z",
        "close_date": "2026-04-30",
        "contacts": [{"id": "C1", "is_primary": False}],
        **more,
    }


WORLD: dict[str, Any] = {
    "version": 1,
    "call": {"id": "seed", "started_at": "2026-03-10T09:30:00Z"},
    "crm": {
        "users": [{"id": "U1", "email": "rep@ourco.com"}],
        "accounts": [
            {"id": "A1", "name": "Acme", "domains": ["acme.com"]},
            {"id": "A2", "name": "Globex", "domains": ["globex.com"]},
        ],
        "contacts": [
            {"id": "C1", "email": "jane@acme.com", "phones": ["+33612345678"], "account_ids": ["A1"]},
            {"id": "C2", "email": "paul@acme.com", "account_ids": ["A1"]},
            {"id": "C3", "email": "max@initech.com", "account_ids": ["A1", "A2"]},
        ],
        "opportunities": [
            _opportunity("O1", "A1"),
            _opportunity("O2", "A2"),
            # closed long before the call: in no S1 tier, never chosen, but read with C1's opportunities
            _opportunity("O9", "A2", is_closed=True, close_date="2025-10-01"),
        ],
    },
}


def write_world(directory: Path, tenant_extra: dict[str, Any] | None = None) -> Path:
    """The scenario CRM and a tenants file with two tenants on it, `acme` and `beta`, both abstaining."""
    (directory / "world.json").write_text(json.dumps(WORLD))
    tenant = {
        "crm": {"kind": "scenario", "scenario_file": "world.json"},
        "policy": {"default_region": "FR", "on_ambiguity": "abstain"},
        "internal_domains": ["ourco.com"],
        **(tenant_extra or {}),
    }
    document = {"version": 1, "tenants": {"acme": tenant, "beta": tenant}}
    path = directory / "tenants.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def world_pipeline(redis_client: Any, tenants_path: Path, clock: Clock | None = None) -> Pipeline:
    store = CallStore(redis_client, clock=clock or (lambda: NOW))
    return Pipeline(load_tenants(tenants_path, environ={}), store, CrmFactory(redis_client).crm_for)


def call_event(call_id: str, *participants: dict[str, Any], tenant: str = "acme") -> CallEvent:
    return CallEvent.from_json(
        {
            "tenant": tenant,
            "provider": "aircall",
            "call_id": call_id,
            "event_id": f"evt-{call_id}",
            "kind": "call",
            "received_at": "2026-03-10T09:53:00Z",
            "started_at": "2026-03-10T09:30:00Z",
            "ended_at": "2026-03-10T09:52:00Z",
            "organizer": {"email": "rep@ourco.com"},
            "participants": list(participants),
            "complete": True,
        }
    )


def decided(
    pipeline: Pipeline, call_id: str, *participants: dict[str, Any], tenant: str = "acme"
) -> dict[str, Any]:
    """A call received and decided; its stored decision."""
    pipeline.accept(call_event(call_id, *participants, tenant=tenant))
    assert pipeline.decide(tenant, call_id) is not None
    return stored(pipeline, call_id, tenant)


def stored(pipeline: Pipeline, call_id: str, tenant: str = "acme") -> dict[str, Any]:
    decision = pipeline.store.require(tenant, call_id).decision
    assert decision is not None
    return decision


def refreshed(pipeline: Pipeline, call_id: str, tenant: str = "acme") -> dict[str, Any]:
    """What the refresh task does after an override: decide again (the write-back is not at issue here)."""
    decision = pipeline.decide(tenant, call_id)
    assert decision is not None
    return decision.to_json()


def rules(decision: dict[str, Any]) -> list[str]:
    return [entry["rule"] for entry in decision["trace"]]


def candidates(decision: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["type"], c["id"]) for c in decision["candidates"]]


class Sent:
    def __init__(self) -> None:
        self.tasks: list[tuple[str, list[Any]]] = []

    def __call__(self, task: str, args: list[Any]) -> None:
        self.tasks.append((task, args))


@pytest.fixture()
def tenants_path(tmp_path: Path) -> Path:
    return write_world(tmp_path)


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def pipeline(redis_client: Any, tenants_path: Path, clock: Clock) -> Pipeline:
    return world_pipeline(redis_client, tenants_path, clock)


def preferences(pipeline: Pipeline, tenant: str = "acme") -> dict[str, tuple[Any, ...]]:
    return {
        p.contact_id: (p.account_id, p.opportunity_id, p.set_by, p.set_at, p.call_id)
        for p in pipeline.preferences.listing(tenant)
    }


# the review queue --------------------------------------------------------------------------------


def test_an_ambiguous_call_waits_in_the_review_queue_with_its_candidates(
    pipeline: Pipeline, clock: Clock
) -> None:
    decision = decided(pipeline, "aircall:1", JANE, PAUL)
    assert decision["case"] == "ambiguous" and decision["opportunity_id"] is None
    assert candidates(decision) == [("opportunity", "O1"), ("opportunity", "O2")]
    assert "U1.2" in rules(decision)
    clock.now = NOW + dt.timedelta(minutes=5)
    decided(pipeline, "aircall:2", MAX, tenant="beta")
    assert decided(pipeline, "aircall:3", PAUL)["case"] == "contacts", "paul alone: only O1, no tie"

    waiting = ops.review_list(pipeline)
    assert [(i.tenant, i.call_id) for i in waiting] == [("beta", "aircall:2"), ("acme", "aircall:1")]
    first = waiting[1]
    assert (first.contact_ids, first.account_id, first.decided_at) == (["C1", "C2"], "A1", NOW.isoformat())
    assert [(c["type"], c["id"]) for c in first.candidates] == [("opportunity", "O1"), ("opportunity", "O2")]
    assert all(c["reason"] for c in first.candidates)
    assert [i.call_id for i in ops.review_list(pipeline, "acme")] == ["aircall:1"]
    assert [c["id"] for c in waiting[0].candidates] == ["O1", "O2", "A1", "A2"], "U1.2 then U1.1"


def test_a_call_leaves_the_queue_once_a_refreshed_decision_is_not_ambiguous(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", JANE)
    pipeline.store.request_stage("acme", "aircall:1", Stage.ASSOCIATE)
    assert refreshed(pipeline, "aircall:1")["case"] == "ambiguous"
    assert [i.call_id for i in ops.review_list(pipeline)] == ["aircall:1"], "still ambiguous: still waiting"
    ops.override(pipeline, "aircall:1", opportunity_id="O1", by="ann", send=Sent())
    decision = refreshed(pipeline, "aircall:1")
    assert decision["case"] == "contacts" and decision["candidates"] == []
    assert ops.review_list(pipeline) == [] and pipeline.review.count() == 0


def test_review_list_of_an_unknown_tenant_is_refused(pipeline: Pipeline) -> None:
    with pytest.raises(UnknownTenantError, match="unknown tenant 'nope'"):
        ops.review_list(pipeline, "nope")


# review choose ------------------------------------------------------------------------------------


def test_review_choose_locks_remembers_per_contact_and_the_refresh_follows(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    sent = Sent()
    record = ops.review_choose(pipeline, "aircall:1", opportunity_id="O2", by="ann", send=sent)
    assert sent.tasks == [(REFRESH_TASK, ["acme", "aircall:1"])]
    assert record.locked == ["opportunity"] and record.overrides == {"opportunity_id": "O2"}
    assert record.changes == [{"how": "review", "by": "ann", "at": AT, "opportunity_id": "O2"}]
    assert preferences(pipeline) == {
        "C1": (None, "O2", "ann", AT, "aircall:1"),
        "C2": (None, "O2", "ann", AT, "aircall:1"),
    }

    decision = refreshed(pipeline, "aircall:1")
    assert (decision["case"], decision["opportunity_id"]) == ("contacts", "O2")
    assert decision["account_id"] == "A2", "V3: the chosen opportunity's account, not the one V gave before"
    assert decision["candidates"] == [] and "R4" in rules(decision)
    assert ops.review_list(pipeline) == []


def test_the_next_call_of_that_contact_follows_the_choice_by_l1(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    ops.review_choose(pipeline, "aircall:1", opportunity_id="O2", by="ann", send=Sent())
    decision = decided(pipeline, "aircall:2", JANE)
    assert (decision["case"], decision["opportunity_id"], decision["account_id"]) == ("contacts", "O2", "A2")
    l1 = [e["message"] for e in decision["trace"] if e["rule"] == "L1"]
    assert len(l1) == 1 and "C1" in l1[0] and "O2" in l1[0]
    assert "U1.2" not in rules(decision)
    assert [i.call_id for i in ops.review_list(pipeline)] == ["aircall:1"], "its refresh has not run yet"


def test_review_choose_of_a_tied_account(pipeline: Pipeline) -> None:
    decision = decided(pipeline, "aircall:1", MAX)
    assert candidates(decision) == [
        ("opportunity", "O1"),
        ("opportunity", "O2"),
        ("account", "A1"),
        ("account", "A2"),
    ]
    record = ops.review_choose(pipeline, "aircall:1", account_id="A2", by="ann", send=Sent())
    assert record.locked == ["account"] and record.changes[0]["account_id"] == "A2"
    assert preferences(pipeline) == {"C3": ("A2", None, "ann", AT, "aircall:1")}
    decision = refreshed(pipeline, "aircall:1")
    assert decision["account_id"] == "A2"
    assert [c for c in candidates(decision) if c[0] == "account"] == [], "the account is chosen"


def test_a_chosen_account_settles_the_call(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", MAX)
    ops.review_choose(pipeline, "aircall:1", account_id="A2", by="ann", send=Sent())
    decision = refreshed(pipeline, "aircall:1")
    assert (decision["case"], decision["account_id"], decision["opportunity_id"]) == ("contacts", "A2", "O2")
    assert ops.review_list(pipeline) == []


@pytest.mark.parametrize(
    "choice, message",
    [
        (
            {"opportunity_id": "O9"},
            "opportunity O9 is not one of the call's candidates (opportunity O1, opportunity O2); use override",
        ),
        ({"account_id": "A1"}, "account A1 is not one of the call's candidates"),
        ({}, "review choose: choose one of opportunity_id or account_id"),
        (
            {"opportunity_id": "O1", "account_id": "A1"},
            "review choose: choose one of opportunity_id or account_id",
        ),
    ],
)
def test_review_choose_refuses_anything_but_one_candidate(
    pipeline: Pipeline, choice: dict[str, str], message: str
) -> None:
    decided(pipeline, "aircall:1", JANE)
    before = pipeline.store.require("acme", "aircall:1")
    sent = Sent()
    with pytest.raises(ops.OpsError) as refused:
        ops.review_choose(pipeline, "aircall:1", by="ann", send=sent, **choice)
    assert message in str(refused.value)
    assert sent.tasks == [] and preferences(pipeline) == {}
    after = pipeline.store.require("acme", "aircall:1")
    assert (after.locked, after.overrides, after.changes) == (before.locked, before.overrides, before.changes)


def test_review_choose_refuses_a_call_that_is_not_waiting_for_review(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", PAUL)
    with pytest.raises(ops.OpsError, match=r"call aircall:1 is not waiting for review .*; use override"):
        ops.review_choose(pipeline, "aircall:1", opportunity_id="O1", send=Sent())
    with pytest.raises(ops.OpsError, match="no tenant has a call 'aircall:404'"):
        ops.review_choose(pipeline, "aircall:404", opportunity_id="O1", send=Sent())


# override: preferences, removals (R6) and the change log ----------------------------------------


def test_an_override_records_a_preference_per_matched_contact_replaced_by_a_later_choice(
    pipeline: Pipeline, clock: Clock
) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    ops.override(pipeline, "aircall:1", opportunity_id="O1", by="ann", send=Sent())
    assert preferences(pipeline) == {
        "C1": (None, "O1", "ann", AT, "aircall:1"),
        "C2": (None, "O1", "ann", AT, "aircall:1"),
    }
    clock.now = NOW + dt.timedelta(hours=1)
    assert decided(pipeline, "aircall:2", JANE)["opportunity_id"] == "O1", "L1"
    ops.override(pipeline, "aircall:2", opportunity_id="O2", by="bob", send=Sent())
    assert preferences(pipeline) == {
        "C1": (None, "O2", "bob", "2026-03-10T11:00:00Z", "aircall:2"),
        "C2": (None, "O1", "ann", AT, "aircall:1"),
    }
    ops.override(pipeline, "aircall:1", contact_ids=["C1"], by="ann", send=Sent())
    assert preferences(pipeline)["C1"][1] == "O2", "locking contacts alone chooses nothing to remember"
    assert [p.contact_id for p in ops.preferences_list(pipeline, "acme", ["C2"])] == ["C2"]
    assert ops.preferences_list(pipeline, "beta") == []


def test_preferences_are_forgotten_some_or_all(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    ops.override(pipeline, "aircall:1", account_id="A1", by="ann", send=Sent())
    assert ops.preferences_forget(pipeline, "acme", ["C2", "C7"]) == 1
    assert list(preferences(pipeline)) == ["C1"]
    ops.override(pipeline, "aircall:1", account_id="A1", by="ann", send=Sent())
    assert ops.preferences_forget(pipeline, "acme", [], everything=True) == 2
    assert preferences(pipeline) == {}
    with pytest.raises(ops.OpsError, match=re.escape("name the contacts (contact_ids), or forget all")):
        ops.preferences_forget(pipeline, "acme", [])
    with pytest.raises(ops.OpsError, match=re.escape("name contacts (contact_ids) or forget all, not both")):
        ops.preferences_forget(pipeline, "acme", ["C1"], everything=True)
    with pytest.raises(ops.OpsError, match=r"name a tenant \(one of: acme, beta\)"):
        ops.preferences_forget(pipeline, None, ["C1"])


def test_a_preference_whose_opportunity_closed_is_not_followed_and_is_deleted(
    pipeline: Pipeline, redis_client: Any
) -> None:
    pipeline.preferences.record("acme", ["C1"], account_id=None, opportunity_id="O9", now=NOW, by="ann")
    pipeline.preferences.record("acme", ["C2"], account_id="A2", opportunity_id=None, now=NOW, by="ann")
    decision = decided(pipeline, "aircall:1", JANE)
    assert decision["case"] == "ambiguous" and "L1" not in rules(decision)
    assert redis_client.hexists("callmatch:prefs:acme", "C1") == 0, "expired for good"
    assert redis_client.hexists("callmatch:prefs:acme", "C2") == 1, "not this call's contact: untouched"


def test_a_preference_older_than_preference_days_is_not_followed_and_is_deleted(
    redis_client: Any, tenants_path: Path
) -> None:
    pipeline = world_pipeline(redis_client, tenants_path)
    pipeline.preference_days = 30
    old = NOW - dt.timedelta(days=31)
    pipeline.preferences.record("acme", ["C1"], account_id=None, opportunity_id="O2", now=old, by="ann")
    decision = decided(pipeline, "aircall:1", JANE)
    assert decision["case"] == "ambiguous" and "L1" not in rules(decision)
    assert redis_client.hexists("callmatch:prefs:acme", "C1") == 0
    pipeline.preferences.record("acme", ["C1"], account_id=None, opportunity_id="O2", now=old, by="ann")
    pipeline.preference_days = 60
    assert decided(pipeline, "aircall:2", JANE)["opportunity_id"] == "O2", "within 60 days: L1"


def test_override_remove_records_who_and_when_and_a_refresh_never_links_them_again(
    pipeline: Pipeline, clock: Clock
) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    record = ops.override(
        pipeline,
        "aircall:1",
        remove=[("contact", "C2"), ("opportunity", "O2")],
        by="bob",
        send=Sent(),
    )
    assert record.removed == [
        {"type": "contact", "id": "C2", "by": "bob", "at": AT},
        {"type": "opportunity", "id": "O2", "by": "bob", "at": AT},
    ]
    assert record.changes == [
        {
            "how": "override",
            "by": "bob",
            "at": AT,
            "removed": [{"type": "contact", "id": "C2"}, {"type": "opportunity", "id": "O2"}],
        }
    ]
    assert preferences(pipeline) == {}, "a removal chooses nothing"
    for _ in range(2):
        decision = refreshed(pipeline, "aircall:1")
        pipeline.store.request_stage("acme", "aircall:1", Stage.ASSOCIATE)
        assert decision["contact_ids"] == ["C1"] and "C2" not in json.dumps(decision["contact_ids"])
        assert (decision["opportunity_id"], decision["account_id"], decision["case"]) == (
            "O1",
            "A1",
            "contacts",
        )
        assert "R6" in rules(decision)
    clock.now = NOW + dt.timedelta(hours=1)
    again = ops.override(pipeline, "aircall:1", remove=[("opportunity", "O2")], by="eve", send=Sent())
    assert [r["by"] for r in again.removed] == ["bob", "bob"], "removed once, by the first person"
    assert len(again.changes) == 2


def test_removing_the_linked_opportunity_does_not_keep_the_account_that_came_with_it(
    pipeline: Pipeline,
) -> None:
    pipeline.preferences.record("acme", ["C1"], account_id=None, opportunity_id="O2", now=NOW, by="ann")
    decision = decided(pipeline, "aircall:1", JANE)
    assert (decision["opportunity_id"], decision["account_id"]) == ("O2", "A2"), "L1"
    ops.override(pipeline, "aircall:1", remove=[("opportunity", "O2")], by="bob", send=Sent())
    decision = refreshed(pipeline, "aircall:1")
    assert (decision["opportunity_id"], decision["account_id"], decision["case"]) == ("O1", "A1", "contacts")


def test_removing_what_was_chosen_drops_that_override_and_its_lock(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    ops.override(pipeline, "aircall:1", opportunity_id="O2", account_id="A2", contact_ids=["C2"], send=Sent())
    record = ops.override(
        pipeline, "aircall:1", remove=[("opportunity", "O2"), ("contact", "C2")], by="bob", send=Sent()
    )
    assert record.overrides == {"account_id": "A2"} and record.locked == ["account"]
    decision = refreshed(pipeline, "aircall:1")
    assert decision["opportunity_id"] != "O2" and decision["account_id"] == "A2"
    assert decision["contact_ids"] == ["C1"], "the matched contacts, less the removed one"
    record = ops.override(pipeline, "aircall:1", remove=[("account", "A2")], send=Sent())
    assert record.overrides == {} and record.locked == []
    decision = refreshed(pipeline, "aircall:1")
    assert (decision["account_id"], decision["opportunity_id"]) == ("A1", "O1")


def test_a_later_choice_of_a_removed_record_lifts_its_removal(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", JANE)
    ops.override(pipeline, "aircall:1", remove=[("opportunity", "O2")], by="bob", send=Sent())
    assert refreshed(pipeline, "aircall:1")["opportunity_id"] == "O1"
    record = ops.override(pipeline, "aircall:1", opportunity_id="O2", by="ann", send=Sent())
    assert record.removed == [] and record.locked == ["opportunity"]
    assert [c["how"] for c in record.changes] == ["override", "override"], "the log keeps both"
    decision = refreshed(pipeline, "aircall:1")
    assert (decision["opportunity_id"], decision["account_id"]) == ("O2", "A2")


def test_a_removed_contact_learns_nothing_from_the_same_override(pipeline: Pipeline) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    ops.override(
        pipeline, "aircall:1", opportunity_id="O1", remove=[("contact", "C2")], by="ann", send=Sent()
    )
    assert list(preferences(pipeline)) == ["C1"]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"opportunity_id": "O1", "remove": [("opportunity", "O1")]},
            "opportunity O1 is both set and removed",
        ),
        ({"account_id": "A1", "remove": [("account", "A1")]}, "account A1 is both set and removed"),
        ({"contact_ids": ["C1", "C2"], "remove": [("contact", "C2")]}, "contact C2 is both set and removed"),
        ({"remove": [("lead", "L1")]}, "cannot remove a 'lead' (one of: contact, account, opportunity)"),
        ({}, "nothing to override"),
    ],
)
def test_override_refuses_what_cannot_be_done(
    pipeline: Pipeline, change: dict[str, Any], message: str
) -> None:
    decided(pipeline, "aircall:1", JANE)
    sent = Sent()
    with pytest.raises(ops.OpsError, match=re.escape(message)):
        ops.override(pipeline, "aircall:1", send=sent, **change)
    record = pipeline.store.require("acme", "aircall:1")
    assert (record.removed, record.changes, record.locked, sent.tasks) == ([], [], [], [])


def test_explain_shows_removals_and_the_change_log(pipeline: Pipeline, clock: Clock) -> None:
    decided(pipeline, "aircall:1", JANE, PAUL)
    ops.review_choose(pipeline, "aircall:1", opportunity_id="O1", by="ann", send=Sent())
    clock.now = NOW + dt.timedelta(hours=2)
    ops.override(
        pipeline,
        "aircall:1",
        contact_ids=["C1"],
        remove=[("contact", "C2"), ("account", "A2")],
        by="bob",
        send=Sent(),
    )
    refreshed(pipeline, "aircall:1")
    text = _record_text(ops.explain(pipeline, "aircall:1"))
    lines = text.splitlines()
    assert "  locked by a person: contacts, opportunity" in lines
    assert (
        "  removed by a person: contact C2 (bob, 2026-03-10T12:00:00Z), account A2 (bob, 2026-03-10T12:00:00Z)"
        in lines
    )
    assert f"  review by ann at {AT}: opportunity O1" in lines
    assert "  override by bob at 2026-03-10T12:00:00Z: contacts C1; removed contact C2, account A2" in lines
    assert "  opportunity: O1" in lines


# tenants: M7's internal numbers and domains ---------------------------------------------------------


def test_tenants_internal_phones_and_domains_reach_the_policy_and_m7(
    redis_client: Any, tmp_path: Path
) -> None:
    path = write_world(
        tmp_path, {"internal_domains": ["ourco.com", "initech.com"], "internal_phones": ["06 12 34 56 78"]}
    )
    pipeline = world_pipeline(redis_client, path)
    policy = pipeline.tenant("acme").policy
    assert policy.internal_phones == ("06 12 34 56 78",)
    assert policy.internal_domains == ("ourco.com", "initech.com")
    decision = decided(pipeline, "aircall:1", {"phone": "+33 6 12 34 56 78"}, MAX, PAUL)
    assert decision["contact_ids"] == ["C2"], "jane's number is ours, max's domain is ours: only paul"
    m7 = [e["message"] for e in decision["trace"] if e["rule"] == "M7"]
    assert len(m7) == 2
