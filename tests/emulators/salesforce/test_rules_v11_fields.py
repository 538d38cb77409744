"""The standard fields rules v1.1 read, as the Salesforce emulator models them from the Object Reference.

Lead: `IsConverted` (boolean) and what conversion leaves behind, `ConvertedContactId`,
`ConvertedAccountId`, `ConvertedOpportunityId` (references) and `ConvertedDate`, all
read-only; a converted lead stays queryable (SOQL returns it unless the query filters on
`IsConverted`). Account: the standard `Type` picklist, which field-level security may
hide, with a new org's values; the recorded real Account query's types are among them.
Through the real simple-salesforce over HTTPS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.emulators.salesforce.org import PICKLIST_VALUES
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.recorded import exchanges
from worker.core.model import Account, Contact, CrmSlice, Lead

CRM = CrmSlice(
    accounts=(Account(id="A1", name="Acme", type="Customer - Direct"), Account(id="A2", name="Globex")),
    contacts=(Contact(id="C5", email="robert@acme.example", account_ids=("A1",)),),
    leads=(
        Lead(id="L1", email="bob@startup.example", is_converted=True, converted_contact_id="C5"),
        Lead(id="L2", email="li@startup.example"),
    ),
)


class _Session(requests.Session):
    def __init__(self, ca_file: str):
        super().__init__()
        self.ca_file = ca_file

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self.ca_file
        kwargs.setdefault("timeout", 10)
        return super().request(method, url, *args, **kwargs)


Org = Callable[..., Salesforce]


@pytest.fixture()
def org() -> Iterator[Org]:
    """`org(profile=plain)`: a simple-salesforce client on an emulator seeded with CRM."""
    started: list[SalesforceEmulator] = []

    def start(profile: OrgProfile | None = None) -> Salesforce:
        emulator = SalesforceEmulator(seed_org(CRM, profile)).start()
        started.append(emulator)
        session = _Session(emulator.ca_file)
        return Salesforce(
            instance_url=emulator.instance_url, session_id=emulator.issue_token(), session=session
        )

    yield start
    for emulator in started:
        emulator.stop()


def _field(describe: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in describe["fields"] if f["name"] == name)


def test_lead_describes_conversion_fields_read_only(org: Org) -> None:
    sf = org()
    describe = sf.Lead.describe()  # type: ignore[operator]
    assert _field(describe, "IsConverted")["type"] == "boolean"
    for name, target, relationship in (
        ("ConvertedContactId", "Contact", "ConvertedContact"),
        ("ConvertedAccountId", "Account", "ConvertedAccount"),
        ("ConvertedOpportunityId", "Opportunity", "ConvertedOpportunity"),
    ):
        found = _field(describe, name)
        assert (found["type"], found["referenceTo"], found["relationshipName"]) == (
            "reference",
            [target],
            relationship,
        )
    for name in ("IsConverted", "ConvertedContactId", "ConvertedDate"):
        found = _field(describe, name)
        assert not found["createable"] and not found["updateable"], name


def test_converted_leads_stay_queryable_unless_filtered(org: Org) -> None:
    sf = org()
    rows = sf.query("SELECT Id, IsConverted, ConvertedContactId, ConvertedAccountId FROM Lead ORDER BY Id")
    got = [
        (r["Id"], r["IsConverted"], r["ConvertedContactId"], r["ConvertedAccountId"]) for r in rows["records"]
    ]
    assert got == [("L1", True, "C5", "A1"), ("L2", False, None, None)]
    open_only = sf.query("SELECT Id FROM Lead WHERE IsConverted = false")
    assert [r["Id"] for r in open_only["records"]] == ["L2"]
    followed = sf.query("SELECT ConvertedContact.Email FROM Lead WHERE Id = 'L1'")
    assert followed["records"][0]["ConvertedContact"]["Email"] == "robert@acme.example"
    found = sf.search("FIND {bob} IN EMAIL FIELDS RETURNING Lead(Id, IsConverted)")
    assert [(r["Id"], r["IsConverted"]) for r in found["searchRecords"]] == [("L1", True)]


def test_account_type_is_the_standard_picklist(org: Org) -> None:
    sf = org()
    found = _field(sf.Account.describe(), "Type")  # type: ignore[operator]
    assert found["type"] == "picklist" and not found["custom"]
    assert [v["value"] for v in found["picklistValues"]] == list(PICKLIST_VALUES[("Account", "Type")])
    rows = sf.query("SELECT Id, Type FROM Account ORDER BY Id")["records"]
    assert [(r["Id"], r["Type"]) for r in rows] == [("A1", "Customer - Direct"), ("A2", None)]


def test_the_recorded_orgs_account_types_are_a_new_orgs_values() -> None:
    """The recorded real Account query (read in place) selects Type: every value it holds is one of the
    picklist values the emulator's describe lists; many accounts have none, as seeded ones may."""
    recorded = [r.get("Type") for e in exchanges("sf_query_pages") for r in e.response["records"]]
    if not recorded:
        pytest.skip("no recording")
    values = {t for t in recorded if t is not None}
    assert values and values <= set(PICKLIST_VALUES[("Account", "Type")])
    assert None in recorded


def test_field_level_security_can_hide_the_type(org: Org) -> None:
    sf = org(dataclasses.replace(OrgProfile.after_setup(), hidden_fields=frozenset({"Account.Type"})))
    fields = {f["name"] for f in sf.Account.describe()["fields"]}  # type: ignore[operator]
    assert "Type" not in fields and "Website" in fields
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id, Type FROM Account")
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"  # type: ignore[index]
