"""The emulator parses and evaluates the SOQL it receives, and refuses what Salesforce refuses."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.emulators.salesforce.org import OrgError
from tests.emulators.salesforce.seed import seed_org
from worker.model import Account, Contact, ContactRole, CrmSlice, Lead, Opportunity

T = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
CRM = CrmSlice(
    accounts=(
        Account(id="A1", name="Acme", domains=("acme.example", "acme.io")),
        Account(id="A2", name="Globex", domains=("globex.example",)),
    ),
    contacts=(
        Contact(id="C1", email="Jane@Acme.example", phones=("06 12 34 56 78",), account_ids=("A1", "A2")),
        Contact(id="C2", email="o'brien@globex.example", emails=("ob@home.example",), account_ids=("A2",)),
        Contact(id="C3", email=None, phones=("+1 212 555 0101",)),
    ),
    leads=(Lead(id="L1", email="bob@startup.example", phones=("+33612345678",)),),
    opportunities=(
        Opportunity(
            id="O1",
            account_id="A1",
            created_at=T - dt.timedelta(days=40),
            updated_at=T,
            close_date=dt.date(2026, 4, 30),
            contacts=(ContactRole("C1", True),),
        ),
        Opportunity(id="O2", account_id="A2", created_at=T, updated_at=T, is_closed=True, is_won=True),
    ),
)


@pytest.fixture()
def org():
    return seed_org(CRM)


def ids(rows) -> list[str]:
    return [r["Id"] for r in rows]


def test_where_and_or_in_like_and_case_insensitive_strings(org) -> None:
    assert ids(org.query("SELECT Id FROM Contact WHERE Email = 'jane@acme.EXAMPLE'")) == ["C1"]
    assert ids(org.query("SELECT Id FROM Contact WHERE Email IN ('x@y.z', 'O\\'BRIEN@globex.example')")) == [
        "C2"
    ]
    assert ids(org.query("SELECT Id FROM Contact WHERE Email = null")) == ["C3"]
    assert ids(org.query("SELECT Id FROM Contact WHERE NOT (Email LIKE '%acme%') AND Email != null")) == [
        "C2"
    ]
    assert ids(
        org.query("SELECT Id FROM Account WHERE Website LIKE '%globex%' OR Domains__c LIKE '%acme.io%'")
    ) == [
        "A1",
        "A2",
    ]
    assert ids(org.query("SELECT Id FROM Contact WHERE Id IN ('c1')")) == []


def test_typed_literals_and_order_by_limit(org) -> None:
    rows = org.query(
        "SELECT Id, CloseDate FROM Opportunity WHERE CreatedDate < 2026-03-10T09:30:00Z OR IsWon = true "
        "ORDER BY CreatedDate DESC NULLS LAST LIMIT 1"
    )
    assert ids(rows) == ["O2"]
    assert (
        org.query("SELECT CloseDate FROM Opportunity WHERE CloseDate >= 2026-04-01")[0]["CloseDate"]
        == "2026-04-30"
    )
    with pytest.raises(OrgError) as caught:
        org.query("SELECT Id FROM Opportunity WHERE CreatedDate < '2026-03-10'")
    assert caught.value.code == "INVALID_FIELD"


def test_relationships_children_and_semi_joins(org) -> None:
    rows = org.query(
        "SELECT Id, Account.Name, (SELECT AccountId FROM AccountContactRelations) FROM Contact WHERE Id = 'C1'"
    )
    assert rows[0]["Account"]["Name"] == "Acme"
    assert [r["AccountId"] for r in rows[0]["AccountContactRelations"]["records"]] == ["A1", "A2"]
    rows = org.query(
        "SELECT Id FROM Opportunity WHERE Id IN "
        "(SELECT OpportunityId FROM OpportunityContactRole WHERE Contact.Email = 'jane@acme.example')"
    )
    assert ids(rows) == ["O1"]
    rows = org.query(
        "SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact WHERE AccountId != null)"
    )
    assert ids(rows) == []


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        (
            "SELECT Id FROM Opportunity WHERE Id IN (SELECT OpportunityId FROM OpportunityContactRole) OR IsWon = true",
            "MALFORMED_QUERY",
        ),
        (
            "SELECT Id FROM Contact WHERE Id IN (SELECT ContactId FROM OpportunityContactRole WHERE "
            "OpportunityId IN (SELECT Id FROM Opportunity))",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Contact WHERE Email = 'unterminated", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE Email = 'a\\qb'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Nothing__c", "NOT_FOUND"),
        ("SELECT Id, Nope__c FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Contact WHERE Email IN (SELECT Name FROM Account)", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE Id IN (SELECT WhoId FROM Task)", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact LIMIT 1)", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Account WHERE Id IN (SELECT Contact.AccountId FROM OpportunityContactRole)",
            "MALFORMED_QUERY",
        ),
    ],
)
def test_refuses_what_salesforce_refuses(org, soql: str, code: str) -> None:
    with pytest.raises(OrgError) as caught:
        org.query(soql)
    assert caught.value.code == code


def test_sosl_phone_search_and_its_lag(org) -> None:
    rows = org.search("FIND {612345678} IN PHONE FIELDS RETURNING Contact(Id, Phone), Lead(Id)")
    assert [(r["attributes"]["type"], r["Id"]) for r in rows] == [("Contact", "C1"), ("Lead", "L1")]
    fresh = org.insert("Contact", {"LastName": "New", "Phone": "06-12-34-56-78"}, searchable=False)
    rows = org.search("FIND {612345678} IN PHONE FIELDS RETURNING Contact(Id)")
    assert fresh not in ids(rows)
    assert fresh in ids(org.query("SELECT Id FROM Contact WHERE Phone IN ('06-12-34-56-78')"))
    with pytest.raises(OrgError) as caught:
        org.search("FIND {a{b} RETURNING Contact")
    assert caught.value.code == "MALFORMED_SEARCH"


def test_paging_follows_next_records_url(salesforce) -> None:
    env = salesforce(CRM, page_size=1)
    client = env.client()
    assert ids(client.query("SELECT Id FROM Contact")) == ["C1", "C2", "C3"]
    assert env.emulator.stats.by_path == {"query": 3}
    assert client.api_calls == 3


def test_crud_and_query_all_see_deleted_records(salesforce) -> None:
    env = salesforce(CRM)
    sf = env.client().sf
    created = sf.Lead.create({"LastName": "Temp", "Company": "Temp", "Email": "temp@x.example"})
    assert sf.Lead.get(created["id"])["Email"] == "temp@x.example"
    sf.Lead.update(created["id"], {"Email": "moved@x.example"})
    sf.Lead.delete(created["id"])
    soql = "SELECT Id FROM Lead WHERE Email = 'moved@x.example'"
    assert sf.query(soql)["totalSize"] == 0
    assert sf.query_all(soql, include_deleted=True)["totalSize"] == 1
    assert env.emulator.stats.api_calls == 6
