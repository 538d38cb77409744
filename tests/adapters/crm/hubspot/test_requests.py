"""What an association costs in requests, counted by the emulator, and the v3 reads that keep it low."""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any

import pytest

from adapters.crm.hubspot import HubSpotClient, HubSpotCrm, HubSpotMapping, TenantCache, TokenSource
from adapters.retry import RetryEvent
from tests.adapters.crm.hubspot.support import TOKEN, Sleeps, portal, settings
from tests.bench_hubspot import ORDINARY
from worker.config.scenario import parse_scenario
from worker.core.port import Lookup
from worker.pipeline.association import associate, decide_scenario

NATIVE: dict[str, Any] = {"additional_emails": "missing", "activity_kinds": "own"}


def without_trace(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "trace"}


@pytest.mark.parametrize(
    ("options", "reads"),
    [
        (
            {},
            {
                "GET /crm/v3/objects/contacts/{id}": 1,
                "POST /crm/v3/objects/contacts/search": 1,
                "POST /crm/v3/objects/calls/batch/read": 1,
                "POST /crm/v3/objects/meetings/batch/read": 1,
                "GET /crm/v3/objects/companies/{id}": 1,
                "POST /crm/v3/objects/deals/batch/read": 1,
            },
        ),
        (
            NATIVE,
            {
                "GET /crm/v3/objects/contacts/{id}": 1,
                "POST /crm/v3/objects/calls/batch/read": 1,
                "GET /crm/v3/objects/companies/{id}": 1,
                "POST /crm/v3/objects/deals/batch/read": 1,
            },
        ),
    ],
    ids=["default", "hubspot-native"],
)
def test_an_ordinary_call_costs_these_requests_and_one_write(
    options: dict[str, Any], reads: dict[str, int]
) -> None:
    """One email participant, one contact at one company with two deals, a warm tenant cache
    (owners, pipelines):
    the contact with its company and deal ids in one GET, the company with its deal ids in
    another, both deals in one batch read, the call id read by `idProperty` (no search); written back in one create."""
    scenario = parse_scenario(ORDINARY)
    mapping = HubSpotMapping(default_region="US", **options)
    with portal(scenario) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        cache = TenantCache()
        warm = HubSpotCrm(client, mapping, cache)
        warm.upsert_activity(scenario.call, associate(scenario.call, scenario.policy, warm))
        emulator.reset_counts()
        call = dataclasses.replace(scenario.call, id="aircall:2")
        crm = HubSpotCrm(client, mapping, cache)
        decision = associate(call, scenario.policy, crm)
        assert dict(emulator.requests) == reads
        assert crm.stats.requests == sum(reads.values())
        emulator.reset_counts()
        written = crm.upsert_activity(call, decision)
        assert dict(emulator.requests) == {"POST /crm/v3/objects/calls": 1}
    assert written.created
    expected = decide_scenario(dataclasses.replace(scenario, call=call))
    assert without_trace(decision.to_json()) == without_trace(expected.to_json())
    assert decision.opportunity_id is not None


def test_a_lookup_by_email_reads_the_deal_role_label_from_the_v3_answer() -> None:
    """v3 lists a user-defined label under its internal name (`Primary` -> `primary`): the
    contact role's primacy comes from the same GET, no v4 association read."""
    scenario = parse_scenario(ORDINARY)
    with portal(scenario) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        raw = client.find("contacts", "JANE@acme.example", ["email"], ("companies", "deals"), "email")
        crm = HubSpotCrm(client, HubSpotMapping())
        got = crm.lookup(Lookup(emails=frozenset({"jane@acme.example"}), contact_ids=frozenset({"C1"})))
    assert raw is not None and raw["id"] == "C1"
    types = {(r["id"], r["type"]) for r in raw["associations"]["deals"]["results"]}
    assert types == {
        ("O1", "contact_to_deal"),
        ("O1", "primary"),
        ("O2", "contact_to_deal"),
        ("O2", "primary"),
    }
    assert {(r["id"], r["type"]) for r in raw["associations"]["companies"]["results"]} == {
        ("A1", "contact_to_company"),
        ("A1", "contact_to_company_unlabeled"),
    }
    assert [c.account_ids for c in got.contacts] == [("A1",)]
    assert {o.id: [(r.id, r.is_primary) for r in o.contacts] for o in got.opportunities} == {
        "O1": [("C1", True)],
        "O2": [("C1", True)],
    }
    assert not any(route.startswith("POST /crm/v4/associations/contacts/") for route in emulator.requests)


def big_account(deals: int) -> dict[str, Any]:
    document = copy.deepcopy(ORDINARY)
    document["crm"]["opportunities"] = [
        {
            "id": f"O{i:03d}",
            "account_id": "A1",
            "created_at": "2026-05-01T10:00:00Z",
            "updated_at": "2026-05-01T10:00:00Z",
            "contacts": [{"id": "C1", "is_primary": i == 0}],
        }
        for i in range(deals)
    ]
    return document


def test_association_blocks_paged_by_v3_are_read_through_v4() -> None:
    """Over 100 entries v3 pages a block (`paging.next`); the adapter then asks v4 for the pair."""
    scenario = parse_scenario(big_account(120))
    with portal(scenario) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        raw = client.get("companies", "A1", [], ("deals",))
        crm = HubSpotCrm(client, HubSpotMapping())
        decision = associate(scenario.call, scenario.policy, crm)
        got = crm.lookup(Lookup(opportunity_ids=frozenset({"O000", "O119"})))
    block = raw["associations"]["deals"]
    assert len(block["results"]) == 100 and block["paging"]["next"]["after"] == "100"
    assert emulator.requests["POST /crm/v4/associations/contacts/deals/batch/read"] == 1
    assert emulator.requests["POST /crm/v4/associations/companies/deals/batch/read"] == 1
    assert {o.id: o.account_id for o in got.opportunities} == {"O000": "A1", "O119": "A1"}
    assert without_trace(decision.to_json()) == without_trace(decide_scenario(scenario).to_json())


def test_a_lookup_that_finds_nobody_is_an_answer_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    """HubSpot answers 404 to a GET by an email nobody holds: no warning, no retry, no failure event;
    an email with `+` reaches the portal intact in the path."""
    document = copy.deepcopy(ORDINARY)
    document["crm"]["contacts"][0]["email"] = "jane+sales@acme.example"
    scenario = parse_scenario(document)
    events: list[RetryEvent] = []
    with portal(scenario) as emulator, caplog.at_level(logging.INFO):
        client = HubSpotClient(
            settings(emulator), TokenSource(TOKEN), sleep=Sleeps(), on_failure=events.append
        )
        crm = HubSpotCrm(client, HubSpotMapping())
        nobody = crm.contacts_by_emails(["nobody@acme.example"])
        jane = crm.contacts_by_emails(["Jane+Sales@acme.example"])
    assert nobody == []
    assert [c.id for c in jane] == ["C1"]
    assert emulator.statuses[404] == 1
    assert events == []
    assert client.stats.retries == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
