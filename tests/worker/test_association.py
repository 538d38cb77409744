"""The association service: batched rounds through the port, a few requests per call."""

from __future__ import annotations

import random

from adapters.crm.scenario import ScenarioCrm
from tests.scenario_gen import generate_scenarios
from tests.worker.builders import activity_doc_free, contact, doc, opp
from worker.config.scenario import parse_scenario
from worker.core.model import CrmSlice
from worker.pipeline.association import associate, gather, needed_keys


def test_ordinary_call_costs_two_rounds_of_batched_reads() -> None:
    participants = [{"email": f"p{i}@acme.example"} for i in range(20)] + [
        {"phone": f"+1212555{i:04d}"} for i in range(20)
    ]
    contacts = [contact(f"C{i:02d}", f"p{i}@acme.example") for i in range(20)]
    scenario = parse_scenario(
        activity_doc_free(doc(participants=participants, contacts=contacts, opportunities=[opp("O1", -5)]))
    )
    port = ScenarioCrm(scenario.crm, scenario.policy.default_region)
    decision = associate(scenario.call, scenario.policy, port)
    assert decision.opportunity_id == "O1"
    assert port.stats.rounds == 2
    assert port.stats.by_method["contacts_by_emails"] == 1
    assert port.stats.by_method["contacts_by_phones"] == 1
    assert port.stats.requests <= 10


def test_first_round_is_keyed_on_the_call_alone() -> None:
    scenario = parse_scenario(
        doc(participants=[{"email": " Jane@Acme.example"}, {"phone": "(212) 555-0199"}])
    )
    keys = needed_keys(scenario.call, scenario.policy, CrmSlice())
    assert keys.emails == {"jane@acme.example"}
    assert keys.phones == {"+12125550199"}
    assert [q.call_id for q in keys.activities] == ["aircall:1"]
    assert not keys.contact_ids and not keys.account_ids


def test_gather_settles_on_generated_scenarios_in_at_most_three_rounds() -> None:
    most = 0
    for document in generate_scenarios(300, seed=7):
        scenario = parse_scenario(document)
        port = ScenarioCrm(scenario.crm, scenario.policy.default_region)
        gather(scenario.call, scenario.policy, port)
        most = max(most, port.stats.rounds)
    assert most <= 3


def test_generated_mix_is_deterministic() -> None:
    first = generate_scenarios(5, seed=random.Random(3).randint(0, 100))
    second = generate_scenarios(5, seed=random.Random(3).randint(0, 100))
    assert first == second
