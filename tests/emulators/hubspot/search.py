"""How HubSpot's CRM search matches a filter, from its documentation (not from any client's needs).

Sources: developers.hubspot.com "CRM search" guide (filter operators, case rules, wildcards,
limits, phone numbers) and the properties API (property types).

- Values compare case-insensitively, except: an `enumeration` property compares case-sensitively
  for every operator, and `IN` / `NOT_IN` on a string property take lower-case values (the stored
  value is lower-cased, the listed values are not).
- `CONTAINS_TOKEN` matches one token of the value; `*` in the filter value is a wildcard inside
  a token ("use the value `*@hubspot.com` to retrieve contacts with a HubSpot email address", so
  an email address is one token). Tokens follow the search index's word breaking: emails and
  URLs stay whole, other text breaks at white space and punctuation, while `.`, `'` and `:`
  between letters or digits do not break a word (`acme.com`, `o'neil`) — Unicode word
  boundaries as Elasticsearch's `uax_url_email` tokenizer draws them. Multi-value properties
  (`;`-separated) are tokenised value by value.
- Phone search uses `hs_searchable_calculated_*` properties: "HubSpot only uses the area code
  and local number" (no country code, no formatting) — see `searchable_phone`.
- `datetime` / `date` properties take ISO 8601 or epoch milliseconds; `number` properties compare
  numerically.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import phonenumbers

EMAIL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[a-z0-9-]+(?:\.[a-z0-9-]+)+"
URL = r"[a-z][a-z0-9+.-]*://[^\s;]+"
WORD = r"[^\W_]+(?:[_]+[^\W_]+)*(?:[.':][^\W_]+(?:[_]+[^\W_]+)*)*"
TOKEN = re.compile(f"{URL}|{EMAIL}|{WORD}")
PATTERN = re.compile(f"{URL}|{EMAIL}|(?:[^\\W_]|\\*)+(?:[_.':](?:[^\\W_]|\\*)+)*")


def tokens(value: str) -> list[str]:
    """The search index's tokens of a property value (lower case)."""
    out: list[str] = []
    for part in value.split(";"):
        out.extend(TOKEN.findall(part.strip().lower()))
    return out


def contains_token(value: str, wanted: str) -> bool:
    """`CONTAINS_TOKEN`: every token of the filter value matches one token of the property value,
    `*` standing for any run of characters inside a token."""
    patterns = PATTERN.findall(wanted.strip().lower())
    if not patterns:
        return False
    have = tokens(value)
    for pattern in patterns:
        regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
        if not any(regex.fullmatch(tok) for tok in have):
            return False
    return True


_EXTENSION = re.compile(r"\s*(?:ext\.?|extension|x|#)\s*\d+\s*$", re.IGNORECASE)


def searchable_phone(raw: str, region: str) -> str | None:
    """`hs_searchable_calculated_phone_number` / `_mobile_number`: the phone's digits without
    formatting and without the country code ("HubSpot only uses the area code and local number").
    A number written with `+` or `00` loses its country code; one written nationally is read
    in the portal's country. What is kept is the national significant number (ITU-T E.164):
    a trunk prefix such as the UK's leading 0 goes, a zero that belongs to the number (Italy's
    `06` area code) stays; an extension is not part of the number. What cannot be read as a number
    keeps its digits."""
    text = _EXTENSION.sub("", raw.strip())
    if not text:
        return None
    compact = "".join(ch for ch in text if ch.isdigit() or ch == "+")
    if compact.startswith("00"):
        text = "+" + compact[2:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and number.national_number:
        return str(phonenumbers.national_significant_number(number))
    digits = "".join(ch for ch in text if ch.isdigit())
    return digits or None


def to_millis(value: str) -> int | None:
    """A datetime property or filter value (ISO 8601 or epoch milliseconds) as epoch milliseconds."""
    text = value.strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def matches(value: str, type_: str, flt: dict[str, Any]) -> bool:
    """Whether a property value (of property type `type_`) passes one search filter."""
    op = str(flt.get("operator", "EQ"))
    if op == "HAS_PROPERTY":
        return value != ""
    if op == "NOT_HAS_PROPERTY":
        return value == ""
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        hit = contains_token(value, str(flt.get("value", ""))) if value else False
        return hit if op == "CONTAINS_TOKEN" else not hit
    values = [value] if type_ != "enumeration" else [v for v in value.split(";") if v] or [""]
    if op in ("IN", "NOT_IN"):
        listed = [str(v) for v in flt.get("values") or []]
        if type_ == "enumeration":
            hit = any(v in listed for v in values if v)
        elif type_ in ("number", "datetime", "date"):
            hit = any(_equal(value, v, type_) for v in listed)
        else:
            hit = value != "" and value.lower() in listed
        return hit if op == "IN" else not hit
    target = str(flt.get("value", ""))
    if type_ in ("number", "datetime", "date"):
        left = to_millis(value) if type_ != "number" else _number(value)
        low = to_millis(target) if type_ != "number" else _number(target)
        if op == "BETWEEN":
            high_text = str(flt.get("highValue", ""))
            high = to_millis(high_text) if type_ != "number" else _number(high_text)
            return left is not None and low is not None and high is not None and low <= left <= high
        if left is None or low is None:
            same = value.strip().lower() == target.strip().lower()  # ids that are not numbers
            return {"EQ": same, "NEQ": not same}.get(op, False)
        return {
            "EQ": left == low,
            "NEQ": left != low,
            "GT": left > low,
            "GTE": left >= low,
            "LT": left < low,
            "LTE": left <= low,
        }.get(op, False)
    if type_ == "enumeration":
        if op == "EQ":
            return target in values
        if op == "NEQ":
            return target not in values
    elif op == "EQ":
        return value.lower() == target.lower()
    elif op == "NEQ":
        return value.lower() != target.lower()
    if op in ("GT", "GTE", "LT", "LTE", "BETWEEN"):
        left_s, low_s = value.lower(), target.lower()
        if op == "BETWEEN":
            return low_s <= left_s <= str(flt.get("highValue", "")).lower()
        return {"GT": left_s > low_s, "GTE": left_s >= low_s, "LT": left_s < low_s, "LTE": left_s <= low_s}[
            op
        ]
    return False


def _equal(value: str, listed: str, type_: str) -> bool:
    a: float | None
    b: float | None
    if type_ == "number":
        a, b = _number(value), _number(listed)
    else:
        a, b = to_millis(value), to_millis(listed)
    if a is None or b is None:
        return value.strip().lower() == listed.strip().lower()  # ids that are not numbers
    return a == b
