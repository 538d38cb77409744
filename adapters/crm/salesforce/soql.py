"""SOQL and SOSL text built from values: escaping, literals and phone format variants."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache

import phonenumbers

_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_SOSL_RESERVED = set("?&|!{}[]()^~*:\\\"'+-")


def quote(value: str) -> str:
    """A SOQL string literal; every quote and backslash escaped, so a value can never end the literal."""
    return "'" + "".join(_SOQL_ESCAPES.get(char, char) for char in value) + "'"


def like_quote(value: str) -> str:
    """A LIKE pattern that matches `value` as a substring (its own % and _ taken literally)."""
    escaped = "".join(_SOQL_ESCAPES.get(char, char) for char in value)
    escaped = escaped.replace("%", "\\%").replace("_", "\\_")
    return "'%" + escaped + "%'"


def in_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(quote(v) for v in sorted(set(values))) + ")"


def datetime_literal(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sosl_escape(term: str) -> str:
    """A SOSL search term with every reserved character backslash-escaped."""
    return "".join("\\" + char if char in _SOSL_RESERVED else char for char in term)


def any_in(fields: Iterable[str], values: Iterable[str]) -> str:
    """`(F1 IN (...) OR F2 IN (...))`: one condition over several fields."""
    listed = in_list(values)
    return "(" + " OR ".join(f"{name} IN {listed}" for name in fields) + ")"


@lru_cache(maxsize=4096)
def phone_variants(e164: str) -> tuple[str, ...]:
    """The ways people type this number into a CRM: E.164, international, national, with spaces,
    dashes, dots or nothing between groups, with `00` or without the plus."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return (e164,)
    formats = {
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
    }
    variants: set[str] = set()
    for text in formats:
        variants.add(text)
        groups = text.replace("(", " ").replace(")", " ").replace("-", " ").replace(".", " ").split()
        for separator in (" ", "-", ".", ""):
            joined = separator.join(groups)
            variants.add(joined)
            if joined.startswith("+"):
                variants.add("00" + joined[1:])
                variants.add(joined[1:])
                head, _, rest = text.partition(" ")
                if rest:
                    tail = (
                        rest.replace("(", " ").replace(")", " ").replace("-", " ").replace(".", " ").split()
                    )
                    variants.add(head + " " + separator.join(tail))
        if len(groups) >= 2 and not text.startswith("+"):
            area, others = groups[0], groups[1:]
            variants.add(f"({area}) " + "-".join(others))
            variants.add(f"({area}) " + " ".join(others))
            variants.add(f"({area}) " + "".join(others))
    national = str(number.national_number)
    variants.add(national)
    return tuple(sorted(v for v in variants if v))


def national_digits(e164: str) -> str:
    """The national significant number, the part every stored format of it ends with."""
    try:
        return str(phonenumbers.parse(e164, None).national_number)
    except phonenumbers.NumberParseException:
        return "".join(c for c in e164 if c.isdigit())
