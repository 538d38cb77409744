"""What an association costs in API calls, counted by the emulator as Salesforce counts them.

The same on the plain org after `setup` as on the full one: the capabilities are cached,
so building queries from them costs nothing (the fixture warms them as a tenant would).
"""

from __future__ import annotations

import datetime as dt

from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.scenario import ScenarioCrm
from tests.adapters.crm.salesforce.conftest import SalesforceEnv, profiles
from worker.core.model import (
    Account,
    Call,
    CallKind,
    Contact,
    ContactRole,
    CrmSlice,
    Decision,
    Opportunity,
    Person,
    Policy,
    User,
)
from worker.core.port import Lookup
from worker.pipeline.association import associate

T = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
CRM = CrmSlice(
    users=(User(id="U1", email="rep@ourco.example"),),
    accounts=(
        Account(id="A1", name="Acme", domains=("acme.example",)),
        Account(id="A2", name="Acme Holding", domains=("acme-holding.example",)),
    ),
    contacts=(
        Contact(id="C1", email="jane@acme.example", phones=("+1 212 555 0101",), account_ids=("A1",)),
        Contact(id="C2", email="max@acme-holding.example", account_ids=("A2", "A1")),
        Contact(id="C9", email="someone@acme.example", account_ids=("A1",)),
    ),
    opportunities=(
        Opportunity(
            id="O1",
            account_id="A1",
            owner_id="U1",
            created_at=T - dt.timedelta(days=40),
            updated_at=T - dt.timedelta(days=2),
            contacts=(ContactRole("C9", True), ContactRole("C2", False)),
        ),
        Opportunity(
            id="O2",
            account_id="A1",
            created_at=T - dt.timedelta(days=10),
            updated_at=T - dt.timedelta(days=1),
            contacts=(ContactRole("C1", True),),
        ),
        Opportunity(
            id="O3",
            account_id="A2",
            created_at=T - dt.timedelta(days=5),
            updated_at=T - dt.timedelta(days=5),
            contacts=(ContactRole("C2", True), ContactRole("C1", False)),
        ),
    ),
)


pytestmark = profiles("after_setup", "full")


def _call(*participants: Person) -> Call:
    return Call(
        id="zoom:42",
        kind=CallKind.MEETING,
        started_at=T,
        ended_at=T + dt.timedelta(minutes=30),
        organizer=Person(email="rep@ourco.example"),
        participants=participants,
        title="Renewal",
    )


def _decided_alike(env: SalesforceEnv, call: Call, policy: Policy) -> tuple[SalesforceCrm, Decision]:
    port = env.port()
    decision = associate(call, policy, port)
    got = decision.to_json()
    want = associate(call, policy, ScenarioCrm(CRM, policy.default_region)).to_json()
    assert {k: v for k, v in got.items() if k != "trace"} == {k: v for k, v in want.items() if k != "trace"}
    return port, decision


def test_an_ordinary_email_call_costs_one_read_and_one_write(salesforce) -> None:
    env = salesforce(CRM)
    call = _call(Person(email="jane@acme.example"), Person(email="Max@Acme-Holding.example"))
    port, decision = _decided_alike(env, call, Policy())
    assert env.emulator.stats.api_calls == 1
    assert decision.opportunity_id is not None
    port.upsert_activity(call, decision)
    assert env.emulator.stats.api_calls == 2
    assert env.emulator.stats.by_path == {"composite": 2}
    assert port.stats.requests == 2


def test_a_phone_costs_its_search_and_nothing_more(salesforce) -> None:
    env = salesforce(CRM)
    call = _call(Person(email="max@acme-holding.example"), Person(phone="(212) 555-0101"))
    _decided_alike(env, call, Policy())
    assert env.emulator.stats.by_path == {"search": 1, "composite": 1}


def test_roles_read_through_contacts_and_accounts_decide_as_the_scenario_file(salesforce) -> None:
    env = salesforce(CRM)
    call = _call(Person(email="jane@acme.example"), Person(email="max@acme-holding.example"))
    for policy in (Policy(use_contact_roles=True), Policy(use_contact_roles=True, match_by_domain=True)):
        env.emulator.stats.api_calls = 0
        port, _ = _decided_alike(env, call, policy)
        keys = Lookup(contact_ids=frozenset({"C1", "C2"}), account_ids=frozenset({"A1", "A2"}))
        got = {o.id: o for o in port.lookup(keys).opportunities}
        assert {r.id for r in got["O1"].contacts} >= {"C2"}
        assert {r.id for r in got["O3"].contacts} >= {"C1", "C2"}


def test_subquery_rows_paged_by_the_org_are_followed_not_lost(salesforce) -> None:
    env = salesforce(CRM, child_page_size=1)
    call = _call(Person(email="jane@acme.example"), Person(email="max@acme-holding.example"))
    for policy in (Policy(), Policy(use_contact_roles=True, match_by_domain=True)):
        port, _ = _decided_alike(env, call, policy)
        keys = Lookup(contact_ids=frozenset({"C1", "C2"}), account_ids=frozenset({"A1", "A2"}))
        # a contact's second account is an AccountContactRelation, with Contacts to Multiple Accounts only
        accounts = ("A2", "A1") if env.profile.contacts_to_multiple_accounts else ("A2",)
        assert {c.id: c for c in port.lookup(keys).contacts}["C2"].account_ids == accounts
    # each paged child result costs a query_more call, as it does in Salesforce
    assert env.emulator.stats.by_path.get("query", 0) >= 2
