"""Rules C1-C4 and V1-V3: opportunities and account from the participants (Case 2)."""

from __future__ import annotations

from tests.worker.builders import account, contact, decide, doc, opp, rules_of

ACCOUNTS = [account("A1", "acme.example"), account("A2", "other.example"), account("A3", "third.example")]


def test_c1_contact_roles_and_accounts_both_bring_candidates() -> None:
    contacts = [contact("C1", "jane@acme.example", accounts=("A1",))]
    by_role = opp("O2", -5, account="A2", roles=(("C1", False),))
    by_account = opp("O1", -40, account="A1")
    unrelated = opp("O3", -1, account="A3")
    result = decide(doc(contacts=contacts, accounts=ACCOUNTS, opportunities=[by_account, by_role, unrelated]))
    assert result["opportunity_id"] == "O2"
    assert result["account_id"] == "A2"
    c2 = next(e for e in result["trace"] if e["rule"] == "C2")
    assert "O1" in c2["message"] and "O2" in c2["message"] and "O3" not in c2["message"]


def test_c2_union_over_all_matched_contacts() -> None:
    contacts = [
        contact("C1", "jane@acme.example", accounts=("A1",)),
        contact("C2", "kim@other.example", accounts=("A2",)),
    ]
    opportunities = [opp("O1", -40, account="A1"), opp("O2", -3, account="A2")]
    participants = [{"email": "jane@acme.example"}, {"email": "kim@other.example"}]
    result = decide(
        doc(participants=participants, contacts=contacts, accounts=ACCOUNTS, opportunities=opportunities)
    )
    assert result["opportunity_id"] == "O2"


def test_c3_owner_filter_keeps_only_organizer_opportunities() -> None:
    opportunities = [opp("O1", -5, owner="U2"), opp("O2", -300, closed=True, close=-80, owner="U1")]
    result = decide(doc(opportunities=opportunities, policy={"owner": "filter"}))
    assert result["opportunity_id"] == "O2"
    assert "C3" in rules_of(result)


def test_c3_no_crm_user_no_candidate() -> None:
    result = decide(doc(opportunities=[opp("O1", -5, owner="U1")], users=[], policy={"owner": "filter"}))
    assert result["opportunity_id"] is None
    assert result["account_id"] == "A1"
    assert any(e["rule"] == "C3" and "no CRM user" in e["message"] for e in result["trace"])


def test_c4_primary_role_then_any_role_then_owned_account_then_all() -> None:
    contacts = [contact("C1", "jane@acme.example", accounts=("A1",))]
    primary = opp("O1", -300, closed=True, close=-80, account="A2", roles=(("C1", True),))
    role = opp("O2", -200, closed=True, close=-20, account="A2", roles=(("C1", False),))
    owned = opp("O3", -90, account="A1", owner="U1")
    other = opp("O4", -2, account="A1", owner="U2")
    policy = {"use_contact_roles": True}
    stack = [primary, role, owned, other]
    for expected in ["O1", "O2", "O3", "O4"]:
        result = decide(doc(contacts=contacts, accounts=ACCOUNTS, opportunities=stack, policy=policy))
        assert result["opportunity_id"] == expected
        assert "C4" in rules_of(result)
        stack = [o for o in stack if o["id"] != expected]
    without = decide(doc(contacts=contacts, accounts=ACCOUNTS, opportunities=[primary, role, owned, other]))
    assert without["opportunity_id"] == "O4"


def test_c4_group_without_eligible_opportunity_passes_to_next() -> None:
    contacts = [contact("C1", "jane@acme.example", accounts=("A1",))]
    ineligible_primary = opp("O1", 200, roles=(("C1", True),))
    fallback = opp("O2", -10)
    result = decide(
        doc(
            contacts=contacts,
            opportunities=[ineligible_primary, fallback],
            policy={"use_contact_roles": True},
        )
    )
    assert result["opportunity_id"] == "O2"
    assert any("no eligible" in e["message"] for e in result["trace"] if e["rule"] == "C4")


def test_v1_most_voted_account_without_opportunity() -> None:
    contacts = [
        contact("C1", "a@acme.example", accounts=("A1",)),
        contact("C2", "b@other.example", accounts=("A2",)),
        contact("C3", "c@other.example", accounts=("A2", "A3")),
    ]
    participants = [{"email": "a@acme.example"}, {"email": "b@other.example"}, {"email": "c@other.example"}]
    result = decide(doc(participants=participants, contacts=contacts, accounts=ACCOUNTS))
    assert result["account_id"] == "A2"
    assert result["opportunity_id"] is None
    assert "V1" in rules_of(result)


def test_v1_a_participant_votes_once_per_account_even_with_duplicates() -> None:
    contacts = [
        contact("C1", "a@acme.example", accounts=("A1",)),
        contact("C2", "a@acme.example", accounts=("A1",)),
        contact("C3", "b@other.example", accounts=("A2",)),
        contact("C4", "c@other.example", accounts=("A2",)),
    ]
    participants = [{"email": "a@acme.example"}, {"email": "b@other.example"}, {"email": "c@other.example"}]
    assert decide(doc(participants=participants, contacts=contacts, accounts=ACCOUNTS))["account_id"] == "A2"


def test_v2_tie_broken_by_participants_domains_then_smallest_id() -> None:
    contacts = [
        contact("C1", "a@other.example", accounts=("A1",)),
        contact("C2", "b@other.example", accounts=("A2",)),
    ]
    participants = [{"email": "a@other.example"}, {"email": "b@other.example"}]
    result = decide(doc(participants=participants, contacts=contacts, accounts=ACCOUNTS))
    assert result["account_id"] == "A2"
    assert any(e["rule"] == "V2" and "domain" in e["message"] for e in result["trace"])
    no_domains = [account("A1"), account("A2")]
    result = decide(doc(participants=participants, contacts=contacts, accounts=no_domains))
    assert result["account_id"] == "A1"
    assert any(e["rule"] == "V2" and "smallest id" in e["message"] for e in result["trace"])


def test_v3_account_is_always_the_chosen_opportunitys() -> None:
    contacts = [
        contact("C1", "a@acme.example", accounts=("A1",)),
        contact("C2", "b@acme.example", accounts=("A1",)),
    ]
    participants = [{"email": "a@acme.example"}, {"email": "b@acme.example"}]
    opportunities = [opp("O1", -5, account="A3", roles=(("C1", False),))]
    result = decide(
        doc(participants=participants, contacts=contacts, accounts=ACCOUNTS, opportunities=opportunities)
    )
    assert (result["account_id"], result["opportunity_id"]) == ("A3", "O1")
    assert "V3" in rules_of(result)


def test_none_when_nothing_matches() -> None:
    result = decide(doc(participants=[{"email": "stranger@nowhere.example"}]))
    assert result == {
        **result,
        "case": "none",
        "contact_ids": [],
        "lead_ids": [],
        "account_id": None,
        "opportunity_id": None,
    }
