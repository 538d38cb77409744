"""Rules R1-R4: a refresh re-runs the rules but keeps what was set or locked."""

from __future__ import annotations

from typing import Any

from tests.worker.builders import account, contact, decide, doc, opp, rules_of

ACCOUNTS = [account("A1", "acme.example"), account("A2", "other.example")]
CONTACTS = [
    contact("C1", "jane@acme.example", accounts=("A1",)),
    contact("C2", "kim@other.example", accounts=("A2",)),
]


def refresh(previous: dict[str, Any], opportunities: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    return decide(
        doc(accounts=ACCOUNTS, contacts=CONTACTS, opportunities=opportunities, previous=previous, **kwargs)
    )


def test_r1_refresh_finds_an_opportunity_created_since() -> None:
    previous = {"contact_ids": ["C1"], "account_id": "A1", "opportunity_id": None, "locked": []}
    assert refresh(previous, [])["opportunity_id"] is None
    result = refresh(previous, [opp("O1", 3, account="A1")])
    assert result["opportunity_id"] == "O1"
    assert "R1" in rules_of(result)


def test_r2_previous_contacts_and_account_replace_new_ones() -> None:
    previous = {"contact_ids": ["C2"], "account_id": "A2", "opportunity_id": None, "locked": []}
    result = refresh(
        previous, [opp("O1", -5, account="A1"), opp("O2", -50, account="A2", roles=(("C1", False),))]
    )
    assert result["contact_ids"] == ["C2"]
    assert result["account_id"] == "A2"
    assert result["opportunity_id"] == "O2"
    assert {"R2", "R3"} <= set(rules_of(result))


def test_r2_locked_empty_contacts_stay_empty() -> None:
    result = refresh({"contact_ids": [], "locked": ["contacts"]}, [])
    assert result["contact_ids"] == []


def test_r2_unset_previous_fields_take_the_new_result() -> None:
    result = refresh({"contact_ids": [], "account_id": None, "locked": []}, [opp("O1", -5)])
    assert (result["contact_ids"], result["account_id"], result["opportunity_id"]) == (["C1"], "A1", "O1")


def test_r3_replaced_account_without_candidates_means_no_opportunity() -> None:
    previous = {"contact_ids": [], "account_id": "A2", "opportunity_id": None, "locked": ["account"]}
    result = refresh(previous, [opp("O1", -5, account="A1")])
    assert (result["account_id"], result["opportunity_id"]) == ("A2", None)
    assert "R3" in rules_of(result)


def test_r4_locked_opportunity_stays_even_if_rules_differ() -> None:
    previous = {"contact_ids": ["C1"], "account_id": "A1", "opportunity_id": "O9", "locked": ["opportunity"]}
    result = refresh(previous, [opp("O1", -5, account="A1")])
    assert result["opportunity_id"] == "O9"
    assert "R4" in rules_of(result)
    unlocked = refresh({**previous, "locked": []}, [opp("O1", -5, account="A1")])
    assert unlocked["opportunity_id"] == "O1"


def test_r4_locked_none_stays_none() -> None:
    previous = {"opportunity_id": None, "locked": ["opportunity"]}
    assert refresh(previous, [opp("O1", -5, account="A1")])["opportunity_id"] is None
