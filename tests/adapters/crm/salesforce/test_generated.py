"""200 generated scenarios decide the same through the Salesforce adapter as through the scenario file."""

from __future__ import annotations

import random

from adapters.crm.salesforce.adapter import SalesforceCrm
from tests.emulators.salesforce.seed import seed_org
from tests.scenario_gen import generate_scenario
from worker.association import associate, decide_scenario
from worker.model import CrmSlice
from worker.scenario import parse_scenario

COUNT = 200


def _without_trace(result: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in result.items() if k != "trace"}


def test_generated_scenarios_decide_the_same(salesforce) -> None:
    env = salesforce(CrmSlice())
    rng = random.Random(20260310)
    mismatches = []
    calls = 0
    rounds = 0
    for index in range(COUNT):
        scenario = parse_scenario(generate_scenario(rng))
        env.emulator.org = seed_org(scenario.crm, env.settings)
        port = SalesforceCrm(env.client(), env.settings, scenario.policy.default_region)
        expected = _without_trace(decide_scenario(scenario).to_json())
        got = _without_trace(associate(scenario.call, scenario.policy, port, scenario.previous).to_json())
        if got != expected:
            mismatches.append((index, expected, got))
        calls += port.stats.requests
        rounds += port.stats.rounds
    assert mismatches == []
    assert calls == env.emulator.stats.api_calls
    assert calls <= 2 * rounds
