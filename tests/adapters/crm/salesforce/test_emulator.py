"""The emulator parses and evaluates the SOQL it receives, and refuses what Salesforce refuses."""

from __future__ import annotations

import datetime as dt

import pytest

from adapters.crm.salesforce.client import RetrySettings
from adapters.errors import RateLimitedError, RetryableError
from tests.emulators.salesforce.bigorg import generate_crm
from tests.emulators.salesforce.org import OrgError
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import DEFAULT_FAULT_MIX
from worker.config.scenario import parse_scenario
from worker.core.model import Account, Contact, ContactRole, CrmSlice, Lead, Opportunity

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
    return seed_org(CRM, profile=OrgProfile.full())


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
        ("SELECT Id FROM Nothing__c", "INVALID_TYPE"),
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


# --- faults drawn at a rate (chaos runs) ------------------------------------------------------------

FAULT_SOQL = "SELECT Id, Email FROM Contact WHERE Email = 'jane@acme.example'"


def _patient(env, **kwargs):
    """A client that retries long enough to get through any run of transient faults."""
    return env.client(retry=RetrySettings(max_attempts=40, base_delay=0.0, sleep=env.sleeps.append), **kwargs)


def test_fault_rate_zero_injects_nothing(salesforce) -> None:
    env = salesforce(CRM)
    env.emulator.fault_rate = 0.0
    client = _patient(env)
    for _ in range(30):
        assert ids(client.query(FAULT_SOQL)) == ["C1"]
    assert env.emulator.stats.faults == {}
    assert client.last_attempts.count == 1


def test_seeded_fault_rate_draws_the_whole_mix_and_every_fault_is_passed_by_retrying(salesforce) -> None:
    env = salesforce(CRM)
    emulator = env.emulator
    emulator.fault_rate = 0.4
    emulator.session_min_age = 0.0
    emulator.seed_faults(11)
    client = _patient(env)
    for _ in range(150):
        assert ids(client.query(FAULT_SOQL)) == ["C1"]
    faults = emulator.stats.faults
    assert set(faults) == {"server_unavailable", "unknown_exception", "limit_concurrent", "expired_session"}
    assert emulator.stats.api_calls == 150, "a faulted request never reached the org"
    assert 0.25 < sum(faults.values()) / emulator.stats.requests < 0.5
    assert emulator.stats.logins == faults["expired_session"], "each expiry is one refresh by refresh token"
    assert client.refreshes == faults["expired_session"]


def test_the_same_seed_draws_the_same_faults(salesforce) -> None:
    seen = []
    for _ in range(2):
        env = salesforce(CRM)
        env.emulator.fault_rate = 0.5
        env.emulator.session_min_age = 0.0
        env.emulator.seed_faults(3)
        client = _patient(env)
        for _ in range(40):
            client.query(FAULT_SOQL)
        seen.append(dict(env.emulator.stats.faults))
    assert seen[0] == seen[1] and sum(seen[0].values()) > 0


def test_a_session_just_issued_is_never_expired_by_the_rate(salesforce) -> None:
    env = salesforce(CRM)
    env.emulator.fault_rate = 1.0
    env.emulator.fault_mix = {"expired_session": 1.0}
    env.emulator.session_min_age = 0.0
    client = env.client(retry=RetrySettings(max_attempts=2, base_delay=0.0, sleep=env.sleeps.append))
    assert ids(client.query(FAULT_SOQL)) == ["C1"], "a session that served nothing yet is spared"
    assert env.emulator.stats.faults == {}
    for _ in range(5):
        # each call: its session is expired, refreshed, and the fresh one serves the retry
        assert ids(client.query(FAULT_SOQL)) == ["C1"]
        assert client.last_attempts.count == 2 and client.last_attempts.refreshes == 1
    assert env.emulator.stats.faults == {"expired_session": 5}


def test_a_session_younger_than_the_minimum_age_is_spared(salesforce) -> None:
    env = salesforce(CRM)
    env.emulator.fault_rate = 1.0
    env.emulator.fault_mix = {"expired_session": 1.0}
    env.emulator.session_min_age = 3600.0
    client = env.client()
    assert ids(client.query(FAULT_SOQL)) == ["C1"] and ids(client.query(FAULT_SOQL)) == ["C1"]
    assert env.emulator.stats.faults == {} and env.emulator.stats.logins == 0


def test_the_token_endpoint_is_not_faulted_by_the_rate(salesforce) -> None:
    env = salesforce(CRM)
    env.emulator.fault_rate = 1.0
    client = env.client()
    for _ in range(5):
        client.refresh()
    assert env.emulator.stats.logins == 5 and env.emulator.stats.faults == {}
    env.emulator.token_fault_rate = 1.0
    with pytest.raises(RetryableError):
        client.refresh()
    assert env.emulator.stats.faults == {"token_unavailable": 1}


def test_a_faulted_write_never_happened(salesforce) -> None:
    env = salesforce(CRM)
    env.emulator.fault_rate = 1.0
    env.emulator.fault_mix = {"server_unavailable": 1.0, "unknown_exception": 1.0, "limit_concurrent": 1.0}
    client = env.client(retry=RetrySettings(max_attempts=3, base_delay=0.0, sleep=env.sleeps.append))
    with pytest.raises((RetryableError, RateLimitedError)):
        client.call("create", lambda sf: sf.Lead.create({"LastName": "Never", "Company": "Never"}))
    assert sum(env.emulator.stats.faults.values()) == 3
    env.emulator.fault_rate = 0.0
    assert client.query("SELECT Id FROM Lead WHERE LastName = 'Never'") == []


def test_lost_reply_is_opt_in_and_answers_500_for_a_write_that_happened(salesforce) -> None:
    env = salesforce(CRM)
    env.emulator.fault_rate = 1.0
    env.emulator.fault_mix = {"lost_reply": 1.0}
    client = env.client(retry=RetrySettings(max_attempts=1, sleep=env.sleeps.append))
    with pytest.raises(RetryableError) as caught:
        client.call("create", lambda sf: sf.Lead.create({"LastName": "Ghost", "Company": "Ghost"}))
    assert caught.value.status == 500 and caught.value.code == "UNKNOWN_EXCEPTION"
    env.emulator.fault_rate = 0.0
    assert len(client.query("SELECT Id FROM Lead WHERE LastName = 'Ghost'")) == 1
    assert env.emulator.stats.faults == {"lost_reply": 1}
    assert "lost_reply" not in DEFAULT_FAULT_MIX


def test_an_unknown_kind_in_the_mix_is_refused(salesforce) -> None:
    env = salesforce(CRM)
    env.emulator.fault_rate = 1.0
    env.emulator.fault_mix = {"meteor": 1.0}
    with pytest.raises(ValueError, match="meteor"):
        env.emulator.next_fault()


# --- speed on a big org -----------------------------------------------------------------------------


def test_a_semi_join_inner_query_runs_once_per_outer_query() -> None:
    crm = parse_scenario(
        {"call": {"id": "seed", "started_at": "2026-01-01T00:00:00Z"}, "crm": generate_crm(5)}
    ).crm
    org = seed_org(crm, profile=OrgProfile.full())
    email = next(c.email for c in crm.contacts if c.email)
    before = org.semi_join_runs
    rows = org.query(
        "SELECT Id, (SELECT Id FROM Opportunities) FROM Account WHERE Id IN "
        f"(SELECT AccountId FROM AccountContactRelation WHERE Contact.Email IN ('{email}'))"
    )
    assert org.semi_join_runs - before == 1
    owner = next(c for c in crm.contacts if c.email == email)
    assert sorted(ids(rows)) == sorted(owner.account_ids)
    rows = org.query(
        "SELECT Id FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact WHERE AccountId != null) "
        "AND Id NOT IN (SELECT AccountId FROM Opportunity WHERE AccountId != null)"
    )
    assert org.semi_join_runs - before == 3
    busy = {c.account_ids[0] for c in crm.contacts} | {o.account_id for o in crm.opportunities}
    assert set(ids(rows)) == {a.id for a in crm.accounts} - busy
