"""The contract examples decide the same through Salesforce (emulated) as through the scenario file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import example_dir
from worker.config.scenario import loads_scenario
from worker.pipeline.association import associate, decide_scenario

EXAMPLES = sorted(p for p in example_dir().glob("*.json") if not p.name.endswith(".expected.json"))


def _without_trace(result: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in result.items() if k != "trace"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_decides_the_same(salesforce, path: Path) -> None:
    scenario = loads_scenario(path.read_text())
    env = salesforce(scenario.crm)
    port = env.port(scenario.policy.default_region)
    through_salesforce = associate(scenario.call, scenario.policy, port, scenario.previous)
    assert _without_trace(through_salesforce.to_json()) == _without_trace(decide_scenario(scenario).to_json())
    assert port.stats.requests == env.emulator.stats.api_calls
    assert port.stats.requests <= 2 * port.stats.rounds
