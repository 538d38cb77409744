"""Any value, however hostile, is one literal to the emulator's SOQL parser: found exactly, never executed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.crm.salesforce.soql import like_quote, quote, sosl_escape
from tests.emulators.salesforce.org import Org
from tests.emulators.salesforce.soql import parse_sosl

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
    | st.sampled_from("'\"\\%_\n\t{}"),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(value=TEXT, other=TEXT)
def test_quoted_values_match_exactly(value: str, other: str) -> None:
    org = Org()
    mine = org.insert("Contact", {"LastName": "x", "Email": value})
    org.insert("Contact", {"LastName": "y", "Email": other + "~"})
    rows = org.query(f"SELECT Id FROM Contact WHERE Email = {quote(value)}")
    assert [r["Id"] for r in rows] == [mine]
    rows = org.query(f"SELECT Id FROM Contact WHERE Email LIKE {like_quote(value)}")
    assert mine in [r["Id"] for r in rows]


@settings(max_examples=150, deadline=None)
@given(value=TEXT.filter(lambda v: len(v.strip("*")) >= 2 and v.strip() == v))
def test_sosl_terms_survive_escaping(value: str) -> None:
    assert parse_sosl(f"FIND {{{sosl_escape(value)}}} IN PHONE FIELDS RETURNING Contact(Id)").term == value
