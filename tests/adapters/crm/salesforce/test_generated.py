"""200 generated scenarios decide the same through the Salesforce adapter as through the scenario file."""

from __future__ import annotations

import random

from adapters.crm.salesforce.adapter import SalesforceCrm
from tests.adapters.crm.salesforce.conftest import SalesforceEnv
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.scenario_gen import generate_scenario
from worker.config.scenario import parse_scenario
from worker.core.model import CrmSlice
from worker.pipeline.association import associate, decide_scenario

COUNT = 200
PAGED_COUNT = 60


def _without_trace(result: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in result.items() if k != "trace"}


def test_generated_scenarios_decide_the_same(salesforce) -> None:
    _decide_alike(salesforce(CrmSlice()), random.Random(20260310), COUNT)


def test_generated_scenarios_decide_the_same_when_subquery_rows_come_in_pages(salesforce) -> None:
    """Roles, relations and related records read through child subqueries; the org pages those rows."""
    _decide_alike(salesforce(CrmSlice(), child_page_size=1), random.Random(20261122), PAGED_COUNT)


def _decide_alike(env: SalesforceEnv, rng: random.Random, count: int) -> None:
    mismatches = []
    calls = 0
    rounds = 0
    for index in range(count):
        scenario = parse_scenario(generate_scenario(rng))
        env.emulator.org = seed_org(scenario.crm, profile=OrgProfile.full())
        port = SalesforceCrm(env.client(), env.settings, scenario.policy.default_region)
        expected = _without_trace(decide_scenario(scenario).to_json())
        got = _without_trace(associate(scenario.call, scenario.policy, port, scenario.previous).to_json())
        if got != expected:
            mismatches.append((index, expected, got))
        calls += port.stats.requests
        rounds += port.stats.rounds
    assert mismatches == []
    assert calls == env.emulator.stats.api_calls
    assert calls <= 2 * rounds or env.emulator.child_page_size is not None
