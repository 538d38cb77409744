"""Rule v1.1 L1: a person's earlier choice for a contact steers Case 2, before C4/S and before V."""

from __future__ import annotations

from typing import Any

import pytest

from tests.worker.builders import account, contact, decide, doc, opp, rules_of

ACCOUNTS = [account("A1", "acme.example"), account("A2"), account("A3", type="Partner")]
CONTACTS = [
    contact("C1", "jane@acme.example", accounts=("A1",)),
    contact("C2", "kim@acme.example", accounts=("A1", "A2")),
]
OPPS = [opp("O1", -5, account="A1"), opp("O2", -40, account="A1"), opp("O3", -60, account="A1")]


def pref(
    contact_id: str, *, opportunity: str | None = None, account_id: str | None = None, at: str | None = None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "contact_id": contact_id,
        "account_id": account_id,
        "opportunity_id": opportunity,
    }
    if at is not None:
        record["set_at"] = at
    return record


def run(
    preferences: list[dict[str, Any]],
    policy: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    kwargs.setdefault("accounts", ACCOUNTS)
    kwargs.setdefault("contacts", CONTACTS)
    kwargs.setdefault("opportunities", OPPS)
    return decide(doc(preferences=preferences, policy=policy, **kwargs))


def l1(result: dict[str, Any]) -> list[str]:
    return [entry["message"] for entry in result["trace"] if entry["rule"] == "L1"]


# --- L1.1 opportunity ---------------------------------------------------------------------


def test_l1_preferred_opportunity_is_chosen_before_s() -> None:
    assert run([])["opportunity_id"] == "O1"
    result = run([pref("C1", opportunity="O2", at="2026-01-05T10:00:00Z")])
    assert (result["case"], result["opportunity_id"], result["account_id"]) == ("contacts", "O2", "A1")
    messages = l1(result)
    assert len(messages) == 1 and "C1" in messages[0] and "O2" in messages[0]
    assert not any(rule.startswith("S") for rule in rules_of(result))


def test_l1_use_preferences_false_changes_nothing_vs_v1() -> None:
    preferences = [pref("C1", opportunity="O2", at="2026-01-05T10:00:00Z")]
    result = run(preferences, {"use_preferences": False})
    assert result == run([])
    assert (result["opportunity_id"], result["candidates"]) == ("O1", [])
    assert "L1" not in rules_of(result)


def test_l1_default_with_no_preferences_changes_nothing() -> None:
    document = doc(accounts=ACCOUNTS, contacts=CONTACTS, opportunities=OPPS)
    result = decide(document)
    assert decide({**document, "policy": {"use_preferences": True}}) == result
    assert result == run([])  # an empty list is absent
    assert "L1" not in rules_of(result)


def test_l1_latest_set_at_then_smallest_opportunity_id() -> None:
    older, newer = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00+01:00"
    latest = run([pref("C1", opportunity="O2", at=older), pref("C1", opportunity="O3", at=newer)])
    assert latest["opportunity_id"] == "O3"
    same = run([pref("C1", opportunity="O3", at=older), pref("C1", opportunity="O2", at=older)])
    assert same["opportunity_id"] == "O2"


def test_l1_missing_set_at_counts_as_oldest() -> None:
    result = run([pref("C1", opportunity="O2"), pref("C1", opportunity="O3", at="1990-01-01T00:00:00Z")])
    assert result["opportunity_id"] == "O3"
    both_missing = run([pref("C1", opportunity="O3"), pref("C1", opportunity="O2")])
    assert both_missing["opportunity_id"] == "O2"


@pytest.mark.parametrize(
    ("strategy", "closed_counts"),
    [
        ("timeline", True),  # S1: in any tier (tier 3 here)
        ("most_recently_created_open", False),
        ("most_recently_updated_open", False),
        ("oldest_created_open", False),
        ("most_recently_updated", True),  # S4: any
    ],
)
def test_l1_opportunity_must_be_eligible_under_the_strategy(strategy: str, closed_counts: bool) -> None:
    opportunities = [*OPPS, opp("O4", -100, account="A1", closed=True, close=-10)]
    preferences = [pref("C1", opportunity="O4", at="2026-03-01T00:00:00Z")]
    result = run(preferences, {"opportunity_strategy": strategy}, opportunities=opportunities)
    assert (result["opportunity_id"] == "O4") is closed_counts
    assert bool(l1(result)) is closed_counts


def test_l1_opportunity_in_no_s1_tier_does_not_count() -> None:
    opportunities = [
        *OPPS,
        opp("O4", -400, account="A1", closed=True, close=-300),
        opp("O5", 60, account="A1"),
    ]
    preferences = [pref("C1", opportunity="O4", at="2026-03-01T00:00:00Z"), pref("C1", opportunity="O5")]
    result = run(preferences, opportunities=opportunities)
    assert result["opportunity_id"] == "O1" and "L1" not in rules_of(result)


def test_l1_opportunity_must_be_a_candidate() -> None:
    opportunities = [*OPPS, opp("O7", -5, account="A2"), opp("O8", -5, account="A3", roles=(("C1", False),))]
    for preferred, policy in (("O7", {}), ("O9", {}), ("O8", {"excluded_account_types": ["partner"]})):
        result = run([pref("C1", opportunity=preferred)], policy, opportunities=opportunities)
        assert result["opportunity_id"] == "O1", preferred
    owned = [opp("O1", -5, account="A1", owner="U1"), opp("O2", -40, account="A1", owner="U9")]
    filtered = run([pref("C1", opportunity="O2")], {"owner": "filter"}, opportunities=owned)
    assert filtered["opportunity_id"] == "O1"  # after C3
    removed = run([pref("C1", opportunity="O2")], previous={"removed": [{"type": "opportunity", "id": "O2"}]})
    assert removed["opportunity_id"] == "O1"  # after R6


def test_l1_counts_only_preferences_of_matched_contacts() -> None:
    result = run([pref("C2", opportunity="O2", at="2026-03-01T00:00:00Z")])  # C2 is not on the call
    assert result["opportunity_id"] == "O1"
    both = run(
        [pref("C2", opportunity="O2", at="2026-03-01T00:00:00Z")],
        participants=[{"email": "jane@acme.example"}, {"phone": "+1 212 555 0101"}],
        contacts=[CONTACTS[0], contact("C2", phones=("+12125550101",), accounts=("A1",))],
    )
    assert both["opportunity_id"] == "O2"  # matched by M2


def test_l1_m9_contact_counts_m6_does_not() -> None:
    leads = [{"id": "L1", "email": "bob@startup.example", "is_converted": True, "converted_contact_id": "C2"}]
    converted = run(
        [pref("C2", opportunity="O2")],
        {"skip_converted_leads": True},
        participants=[{"email": "bob@startup.example"}],
        leads=leads,
    )
    assert (converted["contact_ids"], converted["opportunity_id"]) == (["C2"], "O2")
    by_domain = run(
        [pref("C1", opportunity="O2"), pref("C1", account_id="A2")],
        {"match_by_domain": True},
        participants=[{"email": "someone@acme.example"}],
    )
    assert (by_domain["case"], by_domain["account_id"], by_domain["opportunity_id"]) == ("domain", "A1", "O1")
    assert "L1" not in rules_of(by_domain)


def test_l1_comes_before_c4_with_no_s6_and_no_u1() -> None:
    opportunities = [
        opp("O1", -5, account="A1", owner="U1", roles=(("C1", True),)),
        opp("O2", -40, account="A1", owner="U9"),
        opp("O3", -5, account="A2", owner="U1"),
    ]
    contacts = [contact("C1", "jane@acme.example", accounts=("A1", "A2"))]
    policy = {"use_contact_roles": True, "owner": "prefer", "on_ambiguity": "abstain"}
    assert run([], {"on_ambiguity": "abstain"}, opportunities=opportunities, contacts=contacts)["case"] == (
        "ambiguous"
    )
    result = run([pref("C1", opportunity="O2")], policy, opportunities=opportunities, contacts=contacts)
    assert (result["case"], result["opportunity_id"], result["candidates"]) == ("contacts", "O2", [])
    assert not {"C4", "S6", "U1.2"} & set(rules_of(result))


def activity(**links: Any) -> dict[str, Any]:
    return {"id": "T1", "type": "task", "call_id": "aircall:1", **links}


@pytest.mark.parametrize("links", [{"contact_ids": ["C1"]}, {"account_id": "A1"}])
def test_l1_case_1_ignores_preferences(links: dict[str, Any]) -> None:
    result = run(
        [pref("C1", opportunity="O2"), pref("C1", account_id="A2")],
        activities=[activity(**links)],
    )
    assert result["case"].startswith("activity_")
    assert (result["opportunity_id"], result["account_id"]) == ("O1", "A1")
    assert "L1" not in rules_of(result)


def test_l1_r4_lock_beats_the_preference() -> None:
    previous = {"opportunity_id": "O1", "locked": ["opportunity"]}
    result = run([pref("C1", opportunity="O2", at="2026-03-01T00:00:00Z")], previous=previous)
    assert result["opportunity_id"] == "O1" and "R4" in rules_of(result)


def test_l1_r2_account_beats_the_preference_and_r3_runs_l1_again() -> None:
    opportunities = [*OPPS, opp("O6", -3, account="A2"), opp("O7", -50, account="A2")]
    contacts = [contact("C1", "jane@acme.example", accounts=("A1", "A2"))]
    previous = {"account_id": "A2", "locked": ["account"]}
    elsewhere = run(
        [pref("C1", opportunity="O2")], previous=previous, opportunities=opportunities, contacts=contacts
    )
    assert (elsewhere["account_id"], elsewhere["opportunity_id"]) == ("A2", "O6")  # O2 is not A2's
    again = run(
        [pref("C1", opportunity="O2"), pref("C1", opportunity="O7")],
        previous=previous,
        opportunities=opportunities,
        contacts=contacts,
    )
    assert (again["account_id"], again["opportunity_id"]) == ("A2", "O7")
    assert {"R2", "R3", "L1"} <= set(rules_of(again))


# --- L1.2 account -------------------------------------------------------------------------


def test_l1_preferred_account_is_chosen_before_v1() -> None:
    participants = [{"email": "kim@acme.example"}]
    assert run([], participants=participants, opportunities=[])["account_id"] == "A1"  # V2: A1 holds acme
    result = run([pref("C2", account_id="A2")], participants=participants, opportunities=[])
    assert result["account_id"] == "A2"
    assert "V1" not in rules_of(result) and any("C2" in m and "A2" in m for m in l1(result))


def test_l1_account_latest_set_at_then_smallest_id_missing_oldest() -> None:
    participants = [{"email": "kim@acme.example"}]
    accounts = [*ACCOUNTS, account("A4")]
    cases = [
        (
            [
                pref("C2", account_id="A4", at="2026-01-02T00:00:00Z"),
                pref("C2", account_id="A2", at="2026-01-01T00:00:00Z"),
            ],
            "A4",
        ),
        (
            [
                pref("C2", account_id="A4", at="2026-01-01T00:00:00Z"),
                pref("C2", account_id="A2", at="2026-01-01T00:00:00Z"),
            ],
            "A2",
        ),
        ([pref("C2", account_id="A2"), pref("C2", account_id="A4", at="1990-01-01T00:00:00Z")], "A4"),
    ]
    for preferences, expected in cases:
        result = run(preferences, participants=participants, accounts=accounts, opportunities=[])
        assert result["account_id"] == expected


def test_l1_account_may_be_one_no_contact_votes_for() -> None:
    result = run([pref("C1", account_id="A4")], accounts=[*ACCOUNTS, account("A4")], opportunities=[])
    assert result["account_id"] == "A4"


@pytest.mark.parametrize(
    ("preferred", "policy", "previous"),
    [
        ("A9", {}, None),  # not in crm.accounts
        ("A3", {"excluded_account_types": ["partner"]}, None),  # X1
        ("A2", {}, {"removed": [{"type": "account", "id": "A2"}]}),  # R6
    ],
)
def test_l1_account_must_be_known_and_allowed(
    preferred: str, policy: dict[str, Any], previous: dict[str, Any] | None
) -> None:
    result = run([pref("C1", account_id=preferred)], policy, opportunities=[], previous=previous)
    assert result["account_id"] == "A1" and "L1" not in rules_of(result)


def test_l1_account_never_steers_s() -> None:
    result = run([pref("C1", account_id="A2")])
    assert (result["opportunity_id"], result["account_id"]) == ("O1", "A1")  # V3, not the preference
    assert "L1" not in rules_of(result)


def test_l1_account_after_a_u1_2_tie_across_accounts() -> None:
    opportunities = [opp("O1", -5, account="A1"), opp("O6", -5, account="A2")]
    result = run(
        [pref("C2", account_id="A2")],
        {"on_ambiguity": "abstain"},
        participants=[{"email": "kim@acme.example"}],
        opportunities=opportunities,
    )
    assert (result["case"], result["account_id"]) == ("ambiguous", "A2")
    assert [c["id"] for c in result["candidates"]] == ["O1", "O6"]


def test_l1_account_prevents_a_u1_1_tie() -> None:
    accounts = [account("A1"), account("A2")]
    policy = {"on_ambiguity": "abstain"}
    participants = [{"email": "kim@acme.example"}]
    tie = run([], policy, accounts=accounts, participants=participants, opportunities=[])
    assert tie["case"] == "ambiguous"
    result = run(
        [pref("C2", account_id="A2")], policy, accounts=accounts, participants=participants, opportunities=[]
    )
    assert (result["case"], result["account_id"], result["candidates"]) == ("contacts", "A2", [])


def test_l1_same_choice_through_two_contacts_names_the_smallest_contact_whatever_the_order() -> None:
    participants = [{"email": "jane@acme.example"}, {"email": "kim@acme.example"}]
    at = "2026-02-01T00:00:00Z"
    for preferences in (
        [pref("C2", opportunity="O2", at=at), pref("C1", opportunity="O2", at=at)],
        [pref("C1", opportunity="O2", at=at), pref("C2", opportunity="O2", at=at)],
    ):
        result = run(preferences, participants=participants)
        assert result["opportunity_id"] == "O2"
        assert l1(result) == [l1(result)[0]] and "contact C1" in l1(result)[0]
    for preferences in (
        [pref("C2", account_id="A2", at=at), pref("C1", account_id="A2", at=at)],
        [pref("C1", account_id="A2", at=at), pref("C2", account_id="A2", at=at)],
    ):
        result = run(preferences, participants=participants, opportunities=[])
        assert result["account_id"] == "A2" and "contact C1" in l1(result)[0]
