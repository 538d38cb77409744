"""Rules v1.1 U1: with `on_ambiguity: abstain`, a tie is listed as candidates instead of being picked."""

from __future__ import annotations

from typing import Any

import pytest

from tests.worker.builders import account, contact, decide, doc, opp, rules_of

ABSTAIN = {"on_ambiguity": "abstain"}
ACCOUNTS = [account("A1", "acme.example"), account("A2"), account("A3")]
CONTACTS = [contact("C1", "jane@acme.example", accounts=("A1", "A2"))]
ACROSS = [opp("O1", -10, account="A1"), opp("O2", -20, account="A2")]
SAME_KEY = [opp("O1", -10, account="A1", updated=-3), opp("O2", -10, account="A1", updated=-1)]


def run(
    opportunities: list[dict[str, Any]], policy: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    kwargs.setdefault("accounts", ACCOUNTS)
    kwargs.setdefault("contacts", CONTACTS)
    return decide(doc(opportunities=opportunities, policy=policy, **kwargs))


def tied(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["type"], c["id"]) for c in result["candidates"]]


def trace_of(result: dict[str, Any], rule: str) -> list[str]:
    return [entry["message"] for entry in result["trace"] if entry["rule"] == rule]


def assert_abstained(result: dict[str, Any], candidates: list[tuple[str, str]]) -> None:
    assert result["case"] == "ambiguous"
    assert tied(result) == candidates
    assert all(c["reason"] for c in result["candidates"])
    if any(kind == "opportunity" for kind, _ in candidates):
        assert result["opportunity_id"] is None


# --- U1.2 opportunity ---------------------------------------------------------------------


def test_u1_2_opportunities_of_different_accounts_tie() -> None:
    assert run(ACROSS)["opportunity_id"] == "O1"  # v1 picks the closest creation
    result = run(ACROSS, ABSTAIN)
    assert_abstained(result, [("opportunity", "O1"), ("opportunity", "O2")])  # in S order
    assert result["account_id"] == "A1"  # not shared: chosen as with no opportunity (V1 tie, V2 domain)
    u12 = trace_of(result, "U1.2")
    assert u12 and "O1" in u12[0] and "O2" in u12[0]


def test_u1_2_same_account_same_primary_key_ties() -> None:
    assert run(SAME_KEY)["opportunity_id"] == "O2"  # v1: latest update breaks the tie
    result = run(SAME_KEY, ABSTAIN)
    assert_abstained(result, [("opportunity", "O2"), ("opportunity", "O1")])  # S order: O2 updated later
    assert result["account_id"] == "A1"  # the account they share
    assert any("A1" in m and "shared" in m for m in trace_of(result, "U1.2"))


def test_u1_2_same_account_different_primary_key_is_no_tie() -> None:
    result = run([opp("O1", -10, account="A1"), opp("O2", -11, account="A1")], ABSTAIN)
    assert (result["case"], result["opportunity_id"], result["candidates"]) == ("contacts", "O1", [])
    assert "U1.2" not in rules_of(result)


def test_u1_2_only_those_with_the_first_primary_key_are_tied() -> None:
    result = run([*SAME_KEY, opp("O3", -20, account="A1")], ABSTAIN)
    assert_abstained(result, [("opportunity", "O2"), ("opportunity", "O1")])


def test_u1_2_a_single_eligible_opportunity_is_no_tie() -> None:
    result = run(
        [opp("O1", -10, account="A1"), opp("O2", -300, account="A2", closed=True, close=-200)], ABSTAIN
    )
    assert (result["opportunity_id"], result["candidates"]) == ("O1", [])


def test_u1_2_s1_looks_at_the_first_non_empty_tier_only() -> None:
    later_tiers = [
        opp("O1", -10, account="A1"),
        opp("O2", 10, account="A2"),  # tier 2, as far from T as O1
        opp("O3", -10, account="A2", closed=True, close=-5),  # tier 3, as far from T as O1
    ]
    result = run(later_tiers, ABSTAIN)
    assert (result["opportunity_id"], result["candidates"]) == ("O1", [])
    in_tier_2 = run([opp("O2", 10, account="A2"), opp("O4", 3, account="A1")], ABSTAIN)
    assert_abstained(in_tier_2, [("opportunity", "O4"), ("opportunity", "O2")])


@pytest.mark.parametrize(
    ("strategy", "tie", "no_tie"),
    [
        # S2, S5: the primary key is created_at
        (
            "most_recently_created_open",
            [opp("O1", -10, account="A1", updated=-1), opp("O2", -10, account="A1", updated=-5)],
            [opp("O1", -10, account="A1", updated=-5), opp("O2", -11, account="A1", updated=-1)],
        ),
        (
            "oldest_created_open",
            [opp("O1", -10, account="A1", updated=-1), opp("O2", -10, account="A1", updated=-5)],
            [opp("O1", -11, account="A1", updated=-5), opp("O2", -10, account="A1", updated=-1)],
        ),
        # S3, S4: the primary key is updated_at
        (
            "most_recently_updated_open",
            [opp("O1", -10, account="A1", updated=-2), opp("O2", -20, account="A1", updated=-2)],
            [opp("O1", -20, account="A1", updated=-2), opp("O2", -10, account="A1", updated=-3)],
        ),
        (
            "most_recently_updated",
            [opp("O1", -10, account="A1", updated=-2), opp("O2", -20, account="A1", updated=-2, closed=True)],
            [opp("O1", -20, account="A1", updated=-2), opp("O2", -10, account="A1", updated=-3)],
        ),
    ],
)
def test_u1_2_primary_key_of_each_strategy(
    strategy: str, tie: list[dict[str, Any]], no_tie: list[dict[str, Any]]
) -> None:
    policy = {**ABSTAIN, "opportunity_strategy": strategy}
    result = run(tie, policy)
    assert_abstained(result, [("opportunity", "O1"), ("opportunity", "O2")])
    assert result["account_id"] == "A1"
    clear = run(no_tie, policy)
    assert (clear["opportunity_id"], clear["candidates"]) == ("O1", [])
    across = run([opp("O1", -10, account="A1"), opp("O2", -40, account="A2")], policy)
    assert sorted(tied(across)) == [("opportunity", "O1"), ("opportunity", "O2")]  # accounts differ: all of W


def test_u1_2_open_only_strategies_leave_closed_opportunities_out_of_w() -> None:
    opportunities = [opp("O1", -10, account="A1"), opp("O2", -10, account="A2", closed=True, close=-1)]
    result = run(opportunities, {**ABSTAIN, "opportunity_strategy": "most_recently_created_open"})
    assert (result["opportunity_id"], result["candidates"]) == ("O1", [])


def test_u1_2_after_s6() -> None:
    opportunities = [opp("O1", -10, account="A1", owner="U1"), opp("O2", -20, account="A2", owner="U9")]
    assert run(opportunities, ABSTAIN)["case"] == "ambiguous"
    result = run(opportunities, {**ABSTAIN, "owner": "prefer"})
    assert (result["opportunity_id"], result["candidates"]) == ("O1", [])
    not_owned = [opp("O1", -10, account="A1", owner="U8"), opp("O2", -20, account="A2", owner="U9")]
    assert run(not_owned, {**ABSTAIN, "owner": "prefer"})["case"] == "ambiguous"


def test_u1_2_after_c3() -> None:
    opportunities = [opp("O1", -10, account="A1", owner="U1"), opp("O2", -20, account="A2", owner="U9")]
    result = run(opportunities, {**ABSTAIN, "owner": "filter"})
    assert (result["opportunity_id"], result["candidates"]) == ("O1", [])


def test_u1_2_inside_the_winning_c4_group() -> None:
    policy = {**ABSTAIN, "use_contact_roles": True}
    one_primary = [
        opp("O1", -30, account="A1", roles=(("C1", True),)),
        opp("O2", -10, account="A2"),
        opp("O3", -10, account="A2", updated=-2),
    ]
    assert run(one_primary, ABSTAIN)["case"] == "ambiguous"  # without C4: O2, O3 (A2) vs O1 (A1)
    result = run(one_primary, policy)
    assert (result["opportunity_id"], result["candidates"]) == ("O1", [])
    two_primary = [
        opp("O1", -10, account="A1", roles=(("C1", True),)),
        opp("O2", -20, account="A2", roles=(("C1", True),)),
        opp("O3", -1, account="A1"),  # ranked first overall, but not in the winning group
    ]
    tie = run(two_primary, policy)
    assert_abstained(tie, [("opportunity", "O1"), ("opportunity", "O2")])
    assert "C4" in rules_of(tie)


def test_u1_2_c4_group_without_eligible_candidate_is_passed() -> None:
    policy = {**ABSTAIN, "use_contact_roles": True}
    opportunities = [
        opp("O1", -400, account="A1", closed=True, close=-300, roles=(("C1", True),)),
        opp("O2", -10, account="A1"),
        opp("O3", -20, account="A2"),
    ]
    result = run(opportunities, policy)
    assert_abstained(result, [("opportunity", "O2"), ("opportunity", "O3")])


def activity(**links: Any) -> dict[str, Any]:
    return {"id": "T1", "type": "task", "call_id": "aircall:1", **links}


def test_u1_2_in_a4() -> None:
    result = run(SAME_KEY, ABSTAIN, activities=[activity(account_id="A1")])
    assert_abstained(result, [("opportunity", "O2"), ("opportunity", "O1")])
    assert result["account_id"] == "A1"
    assert run(SAME_KEY, activities=[activity(account_id="A1")])["case"] == "activity_account"


def test_u1_2_in_a5() -> None:
    result = run(ACROSS, ABSTAIN, activities=[activity(contact_ids=["C1"])])
    assert_abstained(result, [("opportunity", "O1"), ("opportunity", "O2")])
    assert result["account_id"] == "A1"  # V with the activity's contacts, V2 on the participants' domain
    v1 = run(ACROSS, activities=[activity(contact_ids=["C1"])])
    assert (v1["case"], v1["opportunity_id"]) == ("activity_contact", "O1")


def test_u1_2_never_in_a3() -> None:
    result = run(ACROSS, ABSTAIN, activities=[activity(opportunity_id="O2")])
    assert (result["case"], result["opportunity_id"], result["candidates"]) == (
        "activity_opportunity",
        "O2",
        [],
    )


def test_u1_2_in_r3() -> None:
    opportunities = [opp("O1", -5, account="A1"), opp("O2", -10, account="A2"), opp("O3", -10, account="A2")]
    previous = {"account_id": "A2", "locked": []}
    picked = run(opportunities, previous=previous)
    assert (picked["account_id"], picked["opportunity_id"]) == ("A2", "O2")
    result = run(opportunities, ABSTAIN, previous=previous)
    assert_abstained(result, [("opportunity", "O2"), ("opportunity", "O3")])
    assert result["account_id"] == "A2"
    assert "R3" in rules_of(result)


def test_u1_2_default_pick_changes_nothing() -> None:
    document = doc(accounts=ACCOUNTS, contacts=CONTACTS, opportunities=ACROSS)
    result = decide(document)
    assert decide({**document, "policy": {"on_ambiguity": "pick"}}) == result
    assert (result["case"], result["opportunity_id"], result["candidates"]) == ("contacts", "O1", [])
    assert not {"U1.1", "U1.2"} & set(rules_of(result))


# --- U1.1 account -------------------------------------------------------------------------

NO_DOMAIN = [account("A1"), account("A2"), account("A3")]


def test_u1_1_tie_on_votes_and_domains_chooses_no_account() -> None:
    picked = run([], accounts=NO_DOMAIN)
    assert picked["account_id"] == "A1" and "V2" in rules_of(picked)
    result = run([], ABSTAIN, accounts=NO_DOMAIN)
    assert_abstained(result, [("account", "A1"), ("account", "A2")])
    assert result["account_id"] is None
    u11 = trace_of(result, "U1.1")
    assert u11 and "A1" in u11[0] and "A2" in u11[0]


def test_u1_1_v2_breaking_the_tie_is_no_ambiguity() -> None:
    result = run([], ABSTAIN)  # A1 holds jane's domain
    assert (result["case"], result["account_id"], result["candidates"]) == ("contacts", "A1", [])


def test_u1_1_v1_majority_is_no_ambiguity() -> None:
    contacts = [*CONTACTS, contact("C2", "kim@other.example", accounts=("A2",))]
    participants = [{"email": "jane@acme.example"}, {"email": "kim@other.example"}]
    result = run([], ABSTAIN, accounts=NO_DOMAIN, contacts=contacts, participants=participants)
    assert (result["account_id"], result["candidates"]) == ("A2", [])


def test_u1_1_only_the_accounts_left_at_the_top_by_v2_are_tied() -> None:
    accounts = [account("A1"), account("A2", "acme.example"), account("A3", "www.acme.example")]
    contacts = [contact("C1", "jane@acme.example", accounts=("A3", "A1", "A2"))]
    result = run([], ABSTAIN, accounts=accounts, contacts=contacts)
    assert_abstained(result, [("account", "A2"), ("account", "A3")])


def test_u1_1_in_a5() -> None:
    result = run([], ABSTAIN, accounts=NO_DOMAIN, activities=[activity(contact_ids=["C1"])])
    assert_abstained(result, [("account", "A1"), ("account", "A2")])


def test_u1_candidates_are_tied_opportunities_then_tied_accounts() -> None:
    result = run([opp("O2", -10, account="A2"), opp("O1", -20, account="A1")], ABSTAIN, accounts=NO_DOMAIN)
    assert_abstained(
        result, [("opportunity", "O2"), ("opportunity", "O1"), ("account", "A1"), ("account", "A2")]
    )
    assert result["account_id"] is None
    assert {"U1.1", "U1.2"} <= set(rules_of(result))


# --- refresh ------------------------------------------------------------------------------


def test_u1_r2_replacing_the_account_drops_tied_accounts() -> None:
    result = run([], ABSTAIN, accounts=NO_DOMAIN, previous={"account_id": "A3", "locked": []})
    assert (result["case"], result["account_id"], result["candidates"]) == ("contacts", "A3", [])


def test_u1_r2_replacing_the_account_drops_tied_accounts_and_r3_may_tie_again() -> None:
    opportunities = [opp("O1", -10, account="A1"), opp("O2", -20, account="A2"), opp("O3", -20, account="A3")]
    contacts = [contact("C1", "jane@acme.example", accounts=("A1", "A2", "A3"))]
    result = run(opportunities, ABSTAIN, accounts=NO_DOMAIN, contacts=contacts)
    assert [c["type"] for c in result["candidates"]] == ["opportunity"] * 3 + ["account"] * 3
    refreshed = run(
        opportunities,
        ABSTAIN,
        accounts=NO_DOMAIN,
        contacts=contacts,
        previous={"account_id": "A2", "locked": ["account"]},
    )
    assert (refreshed["account_id"], refreshed["opportunity_id"]) == ("A2", "O2")
    assert refreshed["candidates"] == [] and refreshed["case"] == "contacts"


def test_u1_r2_account_locked_to_none_drops_tied_accounts() -> None:
    result = run([], ABSTAIN, accounts=NO_DOMAIN, previous={"account_id": None, "locked": ["account"]})
    assert (result["case"], result["account_id"], result["candidates"]) == ("contacts", None, [])


def test_u1_r2_unset_account_keeps_the_tie() -> None:
    result = run([], ABSTAIN, accounts=NO_DOMAIN, previous={"contact_ids": ["C1"], "locked": []})
    assert_abstained(result, [("account", "A1"), ("account", "A2")])


def test_u1_r4_lock_drops_tied_opportunities() -> None:
    previous = {"opportunity_id": "O9", "locked": ["opportunity"]}
    result = run(ACROSS, ABSTAIN, previous=previous)
    assert (result["case"], result["opportunity_id"], result["candidates"]) == ("contacts", "O9", [])
    assert "R4" in rules_of(result)
    with_accounts = run(
        [opp("O2", -10, account="A2"), opp("O1", -20, account="A1")],
        ABSTAIN,
        accounts=NO_DOMAIN,
        previous=previous,
    )
    assert_abstained(with_accounts, [("account", "A1"), ("account", "A2")])  # the account tie stays
    assert with_accounts["opportunity_id"] == "O9"
    both = run(
        [opp("O2", -10, account="A2"), opp("O1", -20, account="A1")],
        ABSTAIN,
        accounts=NO_DOMAIN,
        previous={**previous, "account_id": "A2"},
    )
    assert (both["case"], both["account_id"], both["opportunity_id"], both["candidates"]) == (
        "contacts",
        "A2",
        "O9",
        [],
    )
