"""Rule v1.1 X1: excluded account types get no vote, no domain match, no candidate opportunity."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.worker.builders import account, contact, decide, doc, opp, rules_of
from worker.config.scenario import parse_scenario
from worker.engine.rules import apply_rules

EXCLUDE = {"excluded_account_types": ["partner"]}
ACCOUNTS = [account("A1", type=" PARTNER "), account("A2", type="Customer"), account("A3")]
CONTACTS = [contact("C1", "jane@acme.example", accounts=("A1", "A2"))]
OPPS = [opp("O1", -5, account="A1"), opp("O2", -40, account="A2")]


def x1(result: dict[str, Any]) -> list[str]:
    return [entry["message"] for entry in result["trace"] if entry["rule"] == "X1"]


def run(policy: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("accounts", ACCOUNTS)
    kwargs.setdefault("contacts", CONTACTS)
    kwargs.setdefault("opportunities", OPPS)
    return decide(doc(policy=policy, **kwargs))


def test_x1_excluded_account_gets_no_vote() -> None:
    assert run(opportunities=[])["account_id"] == "A1"  # v1: tie, smallest id
    result = run(EXCLUDE, opportunities=[])
    assert result["account_id"] == "A2"
    assert any("A1" in m and "no vote" in m for m in x1(result))


def test_x1_type_compared_trimmed_and_case_insensitively() -> None:
    for types in (["Partner"], ["  partner "], ["PARTNER", "Reseller"]):
        assert run({"excluded_account_types": types}, opportunities=[])["account_id"] == "A2"
    assert run({"excluded_account_types": ["partners"]}, opportunities=[])["account_id"] == "A1"


def test_x1_default_changes_nothing() -> None:
    document = doc(accounts=ACCOUNTS, contacts=CONTACTS, opportunities=OPPS)
    result = decide(document)
    assert decide({**document, "policy": {"excluded_account_types": []}}) == result
    assert (result["opportunity_id"], result["account_id"], result["candidates"]) == ("O1", "A1", [])
    assert "X1" not in rules_of(result)


def test_x1_all_accounts_excluded_means_no_account() -> None:
    result = run(
        {"excluded_account_types": ["partner", "customer"]},
        accounts=ACCOUNTS,
        opportunities=[],
    )
    assert (result["case"], result["contact_ids"], result["account_id"]) == ("contacts", ["C1"], None)


def test_x1_excluded_account_is_never_matched_by_m6() -> None:
    policy = {"match_by_domain": True}
    document = doc(
        participants=[{"email": "x@partner.example"}],
        contacts=[],
        accounts=[account("A1", "partner.example", type="Partner"), account("A2", "partner.example")],
        opportunities=[opp("O1", -5, account="A1"), opp("O2", -40, account="A2")],
        policy=policy,
    )
    assert (decide(document)["account_id"], decide(document)["opportunity_id"]) == ("A1", "O1")
    document["policy"] = {**policy, **EXCLUDE}
    result = decide(document)
    assert (result["case"], result["account_id"], result["opportunity_id"]) == ("domain", "A2", "O2")
    assert any("A1" in m and "partner.example" in m for m in x1(result))
    document["crm"]["accounts"] = document["crm"]["accounts"][:1]
    alone = decide(document)
    assert (alone["case"], alone["account_id"]) == ("none", None)


def test_x1_opportunities_of_an_excluded_account_are_no_candidates() -> None:
    assert run()["opportunity_id"] == "O1"
    result = run(EXCLUDE)
    assert (result["opportunity_id"], result["account_id"]) == ("O2", "A2")
    assert any("O1" in m for m in x1(result))
    assert "O1" not in next(e["message"] for e in result["trace"] if e["rule"] == "C2")


def test_x1_contact_role_on_an_excluded_accounts_opportunity_does_not_make_it_a_candidate() -> None:
    contacts = [contact("C1", "jane@acme.example", accounts=("A2",))]
    opportunities = [opp("O3", -1, account="A1", roles=(("C1", True),)), opp("O2", -40, account="A2")]
    assert run(contacts=contacts, opportunities=opportunities)["opportunity_id"] == "O3"
    for policy in (EXCLUDE, {**EXCLUDE, "use_contact_roles": True}):
        result = run(policy, contacts=contacts, opportunities=opportunities)
        assert result["opportunity_id"] == "O2"  # never in C1/C2, hence never in C4 either


def test_x1_never_in_l1() -> None:
    preferences = [{"contact_id": "C1", "opportunity_id": "O2", "set_at": "2026-01-01T00:00:00Z"}]
    opportunities = [opp("O1", -5, account="A2"), opp("O2", -40, account="A1")]
    assert run(opportunities=opportunities, preferences=preferences)["opportunity_id"] == "O2"
    result = run(EXCLUDE, opportunities=opportunities, preferences=preferences)
    assert result["opportunity_id"] == "O1" and "L1" not in rules_of(result)


def test_x1_never_in_r3() -> None:
    previous = {"account_id": "A1", "locked": ["account"]}
    assert run(previous=previous)["opportunity_id"] == "O1"
    result = run(EXCLUDE, previous=previous)
    assert (result["account_id"], result["opportunity_id"]) == ("A1", None)  # R2 stands, R3 finds none
    assert "R3" in rules_of(result)


# --- Case 1: what a person linked stands ------------------------------------------------------


def activity(**links: Any) -> dict[str, Any]:
    return {"id": "T1", "type": "task", "call_id": "aircall:1", **links}


def test_x1_a3_opportunity_and_its_account_are_kept() -> None:
    result = run(EXCLUDE, activities=[activity(opportunity_id="O1")])
    assert (result["case"], result["opportunity_id"], result["account_id"]) == (
        "activity_opportunity",
        "O1",
        "A1",
    )


def test_x1_a4_account_is_kept_but_none_of_its_opportunities_is_ranked() -> None:
    assert run(activities=[activity(account_id="A1")])["opportunity_id"] == "O1"
    result = run(EXCLUDE, activities=[activity(account_id="A1")])
    assert (result["case"], result["account_id"], result["opportunity_id"]) == (
        "activity_account",
        "A1",
        None,
    )
    assert any("A1" in m for m in x1(result))


def test_x1_a5_contacts_opportunities_skip_excluded_accounts() -> None:
    case1 = [activity(contact_ids=["C1"])]
    assert run(activities=case1)["opportunity_id"] == "O1"
    tied = run({"on_ambiguity": "abstain"}, activities=case1)
    assert tied["case"] == "ambiguous"  # O1 (A1) and O2 (A2) tie across accounts
    for policy in (EXCLUDE, {**EXCLUDE, "on_ambiguity": "abstain"}):
        result = run(policy, activities=case1)
        assert (result["case"], result["opportunity_id"], result["account_id"]) == (
            "activity_contact",
            "O2",
            "A2",
        )
        assert result["candidates"] == []


def test_x1_a5_excluded_account_gets_no_vote() -> None:
    result = run(EXCLUDE, activities=[activity(contact_ids=["C1"])], opportunities=[])
    assert (result["case"], result["account_id"]) == ("activity_contact", "A2")
    assert any("no vote" in m for m in x1(result))


def test_x1_trace_does_not_depend_on_the_order_records_are_read_in() -> None:
    scenario = parse_scenario(
        doc(
            accounts=ACCOUNTS,
            contacts=CONTACTS,
            opportunities=[
                opp("O3", -7, account="A1"),
                opp("O1", -5, account="A1"),
                opp("O2", -6, account="A1"),
            ],
            activities=[activity(account_id="A1")],
            policy=EXCLUDE,
        )
    )
    forward = apply_rules(scenario.call, scenario.policy, scenario.crm)
    crm = replace(scenario.crm, opportunities=scenario.crm.opportunities[::-1])
    assert apply_rules(scenario.call, scenario.policy, crm) == forward
    dropped = [
        entry.message for entry in forward.trace if entry.rule == "X1" and "candidate" in entry.message
    ]
    assert len(dropped) == 1 and dropped[0].index("O1") < dropped[0].index("O2") < dropped[0].index("O3")
