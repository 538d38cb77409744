"""The HubSpot adapter reads back, through the emulator, the records the scenario file holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.crm.scenario import ScenarioCrm
from tests.adapters.crm.hubspot.support import crm_for, everything, examples, load, portal
from worker.model import CrmSlice

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
    pipeline_reads = emulator.requests.get("GET /crm/v3/pipelines/deals/default", 0)
    assert pipeline_reads == (1 if scenario.crm.opportunities else 0)


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
