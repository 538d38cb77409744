"""Reads through the port: batching, phones as typed, hostile input, caching across rounds."""

from __future__ import annotations

import datetime as dt

from adapters.crm.salesforce.soql import phone_variants, quote, sosl_escape
from adapters.crm.scenario import ScenarioCrm
from tests.adapters.crm.salesforce.conftest import profiles
from worker.core.model import (
    Account,
    Activity,
    ActivityType,
    CallKind,
    Contact,
    ContactRole,
    CrmSlice,
    Lead,
    Opportunity,
    User,
)
from worker.core.port import ActivityQuery, Lookup

T = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
CRM = CrmSlice(
    users=(User(id="U1", email="rep@ourco.example"),),
    accounts=(Account(id="A1", name="Acme", domains=("https://www.acme.example/", "acme.io")),),
    contacts=(
        Contact(id="C1", email="jane@acme.example", phones=("06 12 34 56 78",), account_ids=("A1",)),
        Contact(id="C2", email="x'); DELETE FROM Contact; --@evil.example", account_ids=("A1",)),
        Contact(id="C3", phones=("+33 6 1234 5678 ext. 9",)),
    ),
    leads=(Lead(id="L1", email="bob@startup.example", phones=("0033612345678",)),),
    opportunities=(
        Opportunity(
            id="O1", account_id="A1", created_at=T, updated_at=T, contacts=(ContactRole("C1", True),)
        ),
    ),
    activities=(
        Activity(
            id="T1",
            type=ActivityType.EVENT,
            start=T + dt.timedelta(minutes=10),
            attendee_emails=("jane@acme.example",),
            contact_ids=("C1",),
        ),
    ),
)
pytestmark = profiles("after_setup", "full")
EVERYTHING = Lookup(
    user_emails=frozenset({"rep@ourco.example"}),
    emails=frozenset({"jane@acme.example"}),
    phones=frozenset({"+33612345678"}),
    domains=frozenset({"acme.example"}),
    contact_ids=frozenset({"C1"}),
    account_ids=frozenset({"A1"}),
    opportunity_ids=frozenset({"O1"}),
    activities=(ActivityQuery(call_id="zoom:1", kind=CallKind.MEETING, started_at=T, window_minutes=15),),
)


def _ids(records) -> list[str]:
    return sorted(r.id for r in records)


def test_one_round_holds_what_the_scenario_file_holds(salesforce) -> None:
    env = salesforce(CRM)
    port = env.port("FR")
    got = port.lookup(EVERYTHING)
    want = ScenarioCrm(CRM, "FR").lookup(EVERYTHING)
    for kind in ("users", "accounts", "contacts", "leads", "opportunities", "activities"):
        assert set(_ids(getattr(got, kind))) >= set(_ids(getattr(want, kind))), kind
    assert {c.id: c for c in got.contacts}["C1"] == CRM.contacts[0]
    assert {o.id: o for o in got.opportunities}["O1"] == CRM.opportunities[0]
    assert got.activities[0].attendee_emails == ("jane@acme.example",)
    # M6's second domain lives in Account.Domains__c, when the org has it (else Website alone)
    domains = (
        ("acme.example", "acme.io") if env.profile.has_field("Account", "Domains__c") else ("acme.example",)
    )
    assert got.accounts[0].domains == domains
    # 1 SOSL + 8 queries in 2 composite calls (at most 5 queries each)
    assert env.emulator.stats.by_path == {"search": 1, "composite": 2}
    assert port.stats.requests == 3


def test_phones_typed_any_way_are_confirmed_by_e164(salesforce) -> None:
    env = salesforce(CRM)
    port = env.port("FR")
    assert _ids(port.contacts_by_phones(["+33612345678"])) == ["C1", "C3"]
    assert _ids(port.leads_by_phones(["+33612345678"])) == ["L1"]
    assert port.contacts_by_phones(["+12125550101"]) == []


def test_records_sosl_has_not_indexed_yet_are_found_by_soql(salesforce) -> None:
    env = salesforce(CRM)
    env.emulator.org.insert(
        "Contact", {"Id": "C9", "LastName": "Fresh", "MobilePhone": "+33 6 12 34 56 78"}, searchable=False
    )
    port = env.port("FR")
    assert "C9" in _ids(port.lookup(Lookup(phones=frozenset({"+33612345678"}))).contacts)


def test_hostile_values_are_escaped_not_executed(salesforce) -> None:
    env = salesforce(CRM)
    port = env.port()
    hostile = "x'); DELETE FROM Contact; --@evil.example"
    assert _ids(port.contacts_by_emails([hostile])) == ["C2"]
    assert _ids(port.contacts_by_emails(["' OR Email != '"])) == []
    assert quote("a'b\\c") == "'a\\'b\\\\c'"
    assert sosl_escape("612-345{}") == "612\\-345\\{\\}"
    assert "(212) 555-0101" in phone_variants("+12125550101")
    assert "06 12 34 56 78" in phone_variants("+33612345678")


def test_records_read_in_one_round_are_not_read_again(salesforce) -> None:
    env = salesforce(CRM)
    port = env.port("FR")
    first = port.lookup(Lookup(emails=frozenset({"jane@acme.example"})))
    assert _ids(first.contacts) == ["C1"]
    second = port.lookup(Lookup(contact_ids=frozenset({"C1"}), account_ids=frozenset({"A1"})))
    third = port.lookup(Lookup(contact_ids=frozenset({"C1"})))
    assert (_ids(second.accounts), _ids(second.opportunities)) == (["A1"], ["O1"])
    assert _ids(third.contacts) == ["C1"]
    assert port.stats.rounds == 3
    # the first round's free query slots read the contacts' opportunities and accounts by semi-joins
    assert port.stats.requests == env.emulator.stats.api_calls == 1
    assert env.emulator.stats.by_path == {"composite": 1}


def test_the_contacts_accounts_and_opportunities_ride_in_the_first_rounds_free_slot(salesforce) -> None:
    env = salesforce(CRM)
    port = env.port("FR")
    activities = (ActivityQuery(call_id="aircall:1", kind=CallKind.CALL, started_at=T, window_minutes=15),)
    port.lookup(Lookup(emails=frozenset({"jane@acme.example"}), activities=activities))
    second = port.lookup(Lookup(contact_ids=frozenset({"C1"}), account_ids=frozenset({"A1"})))
    assert (_ids(second.accounts), _ids(second.opportunities)) == (["A1"], ["O1"])
    assert {o.id: o for o in second.opportunities}["O1"] == CRM.opportunities[0]
    # contacts, leads, tasks, events and the contacts' accounts: five queries, one composite call
    assert env.emulator.stats.by_path == {"composite": 1}


def test_a_round_without_free_slots_reads_the_next_round_later(salesforce) -> None:
    env = salesforce(CRM)
    port = env.port("FR")
    activities = (ActivityQuery(call_id="aircall:1", kind=CallKind.CALL, started_at=T, window_minutes=15),)
    users = frozenset({"rep@ourco.example"})
    port.lookup(Lookup(user_emails=users, emails=frozenset({"jane@acme.example"}), activities=activities))
    assert env.emulator.stats.by_path == {"composite": 1}
    second = port.lookup(Lookup(contact_ids=frozenset({"C1"}), account_ids=frozenset({"A1"})))
    assert (_ids(second.accounts), _ids(second.opportunities)) == (["A1"], ["O1"])
    assert {o.id: o for o in second.opportunities}["O1"] == CRM.opportunities[0]
    assert env.emulator.stats.by_path == {"composite": 2}


def test_paged_results_inside_a_composite_are_followed(salesforce) -> None:
    env = salesforce(CRM, page_size=1)
    port = env.port("FR")
    slice_ = port.lookup(Lookup(account_ids=frozenset({"A1"}), contact_ids=frozenset({"C1", "C2", "C3"})))
    assert _ids(slice_.contacts) == ["C1", "C2", "C3"]
    assert env.emulator.stats.by_path.get("query", 0) >= 2
    assert port.stats.requests == env.emulator.stats.api_calls


def test_subquery_rows_the_org_pages_are_followed_not_lost(salesforce) -> None:
    crm = CrmSlice(
        accounts=(Account(id="A1", name="Acme"), Account(id="A2", name="Acme Holding")),
        contacts=(Contact(id="C1", email="jane@acme.example", account_ids=("A1", "A2")),),
    )
    env = salesforce(crm, child_page_size=1)
    port = env.port()
    found = port.lookup(Lookup(emails=frozenset({"jane@acme.example"}))).contacts[0].account_ids
    if not env.profile.contacts_to_multiple_accounts:
        assert found == ("A1",)  # Contact.AccountId alone: no AccountContactRelation rows to page
        return
    assert found == ("A1", "A2")
    assert env.emulator.stats.by_path.get("query", 0) >= 1
    assert port.stats.requests == env.emulator.stats.api_calls


def test_many_phones_stay_under_the_16384_byte_uri_limit(salesforce) -> None:
    """A real org answers 414 past 16,384 bytes of URI; twelve phones' variants used to get there."""
    phones = [f"+336123456{n:02d}" for n in range(12)]
    env = salesforce(CRM)
    port = env.port("FR")
    assert _ids(port.contacts_by_phones(["+33612345678", *phones])) == ["C1", "C3"]
    assert _ids(port.leads_by_phones(["+33612345678", *phones])) == ["L1"]
    assert env.emulator.stats.by_path["query"] >= 4, "each read took several queries under the limit"
