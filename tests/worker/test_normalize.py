"""M1/M2 normalisation: the same person however their email or number was typed."""

from __future__ import annotations

import pytest

from worker.core.normalize import email_domain, mask_email, mask_phone, norm_domain, norm_email, to_e164


def test_m1_email_trimmed_and_lowercased() -> None:
    assert norm_email("  Jane.Doe@ACME.example ") == "jane.doe@acme.example"
    assert norm_email("   ") is None
    assert norm_email(None) is None


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+33 6 12 34 56 78", "FR"),
        ("0033 6 12 34 56 78", "FR"),
        ("06 12 34 56 78", "FR"),
        ("06.12.34.56.78", "FR"),
        ("+33612345678", "US"),
        ("0033612345678", "US"),
        ("+33 6 12 34 56 78 ext. 42", "FR"),
        ("06 12 34 56 78 x42", "FR"),
    ],
)
def test_m2_phone_variants_are_one_number(raw: str, region: str) -> None:
    assert to_e164(raw, region) == "+33612345678"


def test_m2_national_number_read_in_default_region() -> None:
    assert to_e164("(212) 555-0199", "US") == "+12125550199"
    assert to_e164("06 12 34 56 78", "US") != "+33612345678"


@pytest.mark.parametrize("raw", ["garbage", "", "   ", "123", "+33 6", "++--", "0033"])
def test_m2_unparseable_or_impossible_matches_nothing(raw: str) -> None:
    assert to_e164(raw, "FR") is None


def test_domains() -> None:
    assert email_domain("Jane@Acme.Example") == "acme.example"
    assert email_domain("no-at-sign") is None
    assert norm_domain("https://www.Acme.example/about") == "acme.example"


def test_masking_never_shows_the_value() -> None:
    assert mask_email("jane.doe@acme.example") == "j***@acme.example"
    assert "612345" not in mask_phone("+33 6 12 34 56 78")
    assert mask_phone("+33 6 12 34 56 78").endswith("78")
