"""Rules v1.1 as a whole: defaults decide as v1, `candidates` always present, a trace for every decision.

The rules one by one: test_m7_m11.py, test_x1.py, test_u1.py, test_l1.py, test_r6.py.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.scenario_gen import generate_scenarios
from tests.worker.builders import contact, decide, doc, opp, rules_of

V1_1_POLICY_DEFAULTS: dict[str, Any] = {
    "internal_phones": [],
    "internal_domains": [],
    "shared_phone_max_accounts": 0,
    "skip_converted_leads": False,
    "prefer_primary": False,
    "refresh_drops_stale": False,
    "domain_match": "clean",
    "excluded_account_types": [],
    "on_ambiguity": "pick",
    "use_preferences": True,
}


def with_v1_1_defaults(document: dict[str, Any]) -> dict[str, Any]:
    """The same document with every v1.1 key and field written out at its default."""
    copy = json.loads(json.dumps(document))
    copy["policy"].update(V1_1_POLICY_DEFAULTS)
    crm = copy["crm"]
    for lead in crm["leads"]:
        lead.update(is_converted=False, converted_contact_id=None)
    for account in crm["accounts"]:
        account["type"] = None
    crm["preferences"] = []
    if "previous" in copy:
        copy["previous"]["removed"] = []
    return copy


def test_v1_1_defaults_written_out_decide_as_when_absent() -> None:
    for document in generate_scenarios(150, seed=11):
        result = decide(document)
        assert decide(with_v1_1_defaults(document)) == result
        assert result["candidates"] == [] and result["case"] != "ambiguous"
        assert not {"M7", "M8", "M9", "M11", "X1", "U1.1", "U1.2", "L1", "R6"} & set(rules_of(result))


def test_v1_1_new_fields_are_inert_while_their_keys_are_off() -> None:
    """New fields with their keys off: types without excluded_account_types, converted leads without M9."""
    for document in generate_scenarios(60, seed=5):
        result = decide(document)
        rng = random.Random(len(json.dumps(document)))
        copy = json.loads(json.dumps(document))
        for account in copy["crm"]["accounts"]:
            account["type"] = rng.choice(["Partner", "Customer", None])
        for lead in copy["crm"]["leads"]:
            lead.update(is_converted=True, converted_contact_id=None)
        assert decide(copy) == result


@pytest.mark.parametrize("abstain", [False, True])
@pytest.mark.parametrize(
    "document",
    [
        doc(participants=[]),  # no participants
        doc(participants=[{"name": "Guest"}, {"email": "sam@ourco.example"}]),  # all skipped (M3, M7)
        doc(participants=[{"phone": "+1 212 555 0100"}]),  # skipped as our own number (M7)
        doc(participants=[{"email": "nobody@nowhere.example"}], policy={"use_existing_activity": False}),
        doc(participants=[{"email": "nobody@nowhere.example"}]),  # A on, nothing anywhere
        doc(participants=[{"email": "jane@acme.example"}], contacts=[], accounts=[]),
    ],
)
def test_every_decision_carries_a_non_empty_trace(document: dict[str, Any], abstain: bool) -> None:
    document = json.loads(json.dumps(document))
    document["policy"].update(
        internal_domains=["ourco.example"],
        internal_phones=["+12125550100"],
        on_ambiguity="abstain" if abstain else "pick",
    )
    result = decide(document)
    assert result["trace"] and all(entry["rule"] and entry["message"] for entry in result["trace"])
    assert result["candidates"] == []
    assert (result["contact_ids"], result["account_id"], result["opportunity_id"]) == ([], None, None)


def test_every_decision_carries_a_trace_with_a_off_and_no_participants() -> None:
    result = decide(doc(participants=[], policy={"use_existing_activity": False}))
    assert rules_of(result) == ["M3", "A1"]
    assert result["case"] == "none"


def test_per_participant_rules_come_in_the_contract_order() -> None:
    """M3, M7, M1/M2 (less R6), M8, M11, M5 for a participant; then the case rules."""
    switchboard = "+1 212 555 0100"
    contacts = [
        contact("C1", "jane@acme.example", phones=("+1 212 555 0101",), accounts=("A1",)),
        contact("C2", "j.doe@acme.example", emails=("jane@acme.example",), accounts=("A1",)),
        contact("C3", "x@acme.example", phones=(switchboard,), accounts=("A1",)),
        contact("C4", "y@acme.example", phones=(switchboard,), accounts=("A2",)),
        contact("C5", "z@acme.example", emails=("jane@acme.example",), accounts=("A1",)),
        contact("C6", "jane@acme.example", accounts=("A1",)),
    ]
    result = decide(
        doc(
            participants=[{"email": "jane@acme.example", "phone": switchboard}],
            contacts=contacts,
            opportunities=[opp("O1", -5)],
            policy={"prefer_primary": True, "shared_phone_max_accounts": 1},
            previous={"removed": [{"type": "contact", "id": "C5"}]},
        )
    )
    assert result["contact_ids"] == ["C1", "C6"]
    rules = rules_of(result)
    order = [rules.index(rule) for rule in ("R6", "M1", "M2", "M8", "M11", "M5")]
    assert order == sorted(order)
