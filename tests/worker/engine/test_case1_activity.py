"""Rules A1-A6: an existing CRM activity for the call decides first (Case 1)."""

from __future__ import annotations

from typing import Any

from tests.worker.builders import account, contact, days, decide, doc, iso, opp, rules_of


def activity(aid: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": aid,
        "type": "task",
        "call_id": "aircall:1",
        "start": None,
        "contact_ids": [],
        "account_id": None,
        "opportunity_id": None,
    }
    base.update(fields)
    return base


ACCOUNTS = [account("A1", "acme.example"), account("A2", "other.example")]
CONTACTS = [
    contact("C1", "jane@acme.example", accounts=("A1",)),
    contact("C2", "kim@other.example", accounts=("A2",)),
]
OPPS = [
    opp("O1", -40, account="A1"),
    opp("O2", -10, account="A2"),
    opp("O3", -5, account="A2", roles=(("C1", True),)),
]


def case1(*activities: dict[str, Any], policy: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("participants", [{"email": "jane@acme.example"}])
    return decide(
        doc(
            accounts=ACCOUNTS,
            contacts=CONTACTS,
            opportunities=OPPS,
            activities=list(activities),
            policy=policy,
            **kwargs,
        )
    )


def test_a3_activity_linked_to_opportunity_gives_it_and_its_account() -> None:
    result = case1(activity("T1", opportunity_id="O2", account_id="A1", contact_ids=["C1"]))
    assert (result["case"], result["opportunity_id"], result["account_id"]) == (
        "activity_opportunity",
        "O2",
        "A2",
    )
    assert "A3" in rules_of(result)


def test_a4_activity_linked_to_account_chooses_among_its_opportunities() -> None:
    result = case1(activity("T1", account_id="A2"))
    assert (result["case"], result["account_id"], result["opportunity_id"]) == (
        "activity_account",
        "A2",
        "O3",
    )


def test_a4_account_without_eligible_opportunity_keeps_the_account() -> None:
    result = decide(
        doc(
            accounts=ACCOUNTS,
            contacts=CONTACTS,
            opportunities=[opp("O9", 200, account="A2")],
            activities=[activity("T1", account_id="A2")],
        )
    )
    assert (result["case"], result["account_id"], result["opportunity_id"]) == (
        "activity_account",
        "A2",
        None,
    )


def test_a5_activity_with_contacts_only_uses_their_opportunities() -> None:
    result = case1(activity("T1", contact_ids=["C2"]), participants=[{"email": "nobody@x.example"}])
    assert result["case"] == "activity_contact"
    assert result["opportunity_id"] == "O3"
    assert result["account_id"] == "A2"
    assert result["contact_ids"] == ["C2"]


def test_a5_without_opportunity_account_by_vote_of_activity_contacts() -> None:
    result = decide(
        doc(
            accounts=ACCOUNTS,
            contacts=CONTACTS,
            opportunities=[],
            activities=[activity("T1", contact_ids=["C2"])],
        )
    )
    assert (result["case"], result["account_id"], result["opportunity_id"]) == (
        "activity_contact",
        "A2",
        None,
    )
    assert "V1" in rules_of(result)


def test_a6_contacts_are_participants_then_activity_contacts() -> None:
    result = case1(activity("T1", contact_ids=["C2", "C1"]))
    assert result["contact_ids"] == ["C1", "C2"]
    assert "A6" in rules_of(result)


def test_a1_written_by_us_never_counts() -> None:
    result = case1(activity("T1", opportunity_id="O2", written_by_us=True))
    assert result["case"] == "contacts"
    assert any(e["rule"] == "A1" and "written by callmatch" in e["message"] for e in result["trace"])


def test_a1_meeting_event_within_window_sharing_an_email() -> None:
    event = activity(
        "E1",
        type="event",
        call_id=None,
        start=iso(days(10 / 1440)),
        attendee_emails=["JANE@acme.example"],
        opportunity_id="O2",
    )
    assert case1(event, kind="meeting")["opportunity_id"] == "O2"
    far = dict(event, start=iso(days(16 / 1440)))
    assert case1(far, kind="meeting")["case"] == "contacts"
    no_shared = dict(event, attendee_emails=["someone@else.example"])
    assert case1(no_shared, kind="meeting")["case"] == "contacts"
    as_call = case1(event, kind="call")
    assert as_call["case"] == "contacts"
    wider = case1(far, kind="meeting", policy={"activity_match_minutes": 20})
    assert wider["opportunity_id"] == "O2"


def test_a1_window_boundary_is_inclusive() -> None:
    event = activity(
        "E1",
        type="event",
        call_id=None,
        start=iso(days(-15 / 1440)),
        attendee_emails=["jane@acme.example"],
        opportunity_id="O2",
    )
    assert case1(event, kind="meeting")["case"] == "activity_opportunity"


def test_a2_activity_without_links_goes_to_case_2() -> None:
    result = case1(
        activity("T1"), activity("T2", contact_ids=["C404"], account_id="A404", opportunity_id="O404")
    )
    assert result["case"] == "contacts"
    assert rules_of(result).count("A2") >= 2


def test_a2_call_id_match_first_then_closest_start_then_smallest_id() -> None:
    by_id = activity("T9", opportunity_id="O1")
    close_event = activity(
        "E1",
        type="event",
        call_id=None,
        start=iso(days(0)),
        attendee_emails=["jane@acme.example"],
        opportunity_id="O2",
    )
    assert case1(by_id, close_event, kind="meeting")["opportunity_id"] == "O1"
    e2 = activity(
        "E2",
        type="event",
        call_id=None,
        start=iso(days(5 / 1440)),
        attendee_emails=["jane@acme.example"],
        opportunity_id="O3",
    )
    assert case1(e2, close_event, kind="meeting")["opportunity_id"] == "O2"
    e0 = dict(close_event, id="E0", opportunity_id="O3")
    assert case1(close_event, e0, kind="meeting")["opportunity_id"] == "O3"
    no_start = activity("T1", opportunity_id="O3")
    with_start = activity("T2", opportunity_id="O2", start=iso(days(1)))
    assert case1(no_start, with_start)["opportunity_id"] == "O2"


def test_a_rules_off_by_policy() -> None:
    result = case1(activity("T1", opportunity_id="O2"), policy={"use_existing_activity": False})
    assert result["case"] == "contacts"
    a_entries = [e for e in result["trace"] if e["rule"].startswith("A")]
    # says why, nothing more
    assert [e["rule"] for e in a_entries] == ["A1"] and "off" in a_entries[0]["message"]


def test_a6_owner_filter_never_applies_in_case_1() -> None:
    opportunities = [opp("O1", -40, account="A1", owner="U2")]
    result = decide(
        doc(
            accounts=ACCOUNTS,
            contacts=CONTACTS,
            opportunities=opportunities,
            activities=[activity("T1", account_id="A1")],
            policy={"owner": "filter"},
        )
    )
    assert result["opportunity_id"] == "O1"
    assert "C3" not in rules_of(result)
