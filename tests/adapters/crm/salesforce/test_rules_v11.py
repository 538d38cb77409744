"""Rules v1.1 through the Salesforce adapter: M9's Lead conversion and X1's Account Type.

Real simple-salesforce over HTTPS against the emulator, as every test here. The fields
are selected only when the tenant's policy asks (the emulator's SOQL/SOSL request log
says what was sent), a converted lead is followed to its contact through `associate()`,
an excluded account type loses its opportunity, and the policy adds columns, not
requests. A field hidden by field-level security is left out, and doctor says what the
rule loses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.salesforce.tenant import SalesforceTenant
from adapters.crm.scenario import ScenarioCrm
from tests.adapters.crm.salesforce.conftest import SalesforceEnv, profiles
from tests.emulators.salesforce.profile import OrgProfile
from worker.config.tenants import CrmConfig, RateLimit, Tenant
from worker.core.model import (
    Account,
    Call,
    Contact,
    ContactRole,
    CrmSlice,
    Decision,
    Lead,
    Opportunity,
    Person,
    Policy,
)
from worker.pipeline.association import associate

T = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
RESELLER = "Channel Partner / Reseller"
CRM = CrmSlice(
    accounts=(
        Account(id="A1", name="Acme", domains=("acme.example",), type=RESELLER),
        Account(id="A2", name="Globex", domains=("globex.example",), type="Customer - Direct"),
    ),
    contacts=(
        Contact(id="C1", email="jane@acme.example", account_ids=("A1",)),
        Contact(id="C2", email="max@globex.example", account_ids=("A2",)),
        Contact(id="C5", email="robert@acme.example", account_ids=("A1",)),
    ),
    leads=(
        # Bob's lead was converted into contact C5; Li's is still open; Eve's conversion names no contact.
        Lead(id="L1", email="bob@startup.example", is_converted=True, converted_contact_id="C5"),
        Lead(id="L2", email="li@startup.example", phones=("+1 212 555 0199",)),
        Lead(id="L3", email="eve@startup.example", is_converted=True),
    ),
    opportunities=(
        Opportunity(id="O1", account_id="A1", created_at=T - dt.timedelta(days=5), updated_at=T),
        Opportunity(
            id="O2",
            account_id="A2",
            created_at=T - dt.timedelta(days=40),
            updated_at=T,
            contacts=(ContactRole("C1", False),),
        ),
        Opportunity(
            id="O5",
            account_id="A1",
            created_at=T - dt.timedelta(days=3),
            updated_at=T,
            contacts=(ContactRole("C5", True),),
        ),
    ),
)
BOTH = Policy(skip_converted_leads=True, excluded_account_types=("channel partner / reseller",))
pytestmark = profiles("after_setup", "full")


def _call(*emails: str, phone: str | None = None) -> Call:
    people = [Person(email=e) for e in emails] + ([Person(phone=phone)] if phone else [])
    return Call(id="aircall:77", started_at=T, participants=tuple(people))


def _without_trace(decision: Decision) -> dict[str, object]:
    return {k: v for k, v in decision.to_json().items() if k != "trace"}


def _top_select(soql: str) -> tuple[str, str]:
    """(the top-level field list, the object) of a SOQL text: child subqueries stay in the list."""
    depth = 0
    body = soql[len("SELECT ") :]
    for index, char in enumerate(body):
        depth += (char == "(") - (char == ")")
        if depth == 0 and body.startswith(" FROM ", index):
            return body[:index], body[index + len(" FROM ") :].split(" ", 1)[0]
    raise AssertionError(f"no FROM in {soql!r}")


def _fields(env: SalesforceEnv, sobject: str) -> list[list[str]]:
    """The top-level fields of each logged query on `sobject` (children's subqueries left out)."""
    out = []
    for soql in env.emulator.stats.queries:
        fields, source = _top_select(soql)
        if source == sobject:
            out.append([f.strip() for f in fields.split(",") if "(" not in f and ")" not in f])
    return out


def _decide(env: SalesforceEnv, call: Call, policy: Policy) -> tuple[SalesforceCrm, Decision]:
    env.reset_stats()
    port = env.port(policy=policy)
    return port, associate(call, policy, port)


def test_conversion_and_type_are_selected_only_when_the_policy_asks(salesforce) -> None:
    env = salesforce(CRM)
    call = _call("jane@acme.example", "li@startup.example", phone="(212) 555-0199")

    _decide(env, call, Policy())
    leads, accounts = _fields(env, "Lead"), _fields(env, "Account")
    assert leads and accounts
    assert all("IsConverted" not in f and "ConvertedContactId" not in f for f in leads)
    assert all("Type" not in f for f in accounts)
    lead_queries = [q for q in env.emulator.stats.queries if _top_select(q)[1] == "Lead"]
    assert all("WHERE IsConverted = false AND (" in q for q in lead_queries)
    assert all(
        "Lead(Id, Phone, MobilePhone WHERE IsConverted = false)" in s for s in env.emulator.stats.searches
    )

    _decide(env, call, BOTH)
    leads, accounts = _fields(env, "Lead"), _fields(env, "Account")
    assert leads and all(f[-2:] == ["IsConverted", "ConvertedContactId"] for f in leads)
    assert accounts and all("Type" in f for f in accounts)
    # M9 reads converted leads too: SOQL returns them unless the query filters them out
    lead_queries = [q for q in env.emulator.stats.queries if _top_select(q)[1] == "Lead"]
    assert not any("IsConverted =" in q for q in lead_queries)
    assert all("Lead(Id, Phone, MobilePhone)" in s for s in env.emulator.stats.searches)

    # each rule alone adds its own fields only
    _decide(env, call, Policy(excluded_account_types=("Other",)))
    assert all("IsConverted" not in f for f in _fields(env, "Lead"))
    assert all("Type" in f for f in _fields(env, "Account"))
    _decide(env, call, Policy(skip_converted_leads=True))
    assert all("ConvertedContactId" in f for f in _fields(env, "Lead"))
    assert all("Type" not in f for f in _fields(env, "Account"))


def test_a_converted_lead_is_followed_to_its_contact_end_to_end(salesforce) -> None:
    env = salesforce(CRM)
    call = _call("bob@startup.example", "eve@startup.example")
    policy = Policy(skip_converted_leads=True)
    port, decision = _decide(env, call, policy)
    assert (decision.case.value, decision.contact_ids, decision.lead_ids) == ("contacts", ("C5",), ())
    assert (decision.account_id, decision.opportunity_id) == ("A1", "O5")
    m9 = [e.message for e in decision.trace if e.rule == "M9"]
    assert any("L1" in m and "C5" in m for m in m9) and any("L3" in m for m in m9)
    want = associate(call, policy, ScenarioCrm(CRM, policy.default_region))
    assert _without_trace(decision) == _without_trace(want)

    written = port.upsert_activity(call, decision)
    task = env.emulator.org.records["Task"][written.id]
    assert (task["WhoId"], task["WhatId"]) == ("C5", "O5")

    # Without M9 the adapter reads no converted lead at all, as before v1.1 (Salesforce relates
    # no new activity to a converted lead), where the scenario file would still match L1 as a lead.
    _, off = _decide(env, call, Policy())
    assert (off.case.value, off.contact_ids, off.lead_ids) == ("none", (), ())


def test_a_converted_lead_is_still_matched_by_phone_and_followed(salesforce) -> None:
    phone = "+1 212 555 0142"
    crm = dataclasses.replace(
        CRM, leads=(Lead(id="L1", phones=(phone,), is_converted=True, converted_contact_id="C5"),)
    )
    env = salesforce(crm)
    _, decision = _decide(env, _call(phone="(212) 555-0142"), Policy(skip_converted_leads=True))
    assert (decision.contact_ids, decision.opportunity_id) == (("C5",), "O5")
    assert env.emulator.stats.by_path["search"] == 1


def test_an_excluded_account_type_loses_its_opportunity(salesforce) -> None:
    env = salesforce(CRM)
    call = _call("jane@acme.example", "max@globex.example")
    _, kept = _decide(env, call, Policy())
    assert (kept.opportunity_id, kept.account_id) == ("O5", "A1")
    policy = Policy(excluded_account_types=(" channel partner / RESELLER ",))
    _, decision = _decide(env, call, policy)
    assert (decision.opportunity_id, decision.account_id) == ("O2", "A2")
    assert any(e.rule == "X1" and "A1" in e.message for e in decision.trace)  # O1 and O5 lost with A1
    want = associate(call, policy, ScenarioCrm(CRM, policy.default_region))
    assert _without_trace(decision) == _without_trace(want)


def test_the_policy_adds_columns_not_requests(salesforce) -> None:
    """The same calls cost the same API calls with both rules on as with them off."""
    env = salesforce(CRM)
    for call in (
        _call("jane@acme.example", "max@globex.example"),
        _call("max@globex.example", "li@startup.example", phone="(212) 555-0199"),
        _call("robert@acme.example"),
    ):
        costs = []
        for policy in (Policy(), BOTH):
            port, _ = _decide(env, call, policy)
            costs.append(
                (env.emulator.stats.api_calls, dict(env.emulator.stats.by_path), port.stats.requests)
            )
        assert costs[0] == costs[1], call.participants
    # an ordinary two-contact call: one composite call, as without v1.1
    _decide(env, _call("jane@acme.example", "max@globex.example"), BOTH)
    assert env.emulator.stats.by_path == {"composite": 1}


def test_what_the_rules_themselves_add_costs_one_round_of_reads(salesforce) -> None:
    """Where the rule needs a record the call would not have read, the gather's next round reads it:
    the contact a lead became (M9), the account of a contact-role opportunity (X1's type). One
    composite call each, the same as any round that reads new records; never one per record."""
    env = salesforce(CRM)
    _, decision = _decide(env, _call("bob@startup.example"), Policy(skip_converted_leads=True))
    assert decision.contact_ids == ("C5",)
    assert env.emulator.stats.by_path == {"composite": 2}
    _decide(env, _call("robert@acme.example"), Policy())
    assert env.emulator.stats.by_path == {"composite": 1}  # the same contact matched directly

    # jane's role on O2 (account A2, not hers): X1 needs A2's type, read in the next round
    _, off = _decide(env, _call("jane@acme.example"), Policy())
    off_cost = env.emulator.stats.api_calls
    _, on = _decide(env, _call("jane@acme.example"), BOTH)
    assert (off.opportunity_id, on.opportunity_id) == ("O5", "O2")
    assert (off_cost, env.emulator.stats.api_calls) == (1, 2)


def _tenant(env: SalesforceEnv, policy: Policy) -> Tenant:
    crm = CrmConfig(
        kind="salesforce",
        settings={"login_url": env.emulator.instance_url, "ca_file": env.emulator.ca_file},
        credentials={
            "client_id": env.emulator.client_id,
            "client_secret": env.emulator.client_secret,
            "refresh_token": env.emulator.refresh_token,
        },
        rate_limit=RateLimit(per_second=50, burst=100),
    )
    return Tenant(name="acme", crm=crm, policy=policy)


def test_a_type_hidden_by_field_level_security_is_left_out_and_doctor_warns(salesforce) -> None:
    hidden = dataclasses.replace(OrgProfile.after_setup(), hidden_fields=frozenset({"Account.Type"}))
    env = salesforce(CRM, profile=hidden)
    call = _call("jane@acme.example", "max@globex.example")
    _, decision = _decide(env, call, BOTH)
    assert all("Type" not in f for f in _fields(env, "Account"))
    assert decision.opportunity_id == "O5"  # no type read: X1 excludes nothing
    assert env.emulator.stats.by_path == {"composite": 1}  # no INVALID_FIELD, no describe again

    tenant = SalesforceTenant.from_config(_tenant(env, BOTH))
    lines = {c.name: c for c in tenant.doctor()}
    line = lines["field Account.Type"]
    assert line.status.value == "warn"
    assert "X1" in line.detail and "excludes no account" in line.detail
    assert line.fix is not None and "Field-Level Security" in line.fix
    assert lines["field Lead.ConvertedContactId"].status.value == "ok"
    assert lines["field Lead.IsConverted"].detail == "present (policy.skip_converted_leads)"
    # the tenant's port selects what its policy asks, as the worker's factory builds it
    assert tenant.port().follows_conversions

    plain = SalesforceTenant.from_config(_tenant(env, Policy()))
    names = {c.name for c in plain.doctor()}
    assert not names & {"field Account.Type", "field Lead.IsConverted", "field Lead.ConvertedContactId"}


def test_a_hidden_converted_contact_id_skips_converted_leads_and_follows_none(salesforce) -> None:
    hidden = dataclasses.replace(
        OrgProfile.after_setup(), hidden_fields=frozenset({"Lead.ConvertedContactId"})
    )
    env = salesforce(CRM, profile=hidden)
    _, decision = _decide(
        env, _call("bob@startup.example", "li@startup.example"), Policy(skip_converted_leads=True)
    )
    assert all(f[-1] == "IsConverted" for f in _fields(env, "Lead"))
    assert (decision.contact_ids, decision.lead_ids) == ((), ("L2",))
    assert any(e.rule == "M9" and "L1" in e.message for e in decision.trace)
    doctor = {c.name: c for c in SalesforceTenant.from_config(_tenant(env, BOTH)).doctor()}
    assert doctor["field Lead.ConvertedContactId"].status.value == "warn"
    assert "never followed" in doctor["field Lead.ConvertedContactId"].detail
