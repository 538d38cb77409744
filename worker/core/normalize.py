"""Email and phone normalisation (rules M1, M2) and masking for traces and logs."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

_NON_DIAL = re.compile(r"[\s().\-/]")


def norm_email(value: str | None) -> str | None:
    """M1: emails compare after trimming and lower-casing; blank is no email."""
    if value is None:
        return None
    cleaned = value.strip().lower()
    return cleaned or None


def email_domain(email: str | None) -> str | None:
    norm = norm_email(email)
    if norm is None or "@" not in norm:
        return None
    domain = norm.rsplit("@", 1)[1].strip(".")
    return domain or None


def norm_domain(value: str) -> str:
    """Account domains are often stored as websites: keep the host, drop `www.`."""
    host = value.strip().lower()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    host = host.split("/", 1)[0].split(":", 1)[0].strip(".")
    if host.startswith("www."):
        host = host[4:]
    return host


@lru_cache(maxsize=65536)
def to_e164(raw: str | None, region: str) -> str | None:
    """M2: the E.164 form of a phone as typed, or None when it cannot match anything.

    Numbers without a country code are read in `region`; a leading `00` is the
    international prefix whatever the region; extensions are dropped; a number that
    does not parse, or is not possible for its region, gives None.
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    compact = _NON_DIAL.sub("", text)
    if compact.startswith("00"):
        text = "+" + compact[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_email(email: str | None) -> str:
    """`j***@acme.com`: enough for a person to recognise, never the address in clear."""
    norm = norm_email(email)
    if norm is None:
        return "-"
    local, _, domain = norm.partition("@")
    return f"{local[:1]}***@{domain}" if domain else f"{local[:1]}***"


def mask_phone(phone: str | None) -> str:
    """`***78`: the last two digits only."""
    if phone is None:
        return "-"
    digits = re.sub(r"\D", "", phone)
    return f"***{digits[-2:]}" if len(digits) >= 2 else "***"
