"""Rules v1.1 M7-M11: our own people and numbers, shared numbers, converted leads, domains, primary first."""

from __future__ import annotations

from typing import Any

import pytest

from tests.worker.builders import T, account, contact, decide, doc, iso, opp, rules_of
from worker.core.model import DomainMatch
from worker.engine.domains import clean, domain_key


def messages(result: dict[str, Any], rule: str) -> list[str]:
    return [entry["message"] for entry in result["trace"] if entry["rule"] == rule]


def same_as_absent(document: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    """The document decided with `defaults` written out equals the document without them; returns it."""
    explicit = {**document, "policy": {**document["policy"], **defaults}}
    result = decide(document)
    assert decide(explicit) == result
    assert result["candidates"] == []
    return result


# --- M7 internal ------------------------------------------------------------------------------

COLLEAGUE = [
    contact("C1", "jane@acme.example", accounts=("A1",)),
    contact("C2", "sam@ourco.example", phones=("+1 212 555 0100",), accounts=("A2",)),
]
BOTH = [{"email": "sam@ourco.example"}, {"email": "jane@acme.example"}]


def test_m7_participant_of_an_internal_domain_is_skipped() -> None:
    result = decide(
        doc(participants=BOTH, contacts=COLLEAGUE, policy={"internal_domains": ["ourco.example"]})
    )
    assert result["contact_ids"] == ["C1"]
    assert result["account_id"] == "A1"
    m7 = messages(result, "M7")
    assert len(m7) == 1 and "participant 1" in m7[0] and "skipped" in m7[0]
    # no M rule for the skipped participant
    assert not [m for r in ("M1", "M2", "M4") for m in messages(result, r) if "participant 1" in m]


def test_m7_default_empty_lists_change_nothing() -> None:
    result = same_as_absent(
        doc(participants=BOTH, contacts=COLLEAGUE), internal_domains=[], internal_phones=[]
    )
    assert result["contact_ids"] == ["C2", "C1"]
    assert "M7" not in rules_of(result)


@pytest.mark.parametrize(
    ("entry", "mode", "skipped"),
    [
        ("ourco.example", "clean", True),
        (" https://www.OurCo.example/team ", "clean", True),  # compared as M10 says: cleaned
        ("https://www.ourco.example/", "exact", False),  # exact: nothing cleaned
        ("OURCO.example", "exact", True),  # exact: case ignored
        ("other.example", "clean", False),
    ],
)
def test_m7_internal_domain_compared_as_m10_says(entry: str, mode: str, skipped: bool) -> None:
    result = decide(
        doc(
            participants=BOTH,
            contacts=COLLEAGUE,
            policy={"internal_domains": [entry], "domain_match": mode},
        )
    )
    assert result["contact_ids"] == (["C1"] if skipped else ["C2", "C1"])
    assert ("M7" in rules_of(result)) is skipped


def test_m7_internal_domain_registrable_covers_subdomains() -> None:
    contacts = [contact("C1", "jane@acme.example"), contact("C2", "sam@paris.ourco.co.uk", accounts=("A2",))]
    participants = [{"email": "sam@paris.ourco.co.uk"}, {"email": "jane@acme.example"}]
    policy: dict[str, Any] = {"internal_domains": ["ourco.co.uk"]}
    assert decide(doc(participants=participants, contacts=contacts, policy=policy))["contact_ids"] == [
        "C2",
        "C1",
    ]
    policy["domain_match"] = "registrable"
    assert decide(doc(participants=participants, contacts=contacts, policy=policy))["contact_ids"] == ["C1"]


def test_m7_skipped_participant_is_not_among_a1_emails() -> None:
    event = {
        "id": "E1",
        "type": "event",
        "call_id": None,
        "start": iso(T),
        "attendee_emails": ["sam@ourco.example"],
        "opportunity_id": "O2",
    }
    document = doc(
        kind="meeting",
        participants=BOTH,
        contacts=COLLEAGUE,
        accounts=[account("A1", "acme.example"), account("A2")],
        opportunities=[opp("O1", -5, account="A1"), opp("O2", -9, account="A2")],
        activities=[event],
    )
    assert decide(document)["case"] == "activity_opportunity"  # v1: the colleague's email is shared
    document["policy"] = {"internal_domains": ["ourco.example"]}
    result = decide(document)
    assert (result["case"], result["opportunity_id"]) == ("contacts", "O1")
    assert "M7" in rules_of(result)


def test_m7_skipped_participant_is_not_counted_by_v2() -> None:
    contacts = [contact("C1", "jane@acme.example", accounts=("A1", "A2"))]
    participants = [{"email": "jane@acme.example"}, {"email": "sam@helper.example"}]
    accounts = [account("A1"), account("A2", "helper.example")]
    document = doc(participants=participants, contacts=contacts, accounts=accounts)
    result = decide(document)
    assert result["account_id"] == "A2" and "V2" in rules_of(result)  # sam's domain is A2's
    document["policy"] = {"internal_domains": ["helper.example"]}
    result = decide(document)
    assert result["account_id"] == "A1"  # sam is not on the call: V2 ties, smallest id
    assert "M7" in rules_of(result)


def test_m7_skipped_participant_is_not_matched_by_m6() -> None:
    document = doc(
        participants=[{"email": "x@partner.example"}],
        contacts=[],
        accounts=[account("A1", "partner.example")],
        policy={"match_by_domain": True},
    )
    assert decide(document)["case"] == "domain"
    document["policy"]["internal_domains"] = ["partner.example"]
    result = decide(document)
    assert (result["case"], result["account_id"]) == ("none", None)
    assert "M6" not in rules_of(result) and "M7" in rules_of(result)


def test_m7_internal_phone_is_ignored_but_the_email_still_matches() -> None:
    participants = [{"email": "jane@acme.example", "phone": "+1 212 555 0100"}]
    document = doc(participants=participants, contacts=COLLEAGUE)
    assert decide(document)["contact_ids"] == ["C1", "C2"]  # v1: the switchboard number matches C2
    document["policy"] = {"internal_phones": ["(212) 555-0100"]}  # read like M2, in default_region US
    result = decide(document)
    assert result["contact_ids"] == ["C1"]
    assert any("ignored" in m for m in messages(result, "M7"))


def test_m7_internal_phone_without_email_skips_the_participant() -> None:
    leads = [{"id": "L1", "phones": ["+12125550100"]}]
    document = doc(participants=[{"phone": "212 555 0100"}], contacts=COLLEAGUE, leads=leads)
    assert decide(document)["contact_ids"] == ["C2"]
    document["policy"] = {"internal_phones": ["+12125550100"]}
    result = decide(document)
    assert (result["case"], result["contact_ids"], result["lead_ids"]) == ("none", [], [])
    assert "M4" not in rules_of(result)  # no M rule: not even leads
    assert any("skipped" in m for m in messages(result, "M7"))


def test_m7_unparseable_internal_phone_entries_are_ignored() -> None:
    participants = [{"phone": "212 555 0100"}]
    unparseable = decide(
        doc(participants=participants, contacts=COLLEAGUE, policy={"internal_phones": ["garbage", ""]})
    )
    assert unparseable["contact_ids"] == ["C2"] and "M7" not in rules_of(unparseable)
    mixed = decide(
        doc(
            participants=participants,
            contacts=COLLEAGUE,
            policy={"internal_phones": ["garbage", "2125550100"]},
        )
    )
    assert mixed["contact_ids"] == []


# --- M8 shared number -------------------------------------------------------------------------

SWITCHBOARD = "+1 212 555 0100"
RECEPTION = [
    contact("C1", phones=(SWITCHBOARD,), accounts=("A1",)),
    contact("C2", phones=(SWITCHBOARD,), accounts=("A2",)),
    contact("C3", phones=("212-555-0100",), accounts=("A3", "A1")),
]
THREE = [account("A1"), account("A2"), account("A3")]


@pytest.mark.parametrize(("limit", "shared"), [(2, True), (3, False), (0, False)])
def test_m8_more_than_n_accounts_is_a_shared_number(limit: int, shared: bool) -> None:
    """Three distinct accounts behind the number: shared with N = 2, not with N = 3 (exactly N), off at 0."""
    result = decide(
        doc(
            participants=[{"phone": "2125550100"}],
            contacts=RECEPTION,
            accounts=THREE,
            policy={"shared_phone_max_accounts": limit},
        )
    )
    assert result["contact_ids"] == ([] if shared else ["C1", "C2", "C3"])
    m8 = messages(result, "M8")
    assert bool(m8) is shared
    if shared:
        assert "shared number" in m8[0] and "***00" in m8[0]


def test_m8_default_changes_nothing() -> None:
    result = same_as_absent(
        doc(participants=[{"phone": "2125550100"}], contacts=RECEPTION, accounts=THREE),
        shared_phone_max_accounts=0,
    )
    assert result["contact_ids"] == ["C1", "C2", "C3"]


def test_m8_counts_distinct_accounts_not_contacts() -> None:
    contacts = [
        contact("C1", phones=(SWITCHBOARD,), accounts=("A1",)),
        contact("C2", phones=(SWITCHBOARD,), accounts=("A1",)),
        contact("C3", phones=(SWITCHBOARD,), accounts=("A2", "A1")),
    ]
    for limit, expected in ((1, []), (2, ["C1", "C2", "C3"])):
        result = decide(
            doc(
                participants=[{"phone": SWITCHBOARD}],
                contacts=contacts,
                policy={"shared_phone_max_accounts": limit},
            )
        )
        assert result["contact_ids"] == expected


def test_m8_the_email_still_matches_and_the_phone_gives_no_lead() -> None:
    contacts = [*RECEPTION, contact("C4", "jane@acme.example", accounts=("A2",))]
    participants = [{"email": "jane@acme.example", "phone": SWITCHBOARD}]
    result = decide(
        doc(
            participants=participants,
            contacts=contacts,
            accounts=THREE,
            policy={"shared_phone_max_accounts": 1},
        )
    )
    assert result["contact_ids"] == ["C4"]
    leads: list[dict[str, Any]] = [
        {"id": "L1", "email": "bob@startup.example"},
        {"id": "L2", "phones": [SWITCHBOARD]},
    ]
    only_leads = decide(
        doc(
            participants=[{"email": "bob@startup.example", "phone": SWITCHBOARD}],
            contacts=RECEPTION,
            accounts=THREE,
            leads=leads,
            policy={"shared_phone_max_accounts": 1},
        )
    )
    assert (only_leads["contact_ids"], only_leads["lead_ids"]) == ([], ["L1"])
    assert "M8" in rules_of(only_leads)
    phone_only = decide(
        doc(
            participants=[{"phone": SWITCHBOARD}],
            contacts=RECEPTION,
            accounts=THREE,
            leads=leads,
            policy={"shared_phone_max_accounts": 1},
        )
    )
    assert (phone_only["case"], phone_only["lead_ids"]) == ("none", [])


def test_m8_every_account_counts_even_excluded_ones() -> None:
    accounts = [account("A1"), account("A2"), account("A3", type="Partner")]
    result = decide(
        doc(
            participants=[{"phone": SWITCHBOARD}],
            contacts=RECEPTION,
            accounts=accounts,
            policy={"shared_phone_max_accounts": 2, "excluded_account_types": ["partner"]},
        )
    )
    assert result["contact_ids"] == [] and "M8" in rules_of(result)


def test_m8_removed_contacts_do_not_count() -> None:
    document = doc(
        participants=[{"phone": SWITCHBOARD}],
        contacts=RECEPTION,
        accounts=THREE,
        policy={"shared_phone_max_accounts": 2},
        previous={"removed": [{"type": "contact", "id": "C2"}]},
    )
    result = decide(document)
    assert result["contact_ids"] == ["C1", "C3"]  # A1, A3: two accounts, not more than 2
    assert "M8" not in rules_of(result) and "R6" in rules_of(result)


# --- M9 converted leads -----------------------------------------------------------------------

CONVERTED = [
    contact("C1", "jane@acme.example", accounts=("A1",)),
    contact("C9", "robert@acme.example", accounts=("A2",)),
]
BOB = [{"email": "bob@startup.example"}]


def converted(lid: str, target: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": lid,
        "email": "bob@startup.example",
        "is_converted": True,
        "converted_contact_id": target,
        **extra,
    }


def test_m9_converted_lead_is_followed_to_its_contact() -> None:
    leads = [converted("L1", "C9"), {"id": "L2", "email": "bob@startup.example"}]
    result = decide(
        doc(
            participants=BOB,
            contacts=CONVERTED,
            accounts=[account("A1"), account("A2")],
            leads=leads,
            opportunities=[opp("O2", -5, account="A2")],
            policy={"skip_converted_leads": True},
        )
    )
    # the participant then has a contact, so no lead at all (not even the unconverted L2)
    assert (result["case"], result["contact_ids"], result["lead_ids"]) == ("contacts", ["C9"], [])
    assert (result["account_id"], result["opportunity_id"]) == ("A2", "O2")
    m9 = messages(result, "M9")
    assert len(m9) == 1 and "L1" in m9[0] and "C9" in m9[0]


def test_m9_off_by_default_converted_leads_match_as_in_v1() -> None:
    result = same_as_absent(
        doc(participants=BOB, contacts=CONVERTED, leads=[converted("L1", "C9")]), skip_converted_leads=False
    )
    assert (result["case"], result["contact_ids"], result["lead_ids"]) == ("leads_only", [], ["L1"])
    assert "M9" not in rules_of(result)


@pytest.mark.parametrize("target", ["C404", None])
def test_m9_converted_lead_without_known_contact_is_skipped(target: str | None) -> None:
    leads = [converted("L1", target), {"id": "L2", "email": "bob@startup.example"}]
    result = decide(
        doc(participants=BOB, contacts=CONVERTED, leads=leads, policy={"skip_converted_leads": True})
    )
    assert (result["case"], result["contact_ids"], result["lead_ids"]) == ("leads_only", [], ["L2"])
    m9 = messages(result, "M9")
    assert len(m9) == 1 and "L1" in m9[0] and "skipped" in m9[0]
    alone = decide(
        doc(participants=BOB, contacts=CONVERTED, leads=leads[:1], policy={"skip_converted_leads": True})
    )
    assert (alone["case"], alone["lead_ids"]) == ("none", [])


def test_m9_converted_to_a_removed_contact_is_skipped() -> None:
    result = decide(
        doc(
            participants=BOB,
            contacts=CONVERTED,
            leads=[converted("L1", "C9")],
            policy={"skip_converted_leads": True},
            previous={"removed": [{"type": "contact", "id": "C9"}]},
        )
    )
    assert (result["contact_ids"], result["lead_ids"]) == ([], [])
    assert any("removed" in m and "skipped" in m for m in messages(result, "M9"))


def test_m9_several_converted_leads_link_their_contacts_in_id_order() -> None:
    contacts = [*CONVERTED, contact("C5", "other@acme.example", accounts=("A1",))]
    leads = [converted("L1", "C9"), converted("L2", "C5")]
    result = decide(
        doc(participants=BOB, contacts=contacts, leads=leads, policy={"skip_converted_leads": True})
    )
    assert result["contact_ids"] == ["C5", "C9"]
    assert rules_of(result).count("M9") == 2


def test_m9_followed_contact_counts_for_m6_as_a_matched_contact() -> None:
    result = decide(
        doc(
            participants=[{"email": "bob@startup.example"}],
            contacts=CONVERTED,
            accounts=[account("A1"), account("A2"), account("A3", "startup.example")],
            leads=[converted("L1", "C9")],
            policy={"skip_converted_leads": True, "match_by_domain": True},
        )
    )
    assert (result["case"], result["account_id"]) == ("contacts", "A2")  # M6 does not run
    assert "M6" not in rules_of(result)


# --- M10 domains ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "cleaned"),
    [
        ("  ACME.Example  ", "acme.example"),  # trim, lower-case
        ("https://acme.example", "acme.example"),  # scheme
        ("ftp://acme.example", "acme.example"),  # any scheme
        ("acme.example/about/us", "acme.example"),  # all from the first /
        ("acme.example?ref=ad", "acme.example"),  # ... or ?
        ("acme.example#top", "acme.example"),  # ... or #
        ("acme.example/@other.example", "acme.example"),  # the path goes before the @ rule
        ("mailto-user@acme.example", "acme.example"),  # all up to the last @
        ("a@b@acme.example", "acme.example"),
        ("acme.example:8443", "acme.example"),  # port
        ("user:secret@acme.example:8443/x", "acme.example"),
        ("acme.example..", "acme.example"),  # trailing dots
        ("www.acme.example", "acme.example"),  # one leading www.
        ("www.acme.example.", "acme.example"),  # dots go before www.
        ("www.www.acme.example", "www.acme.example"),  # only one
        ("wwwacme.example", "wwwacme.example"),
        ("https://www.acme.example:443/path?q#f", "acme.example"),
        ("", None),
        ("   ", None),
        ("https://", None),  # empty is no domain
        ("/acme.example", None),
    ],
)
def test_m10_clean_steps(stored: str, cleaned: str | None) -> None:
    assert clean(stored) == cleaned
    assert domain_key(stored, DomainMatch.CLEAN) == cleaned


@pytest.mark.parametrize(
    ("domain", "registrable"),
    [
        ("eu.acme.co.uk", "acme.co.uk"),
        ("app.twenty.dev", "twenty.dev"),
        ("https://www.shop.acme.com/", "acme.com"),
        ("acme.com", "acme.com"),
        ("co.uk", "co.uk"),  # itself a suffix: stays as cleaned
        ("com", "com"),
        ("192.168.10.20", "192.168.10.20"),  # IP address: stays as cleaned
        ("eu.acme.example", "eu.acme.example"),  # unknown suffix: stays as cleaned
        ("foo.github.io", "github.io"),  # ICANN section only (github.io is a private suffix)
    ],
)
def test_m10_registrable_examples(domain: str, registrable: str) -> None:
    assert domain_key(domain, DomainMatch.REGISTRABLE) == registrable


def test_m10_exact_cleans_nothing_but_ignores_case() -> None:
    assert domain_key("https://www.Acme.com/", DomainMatch.EXACT) == "https://www.acme.com/"
    assert domain_key("ACME.com", DomainMatch.EXACT) == "acme.com"


def domain_match(stored: str, email: str, mode: str | None) -> dict[str, Any]:
    policy: dict[str, Any] = {"match_by_domain": True}
    if mode is not None:
        policy["domain_match"] = mode
    return decide(
        doc(
            participants=[{"email": email}],
            contacts=[],
            accounts=[account("A1", stored)],
            opportunities=[opp("O1", -5, account="A1")],
            policy=policy,
        )
    )


@pytest.mark.parametrize(
    ("stored", "email", "mode", "matched"),
    [
        ("https://www.acme.com/", "jane@acme.com", None, True),  # the default cleans stored websites
        ("https://www.acme.com/", "jane@acme.com", "clean", True),
        ("acme.com:443", "jane@WWW.acme.com", "clean", True),  # the email side is cleaned too
        ("https://www.acme.com/", "jane@acme.com", "exact", False),
        ("Acme.COM", "jane@acme.com", "exact", True),
        ("www.acme.com", "jane@acme.com", "exact", False),
        ("acme.co.uk", "jane@eu.acme.co.uk", "registrable", True),
        ("acme.co.uk", "jane@eu.acme.co.uk", "clean", False),
        ("https://www.twenty.dev", "jane@app.twenty.dev", "registrable", True),
        ("co.uk", "jane@acme.co.uk", "registrable", False),  # a bare suffix is no registrable domain
        ("co.uk", "jane@co.uk", "registrable", True),  # ... it stays as cleaned
        ("192.168.10.20", "jane@192.168.10.20", "registrable", True),
        ("168.10.20", "jane@192.168.10.20", "registrable", False),  # an IP address is not reduced
        ("acme.example", "jane@eu.acme.example", "registrable", False),  # unknown suffix: not reduced
    ],
)
def test_m10_compares_m6_domains(stored: str, email: str, mode: str | None, matched: bool) -> None:
    result = domain_match(stored, email, mode)
    assert (result["case"], result["account_id"], result["opportunity_id"]) == (
        ("domain", "A1", "O1") if matched else ("none", None, None)
    )


def test_m10_free_mail_and_organizer_domains_are_compared_the_same_way() -> None:
    accounts = [account("A1", "gmail.com"), account("A2", "ourco.example")]
    participants = [{"email": "x@gmail.com"}, {"email": "boss@www.ourco.example"}]
    policy: dict[str, Any] = {"match_by_domain": True, "free_mail_domains": ["https://Gmail.com/"]}
    cleaned = decide(doc(participants=participants, contacts=[], accounts=accounts, policy=policy))
    assert (cleaned["case"], cleaned["account_id"]) == ("none", None)
    exact = decide(
        doc(
            participants=participants,
            contacts=[],
            accounts=accounts,
            policy={**policy, "domain_match": "exact"},
        )
    )
    assert exact["account_id"] == "A1"  # "https://gmail.com/" is not gmail.com, literally


@pytest.mark.parametrize(("mode", "winner"), [("clean", "A2"), ("exact", "A1")])
def test_m10_compares_v2_domains(mode: str, winner: str) -> None:
    result = decide(
        doc(
            contacts=[contact("C1", "jane@acme.example", accounts=("A1", "A2"))],
            accounts=[account("A1"), account("A2", "https://www.acme.example/")],
            policy={"domain_match": mode},
        )
    )
    assert result["account_id"] == winner
    assert "V2" in rules_of(result)


def test_m10_default_decides_clean_domains_as_v1() -> None:
    result = same_as_absent(
        doc(
            participants=[{"email": "jane@acme.example"}],
            contacts=[],
            accounts=[account("A1", "acme.example")],
            policy={"match_by_domain": True},
        ),
        domain_match="clean",
    )
    assert (result["case"], result["account_id"]) == ("domain", "A1")


# --- M11 primary first ------------------------------------------------------------------------

SECONDARY = [
    contact("C1", "jane@acme.example", phones=("+1 212 555 0101", "+1 212 555 0199"), accounts=("A1",)),
    contact(
        "C2",
        "j.doe@acme.example",
        emails=("jane@acme.example",),
        phones=("+1 212 555 0199",),
        accounts=("A2",),
    ),
]


def test_m11_primary_email_drops_contacts_matching_only_a_secondary_email() -> None:
    document = doc(participants=[{"email": "jane@acme.example"}], contacts=SECONDARY)
    assert decide(document)["contact_ids"] == ["C1", "C2"]
    document["policy"] = {"prefer_primary": True}
    result = decide(document)
    assert result["contact_ids"] == ["C1"]
    m11 = messages(result, "M11")
    assert len(m11) == 1 and "C2" in m11[0] and "C1" not in m11[0]


def test_m11_first_phone_drops_contacts_matching_only_a_later_phone() -> None:
    document = doc(participants=[{"phone": "(212) 555-0199"}], contacts=SECONDARY)
    assert decide(document)["contact_ids"] == ["C1", "C2"]
    document["policy"] = {"prefer_primary": True}
    result = decide(document)
    assert result["contact_ids"] == ["C2"]
    assert any("C1" in m for m in messages(result, "M11"))


def test_m11_keeps_all_when_none_is_primary() -> None:
    contacts = [
        contact("C1", "a@acme.example", emails=("jane@acme.example",)),
        contact("C2", "b@acme.example", emails=("jane@acme.example",)),
    ]
    result = decide(
        doc(participants=[{"email": "jane@acme.example"}], contacts=contacts, policy={"prefer_primary": True})
    )
    assert result["contact_ids"] == ["C1", "C2"]
    assert "M11" not in rules_of(result)


def test_m11_the_participants_contacts_are_what_is_left_of_both() -> None:
    """C1 is primary by email, C2 by phone: each side drops the other, both stay (M5 order)."""
    participants = [{"email": "jane@acme.example", "phone": "212 555 0199"}]
    result = decide(doc(participants=participants, contacts=SECONDARY, policy={"prefer_primary": True}))
    assert result["contact_ids"] == ["C1", "C2"]


def test_m11_leads_are_unchanged() -> None:
    leads: list[dict[str, Any]] = [
        {"id": "L1", "email": "other@startup.example", "emails": ["bob@startup.example"]},
        {"id": "L2", "email": "bob@startup.example"},
    ]
    result = decide(doc(participants=BOB, contacts=[], leads=leads, policy={"prefer_primary": True}))
    assert result["lead_ids"] == ["L1", "L2"]


def test_m11_default_changes_nothing() -> None:
    result = same_as_absent(
        doc(participants=[{"email": "jane@acme.example"}], contacts=SECONDARY), prefer_primary=False
    )
    assert result["contact_ids"] == ["C1", "C2"]
