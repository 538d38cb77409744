"""Batches: many calls' writes through sObject Collections, many calls' reads in one round.

A batch must land exactly what the same writes one by one land (records, links,
relations), a record's refusal is that call's outcome only, and the API calls are
those of the batch, not of each call.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from adapters.errors import FatalError
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
    Person,
)
from worker.core.port import ActivityQuery, Lookup, WrittenActivity

pytestmark = profiles("after_setup", "full")

T = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
CRM = CrmSlice(
    accounts=(Account(id="A1", name="Acme", domains=("acme.example",)),),
    contacts=tuple(Contact(id=f"C{i}", email=f"p{i}@acme.example", account_ids=("A1",)) for i in range(1, 6)),
    leads=(Lead(id="L1", email="bob@startup.example"),),
)


def _call(index: int, *, meeting: bool = False) -> Call:
    return Call(
        id=f"aircall:{index}" if not meeting else f"zoom:{index}",
        kind=CallKind.MEETING if meeting else CallKind.CALL,
        started_at=T + dt.timedelta(hours=index),
        ended_at=T + dt.timedelta(hours=index, minutes=20),
        direction=None if meeting else Direction.INBOUND,
        participants=(Person(email=f"p{index % 5 + 1}@acme.example"),),
    )


def _writes() -> list[tuple[Call, Decision]]:
    out = []
    for index in range(8):
        call = _call(index, meeting=index % 3 == 0)
        contacts = (f"C{index % 5 + 1}", f"C{(index + 1) % 5 + 1}")
        out.append(
            (call, Decision(call_id=call.id, case=Case.CONTACTS, contact_ids=contacts, account_id="A1"))
        )
    return out


def _relations(env: Any, sobject: str, parent: str, parent_id: str) -> list[str]:
    return sorted(
        str(r["RelationId"])
        for r in env.emulator.org.records.get(sobject, {}).values()
        if r[parent] == parent_id and not r["IsDeleted"] and not r.get("IsWhat") and r.get("IsParent", True)
    )


def _landed(env: Any, written: list[WrittenActivity]) -> list[tuple[Any, ...]]:
    """What the org holds for each written activity, without ids (the org numbers records as they come)."""
    out = []
    for activity in written:
        sobject, parent = ("Task", "TaskId") if activity.kind == "task" else ("Event", "EventId")
        row = env.emulator.org.records[sobject][activity.id]
        relations = tuple(_relations(env, f"{sobject}Relation", parent, activity.id))
        out.append(
            (
                activity.kind,
                row[env.settings.external_id_field],
                row["WhoId"],
                row["WhatId"],
                row["Subject"],
                row.get("TaskSubtype"),
                row.get("CallType"),
                relations,
            )
        )
    return out


def test_a_batch_lands_what_one_by_one_lands(salesforce) -> None:
    writes = _writes()
    alone = salesforce(CRM)
    one_by_one = [alone.port().upsert_activity(call, decision) for call, decision in writes]
    batched_env = salesforce(CRM)
    port = batched_env.port()
    batched = port.upsert_activities(writes)
    assert all(isinstance(w, WrittenActivity) for w in batched)
    landed = [w for w in batched if isinstance(w, WrittenActivity)]
    assert _landed(batched_env, landed) == _landed(alone, one_by_one)
    assert [w.created for w in landed] == [True] * len(writes)
    # one composite for every upsert; with Shared Activities one more creating and listing the relations
    shared = batched_env.profile.shared_activities
    assert batched_env.emulator.stats.api_calls == (2 if shared else 1)

    # again, with other contacts: updates, the stale relations deleted in one more call
    batched_env.reset_stats()
    changed = [
        (call, Decision(call_id=call.id, case=Case.CONTACTS, contact_ids=("C1",), account_id="A1"))
        for call, _ in writes
    ]
    again = batched_env.port().upsert_activities(changed)
    alone_again = [alone.port().upsert_activity(call, decision) for call, decision in changed]
    assert [w.id for w in again if isinstance(w, WrittenActivity)] == [w.id for w in landed]
    assert not any(w.created for w in again if isinstance(w, WrittenActivity))
    assert _landed(batched_env, landed) == _landed(alone, alone_again)
    # blind to our tasks, the TaskSubtype refusal sends those records again without it
    assert batched_env.emulator.stats.api_calls == (4 if shared else 2)


def test_a_refused_record_is_its_calls_outcome_only(salesforce) -> None:
    env = salesforce(CRM)
    writes = _writes()[:4]
    call, _ = writes[1]
    # WhatId naming a Lead: Salesforce refuses that record (FIELD_INTEGRITY_EXCEPTION), the others land
    writes[1] = (call, Decision(call_id=call.id, case=Case.CONTACTS, contact_ids=("C1",), account_id="L1"))
    outcomes = env.port().upsert_activities(writes)
    assert isinstance(outcomes[1], FatalError) and outcomes[1].code == "FIELD_INTEGRITY_EXCEPTION"
    assert all(isinstance(outcomes[i], WrittenActivity) for i in (0, 2, 3))
    assert env.emulator.org.find_by("Task", env.settings.external_id_field, call.id) == []


def test_several_records_with_one_call_id_is_named(salesforce) -> None:
    env = salesforce(CRM)
    call, decision = _writes()[1]
    for _ in range(2):
        env.emulator.org.insert("Task", {"Subject": "dup", env.settings.external_id_field: call.id})
    outcomes = env.port().upsert_activities([(call, decision), _writes()[2]])
    assert isinstance(outcomes[0], FatalError) and outcomes[0].code == "MULTIPLE_RECORDS"
    assert "not Unique" in str(outcomes[0])
    assert isinstance(outcomes[1], WrittenActivity)


def test_one_call_twice_in_a_batch_is_written_once(salesforce) -> None:
    env = salesforce(CRM)
    (call, decision), other = _writes()[1], _writes()[2]
    outcomes = env.port().upsert_activities([(call, decision), other, (call, decision)])
    assert isinstance(outcomes[0], WrittenActivity) and isinstance(outcomes[2], WrittenActivity)
    assert outcomes[0].id == outcomes[2].id
    assert len(env.emulator.org.find_by("Task", env.settings.external_id_field, call.id)) == 1


def test_twenty_calls_are_read_in_one_round(salesforce) -> None:
    """Twenty calls' activity queries in one Task and one Event query, split back by call."""
    env = salesforce(CRM)
    writes = [(_call(i, meeting=i % 4 == 0), None) for i in range(20)]
    env.port().upsert_activities(
        [(c, Decision(call_id=c.id, case=Case.CONTACTS, contact_ids=("C1",))) for c, _ in writes[:10]]
    )
    env.reset_stats()
    port = env.port()
    keys = Lookup(
        emails=frozenset(f"p{i}@acme.example" for i in range(1, 6)),
        activities=tuple(
            ActivityQuery(call_id=c.id, kind=c.kind, started_at=c.started_at, window_minutes=15)
            for c, _ in writes
        ),
    )
    found = port.lookup(keys)
    assert env.emulator.stats.api_calls == 1
    assert sorted(a.call_id for a in found.activities if a.written_by_us) == sorted(
        c.id for c, _ in writes[:10]
    )
    assert {(s, c) for s, c in port._ours} == {
        ("Event" if c.kind is CallKind.MEETING else "Task", c.id) for c, _ in writes[:10]
    }
    assert len([q for q in env.emulator.stats.queries if " FROM Task " in q]) == 1
    assert len([q for q in env.emulator.stats.queries if " FROM Event " in q]) == 1


def test_the_emulator_answers_collections_as_documented(salesforce) -> None:
    """Results in the request's order, a record's own error beside the others' success, 200 records at most."""
    env = salesforce(CRM)
    client = env.client()
    ext = env.settings.external_id_field
    records = [
        {"attributes": {"type": "Task"}, ext: "k1", "Subject": "one"},
        {"attributes": {"type": "Task"}, ext: "k2", "Subject": "two", "WhoId": "A1"},  # an Account as WhoId
        {"attributes": {"type": "Task"}, ext: "k3", "Subject": "three"},
    ]
    path = f"composite/sobjects/Task/{ext}"
    results = client.rest("upsert", path, method="PATCH", body={"allOrNone": False, "records": records})
    assert [r["success"] for r in results] == [True, False, True]
    assert [r.get("created") for r in (results[0], results[2])] == [True, True]
    assert results[1]["errors"][0]["statusCode"] == "FIELD_INTEGRITY_EXCEPTION"
    again = client.rest("upsert", path, method="PATCH", body={"allOrNone": False, "records": [records[0]]})
    assert again[0]["id"] == results[0]["id"] and again[0]["created"] is False
    deleted = client.rest(
        "delete", "composite/sobjects", method="DELETE", params={"ids": f"{results[0]['id']},00TNOPE"}
    )
    assert [r["success"] for r in deleted] == [True, False]
    too_many = [{"attributes": {"type": "Task"}, ext: f"m{i}", "Subject": "x"} for i in range(201)]
    try:
        client.rest("upsert", path, method="PATCH", body={"allOrNone": False, "records": too_many})
    except FatalError as error:
        assert error.code == "EXCEEDED_ID_LIMIT"
    else:
        raise AssertionError("201 records were accepted")
