"""Write-back W1/W2: one Task or Event per call id, upserted by our external id, linked as the rules say.

On the plain org after `setup` and on the full one: without Shared Activities the
first contact is the WhoId and no relation row is written.
"""

from __future__ import annotations

import datetime as dt

from tests.adapters.crm.salesforce.conftest import profiles
from worker.core.model import (
    Account,
    Call,
    CallKind,
    Case,
    Contact,
    CrmSlice,
    Decision,
    Direction,
    Lead,
    Opportunity,
    Person,
    Policy,
)
from worker.core.port import ActivityQuery
from worker.pipeline.association import associate

T = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
CALL = Call(
    id="aircall:812/731?x=1",
    started_at=T,
    ended_at=T + dt.timedelta(minutes=22),
    direction=Direction.OUTBOUND,
    organizer=Person(email="rep@ourco.example"),
    participants=(Person(email="jane@acme.example"), Person(email="li@acme.example")),
)
MEETING = Call(
    id="zoom:kQ2",
    kind=CallKind.MEETING,
    started_at=T,
    ended_at=T + dt.timedelta(hours=1),
    title="Quarterly review",
    participants=(Person(email="jane@acme.example"),),
)
CRM = CrmSlice(
    accounts=(Account(id="A1", name="Acme", domains=("acme.example",)),),
    contacts=(
        Contact(id="C1", email="jane@acme.example", account_ids=("A1",)),
        Contact(id="C2", email="li@acme.example", account_ids=("A1",)),
    ),
    leads=(Lead(id="L1", email="bob@startup.example"),),
    opportunities=(
        Opportunity(id="O1", account_id="A1", created_at=T - dt.timedelta(days=30), updated_at=T),
    ),
)


pytestmark = profiles("after_setup", "full")


def decision(**fields: object) -> Decision:
    return Decision(call_id=CALL.id, case=Case.CONTACTS, **fields)  # type: ignore[arg-type]


def _relations(env, sobject: str, parent_field: str, parent_id: str) -> list[str]:
    """The activity's related contacts besides WhoId (relation rows, not invitees)."""
    return [
        str(r["RelationId"])
        for r in env.emulator.org.records.get(sobject, {}).values()
        if r[parent_field] == parent_id
        and not r["IsDeleted"]
        and not r.get("IsWhat")
        and r.get("IsParent", True)
    ]


def _others(env, *contact_ids: str) -> list[str]:
    """W2: the other contacts are related as rows with Shared Activities, else not at all."""
    return list(contact_ids) if env.profile.shared_activities else []


def test_call_upserts_one_task_linked_by_w2(salesforce) -> None:
    env = salesforce(CRM)
    port = env.port()
    chosen = decision(contact_ids=("C1", "C2"), account_id="A1", opportunity_id="O1")
    first = port.upsert_activity(CALL, chosen)
    assert first.created is True and first.kind == "task"
    task = env.emulator.org.records["Task"][first.id]
    assert task["TaskSubtype"] == "Call"
    assert task["CallType"] == "Outbound"
    assert task["CallDurationInSeconds"] == 22 * 60
    assert task["ActivityDate"] == dt.date(2026, 3, 10)
    assert (task["WhoId"], task["WhatId"]) == ("C1", "O1")
    assert task[env.settings.external_id_field] == CALL.id
    assert _relations(env, "TaskRelation", "TaskId", first.id) == _others(env, "C2")
    assert port.stats.by_method["upsert_activity"] == 1

    again = port.upsert_activity(CALL, decision(contact_ids=("C1", "C2"), account_id="A1"))
    assert again.id == first.id and again.created is False
    assert len(env.emulator.org.find_by("Task", env.settings.external_id_field, CALL.id)) == 1
    assert env.emulator.org.records["Task"][first.id]["WhatId"] == "A1"
    assert _relations(env, "TaskRelation", "TaskId", first.id) == _others(env, "C2")


def test_lead_as_who_leaves_what_empty(salesforce) -> None:
    env = salesforce(CRM)
    written = env.port().upsert_activity(CALL, decision(lead_ids=("L1",), account_id="A1"))
    task = env.emulator.org.records["Task"][written.id]
    assert (task["WhoId"], task["WhatId"]) == ("L1", None)


def test_meeting_upserts_one_event_with_relations(salesforce) -> None:
    env = salesforce(CRM)
    port = env.port()
    chosen = Decision(call_id=MEETING.id, case=Case.CONTACTS, contact_ids=("C1", "C2"), account_id="A1")
    first = port.upsert_activity(MEETING, chosen)
    second = port.upsert_activity(MEETING, chosen)
    assert first.kind == "event" and first.id == second.id and second.created is False
    event = env.emulator.org.records["Event"][first.id]
    assert event["Subject"] == "Quarterly review"
    assert event["StartDateTime"] == T and event["EndDateTime"] == T + dt.timedelta(hours=1)
    assert (event["WhoId"], event["WhatId"]) == ("C1", "A1")
    assert _relations(env, "EventRelation", "EventId", first.id) == _others(env, "C2")
    assert len(env.emulator.org.find_by("Event", env.settings.external_id_field, MEETING.id)) == 1


def test_our_written_activity_is_ignored_by_a1(salesforce) -> None:
    """After write-back the call's own Task exists; deciding again must not read it as Case 1."""
    env = salesforce(CRM)
    policy = Policy()
    port = env.port()
    before = associate(CALL, policy, port)
    env.port().upsert_activity(CALL, before)
    found = env.port().activities_for_call(
        ActivityQuery(call_id=CALL.id, kind=CALL.kind, started_at=T, window_minutes=15)
    )
    after = associate(CALL, policy, env.port())
    assert before.case is Case.CONTACTS
    assert {k: v for k, v in after.to_json().items() if k != "trace"} == {
        k: v for k, v in before.to_json().items() if k != "trace"
    }
    assert [(a.type.value, a.call_id, a.written_by_us) for a in found] == [("task", CALL.id, True)]


def test_task_subtype_is_sent_on_create_only(salesforce) -> None:
    env = salesforce(CRM)
    chosen = decision(contact_ids=("C1",), account_id="A1")
    env.port().upsert_activity(CALL, chosen)
    blind = env.port()
    again = blind.upsert_activity(CALL, chosen)
    assert again.created is False
    assert blind.stats.by_method["upsert_activity"] == 2  # refused with TaskSubtype, sent again without

    informed = env.port()
    associate(CALL, Policy(), informed)
    informed.upsert_activity(CALL, chosen)
    assert informed.stats.by_method["upsert_activity"] == 1
    assert env.emulator.org.records["Task"][again.id]["TaskSubtype"] == "Call"


def test_a_new_decision_replaces_the_relations(salesforce) -> None:
    env = salesforce(CRM)
    port = env.port()
    first = port.upsert_activity(CALL, decision(contact_ids=("C1", "C2"), account_id="A1"))
    assert _relations(env, "TaskRelation", "TaskId", first.id) == _others(env, "C2")
    port.upsert_activity(CALL, decision(contact_ids=("C1",), account_id="A1"))
    assert _relations(env, "TaskRelation", "TaskId", first.id) == []
    assert env.emulator.org.records["Task"][first.id]["WhoId"] == "C1"
    # create, update, and with relation rows a third call deleting the stale one
    assert port.stats.by_method["upsert_activity"] == (3 if env.profile.shared_activities else 2)


def test_a_big_meeting_relates_every_contact(salesforce) -> None:
    crowd = tuple(Contact(id=f"C{i:02d}", email=f"p{i}@acme.example", account_ids=("A1",)) for i in range(30))
    env = salesforce(CrmSlice(accounts=CRM.accounts, contacts=crowd))
    port = env.port()
    ids = tuple(c.id for c in crowd)
    written = port.upsert_activity(MEETING, Decision(call_id=MEETING.id, case=Case.CONTACTS, contact_ids=ids))
    assert sorted(_relations(env, "EventRelation", "EventId", written.id)) == _others(env, *ids[1:])
    assert env.emulator.org.records["Event"][written.id]["WhoId"] == ids[0]
    assert port.stats.by_method["upsert_activity"] == (2 if env.profile.shared_activities else 1)
    again = env.port()
    again.upsert_activity(MEETING, Decision(call_id=MEETING.id, case=Case.CONTACTS, contact_ids=ids))
    assert sorted(_relations(env, "EventRelation", "EventId", written.id)) == _others(env, *ids[1:])
    assert len(env.emulator.org.find_by("Event", env.settings.external_id_field, MEETING.id)) == 1
