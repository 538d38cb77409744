"""Rules M1-M6: who the participants are in the CRM."""

from __future__ import annotations

from typing import Any

from tests.worker.builders import account, contact, decide, doc, rules_of


def test_m1_email_match_ignores_case_and_spaces_and_secondary_emails() -> None:
    contacts = [
        contact("C1", "Jane@Acme.example"),
        {"id": "C2", "email": "other@acme.example", "emails": ["BOB@acme.example "], "account_ids": ["A1"]},
    ]
    result = decide(
        doc(participants=[{"email": " jane@ACME.example"}, {"email": "bob@acme.example"}], contacts=contacts)
    )
    assert result["contact_ids"] == ["C1", "C2"]
    assert result["case"] == "contacts"
    assert "M1" in rules_of(result)


def test_m2_phone_match_across_formats_in_default_region() -> None:
    contacts = [contact("C1", phones=("+33 6 12 34 56 78",)), contact("C2", phones=("0033 1 45 67 89 01",))]
    participants = [{"phone": "06 12 34 56 78"}, {"phone": "+33145678901"}]
    result = decide(doc(participants=participants, contacts=contacts, policy={"default_region": "FR"}))
    assert result["contact_ids"] == ["C1", "C2"]
    assert rules_of(result).count("M2") == 2


def test_m2_national_number_in_another_region_does_not_match() -> None:
    contacts = [contact("C1", phones=("+33 6 12 34 56 78",))]
    result = decide(
        doc(participants=[{"phone": "06 12 34 56 78"}], contacts=contacts, policy={"default_region": "US"})
    )
    assert result["contact_ids"] == []


def test_m2_garbage_phone_matches_nothing_and_is_traced() -> None:
    contacts = [contact("C1", phones=("garbage",))]
    result = decide(doc(participants=[{"phone": "garbage"}], contacts=contacts))
    assert result["contact_ids"] == []
    assert result["case"] == "none"
    assert any(e["rule"] == "M2" and "not a possible number" in e["message"] for e in result["trace"])


def test_m2_extension_ignored() -> None:
    contacts = [contact("C1", phones=("+1 212 555 0199 ext. 7",))]
    result = decide(doc(participants=[{"phone": "(212) 555-0199"}], contacts=contacts))
    assert result["contact_ids"] == ["C1"]


def test_m3_participant_without_email_or_phone_is_skipped() -> None:
    result = decide(doc(participants=[{"name": "Guest"}, {"email": "jane@acme.example"}]))
    assert result["contact_ids"] == ["C1"]
    m3 = [e for e in result["trace"] if e["rule"] == "M3"]
    assert len(m3) == 1 and "participant 1" in m3[0]["message"]


def test_m4_unmatched_participant_goes_to_leads_and_leads_bring_nothing() -> None:
    leads = [{"id": "L2", "email": "bob@startup.example"}, {"id": "L1", "email": "bob@startup.example"}]
    opportunities = [{"id": "O1", "account_id": "A1", "created_at": "2026-03-01T00:00:00Z"}]
    result = decide(
        doc(participants=[{"email": "bob@startup.example"}], leads=leads, opportunities=opportunities)
    )
    assert result["case"] == "leads_only"
    assert result["lead_ids"] == ["L1", "L2"]
    assert result["account_id"] is None and result["opportunity_id"] is None


def test_m4_leads_only_for_participants_without_contact() -> None:
    leads: list[dict[str, Any]] = [
        {"id": "L1", "email": "jane@acme.example"},
        {"id": "L2", "phones": ["+12125550100"]},
    ]
    result = decide(
        doc(participants=[{"email": "jane@acme.example"}, {"phone": "212 555 0100"}], leads=leads)
    )
    assert result["contact_ids"] == ["C1"]
    assert result["lead_ids"] == ["L2"]


def test_m4_lead_order_is_participant_order_then_id() -> None:
    leads = [
        {"id": "L9", "email": "a@x.example"},
        {"id": "L5", "email": "b@x.example"},
        {"id": "L7", "email": "b@x.example"},
    ]
    result = decide(
        doc(participants=[{"email": "a@x.example"}, {"email": "b@x.example"}], leads=leads, contacts=[])
    )
    assert result["lead_ids"] == ["L9", "L5", "L7"]


def test_m5_duplicate_contacts_all_linked_in_id_order_one_vote_per_account() -> None:
    contacts = [
        contact("C9", "jane@acme.example", accounts=("A1",)),
        contact("C3", "jane@acme.example", accounts=("A1",)),
        contact("C5", "kim@other.example", accounts=("A2",)),
        contact("C6", "lee@other.example", accounts=("A2",)),
    ]
    accounts = [account("A1", "acme.example"), account("A2", "other.example")]
    participants = [
        {"email": "jane@acme.example"},
        {"email": "kim@other.example"},
        {"email": "lee@other.example"},
    ]
    result = decide(doc(participants=participants, contacts=contacts, accounts=accounts))
    assert result["contact_ids"] == ["C3", "C9", "C5", "C6"]
    assert "M5" in rules_of(result)
    assert result["account_id"] == "A2"


def test_m6_domain_fallback_excludes_free_mail_and_organizer_domain() -> None:
    accounts = [account("A1", "acme.example"), account("A2", "gmail.com"), account("A3", "ourco.example")]
    participants = [{"email": "x@gmail.com"}, {"email": "y@ourco.example"}, {"email": "new@acme.example"}]
    result = decide(
        doc(participants=participants, contacts=[], accounts=accounts, policy={"match_by_domain": True})
    )
    assert result["case"] == "domain"
    assert result["account_id"] == "A1"
    assert result["contact_ids"] == []


def test_m6_off_by_default() -> None:
    result = decide(doc(participants=[{"email": "new@acme.example"}], contacts=[]))
    assert result["case"] == "none"
    assert result["account_id"] is None


def test_m6_not_used_when_a_contact_matched() -> None:
    accounts = [account("A1", "acme.example"), account("A2", "other.example")]
    contacts = [contact("C1", "jane@acme.example", accounts=("A1",))]
    participants = [
        {"email": "jane@acme.example"},
        {"email": "x@other.example"},
        {"email": "y@other.example"},
    ]
    result = decide(
        doc(participants=participants, contacts=contacts, accounts=accounts, policy={"match_by_domain": True})
    )
    assert result["case"] == "contacts"
    assert result["account_id"] == "A1"
    assert "M6" not in rules_of(result)


def test_m6_custom_free_mail_list_replaces_default() -> None:
    accounts = [account("A1", "gmail.com")]
    policy = {"match_by_domain": True, "free_mail_domains": ["yahoo.com"]}
    result = decide(
        doc(participants=[{"email": "x@gmail.com"}], contacts=[], accounts=accounts, policy=policy)
    )
    assert result["account_id"] == "A1"
