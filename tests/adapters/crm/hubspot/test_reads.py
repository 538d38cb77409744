"""The HubSpot adapter reads back, through the emulator, the records the scenario file holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.crm.hubspot import HubSpotClient, HubSpotCrm, HubSpotMapping, TokenSource
from adapters.crm.scenario import ScenarioCrm
from tests.adapters.crm.hubspot.support import (
    TOKEN,
    Sleeps,
    crm_for,
    everything,
    examples,
    load,
    portal,
    settings,
)
from worker.config.scenario import parse_scenario
from worker.core.model import CrmSlice, Scenario
from worker.pipeline.association import associate, decide_scenario

FIELDS = ("users", "accounts", "contacts", "leads", "opportunities", "activities")


def records(crm_slice: CrmSlice, name: str) -> list[object]:
    unique = {record.id: record for record in getattr(crm_slice, name)}
    return [unique[k] for k in sorted(unique)]


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.stem)
def test_one_round_reads_the_same_records_as_the_scenario_file(path: Path) -> None:
    scenario = load(path)
    keys = everything(scenario)
    expected = ScenarioCrm(scenario.crm, scenario.policy.default_region).lookup(keys)
    with portal(scenario) as emulator:
        crm = crm_for(scenario, emulator)
        got = crm.lookup(keys)
        assert emulator.statuses.get(429, 0) == 0
    for name in FIELDS:
        assert records(got, name) == records(expected, name), name
    assert crm.stats.rounds == 1
    assert crm.stats.requests == sum(emulator.requests.values())


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.stem)
def test_closed_state_from_pipeline_stages_when_not_calculated(path: Path) -> None:
    scenario = load(path)
    keys = everything(scenario)
    expected = ScenarioCrm(scenario.crm, scenario.policy.default_region).lookup(keys)
    with portal(scenario, calculated_closed=False) as emulator:
        crm = crm_for(scenario, emulator)
        got = crm.lookup(keys)
        again = crm_for(scenario, emulator, cache=crm.cache).lookup(keys)
    assert records(got, "opportunities") == records(expected, "opportunities")
    assert records(again, "opportunities") == records(expected, "opportunities")
    # The stages come with the tenant's capabilities: every pipeline in one read, none per deal.
    assert emulator.requests.get("GET /crm/v3/pipelines/deals", 0) == 1
    assert emulator.requests.get("GET /crm/v3/pipelines/deals/default", 0) == 0


def test_an_association_never_reads_the_same_keys_twice() -> None:
    scenario = load(examples()[0])
    keys = everything(scenario)
    with portal(scenario) as emulator:
        crm = crm_for(scenario, emulator)
        crm.lookup(keys)
        first = sum(emulator.requests.values())
        crm.lookup(keys)
        second = sum(emulator.requests.values()) - first
    # Contacts, companies, deals and owners are remembered; only the searches run again.
    assert second < first
    assert not any(
        "batch/read" in route and "v4" in route for route in emulator.requests if emulator.requests[route] > 1
    )


def crowd(size: int) -> Scenario:
    """A meeting with `size` external participants, each a contact at its own company with a deal."""
    people = [{"email": f"p{i}@c{i}.example", "phone": f"+1212555{i:04d}"} for i in range(size)]
    return parse_scenario(
        {
            "version": 1,
            "policy": {"default_region": "US"},
            "call": {
                "id": "zoom:1",
                "kind": "meeting",
                "started_at": "2026-06-10T15:00:00Z",
                "organizer": {"email": "rep@seller.example"},
                "participants": people,
            },
            "crm": {
                "accounts": [{"id": f"A{i}", "domains": [f"c{i}.example"]} for i in range(size)],
                "contacts": [
                    {"id": f"C{i}", "email": p["email"], "phones": [p["phone"]], "account_ids": [f"A{i}"]}
                    for i, p in enumerate(people)
                ],
                "opportunities": [
                    {
                        "id": f"O{i}",
                        "account_id": f"A{i}",
                        "created_at": "2026-05-01T10:00:00Z",
                        "updated_at": "2026-05-01T10:00:00Z",
                        "contacts": [{"id": f"C{i}"}],
                    }
                    for i in range(size)
                ],
            },
        }
    )


@pytest.mark.parametrize("additional_emails", ["always", "missing"])
def test_requests_do_not_grow_with_the_number_of_participants(additional_emails: str) -> None:
    """Batches hold 100 ids and IN filters 100 values; only `hs_additional_emails` costs a filter
    group per email (CONTAINS_TOKEN takes one value), five groups per search. One person costs
    less still: one v3 GET by email instead of batch and association reads."""
    costs = {}
    searches = {}
    for size in (1, 3, 40):
        scenario = crowd(size)
        with portal(scenario) as emulator:
            client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
            mapping = HubSpotMapping(additional_emails=additional_emails)
            crm = HubSpotCrm(client, mapping)
            decision = associate(scenario.call, scenario.policy, crm)
        assert len(decision.contact_ids) == size
        costs[size] = crm.stats.requests
        searches[size] = emulator.requests["POST /crm/v3/objects/contacts/search"]
    assert costs[1] < costs[3]
    if additional_emails == "missing":
        assert costs[40] == costs[3]
    else:
        assert (searches[3], searches[40]) == (1, 9)  # (3 + 2) and (40 + 2) filter groups
        assert costs[40] - searches[40] == costs[3] - searches[3]


def test_a_large_meeting_keeps_every_search_under_hubspots_body_limit() -> None:
    """HubSpot refuses a search body over 3,000 characters (400): a hundred participants' phones
    and emails are spread over searches that each fit, and every one of them is found."""
    scenario = crowd(100)
    with portal(scenario) as emulator:
        crm = crm_for(scenario, emulator)
        decision = associate(scenario.call, scenario.policy, crm)
        refused = emulator.statuses.get(400, 0)
    assert refused == 0
    assert len(decision.contact_ids) == 100


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.stem)
def test_hubspot_native_options_decide_the_examples_the_same(path: Path) -> None:
    scenario = load(path)
    with portal(scenario) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        mapping = HubSpotMapping(
            default_region=scenario.policy.default_region, additional_emails="missing", activity_kinds="own"
        )
        got = associate(scenario.call, scenario.policy, HubSpotCrm(client, mapping), scenario.previous)
    expected = decide_scenario(scenario)
    assert (got.case, got.contact_ids, got.account_id, got.opportunity_id) == (
        expected.case,
        expected.contact_ids,
        expected.account_id,
        expected.opportunity_id,
    )
