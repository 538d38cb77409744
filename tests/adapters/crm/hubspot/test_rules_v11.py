"""Rules v1.1 through the HubSpot adapter: X1's company `type`, and M9 where HubSpot has no conversion.

Real hubspot-api-client over HTTP against the emulator. `type` is named among the
properties of the company reads only when the tenant's policy asks (the emulator's log
of the properties each read asked for says so), an excluded type loses its deal, and
the policy adds a property name, not requests. A HubSpot lead is a contact in a lead
stage: with `skip_converted_leads` it is still a lead, and once its stage moves on (what
HubSpot does instead of converting) the same record is a contact, followed to its
company and deal through `associate()`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from adapters.crm.hubspot import HubSpotClient, HubSpotCrm, HubSpotMapping, TenantCache, TokenSource
from adapters.crm.hubspot.tenant import HubSpotTenant
from adapters.crm.scenario import ScenarioCrm
from tests.adapters.crm.hubspot.support import TOKEN, Sleeps, portal, settings
from tests.emulators.hubspot import HubSpotEmulator
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
    Scenario,
)
from worker.pipeline.association import associate

T = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
CRM = CrmSlice(
    accounts=(
        Account(id="A1", name="Acme", domains=("acme.example",), type="PARTNER"),
        Account(id="A2", name="Globex", domains=("globex.example",), type="PROSPECT"),
    ),
    contacts=(
        Contact(id="C1", email="jane@acme.example", account_ids=("A1",)),
        Contact(id="C2", email="max@globex.example", account_ids=("A2",)),
    ),
    leads=(Lead(id="L2", email="li@startup.example"),),
    opportunities=(
        Opportunity(id="O1", account_id="A1", created_at=T - dt.timedelta(days=5), updated_at=T),
        Opportunity(
            id="O2",
            account_id="A2",
            created_at=T - dt.timedelta(days=40),
            updated_at=T,
            contacts=(ContactRole("C1", False),),
        ),
    ),
)
BOTH = Policy(skip_converted_leads=True, excluded_account_types=(" Partner ",))
COMPANIES = "/crm/v3/objects/companies"


def _call(*emails: str) -> Call:
    return Call(id="aircall:88", started_at=T, participants=tuple(Person(email=e) for e in emails))


def _without_trace(decision: Decision) -> dict[str, object]:
    return {k: v for k, v in decision.to_json().items() if k != "trace"}


@contextmanager
def _portal() -> Iterator[tuple[HubSpotEmulator, HubSpotClient, TenantCache]]:
    """The portal, a client and a tenant cache warmed by one association (capabilities, owners)."""
    with portal(Scenario(call=_call(), crm=CRM)) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        cache = TenantCache()
        associate(_call("nobody@nowhere.example"), Policy(), HubSpotCrm(client, HubSpotMapping(), cache))
        yield emulator, client, cache


def _decide(
    emulator: HubSpotEmulator, client: HubSpotClient, cache: TenantCache, call: Call, policy: Policy
) -> tuple[HubSpotCrm, Decision]:
    emulator.reset_counts()
    port = HubSpotCrm(client, HubSpotMapping(), cache, policy=policy)
    return port, associate(call, policy, port)


def _company_reads(emulator: HubSpotEmulator) -> list[tuple[str, ...]]:
    return [asked for _, path, asked in emulator.properties_asked if path.startswith(COMPANIES)]


def test_company_type_is_asked_for_only_when_the_policy_asks() -> None:
    call = _call("jane@acme.example", "max@globex.example", "li@startup.example")
    with _portal() as (emulator, client, cache):
        _decide(emulator, client, cache, call, Policy())
        reads = _company_reads(emulator)
        assert reads and all("type" not in asked for asked in reads)

        port, _ = _decide(emulator, client, cache, call, BOTH)
        reads = _company_reads(emulator)
        assert reads and all("type" in asked for asked in reads)
        assert port.company_properties[-1] == "type"
        # M9 reads nothing in HubSpot: the contact reads name the same properties either way
        contacts = {asked for _, path, asked in emulator.properties_asked if "/contacts" in path}
        assert contacts and all("hs_lead_status" not in asked for asked in contacts)

        _decide(emulator, client, cache, call, Policy(skip_converted_leads=True))
        assert all("type" not in asked for asked in _company_reads(emulator))


def test_an_excluded_company_type_loses_its_deal() -> None:
    call = _call("jane@acme.example", "max@globex.example")
    with _portal() as (emulator, client, cache):
        _, kept = _decide(emulator, client, cache, call, Policy())
        assert (kept.opportunity_id, kept.account_id) == ("O1", "A1")
        port, decision = _decide(emulator, client, cache, call, BOTH)
    assert (decision.opportunity_id, decision.account_id) == ("O2", "A2")
    assert any(e.rule == "X1" and "A1" in e.message for e in decision.trace)
    want = associate(call, BOTH, ScenarioCrm(CRM, BOTH.default_region))
    assert _without_trace(decision) == _without_trace(want)
    assert {a.id: a.type for a in port.accounts_by_ids(["A1", "A2"])} == {"A1": "PARTNER", "A2": "PROSPECT"}


def test_the_policy_adds_a_property_not_requests() -> None:
    with _portal() as (emulator, client, cache):
        for call in (
            _call("jane@acme.example", "max@globex.example"),
            _call("max@globex.example", "li@startup.example"),
            _call("li@startup.example"),
        ):
            costs = []
            for policy in (Policy(), BOTH):
                port, _ = _decide(emulator, client, cache, call, policy)
                costs.append((dict(emulator.requests), port.stats.requests))
            assert costs[0] == costs[1], call.participants


def test_a_deal_of_a_company_the_call_did_not_reach_costs_its_company_read() -> None:
    """X1 needs the type of every candidate deal's company: jane's role on O2 (Globex, not her company)
    makes the gather's next round read Globex, one GET (with its deal ids), never one per deal."""
    call = _call("jane@acme.example")
    with _portal() as (emulator, client, cache):
        off_port, off = _decide(emulator, client, cache, call, Policy())
        off_requests = dict(emulator.requests)
        on_port, on = _decide(emulator, client, cache, call, BOTH)
        on_requests = dict(emulator.requests)
    assert (off.opportunity_id, on.opportunity_id) == ("O1", "O2")
    extra = {
        k: on_requests.get(k, 0) - off_requests.get(k, 0) for k in on_requests.keys() | off_requests.keys()
    }
    assert {k: v for k, v in extra.items() if v} == {"GET /crm/v3/objects/companies/{id}": 1}
    assert on_port.stats.requests == off_port.stats.requests + 1


def test_a_hubspot_lead_is_never_converted_and_its_next_stage_is_a_contact() -> None:
    """HubSpot converts a lead by moving its lifecycle stage on, on the same record: with M9 on, a
    contact in a lead stage is a lead (never skipped); once past it, the same id is a contact whose
    company and deal the call gets, end to end through associate()."""
    call = _call("li@startup.example")
    policy = Policy(skip_converted_leads=True)
    with _portal() as (emulator, client, cache):
        port, decision = _decide(emulator, client, cache, call, policy)
        assert (decision.case.value, decision.lead_ids, decision.contact_ids) == ("leads_only", ("L2",), ())
        leads = port.leads_by_emails(["li@startup.example"])
        assert [(lead.is_converted, lead.converted_contact_id) for lead in leads] == [(False, None)]
        assert "M9" not in {e.rule for e in decision.trace}

        store = emulator.store
        store.update("contacts", "L2", {"lifecyclestage": "salesqualifiedlead"}, "2026-03-09T10:00:00.000Z")
        store.link("contacts", "L2", "companies", "A1", primary=True)
        store.link("deals", "O1", "contacts", "L2")
        _, moved_on = _decide(emulator, client, cache, call, policy)
    assert (moved_on.case.value, moved_on.contact_ids, moved_on.lead_ids) == ("contacts", ("L2",), ())
    assert (moved_on.account_id, moved_on.opportunity_id) == ("A1", "O1")


def test_doctor_checks_company_type_only_when_the_policy_uses_x1() -> None:
    with portal(Scenario(call=_call(), crm=CRM)) as emulator:

        def doctor(policy: Policy) -> dict[str, tuple[str, str]]:
            tenant = HubSpotTenant.from_config(
                "acme", {"host": emulator.url}, {"access_token": TOKEN}, policy=policy
            )
            # the tenant's ports name `type` as its policy says (the worker's factory passes it too)
            assert ("type" in tenant.port().company_properties) == bool(policy.excluded_account_types)
            return {c.name: (c.status.value, c.detail) for c in tenant.doctor()}

        assert "property companies.type" not in doctor(Policy())
        assert doctor(BOTH)["property companies.type"] == ("ok", "present")
        # a portal without it (HubSpot's default property; the emulator drops it to show the fallback)
        del emulator.store.properties["companies"]["type"]
        status, detail = doctor(BOTH)["property companies.type"]
        assert status == "warn" and "X1" in detail and "excludes no company" in detail
