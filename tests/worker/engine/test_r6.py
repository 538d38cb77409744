"""Rule v1.1 R6: what a person unlinked is never linked again; stale previous contacts may be dropped."""

from __future__ import annotations

from typing import Any

from tests.worker.builders import account, contact, decide, doc, opp, rules_of

ACCOUNTS = [account("A1", "acme.example"), account("A2", "other.example")]
CONTACTS = [
    contact("C1", "jane@acme.example", accounts=("A1", "A2")),
    contact("C2", "kim@other.example", accounts=("A2",)),
]
OPPS = [opp("O1", -5, account="A1"), opp("O2", -40, account="A2")]


def removed(*records: tuple[str, str], **previous: Any) -> dict[str, Any]:
    return {"removed": [{"type": kind, "id": rid} for kind, rid in records], **previous}


def run(
    previous: dict[str, Any] | None = None, policy: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    kwargs.setdefault("accounts", ACCOUNTS)
    kwargs.setdefault("contacts", CONTACTS)
    kwargs.setdefault("opportunities", OPPS)
    return decide(doc(previous=previous, policy=policy, **kwargs))


def r6(result: dict[str, Any]) -> list[str]:
    return [entry["message"] for entry in result["trace"] if entry["rule"] == "R6"]


def test_r6_empty_removed_list_changes_nothing() -> None:
    previous: dict[str, Any] = {"contact_ids": [], "locked": []}
    assert run(removed(**previous)) == run(previous)
    assert run(previous)["opportunity_id"] == "O1"


# --- Case 2 -------------------------------------------------------------------------------


def test_r6_removed_contact_matches_no_participant() -> None:
    participants = [{"email": "jane@acme.example"}, {"email": "kim@other.example"}]
    result = run(removed(("contact", "C1")), participants=participants)
    assert (result["contact_ids"], result["account_id"], result["opportunity_id"]) == (["C2"], "A2", "O2")
    assert any("C1" in m for m in r6(result))


def test_r6_participant_of_a_removed_contact_goes_to_leads_and_m6() -> None:
    leads = [{"id": "L1", "email": "jane@acme.example"}]
    result = run(removed(("contact", "C1")), leads=leads)
    assert (result["case"], result["contact_ids"], result["lead_ids"]) == ("leads_only", [], ["L1"])
    domain = run(removed(("contact", "C1")), {"match_by_domain": True})
    assert (domain["case"], domain["account_id"]) == ("domain", "A1")


def test_r6_removed_contact_is_not_kept_from_previous() -> None:
    result = run(removed(("contact", "C2"), contact_ids=["C1", "C2"], locked=["contacts"]))
    assert result["contact_ids"] == ["C1"]
    assert any("C2" in m for m in r6(result))


def test_r6_removed_opportunity_is_no_candidate() -> None:
    result = run(removed(("opportunity", "O1")))
    assert (result["opportunity_id"], result["account_id"]) == ("O2", "A2")
    assert any("O1" in m for m in r6(result))


def test_r6_removed_account_loses_votes_domain_matches_and_opportunities() -> None:
    result = run(removed(("account", "A1")))
    assert (result["account_id"], result["opportunity_id"]) == ("A2", "O2")
    no_opportunity = run(removed(("account", "A1")), opportunities=[opp("O1", -5, account="A1")])
    assert (no_opportunity["account_id"], no_opportunity["opportunity_id"]) == ("A2", None)
    domain = run(
        removed(("account", "A1")), {"match_by_domain": True}, participants=[{"email": "x@acme.example"}]
    )
    assert (domain["case"], domain["account_id"]) == ("none", None)
    assert r6(domain)


def test_r6_removed_previous_account_counts_as_absent_for_r2() -> None:
    result = run(removed(("account", "A2"), account_id="A2"))
    assert (result["account_id"], result["opportunity_id"]) == ("A1", "O1")
    assert "R2" not in rules_of(result)
    kept = run({"account_id": "A2"})
    assert (kept["account_id"], kept["opportunity_id"]) == ("A2", "O2")


def test_r6_removed_previous_opportunity_counts_as_absent_for_r4() -> None:
    """Read literally: the lock stays, on an absent (null) opportunity."""
    locked = {"opportunity_id": "O2", "locked": ["opportunity"]}
    assert run(locked)["opportunity_id"] == "O2"
    result = run(removed(("opportunity", "O2"), **locked))
    assert result["opportunity_id"] is None
    assert "R4" in rules_of(result) and r6(result)


# --- Case 1: A2 link discounting ------------------------------------------------------------


def activity(aid: str = "T1", **links: Any) -> dict[str, Any]:
    return {"id": aid, "type": "task", "call_id": "aircall:1", **links}


def test_r6_link_to_a_removed_opportunity_does_not_count_its_other_links_do() -> None:
    activities = [activity(opportunity_id="O2", account_id="A2")]
    assert run(activities=activities)["case"] == "activity_opportunity"
    result = run(removed(("opportunity", "O2")), activities=activities)
    assert (result["case"], result["account_id"], result["opportunity_id"]) == (
        "activity_account",
        "A2",
        None,
    )
    assert any("O2" in m for m in r6(result))


def test_r6_link_to_an_opportunity_of_a_removed_account_does_not_count() -> None:
    activities = [activity(opportunity_id="O2", contact_ids=["C1"])]
    result = run(removed(("account", "A2")), activities=activities)
    assert (result["case"], result["account_id"], result["opportunity_id"]) == (
        "activity_contact",
        "A1",
        "O1",
    )


def test_r6_link_to_a_removed_account_does_not_count() -> None:
    activities = [activity(account_id="A2")]
    assert run(activities=activities)["case"] == "activity_account"
    result = run(removed(("account", "A2")), activities=activities)
    assert (result["case"], result["account_id"], result["opportunity_id"]) == ("contacts", "A1", "O1")
    assert any("account A2" in m for m in r6(result))


def test_r6_activity_with_only_removed_links_lets_the_next_one_decide() -> None:
    activities = [activity("T1", opportunity_id="O2"), activity("T2", account_id="A1")]
    result = run(removed(("opportunity", "O2")), activities=activities)
    assert (result["case"], result["account_id"]) == ("activity_account", "A1")


def test_r6_removed_contact_is_not_added_by_a6_nor_an_a5_contact() -> None:
    activities = [activity(contact_ids=["C1", "C2"])]
    v1 = run(activities=activities)
    assert v1["contact_ids"] == ["C1", "C2"]
    result = run(removed(("contact", "C2")), activities=activities)
    assert (result["case"], result["contact_ids"]) == ("activity_contact", ["C1"])
    only_removed = run(removed(("contact", "C2")), activities=[activity(contact_ids=["C2"])])
    assert only_removed["case"] == "contacts"  # the activity links nothing that counts: Case 2
    assert "A2" in rules_of(only_removed)
    a5 = run(
        removed(("contact", "C1")),
        participants=[{"email": "kim@other.example"}],
        activities=[activity(contact_ids=["C1", "C2"])],
        opportunities=[opp("O1", -5, account="A1", roles=(("C1", True),)), opp("O2", -40, account="A2")],
    )
    assert (a5["contact_ids"], a5["opportunity_id"]) == (["C2"], "O2")


# --- refresh_drops_stale ------------------------------------------------------------------


def test_r6_refresh_drops_stale_contacts() -> None:
    previous = {"contact_ids": ["C1", "C7"], "locked": []}
    assert run(previous)["contact_ids"] == ["C1", "C7"]  # default: kept as v1 keeps them
    result = run(previous, {"refresh_drops_stale": True})
    assert result["contact_ids"] == ["C1"]
    assert any("C7" in m for m in r6(result))


def test_r6_refresh_drops_stale_not_when_contacts_are_locked() -> None:
    previous = {"contact_ids": ["C1", "C7"], "locked": ["contacts"]}
    assert run(previous, {"refresh_drops_stale": True})["contact_ids"] == ["C1", "C7"]


def test_r6_refresh_drops_stale_list_left_empty_replaces_nothing() -> None:
    previous = {"contact_ids": ["C7"], "locked": []}
    assert run(previous)["contact_ids"] == ["C7"]
    result = run(previous, {"refresh_drops_stale": True})
    assert result["contact_ids"] == ["C1"]  # the new contacts stand


def test_r6_refresh_drops_stale_default_changes_nothing() -> None:
    previous = {"contact_ids": ["C1", "C7"], "locked": []}
    assert run(previous, {"refresh_drops_stale": False}) == run(previous)
