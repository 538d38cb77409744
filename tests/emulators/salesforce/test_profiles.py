"""The Salesforce emulator answers from its org profile, through the real simple-salesforce over HTTPS."""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce.api import Salesforce, SFType
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from tests.emulators.salesforce.org import API_USER_ID, ORG_ID, OrgError
from tests.emulators.salesforce.profile import CALL_ID_FIELD, KNOWN_CUSTOM_FIELDS, OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from worker.core.model import Account, Activity, ActivityType, Contact, CrmSlice, Lead, User

T = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
CRM = CrmSlice(
    users=(User(id="U1", email="rep@ourco.example"),),
    accounts=(
        Account(id="A1", name="Acme", domains=("acme.example", "acme.io")),
        Account(id="A2", name="Globex"),
    ),
    contacts=(
        Contact(
            id="C1",
            email="jane@acme.example",
            emails=("jane@home.example",),
            phones=("06 12 34 56 78",),
            account_ids=("A1", "A2"),
        ),
        Contact(id="C2", email="bob@acme.example", phones=("+1 212 555 0101",), account_ids=("A1",)),
    ),
    leads=(Lead(id="L1", email="lead@startup.example", phones=("5550101",)),),
    activities=(
        Activity(
            id="E1",
            type=ActivityType.EVENT,
            call_id="call-1",
            start=T,
            contact_ids=("C1", "C2"),
            account_id="A1",
            attendee_emails=("rep@ourco.example",),
        ),
    ),
)

Client = Callable[..., tuple[SalesforceEmulator, Salesforce]]


class _Verified(requests.Session):
    """A session that trusts the emulator's certificate on every request (the environment's CA
    bundle would otherwise win over `Session.verify`), with a timeout so nothing hangs."""

    def __init__(self, ca_file: str):
        super().__init__()
        self.ca_file = ca_file

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self.ca_file
        kwargs.setdefault("timeout", 10)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture()
def salesforce() -> Iterator[Client]:
    """`salesforce(profile)`: an emulator seeded with CRM on that profile and a simple-salesforce on it."""
    started: list[SalesforceEmulator] = []

    def start(profile: OrgProfile | None = None, **options: Any) -> tuple[SalesforceEmulator, Salesforce]:
        emulator = SalesforceEmulator(seed_org(CRM, profile), **options).start()
        started.append(emulator)
        session = _Verified(emulator.ca_file)
        client = Salesforce(
            instance_url=emulator.instance_url, session_id=emulator.issue_token(), session=session
        )
        return emulator, client

    yield start
    for emulator in started:
        emulator.stop()


def _object(sf: Salesforce, name: str) -> SFType:
    """`sf.Task`, typed (simple-salesforce's attribute access also stands for its bulk handles)."""
    found = getattr(sf, name)
    assert isinstance(found, SFType)
    return found


def _error(caught: pytest.ExceptionInfo[Any]) -> tuple[int, str, str]:
    body = caught.value.content
    assert isinstance(body, list), body
    return caught.value.status, str(body[0]["errorCode"]), str(body[0]["message"])


# --- describe follows the profile -------------------------------------------------------------------


def test_plain_global_describe_lists_no_optional_object(salesforce: Client) -> None:
    _, sf = salesforce()
    described = sf.describe()
    assert described is not None
    names = {o["name"] for o in described["sobjects"]}
    assert {"Task", "Event", "EventRelation", "Contact", "PermissionSet", "FieldPermissions"} <= names
    assert not names & {"TaskRelation", "TaskWhoRelation", "EventWhoRelation", "AccountContactRelation"}
    task = next(o for o in described["sobjects"] if o["name"] == "Task")
    assert task["keyPrefix"] == "00T" and task["queryable"] and task["createable"]
    assert task["urls"]["describe"].endswith("/sobjects/Task/describe")


def test_full_global_describe_has_the_features(salesforce: Client) -> None:
    _, sf = salesforce(OrgProfile.full())
    described = sf.describe()
    assert described is not None
    names = {o["name"] for o in described["sobjects"]}
    assert {"TaskRelation", "TaskWhoRelation", "EventWhoRelation", "AccountContactRelation"} <= names


def test_object_describe_follows_the_profile(salesforce: Client) -> None:
    _, plain = salesforce()
    task = _object(plain, "Task").describe()
    names = {f["name"] for f in task["fields"]}
    assert "CallObject" in names and "Callmatch_Call_Id__c" not in names
    assert task["childRelationships"] == []
    event = _object(plain, "Event").describe()
    assert [(c["relationshipName"], c["childSObject"]) for c in event["childRelationships"]] == [
        ("EventRelations", "EventRelation")
    ]
    relation = {f["name"] for f in _object(plain, "EventRelation").describe()["fields"]}
    assert "IsInvitee" in relation and not relation & {"IsParent", "IsWhat"}

    _, after = salesforce(OrgProfile.after_setup())
    field = next(
        f for f in _object(after, "Task").describe()["fields"] if f["name"] == "Callmatch_Call_Id__c"
    )
    assert field["externalId"] and field["unique"] and field["idLookup"] and field["custom"]
    assert field["type"] == "string" and field["length"] == 255

    _, full = salesforce(OrgProfile.full())
    contact = _object(full, "Contact").describe()
    assert {"Secondary_Email__c", "Other_Email__c"} <= {f["name"] for f in contact["fields"]}
    assert ("AccountContactRelations", "AccountContactRelation", "ContactId") in {
        (c["relationshipName"], c["childSObject"], c["field"]) for c in contact["childRelationships"]
    }
    task_children = {c["relationshipName"] for c in _object(full, "Task").describe()["childRelationships"]}
    assert task_children == {"TaskRelations", "TaskWhoRelations"}


def test_unknown_object_describe_is_not_found(salesforce: Client) -> None:
    _, sf = salesforce()
    with pytest.raises(SalesforceResourceNotFound) as caught:
        _object(sf, "TaskRelation").describe()
    assert _error(caught) == (404, "NOT_FOUND", "The requested resource does not exist")


def test_hidden_field_is_absent_from_describe_queries_and_writes(salesforce: Client) -> None:
    profile = replace(OrgProfile.full(), hidden_fields=frozenset({"Contact.Secondary_Email__c"}))
    emulator, sf = salesforce(profile)
    assert "Secondary_Email__c" not in {f["name"] for f in _object(sf, "Contact").describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id, Secondary_Email__c FROM Contact")
    status, code, message = _error(caught)
    assert (status, code) == (400, "INVALID_FIELD")
    assert "No such column 'Secondary_Email__c' on entity 'Contact'" in message
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "Contact").update("C1", {"Secondary_Email__c": "x@y.example"})
    assert _error(caught)[1] == "INVALID_FIELD"
    # the value is still in the org: security hides it, it does not erase it
    assert emulator.org.records["Contact"]["C1"]["Secondary_Email__c"] == "jane@home.example"


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id, Call_Id__c FROM Event",
        "SELECT Id FROM Event WHERE Call_Id__c = 'x'",
        "SELECT Id FROM Account ORDER BY Domains__c",
        "SELECT Id, (SELECT Id, IsParent FROM EventRelations) FROM Event",
        "SELECT Id FROM Contact WHERE Id IN (SELECT ContactId FROM Contact WHERE Other_Email__c = 'x')",
    ],
)
def test_absent_field_anywhere_in_a_query_is_invalid_field(salesforce: Client, soql: str) -> None:
    _, sf = salesforce()
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(soql)
    assert _error(caught)[:2] == (400, "INVALID_FIELD")


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM TaskRelation", "INVALID_TYPE"),
        ("SELECT Id FROM AccountContactRelation WHERE ContactId = 'C1'", "INVALID_TYPE"),
        ("SELECT Id, (SELECT RelationId FROM TaskRelations) FROM Task", "INVALID_TYPE"),
        ("SELECT Id, (SELECT AccountId FROM AccountContactRelations) FROM Contact", "INVALID_TYPE"),
        ("SELECT Id FROM Contact WHERE Id IN (SELECT RelationId FROM TaskWhoRelation)", "INVALID_TYPE"),
    ],
)
def test_absent_object_is_invalid_type_even_with_no_rows(salesforce: Client, soql: str, code: str) -> None:
    _, sf = salesforce()
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(soql)
    status, got, message = _error(caught)
    assert (status, got) == (400, code)
    assert "not supported" in message or "Didn't understand relationship" in message


def test_composite_subrequests_carry_the_same_errors(salesforce: Client) -> None:
    _, sf = salesforce()
    body = {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "GET",
                "referenceId": "ok",
                "url": "/services/data/v59.0/query?q=SELECT+Id+FROM+Contact",
            },
            {
                "method": "GET",
                "referenceId": "type",
                "url": "/services/data/v59.0/query?q=SELECT+Id+FROM+TaskRelation",
            },
            {
                "method": "GET",
                "referenceId": "field",
                "url": "/services/data/v59.0/query?q=SELECT+Secondary_Email__c+FROM+Contact",
            },
            {
                "method": "POST",
                "referenceId": "write",
                "url": "/services/data/v59.0/sobjects/TaskRelation",
                "body": {"TaskId": "x", "RelationId": "C1"},
            },
        ],
    }
    answer = sf.restful("composite", method="POST", json=body)
    assert answer is not None
    got = {r["referenceId"]: (r["httpStatusCode"], r["body"]) for r in answer["compositeResponse"]}
    assert got["ok"][0] == 200 and got["ok"][1]["totalSize"] == 2
    assert (got["type"][0], got["type"][1][0]["errorCode"]) == (400, "INVALID_TYPE")
    assert (got["field"][0], got["field"][1][0]["errorCode"]) == (400, "INVALID_FIELD")
    assert (got["write"][0], got["write"][1][0]["errorCode"]) == (404, "NOT_FOUND")


# --- seeding in the vendor's terms ------------------------------------------------------------------------


def test_plain_seed_keeps_only_what_the_org_has() -> None:
    plain = seed_org(CRM)
    contact = plain.records["Contact"]["C1"]
    assert "Secondary_Email__c" not in contact and contact["AccountId"] == "A1"
    assert "Domains__c" not in plain.records["Account"]["A1"]
    relations = list(plain.live("EventRelation"))
    assert [(r["RelationId"], r["IsInvitee"]) for r in relations] == [("U1", True)]
    full = seed_org(CRM, OrgProfile.full())
    assert full.records["Contact"]["C1"]["Secondary_Email__c"] == "jane@home.example"
    assert full.records["Account"]["A1"]["Domains__c"] == "acme.io"
    assert sorted(
        (r["AccountId"], r["IsDirect"]) for r in full.live("AccountContactRelation") if r["ContactId"] == "C1"
    ) == [
        ("A1", True),
        ("A2", False),
    ]
    parents = {(r["RelationId"], r["IsParent"], r["IsInvitee"]) for r in full.live("EventRelation")}
    assert parents == {("C2", True, False), ("U1", False, True)}
    assert [r["RelationId"] for r in full.live("EventWhoRelation")] == ["C2"]


def test_the_emulator_imports_nothing_from_adapters() -> None:
    for path in Path(__file__).parent.glob("*.py"):
        if path.name.startswith("test_"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n == "adapters" or n.startswith("adapters.")], path.name


# --- SOSL phone search ------------------------------------------------------------------------------------


def test_phone_search_finds_the_term_at_the_end_of_a_stored_number_only() -> None:
    org = seed_org(CRM)

    def hits(term: str) -> set[str]:
        rows = org.search(f"FIND {{{term}}} IN PHONE FIELDS RETURNING Contact(Id), Lead(Id)")
        return {str(r["Id"]) for r in rows}

    assert hits("612345678") == {"C1"}  # the national number finds "06 12 34 56 78"
    assert hits("0612345678") == {"C1"}
    assert hits("33612345678") == set()  # the stored number has no country code
    assert hits("2125550101") == {"C2"}
    assert hits("5550101") == {"C2", "L1"}
    assert hits("12125550101") == {"C2"}  # a longer term never matches a shorter stored number (L1)


# --- limits, identity -------------------------------------------------------------------------------------


def test_limits_and_userinfo(salesforce: Client) -> None:
    emulator, sf = salesforce(replace(OrgProfile.plain(), daily_api_limit=5000))
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 5000
    assert limits["DailyApiRequests"]["Remaining"] == 5000 - emulator.stats.api_calls
    token = sf.session_id
    info = requests.get(
        f"{emulator.instance_url}/services/oauth2/userinfo",
        headers={"Authorization": f"Bearer {token}"},
        verify=emulator.ca_file,
        timeout=5,
    ).json()
    assert (info["user_id"], info["organization_id"]) == (API_USER_ID, ORG_ID)
    assert info["preferred_username"] == emulator.username
    user = sf.query(f"SELECT Id, ProfileId, Profile.Name FROM User WHERE Id = '{API_USER_ID}'")["records"][0]
    assert user["Profile"]["Name"] == "Salesforce API Only System Integrations"
    refused = requests.get(
        f"{emulator.instance_url}/services/oauth2/userinfo", verify=emulator.ca_file, timeout=5
    )
    assert refused.status_code == 403


# --- setup: Tooling API, permission sets -----------------------------------------------------------------


def _create_call_id_field(sf: Salesforce, *, unique: bool = True) -> str:
    answer = sf.toolingexecute(
        "sobjects/CustomField",
        method="POST",
        data={
            "FullName": CALL_ID_FIELD,
            "Metadata": {
                "type": "Text",
                "length": 255,
                "externalId": True,
                "unique": unique,
                "caseSensitive": False,
                "label": "Callmatch Call Id",
            },
        },
    )
    assert answer["success"] is True and answer["errors"] == []
    return str(answer["id"])


def test_setup_creates_the_field_then_grants_it(salesforce: Client) -> None:
    emulator, sf = salesforce()
    found = sf.toolingexecute(
        "query/?q=SELECT+Id,DeveloperName,TableEnumOrId+FROM+CustomField+WHERE+DeveloperName='Callmatch_Call_Id'"
    )
    assert found["totalSize"] == 0
    field_id = _create_call_id_field(sf)
    found = sf.toolingexecute(
        "query/?q=SELECT+Id,DeveloperName,TableEnumOrId+FROM+CustomField+WHERE+DeveloperName='Callmatch_Call_Id'"
    )
    assert [(r["Id"], r["TableEnumOrId"]) for r in found["records"]] == [(field_id, "Activity")]
    # created, yet no field-level security for anyone: invisible to the API user
    assert "Callmatch_Call_Id__c" not in {f["name"] for f in _object(sf, "Task").describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Task WHERE Callmatch_Call_Id__c = 'x'")
    assert _error(caught)[1] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _create_call_id_field(sf)
    assert _error(caught)[1:] == (
        "DUPLICATE_DEVELOPER_NAME",
        "There is already a field named Callmatch_Call_Id on Activity.",
    )

    permission_set = _object(sf, "PermissionSet").create({"Name": "Callmatch", "Label": "Callmatch"})["id"]
    for obj in ("Task", "Event"):
        _object(sf, "FieldPermissions").create(
            {
                "ParentId": permission_set,
                "SobjectType": obj,
                "Field": f"{obj}.Callmatch_Call_Id__c",
                "PermissionsRead": True,
                "PermissionsEdit": True,
            }
        )
    # granted on a permission set nobody holds yet: still hidden
    assert "Callmatch_Call_Id__c" not in {f["name"] for f in _object(sf, "Task").describe()["fields"]}
    _object(sf, "PermissionSetAssignment").create(
        {"AssigneeId": API_USER_ID, "PermissionSetId": permission_set}
    )
    field = next(f for f in _object(sf, "Task").describe()["fields"] if f["name"] == "Callmatch_Call_Id__c")
    assert field["externalId"] and field["unique"] and field["updateable"]
    assert emulator.org.effective_profile() == OrgProfile.after_setup()
    created = _object(sf, "Task").upsert("Callmatch_Call_Id__c/call-9", {"Subject": "Call"})
    assert created == 201
    rows = sf.query(
        "SELECT Field, PermissionsRead FROM FieldPermissions WHERE ParentId IN "
        f"(SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = '{API_USER_ID}')"
    )["records"]
    assert {r["Field"] for r in rows} == {"Task.Callmatch_Call_Id__c", "Event.Callmatch_Call_Id__c"}


def test_read_only_grant_refuses_writes(salesforce: Client) -> None:
    emulator, sf = salesforce()
    _create_call_id_field(sf)
    permission_set = _object(sf, "PermissionSet").create({"Name": "ReadOnly", "Label": "Read only"})["id"]
    _object(sf, "FieldPermissions").create(
        {
            "ParentId": permission_set,
            "SobjectType": "Task",
            "Field": "Task.Callmatch_Call_Id__c",
            "PermissionsRead": True,
            "PermissionsEdit": False,
        }
    )
    _object(sf, "PermissionSetAssignment").create(
        {"AssigneeId": API_USER_ID, "PermissionSetId": permission_set}
    )
    assert sf.query("SELECT Id, Callmatch_Call_Id__c FROM Task")["totalSize"] == 0
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "Task").create({"Subject": "x", "Callmatch_Call_Id__c": "call-1"})
    assert _error(caught)[1] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "FieldPermissions").create(
            {
                "ParentId": permission_set,
                "SobjectType": "Task",
                "Field": "Task.Nope__c",
                "PermissionsRead": True,
            }
        )
    assert _error(caught)[1] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert emulator.org.effective_profile().hidden_fields == frozenset()


def test_tooling_update_makes_a_field_unique(salesforce: Client) -> None:
    emulator, sf = salesforce()
    field_id = _create_call_id_field(sf, unique=False)
    assert emulator.org.profile.external_id_unique is False
    read = sf.toolingexecute(f"sobjects/CustomField/{field_id}")
    assert read["FullName"] == CALL_ID_FIELD and read["Metadata"]["unique"] is False
    sf.toolingexecute(f"sobjects/CustomField/{field_id}", method="PATCH", data={"Metadata": {"unique": True}})
    assert sf.toolingexecute(f"sobjects/CustomField/{field_id}")["Metadata"]["unique"] is True
    assert emulator.org.profile.external_id_unique is True


def test_without_customize_application_setup_is_refused(salesforce: Client) -> None:
    emulator, sf = salesforce(replace(OrgProfile.plain(), customize_application=False))
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _create_call_id_field(sf)
    assert _error(caught)[1] == "INSUFFICIENT_ACCESS_OR_READONLY"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "PermissionSet").create({"Name": "Callmatch", "Label": "Callmatch"})
    assert _error(caught)[1] == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert CALL_ID_FIELD not in emulator.org.profile.custom_fields
    assert _object(sf, "PermissionSet").describe()["createable"] is False


# --- object permissions -------------------------------------------------------------------------------------


def test_denied_object_permissions(salesforce: Client) -> None:
    profile = replace(
        OrgProfile.after_setup(), denied=frozenset({"Task.create", "Event.edit", "Opportunity.read"})
    )
    emulator, sf = salesforce(profile)
    described = sf.describe()
    assert described is not None
    summary = {o["name"]: o for o in described["sobjects"]}
    assert summary["Task"]["createable"] is False and summary["Task"]["queryable"] is True
    assert summary["Event"]["updateable"] is False and summary["Event"]["createable"] is True
    assert summary["Opportunity"]["queryable"] is False
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "Task").create({"Subject": "x"})
    assert _error(caught)[1:] == (
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
        "entity type cannot be inserted: Task",
    )
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "Event").update("E1", {"Subject": "y"})
    assert _error(caught)[1] == "INSUFFICIENT_ACCESS_OR_READONLY"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT Id FROM Opportunity")
    assert _error(caught)[1] == "INVALID_TYPE"
    rows = sf.query("SELECT SobjectType, PermissionsRead, PermissionsCreate FROM ObjectPermissions")[
        "records"
    ]
    flags = {r["SobjectType"]: (r["PermissionsRead"], r["PermissionsCreate"]) for r in rows}
    assert (
        flags["Task"] == (True, False)
        and flags["Opportunity"] == (False, True)
        and flags["Contact"] == (True, True)
    )
    emulator.org.set_profile(OrgProfile.after_setup())
    assert _object(sf, "Task").create({"Subject": "x"})["success"] is True


# --- upsert by external id --------------------------------------------------------------------------------


def test_upsert_created_updated_and_300_when_not_unique(salesforce: Client) -> None:
    emulator, sf = salesforce(replace(OrgProfile.after_setup(), external_id_unique=False))
    assert _object(sf, "Task").upsert("Callmatch_Call_Id__c/call-1", {"Subject": "a"}) == 201
    assert _object(sf, "Task").upsert("Callmatch_Call_Id__c/CALL-1", {"Subject": "b"}) == 200
    _object(sf, "Task").create({"Subject": "twin", "Callmatch_Call_Id__c": "call-1"})  # not Unique: allowed
    with pytest.raises(SalesforceMoreThanOneRecord) as caught:
        _object(sf, "Task").upsert("Callmatch_Call_Id__c/call-1", {"Subject": "c"})
    urls = caught.value.content
    assert isinstance(urls, list) and len(urls) == 2
    assert all(str(u).startswith("/services/data/v59.0/sobjects/Task/00T") for u in urls)
    assert {t["Subject"] for t in emulator.org.find_by("Task", "Callmatch_Call_Id__c", "call-1")} == {
        "b",
        "twin",
    }


def test_upsert_answers_as_the_rest_api(salesforce: Client) -> None:
    _, sf = salesforce(OrgProfile.after_setup())
    created = sf.restful("sobjects/Task/Callmatch_Call_Id__c/call-2", method="PATCH", json={"Subject": "a"})
    assert created is not None and created["created"] is True and created["success"] is True
    updated = sf.restful("sobjects/Task/Callmatch_Call_Id__c/call-2", method="PATCH", json={"Subject": "b"})
    assert updated is not None and updated["created"] is False and updated["id"] == created["id"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "Task").create(
            {"Subject": "dup", "Callmatch_Call_Id__c": "CALL-2"}
        )  # Unique, case-insensitive
    assert _error(caught)[1] == "DUPLICATE_VALUE"
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.restful("sobjects/Task/Subject/x", method="PATCH", json={"Status": "Completed"})
    assert _error(missing)[:2] == (404, "NOT_FOUND")

    _, plain = salesforce()
    with pytest.raises(SalesforceMalformedRequest) as caught:
        plain.restful("sobjects/Task/Callmatch_Call_Id__c/call-2", method="PATCH", json={"Subject": "a"})
    assert _error(caught)[:2] == (400, "INVALID_FIELD")


def test_profile_changes_at_run_time() -> None:
    org = seed_org(CRM)
    with pytest.raises(OrgError) as caught:
        org.query("SELECT Id FROM AccountContactRelation")
    assert caught.value.code == "INVALID_TYPE"
    org.set_profile(replace(OrgProfile.plain(), contacts_to_multiple_accounts=True))
    assert org.query("SELECT Id FROM AccountContactRelation") == []
    org.set_profile(replace(OrgProfile.plain(), custom_fields=KNOWN_CUSTOM_FIELDS))
    assert org.query("SELECT Domains__c FROM Account WHERE Id = 'A1'")[0]["Domains__c"] is None


def test_semi_join_inner_where_is_checked_with_no_rows() -> None:
    org = seed_org(CrmSlice())
    with pytest.raises(OrgError) as caught:
        org.query(
            "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Secondary_Email__c = 'x')"
        )
    assert caught.value.code == "INVALID_FIELD"


def test_lookups_and_invitees_as_the_org_checks_them(salesforce: Client) -> None:
    emulator, sf = salesforce()
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "Task").create({"Subject": "x", "WhoId": "A1"})  # an account is no "who"
    assert _error(caught)[1] == "FIELD_INTEGRITY_EXCEPTION"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "EventRelation").create({"EventId": "E1", "RelationId": "A1"})
    assert _error(caught)[1] == "FIELD_INTEGRITY_EXCEPTION"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        _object(sf, "EventRelation").create({"EventId": "E1", "RelationId": "C2", "IsParent": True})
    assert _error(caught)[1] == "INVALID_FIELD"  # IsParent exists with Shared Activities only
    created = _object(sf, "EventRelation").create({"EventId": "E1", "RelationId": "C2"})
    assert emulator.org.records["EventRelation"][created["id"]]["IsInvitee"] is True


def test_a_uri_past_16384_bytes_is_414(salesforce: Client) -> None:
    emulator, _ = salesforce()
    phones = ", ".join(f"'+336{n:08d}'" for n in range(800))
    soql = f"SELECT Id FROM Contact WHERE Phone IN ({phones})"
    response = requests.get(
        f"{emulator.instance_url}/services/data/v59.0/query",
        params={"q": soql},
        headers={"Authorization": f"Bearer {emulator.issue_token()}"},
        verify=emulator.ca_file,
        timeout=10,
    )
    assert len(response.request.url or "") > 16_384
    assert response.status_code == 414
    assert response.json()[0]["errorCode"] == "URI_TOO_LONG"
    assert emulator.stats.api_calls == 0
