"""The emulated org: a schema of the objects callmatch touches, their records, and SOQL/SOSL evaluation.

Field names are case-insensitive as in Salesforce; string comparisons are
case-insensitive except on Id and reference fields; values are typed (dates,
date-times, booleans) and a literal of the wrong type is refused like the real API.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from tests.emulators.salesforce.profile import CALL_ID_FIELD, OrgProfile, objects_of
from tests.emulators.salesforce.soql import (
    LIKE_ESCAPE,
    BoolOp,
    Condition,
    InList,
    Literal,
    Not,
    Query,
    SemiJoin,
    SoqlError,
    SoslQuery,
    parse_soql,
    parse_sosl,
)

RecordData = dict[str, Any]
_EXTENSION = re.compile(r"(?:ext\.?|x|#)\s*\d+\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Reference:
    """A lookup field: its relationship name and the objects it may point to."""

    relationship: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class FieldInfo:
    """A field's describe properties (the subset of the REST describe callers read)."""

    type: str
    custom: bool = False
    length: int = 0
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False
    id_lookup: bool = False
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    filterable: bool = True
    label: str = ""


@dataclass
class SObjectType:
    name: str
    key_prefix: str
    fields: dict[str, str]  # canonical name -> type
    references: dict[str, Reference] = field(default_factory=dict)  # field -> reference
    children: dict[str, tuple[str, str]] = field(default_factory=dict)  # relationship -> (object, field)
    external_ids: tuple[str, ...] = ()
    phone_fields: tuple[str, ...] = ()
    email_fields: tuple[str, ...] = ()
    name_fields: tuple[str, ...] = ()
    info: dict[str, FieldInfo] = field(default_factory=dict)
    label: str = ""
    searchable: bool = False
    setup: bool = False  # a setup object (permission sets): writes need "Customize Application"
    _lower: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def canonical(self, name: str) -> str | None:
        """The field's own spelling; a dict look-up, since every record of every query asks."""
        if len(self._lower) != len(self.fields):
            self._lower = {known.lower(): known for known in self.fields}
        return self._lower.get(name.lower())

    def field_info(self, name: str) -> FieldInfo:
        return self.info.get(name) or FieldInfo(self.fields[name])


_SYSTEM = {
    "Id": "id",
    "CreatedDate": "datetime",
    "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime",
    "IsDeleted": "boolean",
}
"""System fields every object has (Object Reference, "System Fields"); SystemModstamp moves on
every write, by a user or an automated process, and is never earlier than LastModifiedDate."""
_SYSTEM_INFO = {
    "Id": FieldInfo("id", length=18, id_lookup=True, createable=False, updateable=False, nillable=False),
    "CreatedDate": FieldInfo("datetime", createable=False, updateable=False, nillable=False),
    "LastModifiedDate": FieldInfo("datetime", createable=False, updateable=False, nillable=False),
    "SystemModstamp": FieldInfo("datetime", createable=False, updateable=False, nillable=False),
    "IsDeleted": FieldInfo("boolean", createable=False, updateable=False, nillable=False),
}
PICKLIST_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("Account", "Type"): (
        "Prospect",
        "Customer - Direct",
        "Customer - Channel",
        "Channel Partner / Reseller",
        "Installation Partner",
        "Technology Partner",
        "Other",
    ),
    ("Account", "Industry"): (
        "Agriculture",
        "Apparel",
        "Banking",
        "Biotechnology",
        "Chemicals",
        "Communications",
        "Construction",
        "Consulting",
        "Education",
        "Electronics",
        "Energy",
        "Engineering",
        "Entertainment",
        "Environmental",
        "Finance",
        "Food & Beverage",
        "Government",
        "Healthcare",
        "Hospitality",
        "Insurance",
        "Machinery",
        "Manufacturing",
        "Media",
        "Not For Profit",
        "Other",
        "Recreation",
        "Retail",
        "Shipping",
        "Technology",
        "Telecommunications",
        "Transportation",
        "Utilities",
    ),
    ("Account", "Ownership"): ("Public", "Private", "Subsidiary", "Other"),
    ("Account", "Rating"): ("Hot", "Warm", "Cold"),
    ("Account", "AccountSource"): ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"),
}
"""A new org's default values of the standard picklists (unrestricted: the API stores any value)."""
_LENGTHS = {
    "string": 255,
    "email": 80,
    "phone": 40,
    "url": 255,
    "textarea": 255,
    "picklist": 255,
    "id": 18,
    "reference": 18,
}
_READ_ONLY = {
    "Contact": ("Name",),
    "Lead": (
        "Name",
        "IsConverted",
        "ConvertedContactId",
        "ConvertedAccountId",
        "ConvertedOpportunityId",
        "ConvertedDate",
    ),
    "User": ("Name",),
    "Opportunity": ("IsClosed", "IsWon"),
    "PermissionSet": ("IsOwnedByProfile", "ProfileId"),
}
_NOT_FILTERABLE = {"Task": ("Description",), "Event": ("Description",), "Account": ("Description",)}
_STANDARD_LENGTHS = {
    "Account": {
        "AccountNumber": 40,
        "Site": 80,
        "Sic": 20,
        "TickerSymbol": 20,
        "BillingCity": 40,
        "BillingState": 80,
        "BillingPostalCode": 20,
        "BillingCountry": 80,
        "ShippingCity": 40,
        "ShippingState": 80,
        "ShippingPostalCode": 20,
        "ShippingCountry": 80,
        "Description": 32000,
    }
}
"""Standard field lengths (Object Reference) where they differ from their type's usual one."""
_ACCOUNT_STANDARD = {
    "AccountNumber": "string",
    "Type": "picklist",
    "Industry": "picklist",
    "Site": "string",
    "Sic": "string",
    "TickerSymbol": "string",
    "Ownership": "picklist",
    "Rating": "picklist",
    "AccountSource": "picklist",
    "AnnualRevenue": "currency",
    "NumberOfEmployees": "int",
    "Description": "textarea",
    **{
        f"{kind}{part}": "textarea" if part == "Street" else "string"
        for kind in ("Billing", "Shipping")
        for part in ("Street", "City", "State", "PostalCode", "Country")
    },
}
"""Account's standard fields beyond those the matcher reads, present in every org (not optional).
Left out: the compound BillingAddress/ShippingAddress, geocodes and state/country code picklists
(those need State and Country Picklists), and Data.com / D&B fields."""
_LEAD_CONVERSION = {
    "ConvertedContactId": "reference",
    "ConvertedAccountId": "reference",
    "ConvertedOpportunityId": "reference",
    "ConvertedDate": "date",
}
"""What lead conversion sets on a Lead (Object Reference, Lead; change events for lead conversion):
the Contact, Account and optional Opportunity it became, and the date. Read-only, as `IsConverted`
is here; SOQL returns converted leads like any other unless a query filters on `IsConverted`."""
_ID_LOOKUP = {
    "Contact": ("Email",),
    "Lead": ("Email",),
    "User": ("Email", "Username"),
    "Account": ("Name",),
    "Opportunity": ("Name",),
    "Profile": ("Name",),
    "PermissionSet": ("Name",),
}

CUSTOM_FIELD_TYPES: dict[str, tuple[str, int]] = {
    "Secondary_Email__c": ("email", 80),
    "Other_Email__c": ("email", 80),
    "Domains__c": ("textarea", 255),
    "Call_Id__c": ("string", 255),
    "Attendee_Emails__c": ("textarea", 32768),  # Long Text Area: not filterable
    "Callmatch_Call_Id__c": ("string", 255),
}
"""The types the known custom fields are created with; any other custom field is Text(255)."""

_TOOLING_TYPES = {"Text": "string", "Email": "email", "TextArea": "textarea", "LongTextArea": "textarea"}
_TOOLING_NAMES = {"string": "Text", "email": "Email", "textarea": "TextArea"}


def custom_field_info(name: str, metadata: dict[str, Any] | None = None) -> FieldInfo:
    """A custom field's describe properties from its Tooling API Metadata (or the known defaults)."""
    kind, length = CUSTOM_FIELD_TYPES.get(name, ("string", 255))
    meta = metadata or {}
    if meta.get("type") in _TOOLING_TYPES:
        kind = _TOOLING_TYPES[str(meta["type"])]
        length = int(meta.get("length") or (32768 if meta["type"] == "LongTextArea" else length))
        long_text = meta["type"] == "LongTextArea"
    else:
        long_text = kind == "textarea" and length > 255
    external_id = bool(meta.get("externalId", name == "Callmatch_Call_Id__c"))
    return FieldInfo(
        kind,
        custom=True,
        length=length,
        external_id=external_id,
        unique=bool(meta.get("unique", False)),
        case_sensitive=bool(meta.get("caseSensitive", False)),
        id_lookup=external_id,
        filterable=not long_text,
        label=str(meta.get("label") or name.removesuffix("__c").replace("_", " ")),
    )


def tooling_metadata(info: FieldInfo) -> dict[str, Any]:
    """A field's Metadata as the Tooling API answers it."""
    kind = (
        "LongTextArea"
        if info.type == "textarea" and not info.filterable
        else _TOOLING_NAMES.get(info.type, "Text")
    )
    return {
        "type": kind,
        "length": info.length,
        "externalId": info.external_id,
        "unique": info.unique,
        "caseSensitive": info.case_sensitive,
        "label": info.label,
        "required": False,
    }


def _object(name: str, prefix: str, fields: dict[str, str], **kwargs: Any) -> SObjectType:
    label = kwargs.pop("label", name)
    sobject = SObjectType(name, prefix, {**_SYSTEM, **fields}, label=label, **kwargs)
    info = dict(_SYSTEM_INFO)
    for field_name, kind in fields.items():
        info[field_name] = FieldInfo(
            kind,
            length=_STANDARD_LENGTHS.get(name, {}).get(field_name, _LENGTHS.get(kind, 0)),
            id_lookup=field_name in _ID_LOOKUP.get(name, ()),
            createable=field_name not in _READ_ONLY.get(name, ()),
            updateable=field_name not in _READ_ONLY.get(name, ()),
            nillable=kind != "boolean",
            filterable=field_name not in _NOT_FILTERABLE.get(name, ()),
        )
    sobject.info = info | sobject.info
    return sobject


def build_schema(
    profile: OrgProfile | None = None, custom_meta: dict[str, dict[str, Any]] | None = None
) -> dict[str, SObjectType]:
    """Every object and field that exists in an org with `profile` (before field-level security).

    Optional objects (TaskRelation, TaskWhoRelation, EventWhoRelation, AccountContactRelation),
    children and custom fields simply do not exist when the profile lacks them. `custom_meta`
    holds the Tooling API Metadata of custom fields by full name ("Activity.Callmatch_Call_Id__c").
    """
    profile = profile or OrgProfile.plain()
    metas = custom_meta or {}
    shared = profile.shared_activities
    multiple = profile.contacts_to_multiple_accounts

    def custom(obj: str, *names: str) -> dict[str, FieldInfo]:
        out: dict[str, FieldInfo] = {}
        for entry in sorted(profile.custom_fields):
            name = entry.partition(".")[2]
            if obj not in objects_of(entry) or (names and name not in names):
                continue
            info = custom_field_info(name, metas.get(entry))
            if entry == CALL_ID_FIELD and "unique" not in metas.get(entry, {}):
                info = replace(info, unique=profile.external_id_unique)
            out[name] = info
        return out

    def fields_of(extra: dict[str, FieldInfo]) -> dict[str, str]:
        return {name: info.type for name, info in extra.items()}

    owner = {"OwnerId": Reference("Owner", ("User",))}
    account_custom = custom("Account")
    contact_custom = custom("Contact")
    lead_custom = custom("Lead")
    task_custom = custom("Task")
    event_custom = custom("Event")
    activity_fields = {
        "Subject": "string",
        "WhoId": "reference",
        "WhatId": "reference",
        "OwnerId": "reference",
        "Description": "textarea",
    }
    activity_refs = {
        "WhoId": Reference("Who", ("Contact", "Lead")),
        "WhatId": Reference("What", ("Account", "Opportunity")),
        **owner,
    }
    emails = lambda extra: tuple(n for n, i in extra.items() if i.type == "email")  # noqa: E731
    types = [
        _object("Profile", "00e", {"Name": "string"}, name_fields=("Name",), searchable=True),
        _object(
            "User",
            "005",
            {
                "Email": "email",
                "Username": "string",
                "FirstName": "string",
                "LastName": "string",
                "Name": "string",
                "IsActive": "boolean",
                "ProfileId": "reference",
            },
            references={"ProfileId": Reference("Profile", ("Profile",))},
            email_fields=("Email",),
            name_fields=("Name",),
            searchable=True,
        ),
        _object(
            "Account",
            "001",
            {
                "Name": "string",
                "Website": "url",
                "Phone": "phone",
                "Fax": "phone",
                "OwnerId": "reference",
                **_ACCOUNT_STANDARD,
                **fields_of(account_custom),
            },
            references=dict(owner),
            children={
                "Contacts": ("Contact", "AccountId"),
                "Opportunities": ("Opportunity", "AccountId"),
                "Tasks": ("Task", "WhatId"),
                "Events": ("Event", "WhatId"),
                **({"AccountContactRelations": ("AccountContactRelation", "AccountId")} if multiple else {}),
            },
            phone_fields=("Phone", "Fax"),
            name_fields=("Name",),
            info=account_custom,
            searchable=True,
        ),
        _object(
            "Contact",
            "003",
            {
                "FirstName": "string",
                "LastName": "string",
                "Name": "string",
                "Email": "email",
                "Phone": "phone",
                "MobilePhone": "phone",
                "HomePhone": "phone",
                "OtherPhone": "phone",
                "AssistantPhone": "phone",
                "Fax": "phone",
                "AccountId": "reference",
                "OwnerId": "reference",
                **fields_of(contact_custom),
            },
            references={"AccountId": Reference("Account", ("Account",)), **owner},
            children={
                "OpportunityContactRoles": ("OpportunityContactRole", "ContactId"),
                "Tasks": ("Task", "WhoId"),
                "Events": ("Event", "WhoId"),
                **({"AccountContactRelations": ("AccountContactRelation", "ContactId")} if multiple else {}),
            },
            phone_fields=("Phone", "MobilePhone", "HomePhone", "OtherPhone", "AssistantPhone", "Fax"),
            email_fields=("Email", *emails(contact_custom)),
            name_fields=("FirstName", "LastName", "Name"),
            info=contact_custom,
            searchable=True,
        ),
        _object(
            "Lead",
            "00Q",
            {
                "FirstName": "string",
                "LastName": "string",
                "Name": "string",
                "Company": "string",
                "Email": "email",
                "Phone": "phone",
                "MobilePhone": "phone",
                "Fax": "phone",
                "IsConverted": "boolean",
                **_LEAD_CONVERSION,
                "OwnerId": "reference",
                **fields_of(lead_custom),
            },
            references={
                "ConvertedContactId": Reference("ConvertedContact", ("Contact",)),
                "ConvertedAccountId": Reference("ConvertedAccount", ("Account",)),
                "ConvertedOpportunityId": Reference("ConvertedOpportunity", ("Opportunity",)),
                **owner,
            },
            children={"Tasks": ("Task", "WhoId"), "Events": ("Event", "WhoId")},
            phone_fields=("Phone", "MobilePhone", "Fax"),
            email_fields=("Email", *emails(lead_custom)),
            name_fields=("FirstName", "LastName", "Name", "Company"),
            info=lead_custom,
            searchable=True,
        ),
        _object(
            "Opportunity",
            "006",
            {
                "Name": "string",
                "AccountId": "reference",
                "OwnerId": "reference",
                "IsClosed": "boolean",
                "IsWon": "boolean",
                "CloseDate": "date",
                "StageName": "string",
            },
            references={"AccountId": Reference("Account", ("Account",)), **owner},
            children={
                "OpportunityContactRoles": ("OpportunityContactRole", "OpportunityId"),
                "Tasks": ("Task", "WhatId"),
                "Events": ("Event", "WhatId"),
            },
            name_fields=("Name",),
            searchable=True,
        ),
        _object(
            "OpportunityContactRole",
            "00K",
            {
                "OpportunityId": "reference",
                "ContactId": "reference",
                "IsPrimary": "boolean",
                "Role": "string",
            },
            references={
                "OpportunityId": Reference("Opportunity", ("Opportunity",)),
                "ContactId": Reference("Contact", ("Contact",)),
            },
        ),
        _object(
            "Task",
            "00T",
            {
                **activity_fields,
                "TaskSubtype": "string",
                "Status": "string",
                "CallDurationInSeconds": "int",
                "CallType": "string",
                "CallObject": "string",
                "ActivityDate": "date",
                **fields_of(task_custom),
            },
            references=dict(activity_refs),
            children={
                **({"TaskRelations": ("TaskRelation", "TaskId")} if shared else {}),
                **({"TaskWhoRelations": ("TaskWhoRelation", "TaskId")} if shared else {}),
            },
            external_ids=tuple(n for n, i in task_custom.items() if i.external_id),
            info=task_custom,
            searchable=True,
        ),
        _object(
            "Event",
            "00U",
            {
                **activity_fields,
                "StartDateTime": "datetime",
                "EndDateTime": "datetime",
                "DurationInMinutes": "int",
                **fields_of(event_custom),
            },
            references=dict(activity_refs),
            children={
                "EventRelations": ("EventRelation", "EventId"),
                **({"EventWhoRelations": ("EventWhoRelation", "EventId")} if shared else {}),
            },
            external_ids=tuple(n for n, i in event_custom.items() if i.external_id),
            info=event_custom,
            searchable=True,
        ),
        _object(
            "EventRelation",
            "0RE",
            {
                "EventId": "reference",
                "RelationId": "reference",
                **({"IsWhat": "boolean", "IsParent": "boolean"} if shared else {}),
                "IsInvitee": "boolean",
                "Status": "string",
            },
            references={
                "EventId": Reference("Event", ("Event",)),
                "RelationId": Reference(
                    "Relation",
                    ("Contact", "Lead", "User", "Account", "Opportunity")
                    if shared
                    else ("Contact", "Lead", "User"),
                ),
            },
        ),
        _object(
            "PermissionSet",
            "0PS",
            {"Name": "string", "Label": "string", "IsOwnedByProfile": "boolean", "ProfileId": "reference"},
            references={"ProfileId": Reference("Profile", ("Profile",))},
            children={
                "Assignments": ("PermissionSetAssignment", "PermissionSetId"),
                "FieldPerms": ("FieldPermissions", "ParentId"),
                "ObjectPerms": ("ObjectPermissions", "ParentId"),
            },
            name_fields=("Name",),
            searchable=True,
            setup=True,
        ),
        _object(
            "PermissionSetAssignment",
            "0Pa",
            {"AssigneeId": "reference", "PermissionSetId": "reference"},
            references={
                "AssigneeId": Reference("Assignee", ("User",)),
                "PermissionSetId": Reference("PermissionSet", ("PermissionSet",)),
            },
            setup=True,
        ),
        _object(
            "FieldPermissions",
            "01k",
            {
                "ParentId": "reference",
                "SobjectType": "string",
                "Field": "string",
                "PermissionsRead": "boolean",
                "PermissionsEdit": "boolean",
            },
            references={"ParentId": Reference("Parent", ("PermissionSet",))},
            setup=True,
        ),
        _object(
            "ObjectPermissions",
            "110",
            {
                "ParentId": "reference",
                "SobjectType": "string",
                "PermissionsRead": "boolean",
                "PermissionsCreate": "boolean",
                "PermissionsEdit": "boolean",
                "PermissionsDelete": "boolean",
                "PermissionsViewAllRecords": "boolean",
                "PermissionsModifyAllRecords": "boolean",
            },
            references={"ParentId": Reference("Parent", ("PermissionSet",))},
            setup=True,
        ),
    ]
    if shared:
        types += [
            _object(
                "TaskRelation",
                "0RT",
                {"TaskId": "reference", "RelationId": "reference", "IsWhat": "boolean"},
                references={
                    "TaskId": Reference("Task", ("Task",)),
                    "RelationId": Reference("Relation", ("Contact", "Lead", "Account", "Opportunity")),
                },
            ),
            _who_relation("TaskWhoRelation", "0Rt", "TaskId", "Task"),
            _who_relation("EventWhoRelation", "0Re", "EventId", "Event"),
        ]
    if multiple:
        types.append(
            _object(
                "AccountContactRelation",
                "07k",
                {
                    "AccountId": "reference",
                    "ContactId": "reference",
                    "IsDirect": "boolean",
                    "IsActive": "boolean",
                },
                references={
                    "AccountId": Reference("Account", ("Account",)),
                    "ContactId": Reference("Contact", ("Contact",)),
                },
            )
        )
    return {t.name: t for t in types}


def _who_relation(name: str, prefix: str, parent_field: str, parent: str) -> SObjectType:
    """TaskWhoRelation / EventWhoRelation: read-only views of the relation rows that name a person."""
    sobject = _object(
        name,
        prefix,
        {parent_field: "reference", "RelationId": "reference", "Type": "string", "AccountId": "reference"},
        references={
            parent_field: Reference(parent, (parent,)),
            "RelationId": Reference("Relation", ("Contact", "Lead")),
            "AccountId": Reference("Account", ("Account",)),
        },
    )
    sobject.info = {n: replace(i, createable=False, updateable=False) for n, i in sobject.info.items()}
    return sobject


def default_schema() -> dict[str, SObjectType]:
    """The schema of a plain org (kept for callers that want one without an Org)."""
    return build_schema(OrgProfile.plain())


API_PROFILE_ID = "00e000000000000AAA"
STANDARD_PROFILE_ID = "00e000000000001AAA"
API_PROFILE_NAME = "Salesforce API Only System Integrations"
API_USER_ID = "005000000000000AAA"
API_USERNAME = "integration@callmatch.test"
ORG_ID = "00D000000000000AAA"
PROFILE_PERMISSION_SET_ID = "0PS000000000000AAA"
PERMISSIONED_OBJECTS = (
    "Account",
    "Contact",
    "Lead",
    "Opportunity",
    "OpportunityContactRole",
    "Task",
    "Event",
)
"""Objects whose permissions the profile's ObjectPermissions rows list (Task and Event included for doctor's sake)."""
_SECURITY_OBJECTS = ("PermissionSetAssignment", "FieldPermissions")
_WHO_RELATIONS = {
    "TaskWhoRelation": ("TaskRelation", "TaskId"),
    "EventWhoRelation": ("EventRelation", "EventId"),
}


def _lookup(schema: dict[str, SObjectType], name: str) -> SObjectType | None:
    found = schema.get(name)
    if found is not None:
        return found
    lowered = name.lower()
    return next((t for known, t in schema.items() if known.lower() == lowered), None)


class OrgError(Exception):
    """A REST error with its HTTP status and Salesforce errorCode."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            entry["fields"] = self.fields
        return [entry]


def _like(pattern: str, value: str) -> bool:
    regex = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == LIKE_ESCAPE and i + 1 < len(pattern):
            regex += re.escape(pattern[i + 1])
            i += 2
            continue
        regex += ".*" if char == "%" else "." if char == "_" else re.escape(char)
        i += 1
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


def _unlike(value: str) -> str:
    """A literal's text outside LIKE: `\\_` and `\\%` only mean something there."""
    return value.replace(LIKE_ESCAPE + "_", "_").replace(LIKE_ESCAPE + "%", "%")


class Org:
    """Records by object and id, with a clock and a lock: the emulator's whole state.

    `stored` is every object and field the org has; `schema` is what the API user sees
    (objects it may read, fields field-level security shows it). Records keep every
    stored field, so hiding a field and granting it again loses nothing.
    """

    def __init__(
        self,
        schema: dict[str, SObjectType] | None = None,
        now: dt.datetime | None = None,
        *,
        profile: OrgProfile | None = None,
    ):
        self.profile = profile or OrgProfile.plain()
        self.custom_meta: dict[str, dict[str, Any]] = {}
        self.custom_ids: dict[str, str] = {}
        self._fixed = schema is not None
        self.stored: dict[str, SObjectType] = schema if schema is not None else build_schema(self.profile)
        self.schema: dict[str, SObjectType] = self.stored
        self.records: dict[str, dict[str, RecordData]] = {name: {} for name in self.stored}
        self.object_of: dict[str, str] = {}
        self.lock = threading.RLock()
        self.now = now
        self.unsearchable: set[str] = set()
        self._counter = itertools.count(1)
        self.semi_join_runs = 0
        self._types: dict[tuple[str, str], str | None] = {}
        self._refs: dict[tuple[str, str], str | None] = {}
        self._checked: set[tuple[str, str]] = set()
        self.read_only: set[tuple[str, str]] = set()
        if not self._fixed:
            self._seed_setup()
            self._rebuild()

    # --- profile, field-level security, setup records ---------------------------------------------

    def set_profile(self, profile: OrgProfile) -> None:
        """Change what the org has at run time (a test turning a feature on, `setup` creating a field)."""
        with self.lock:
            self.profile = profile
            self._rebuild()
            self._seed_object_permissions()

    def _rebuild(self) -> None:
        if self._fixed:
            return
        self.stored = build_schema(self.profile, self.custom_meta)
        for name in self.stored:
            self.records.setdefault(name, {})
        hidden, read_only = self._field_security()
        self.read_only = read_only
        readable = {name for name in self.stored if self.profile.can(name, "read")}
        visible: dict[str, SObjectType] = {}
        for name, sobject in self.stored.items():
            if name not in readable:
                continue
            fields = {f: k for f, k in sobject.fields.items() if (name, f) not in hidden}
            info = {
                f: replace(i, createable=False, updateable=False) if (name, f) in read_only else i
                for f, i in sobject.info.items()
                if f in fields
            }
            visible[name] = replace(
                sobject,
                fields=fields,
                info=info,
                references={
                    f: Reference(r.relationship, tuple(t for t in r.targets if t in readable))
                    for f, r in sobject.references.items()
                    if f in fields
                },
                children={
                    rel: (child, f)
                    for rel, (child, f) in sobject.children.items()
                    if child in readable and (child, f) not in hidden
                },
                external_ids=tuple(f for f in sobject.external_ids if f in fields),
                phone_fields=tuple(f for f in sobject.phone_fields if f in fields),
                email_fields=tuple(f for f in sobject.email_fields if f in fields),
                name_fields=tuple(f for f in sobject.name_fields if f in fields),
                _lower={},
            )
        self.schema = visible
        self._types.clear()
        self._refs.clear()
        self._checked.clear()

    def _field_key(self, obj: str, name: str) -> list[tuple[str, str]]:
        """The (object, field) pairs an "Object.Field" names: an Activity field is one field on Task and Event."""
        out = []
        for target in objects_of(f"{obj}.{name}"):
            sobject = self.stored.get(target)
            canonical = sobject.canonical(name) if sobject else None
            if canonical is None:
                continue
            out.append((target, canonical))
            if target in ("Task", "Event") and sobject is not None and sobject.field_info(canonical).custom:
                other = self.stored.get("Event" if target == "Task" else "Task")
                twin = other.canonical(name) if other else None
                if other is not None and twin is not None:
                    out.append((other.name, twin))
        return out

    def _field_security(self) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """(hidden, read-only) fields for the API user: the profile's hidden fields and the fields
        `setup` created, less what FieldPermissions of permission sets assigned to the user grant."""
        hidden: set[tuple[str, str]] = set()
        for entry in self.profile.hidden_fields:
            obj, _, name = entry.partition(".")
            hidden.update(self._field_key(obj, name))
        mine = {
            str(row["PermissionSetId"])
            for row in self.records.get("PermissionSetAssignment", {}).values()
            if row.get("AssigneeId") == API_USER_ID and not row["IsDeleted"]
        }
        readable: set[tuple[str, str]] = set()
        editable: set[tuple[str, str]] = set()
        for row in self.records.get("FieldPermissions", {}).values():
            if row["IsDeleted"] or row.get("ParentId") not in mine:
                continue
            obj, _, name = str(row.get("Field") or "").partition(".")
            pairs = self._field_key(obj, name)
            if row.get("PermissionsRead") or row.get("PermissionsEdit"):
                readable.update(pairs)
            if row.get("PermissionsEdit"):
                editable.update(pairs)
        return hidden - readable, (hidden & readable) - editable

    def _seed_setup(self) -> None:
        """The API user, its profile and the permission set that profile owns, as every org has them."""
        self.insert("Profile", {"Id": API_PROFILE_ID, "Name": API_PROFILE_NAME})
        self.insert("Profile", {"Id": STANDARD_PROFILE_ID, "Name": "Standard User"})
        self.insert(
            "User",
            {
                "Id": API_USER_ID,
                "Username": API_USERNAME,
                "Email": API_USERNAME,
                "LastName": "Integration",
                "Name": "Callmatch Integration",
                "IsActive": True,
                "ProfileId": API_PROFILE_ID,
            },
        )
        self.insert(
            "PermissionSet",
            {
                "Id": PROFILE_PERMISSION_SET_ID,
                "Name": "X00ex00000018ozT_128_09_04_12_1",
                "Label": API_PROFILE_NAME,
                "IsOwnedByProfile": True,
                "ProfileId": API_PROFILE_ID,
            },
        )
        self.insert(
            "PermissionSetAssignment",
            {"AssigneeId": API_USER_ID, "PermissionSetId": PROFILE_PERMISSION_SET_ID},
        )
        self._seed_object_permissions()

    def _seed_object_permissions(self) -> None:
        """ObjectPermissions of the API user's profile, from the profile's `denied` list."""
        if self._fixed:
            return
        rows = self.records.setdefault("ObjectPermissions", {})
        for record_id in [k for k, r in rows.items() if r.get("ParentId") == PROFILE_PERMISSION_SET_ID]:
            del rows[record_id]
            self.object_of.pop(record_id, None)
        for name in PERMISSIONED_OBJECTS:
            can = self.profile.can
            self.insert(
                "ObjectPermissions",
                {
                    "ParentId": PROFILE_PERMISSION_SET_ID,
                    "SobjectType": name,
                    "PermissionsRead": can(name, "read"),
                    "PermissionsCreate": can(name, "create"),
                    "PermissionsEdit": can(name, "edit"),
                    "PermissionsDelete": can(name, "delete"),
                    "PermissionsViewAllRecords": False,
                    "PermissionsModifyAllRecords": False,
                },
            )

    def effective_profile(self) -> OrgProfile:
        """The profile as the API user now lives it: fields `setup` granted are no longer hidden."""
        hidden, _ = self._field_security()
        still = frozenset(
            entry
            for entry in self.profile.hidden_fields
            if any(pair in hidden for pair in self._field_key(*entry.split(".", 1)))
        )
        return replace(self.profile, hidden_fields=still)

    # --- records --------------------------------------------------------------------------------------

    def clock(self) -> dt.datetime:
        return self.now or dt.datetime.now(dt.UTC).replace(microsecond=0)

    def sobject(self, name: str) -> SObjectType:
        """The object as the API user sees it; an absent (or unreadable) one is INVALID_TYPE, as in SOQL."""
        found = _lookup(self.schema, name)
        if found is None:
            raise OrgError(
                400,
                "INVALID_TYPE",
                f"sObject type '{name}' is not supported. If you are attempting to use a custom object, be "
                "sure to append the '__c' after the entity name. Please reference your WSDL or the describe "
                "call for the appropriate names.",
            )
        return found

    def stored_type(self, name: str) -> SObjectType:
        found = _lookup(self.stored, name)
        if found is None:
            raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
        return found

    def new_id(self, sobject: SObjectType) -> str:
        return f"{sobject.key_prefix}{next(self._counter):012d}AAA"

    def insert(
        self, object_name: str, values: RecordData, *, searchable: bool = True, api: bool = False
    ) -> str:
        """Store a record (seeding, or an API create when `api`: then only fields the user sees)."""
        sobject = self.sobject(object_name) if api else self.stored_type(object_name)
        with self.lock:
            record: RecordData = {
                name: False if kind == "boolean" else None for name, kind in sobject.fields.items()
            }
            for key, value in values.items():
                name = sobject.canonical(key)
                if name is None:
                    raise OrgError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{key}' on sobject of type {sobject.name}",
                        [key],
                    )
                record[name] = value
            if api:
                self._check_unique(sobject, record, None)
            record_id = record.get("Id") or self.new_id(sobject)
            record["Id"] = record_id
            now = self.clock()
            if "CreatedDate" not in values:
                record["CreatedDate"] = now
            if "LastModifiedDate" not in values:
                record["LastModifiedDate"] = record["CreatedDate"] or now
            if "SystemModstamp" not in values:
                record["SystemModstamp"] = record["LastModifiedDate"] or now
            record["IsDeleted"] = False
            self.records[sobject.name][record_id] = record
            self.object_of[record_id] = sobject.name
            if not searchable:
                self.unsearchable.add(record_id)
            if sobject.name in _SECURITY_OBJECTS:
                self._rebuild()
            return str(record_id)

    def _check_unique(self, sobject: SObjectType, values: RecordData, own_id: str | None) -> None:
        """A Unique field refuses a value another live record holds (DUPLICATE_VALUE)."""
        for name, value in values.items():
            info = sobject.info.get(name)
            if info is None or not info.unique or value in (None, ""):
                continue
            for row in self.records[sobject.name].values():
                other = row.get(name)
                if row["IsDeleted"] or row["Id"] == own_id or not isinstance(other, str):
                    continue
                same = other == value if info.case_sensitive else other.lower() == str(value).lower()
                if same:
                    raise OrgError(
                        400,
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {name} duplicates value on record with id: {row['Id']}",
                        [name],
                    )

    def update(self, object_name: str, record_id: str, values: RecordData, *, api: bool = False) -> None:
        sobject = self.sobject(object_name) if api else self.stored_type(object_name)
        with self.lock:
            record = self.records[sobject.name].get(record_id)
            if record is None or record["IsDeleted"]:
                raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
            for key in values:
                name = sobject.canonical(key)
                if name is None or name in _SYSTEM:
                    raise OrgError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{key}' on sobject of type {sobject.name}",
                        [key],
                    )
            if api:
                self._check_unique(
                    sobject, {sobject.canonical(k) or k: v for k, v in values.items()}, record_id
                )
            for key, value in values.items():
                record[sobject.canonical(key) or key] = value
            record["LastModifiedDate"] = record["SystemModstamp"] = self.clock()
            if sobject.name in _SECURITY_OBJECTS:
                self._rebuild()

    def delete(self, object_name: str, record_id: str, *, api: bool = False) -> None:
        sobject = self.sobject(object_name) if api else self.stored_type(object_name)
        with self.lock:
            record = self.records[sobject.name].get(record_id)
            if record is None or record["IsDeleted"]:
                raise OrgError(404, "ENTITY_IS_DELETED", "entity is deleted")
            record["IsDeleted"] = True
            record["SystemModstamp"] = self.clock()  # a delete is a write: replication sees it by this stamp
            if sobject.name in _SECURITY_OBJECTS:
                self._rebuild()

    def get(self, record_id: str | None) -> RecordData | None:
        if record_id is None:
            return None
        name = self.object_of.get(record_id)
        return None if name is None else self.records[name].get(record_id)

    def live(self, object_name: str, include_deleted: bool = False) -> Iterable[RecordData]:
        name = self.stored_type(object_name).name
        if name in _WHO_RELATIONS:
            return self._who_rows(name)
        rows = self.records[name].values()
        return [r for r in rows if include_deleted or not r["IsDeleted"]]

    def _who_rows(self, name: str) -> list[RecordData]:
        """TaskWhoRelation / EventWhoRelation rows: the relation rows of a person, derived as the org does."""
        source, parent = _WHO_RELATIONS[name]
        out = []
        for row in self.records.get(source, {}).values():
            person = self.object_of.get(str(row.get("RelationId")))
            if row["IsDeleted"] or person not in ("Contact", "Lead") or row.get("IsWhat"):
                continue
            if source == "EventRelation" and not row.get("IsParent"):
                continue  # an invitee only: not a "who" of the event
            out.append(
                {
                    "Id": name[:1] + str(row["Id"])[1:],
                    parent: row.get(parent),
                    "RelationId": row.get("RelationId"),
                    "Type": person,
                    "AccountId": (self.get(str(row.get("RelationId"))) or {}).get("AccountId"),
                    "CreatedDate": row.get("CreatedDate"),
                    "LastModifiedDate": row.get("LastModifiedDate"),
                    "SystemModstamp": row.get("SystemModstamp"),
                    "IsDeleted": False,
                }
            )
        return out

    def find_by(self, object_name: str, field_name: str, value: str) -> list[RecordData]:
        sobject = self.stored_type(object_name)
        name = sobject.canonical(field_name)
        if name is None:
            raise OrgError(400, "INVALID_FIELD", f"No such column '{field_name}' on {sobject.name}")
        info = sobject.field_info(name)
        if info.type in ("id", "reference") or info.case_sensitive:
            return [r for r in self.live(sobject.name) if r.get(name) == value]
        lowered = value.lower()
        return [
            r for r in self.live(sobject.name) if isinstance(r.get(name), str) and r[name].lower() == lowered
        ]

    # --- SOQL -----------------------------------------------------------------------------------

    def query(self, text: str, include_deleted: bool = False) -> list[RecordData]:
        """Run a SOQL query and return the records in the REST response shape."""
        try:
            parsed = parse_soql(text)
        except SoqlError as error:
            raise OrgError(400, error.code, str(error)) from error
        with self.lock:
            return self._run(parsed, include_deleted)

    def _run(
        self, query: Query, include_deleted: bool, rows: Iterable[RecordData] | None = None
    ) -> list[RecordData]:
        sobject = self.sobject(query.sobject)
        for path in query.fields:
            self._check_path(sobject, path)
        for child in query.children:
            self._check_child(sobject, child)
        candidates = list(rows if rows is not None else self.live(sobject.name, include_deleted))
        if query.where is not None:
            self._check_condition(sobject, query.where)
            where = query.where
            # One execution, one evaluation of each semi-join's inner query (not one per outer row).
            cache: _Cache = {}
            candidates = [r for r in candidates if self._matches(sobject, r, where, cache)]
        for item in reversed(query.order_by):
            self._check_path(sobject, item.path)
            present = [r for r in candidates if self._value(sobject, r, item.path) is not None]
            absent = [r for r in candidates if self._value(sobject, r, item.path) is None]
            path = item.path

            def order_key(record: RecordData, path: str = path) -> Any:
                return _sort_key(self._value(sobject, record, path))

            present.sort(key=order_key, reverse=item.descending)
            nulls_last = item.nulls_last if item.nulls_last is not None else item.descending
            candidates = present + absent if nulls_last else absent + present
        if not query.order_by:
            candidates.sort(key=lambda r: str(r["Id"]))
        if query.offset:
            candidates = candidates[query.offset :]
        if query.limit is not None:
            candidates = candidates[: query.limit]
        return [self._shape(sobject, r, query) for r in candidates]

    def _shape(self, sobject: SObjectType, record: RecordData, query: Query) -> RecordData:
        out: RecordData = {"attributes": _attributes(sobject.name, str(record["Id"]))}
        for path in query.fields:
            _put(out, path, self._shaped_value(sobject, record, path))
        for child in query.children:
            relationship = _canonical_key(sobject.children, child.sobject)
            if relationship is None:
                raise OrgError(
                    400,
                    "INVALID_TYPE",
                    f"Didn't understand relationship '{child.sobject}' in FROM part of query call.",
                )
            child_object, child_field = sobject.children[relationship]
            rows = [r for r in self.live(child_object) if r.get(child_field) == record["Id"]]
            sub = Query(
                child_object, child.fields, (), child.where, child.order_by, child.limit, child.offset
            )
            shaped = self._run(sub, False, rows)
            out[relationship] = (
                None if not shaped else {"totalSize": len(shaped), "done": True, "records": shaped}
            )
        return out

    def _check_child(self, sobject: SObjectType, child: Query) -> None:
        """A subquery is checked before any row is read: an absent relationship or field fails the query."""
        relationship = _canonical_key(sobject.children, child.sobject)
        if relationship is None:
            raise OrgError(
                400,
                "INVALID_TYPE",
                f"Didn't understand relationship '{child.sobject}' in FROM part of query call. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name. Please reference your WSDL or the describe call for the appropriate names.",
            )
        child_type = self.sobject(sobject.children[relationship][0])
        for path in child.fields:
            self._check_path(child_type, path)
        if child.where is not None:
            self._check_condition(child_type, child.where)
        for item in child.order_by:
            self._check_path(child_type, item.path)

    def _shaped_value(self, sobject: SObjectType, record: RecordData, path: str) -> Any:
        return _json_value(self._value(sobject, record, path))

    def _check_path(self, sobject: SObjectType, path: str) -> None:
        key = (sobject.name, path.lower())
        if key in self._checked:
            return
        self._check_path_once(sobject, path)
        self._checked.add(key)

    def _check_path_once(self, sobject: SObjectType, path: str) -> None:
        parts = path.split(".")
        current = [sobject]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if last:
                if part.lower() == "type" and index > 0:
                    return
                if not any(t.canonical(part) for t in current):
                    raise OrgError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{part}' on entity '{current[0].name}'. If you are attempting to use a "
                        "custom field, be sure to append the '__c' after the custom field name.",
                    )
                return
            targets: list[SObjectType] = []
            for t in current:
                for ref in t.references.values():
                    if ref.relationship.lower() == part.lower():
                        targets += [self.schema[name] for name in ref.targets]
            if not targets:
                raise OrgError(
                    400,
                    "INVALID_FIELD",
                    f"Didn't understand relationship '{part}' in field path. If you are attempting to use a "
                    "custom relationship, be sure to append the '__r' after the custom relationship name.",
                )
            current = targets

    def _value(self, sobject: SObjectType, record: RecordData | None, path: str) -> Any:
        if record is not None and "." not in path:
            name = sobject.canonical(path)
            return None if name is None else record.get(name)
        parts = path.split(".")
        current_type: SObjectType | None = sobject
        current = record
        for index, part in enumerate(parts):
            if current is None or current_type is None:
                return None
            if index == len(parts) - 1:
                if part.lower() == "type" and index > 0:
                    return current_type.name
                name = current_type.canonical(part)
                return None if name is None else current.get(name)
            ref_field = self._ref_field(current_type, part)
            if ref_field is None:
                return None
            target = self.get(current.get(ref_field))
            current = target
            current_type = self.schema.get(self.object_of[str(target["Id"])]) if target else None
        return None

    def _ref_field(self, sobject: SObjectType, relationship: str) -> str | None:
        """The lookup field behind a relationship name (`Contact` -> `ContactId`), cached per schema."""
        key = (sobject.name, relationship.lower())
        if key not in self._refs:
            self._refs[key] = next(
                (f for f, ref in sobject.references.items() if ref.relationship.lower() == key[1]), None
            )
        return self._refs[key]

    def _field_type(self, sobject: SObjectType, path: str) -> str | None:
        key = (sobject.name, path.lower())
        if key not in self._types:
            self._types[key] = self._field_type_once(sobject, path)
        return self._types[key]

    def _field_type_once(self, sobject: SObjectType, path: str) -> str | None:
        parts = path.split(".")
        current = [sobject]
        for part in parts[:-1]:
            targets = []
            for t in current:
                for ref in t.references.values():
                    if ref.relationship.lower() == part.lower():
                        targets += [self.schema[name] for name in ref.targets]
            current = targets
        if parts[-1].lower() == "type" and len(parts) > 1:
            return "string"
        for t in current:
            name = t.canonical(parts[-1])
            if name is not None:
                return t.fields[name]
        return None

    def _check_condition(self, sobject: SObjectType, condition: Condition) -> None:
        if isinstance(condition, BoolOp):
            for part in condition.parts:
                self._check_condition(sobject, part)
        elif isinstance(condition, Not):
            self._check_condition(sobject, condition.part)
        elif isinstance(condition, SemiJoin):
            self._check_path(sobject, condition.path)
            sub_type = self.sobject(condition.query.sobject)
            if condition.query.where is not None:
                self._check_condition(sub_type, condition.query.where)
            if sub_type.name in ("Task", "Event"):
                raise OrgError(
                    400,
                    "MALFORMED_QUERY",
                    f"Entity '{sub_type.name}' is not supported for semi join inner selects",
                )
            if condition.query.order_by or condition.query.limit is not None:
                raise OrgError(
                    400, "MALFORMED_QUERY", "ORDER BY and LIMIT are not supported in semi join inner selects"
                )
            if "." in condition.query.fields[0]:
                raise OrgError(
                    400, "MALFORMED_QUERY", "the selected field of a semi join cannot traverse relationships"
                )
            self._check_path(sub_type, condition.query.fields[0])
            if self._field_type(sub_type, condition.query.fields[0]) not in ("id", "reference"):
                raise OrgError(
                    400, "MALFORMED_QUERY", "semi join sub-select must select an Id or reference field"
                )
        else:
            self._check_path(sobject, condition.path)
            name = sobject.canonical(condition.path)
            if name is not None and not sobject.field_info(name).filterable:
                raise OrgError(400, "INVALID_FIELD", f"field '{name}' can not be filtered in query call")
            kind = self._field_type(sobject, condition.path)
            literals = condition.values if isinstance(condition, InList) else (condition.literal,)
            for literal in literals:
                _check_literal(condition.path, kind, literal)

    def _matches(
        self, sobject: SObjectType, record: RecordData, condition: Condition, cache: _Cache | None = None
    ) -> bool:
        """Whether `record` meets `condition`; `cache` holds what one query execution computed once."""
        if cache is None:
            cache = {}
        if isinstance(condition, BoolOp):
            results = (self._matches(sobject, record, part, cache) for part in condition.parts)
            return all(results) if condition.op == "AND" else any(results)
        if isinstance(condition, Not):
            return not self._matches(sobject, record, condition.part, cache)
        value = self._value(sobject, record, condition.path)
        kind = self._field_type(sobject, condition.path) or "string"
        if isinstance(condition, SemiJoin):
            ids = cache.get(id(condition))
            if ids is None:
                ids = cache[id(condition)] = self._semi_ids(condition)
            found = value is not None and value in ids
            return not found if condition.negated else found
        if isinstance(condition, InList):
            key = id(condition)
            if key not in cache:
                cache[key] = _literal_set(kind, condition.values)
            known = cache[key]
            if known is not None and (value is None or isinstance(value, str)):
                found = _normal(kind, value) in known
            else:
                found = any(_equal(kind, value, literal) for literal in condition.values)
            return not found if condition.negated else found
        return _compare(kind, value, condition.op, condition.literal)

    def _semi_ids(self, condition: SemiJoin) -> frozenset[object]:
        """The values the semi-join's inner query selects: evaluated once per outer query."""
        sub = condition.query
        sub_type = self.sobject(sub.sobject)
        rows = list(self.live(sub_type.name))
        if sub.where is not None:
            self._check_condition(sub_type, sub.where)
            where = sub.where
            cache: _Cache = {}
            rows = [r for r in rows if self._matches(sub_type, r, where, cache)]
        self.semi_join_runs += 1
        return frozenset(self._value(sub_type, r, sub.fields[0]) for r in rows)

    # --- SOSL -----------------------------------------------------------------------------------

    def search(self, text: str) -> list[RecordData]:
        """Run a SOSL search.

        `IN PHONE FIELDS` is modelled on what Salesforce documents and shows: phone fields
        are searched by the digits of the term, whatever the punctuation on either side
        (the API's own sample searches "4155551212" in phone fields, stored numbers
        carry any format). A term matches a stored number when its digits are the
        number's digits or their trailing part (the number without its country code
        or trunk prefix: "612345678" finds "06 12 34 56 78" and "+33 6 12 34 56 78").
        Never the other way round: a stored short number is not found by a longer term
        that ends with it ("5550101" stored is not a hit for "+1 212 555 0101"), since
        the search looks for the term in the stored number, not the number in the term.
        An extension ("x 12", "ext. 12") is not part of the number.
        """
        try:
            parsed = parse_sosl(text)
        except SoqlError as error:
            raise OrgError(400, error.code, str(error)) from error
        with self.lock:
            return self._search(parsed)

    def _search(self, sosl: SoslQuery) -> list[RecordData]:
        terms = [t.strip().strip('"').lower() for t in re.split(r"\s+OR\s+", sosl.term) if t.strip()]
        numbers = [d for d in (re.sub(r"\D", "", t) for t in terms) if len(d) >= 3]
        out: list[RecordData] = []
        for returning in sosl.returning:
            sobject = self.sobject(returning.sobject)
            if sosl.scope == "PHONE":
                fields = sobject.phone_fields
            elif sosl.scope == "EMAIL":
                fields = sobject.email_fields
            elif sosl.scope == "NAME":
                fields = sobject.name_fields
            else:
                fields = tuple(
                    n
                    for n, kind in sobject.fields.items()
                    if kind in ("string", "email", "phone", "url", "textarea")
                )
            hits = []
            for record in self.live(sobject.name):
                if record["Id"] in self.unsearchable:
                    continue
                for name in fields:
                    value = record.get(name)
                    if value is None:
                        continue
                    if sosl.scope == "PHONE":
                        stored = re.sub(r"\D", "", _EXTENSION.split(str(value))[0])
                        if stored and any(stored.endswith(d) for d in numbers):
                            hits.append(record)
                            break
                    elif any(t in str(value).lower() for t in terms):
                        hits.append(record)
                        break
            query = Query(sobject.name, returning.fields, (), returning.where, (), returning.limit)
            out += self._run(query, False, hits)
        return out[: sosl.limit] if sosl.limit else out


def _canonical_key(mapping: dict[str, Any], name: str) -> str | None:
    return next((key for key in mapping if key.lower() == name.lower()), None)


def _attributes(object_name: str, record_id: str) -> dict[str, str]:
    return {"type": object_name, "url": f"/services/data/v59.0/sobjects/{object_name}/{record_id}"}


def _put(out: RecordData, path: str, value: Any) -> None:
    parts = path.split(".")
    if len(parts) == 1:
        out[parts[0]] = value
        return
    head = parts[0]
    nested = out.get(head)
    if not isinstance(nested, dict):
        nested = {"attributes": {"type": "Name"}}
        out[head] = nested
    _put(nested, ".".join(parts[1:]), value)


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _sort_key(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    return value


def _check_literal(path: str, kind: str | None, literal: Literal) -> None:
    if literal.kind == "null" or kind is None:
        return
    expected = {
        "datetime": "datetime",
        "date": "date",
        "boolean": "boolean",
        "int": "number",
        "double": "number",
        "currency": "number",
    }
    want = expected.get(kind)
    if want is None:
        if literal.kind != "string":
            raise OrgError(
                400,
                "INVALID_FIELD",
                f"value of filter criterion for field '{path}' must be of type string and should be enclosed in quotes",
            )
        return
    if literal.kind != want:
        raise OrgError(
            400,
            "INVALID_FIELD",
            f"value of filter criterion for field '{path}' must be of type {kind} and should not be enclosed in quotes",
        )


_Cache = dict[int, Any]


def _normal(kind: str, value: str | None) -> str | None:
    """A string value as `_equal` compares it: exact for ids and references, else case-folded."""
    if value is None or kind in ("id", "reference"):
        return value
    return value.lower()


def _literal_set(kind: str, literals: tuple[Literal, ...]) -> frozenset[str | None] | None:
    """An IN list of string literals as a set of `_normal` values; None when it holds other kinds."""
    if not all(literal.kind in ("string", "null") for literal in literals):
        return None
    return frozenset(
        None if literal.kind == "null" else _normal(kind, _unlike(str(literal.value))) for literal in literals
    )


def _equal(kind: str, value: Any, literal: Literal) -> bool:
    if literal.kind == "null" or value is None:
        return value is None and literal.kind == "null"
    if kind in ("id", "reference"):
        return str(value) == _unlike(str(literal.value))
    if isinstance(value, str):
        return value.lower() == _unlike(str(literal.value)).lower()
    if isinstance(value, dt.datetime) and isinstance(literal.value, dt.datetime):
        return value == literal.value
    return bool(value == literal.value)


def _compare(kind: str, value: Any, op: str, literal: Literal) -> bool:
    if op == "=":
        return _equal(kind, value, literal)
    if op == "!=":
        return not _equal(kind, value, literal)
    if op == "LIKE":
        return value is not None and _like(str(literal.value), str(value))
    if value is None or literal.value is None:
        return False
    left: Any = value.lower() if isinstance(value, str) else value
    right: Any = literal.value.lower() if isinstance(literal.value, str) else literal.value
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)
