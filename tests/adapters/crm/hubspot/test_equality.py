"""Scenarios decide the same through the HubSpot adapter (over the emulator) as through the scenario file."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.crm.hubspot.support import PROFILES, as_portal_holds, crm_for, examples, load, portal
from tests.emulators.hubspot import Store
from tests.scenario_gen import generate_scenario
from worker.config.scenario import parse_scenario
from worker.core.model import Scenario
from worker.pipeline.association import associate, decide_scenario

COUNT = 200


def without_trace(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "trace"}


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.stem)
def test_examples_decide_the_same(path: Path) -> None:
    scenario = load(path)
    with portal(scenario) as emulator:
        crm = crm_for(scenario, emulator)
        got = associate(scenario.call, scenario.policy, crm, scenario.previous)
    assert without_trace(got.to_json()) == without_trace(decide_scenario(scenario).to_json())
    assert crm.stats.requests == sum(emulator.requests.values())
    assert emulator.statuses.get(429, 0) == 0


@pytest.mark.parametrize("profile_name", list(PROFILES))
def test_generated_scenarios_decide_the_same(profile_name: str) -> None:
    """On each portal, as the scenario file stripped of what that portal cannot hold (full: nothing)."""
    profile = PROFILES[profile_name]()
    rng = random.Random(20261122)
    scenarios: list[Scenario] = [parse_scenario(generate_scenario(rng)) for _ in range(COUNT)]
    mismatches = []
    requests = 0
    with portal(scenarios[0]) as emulator:
        for index, scenario in enumerate(scenarios):
            emulator.store = Store.from_scenario(scenario, profile=profile, calculated_closed=index % 2 == 0)
            crm = crm_for(scenario, emulator)
            expected = without_trace(decide_scenario(as_portal_holds(scenario, profile)).to_json())
            got = without_trace(associate(scenario.call, scenario.policy, crm, scenario.previous).to_json())
            if got != expected:
                mismatches.append((index, expected, got))
            requests += crm.stats.requests
        sent = sum(emulator.requests.values())
    assert mismatches == []
    assert requests == sent
