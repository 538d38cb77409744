"""HubSpot's default properties and property groups per object type, as the properties API lists them.

A subset of what a new portal has (HubSpot's "default properties" pages for contacts,
companies, deals, calls, meetings and notes): every property the emulator's seed or a
client of it touches, plus a few common ones so a listing looks like a portal's. A
property definition has the v3 `Property` shape (name, label, type, fieldType,
groupName, hasUniqueValue, calculated, hubspotDefined, modificationMetadata, ...).
"""

from __future__ import annotations

from typing import Any

DEFINED_AT = "2019-08-06T02:41:08.570Z"
"""`createdAt`/`updatedAt` of HubSpot-defined properties and groups (the same in every portal)."""

OBJECT_TYPES = ("contacts", "companies", "deals", "calls", "meetings", "notes")

# (name, label, type, fieldType, group, flags); flags: c = calculated, r = read-only value, u = unique
_S, _T = "string", "text"
_DEFAULTS: dict[str, list[tuple[str, str, str, str, str, str]]] = {
    "contacts": [
        ("email", "Email", _S, _T, "contactinformation", "u"),
        ("firstname", "First Name", _S, _T, "contactinformation", ""),
        ("lastname", "Last Name", _S, _T, "contactinformation", ""),
        ("phone", "Phone Number", _S, "phonenumber", "contactinformation", ""),
        ("mobilephone", "Mobile Phone Number", _S, "phonenumber", "contactinformation", ""),
        ("company", "Company Name", _S, _T, "contactinformation", ""),
        (
            "hs_additional_emails",
            "Additional email addresses",
            "enumeration",
            "checkbox",
            "contactinformation",
            "r",
        ),
        ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation", ""),
        ("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties", ""),
        ("hubspot_owner_id", "Contact owner", "enumeration", "select", "contactinformation", ""),
        (
            "associatedcompanyid",
            "Primary Associated Company ID",
            "number",
            "number",
            "contactinformation",
            "",
        ),
        (
            "hs_searchable_calculated_phone_number",
            "Phone Number (Searchable)",
            _S,
            _T,
            "contactinformation",
            "cr",
        ),
        (
            "hs_searchable_calculated_mobile_number",
            "Mobile Phone Number (Searchable)",
            _S,
            _T,
            "contactinformation",
            "cr",
        ),
        ("createdate", "Create Date", "datetime", "date", "contactinformation", "r"),
        ("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", "r"),
        (
            "hs_lastmodifieddate",
            "Object last modified date/time",
            "datetime",
            "date",
            "contactinformation",
            "r",
        ),
        ("hs_object_id", "Record ID", "number", "number", "contactinformation", "ru"),
    ],
    "companies": [
        ("name", "Company name", _S, _T, "companyinformation", ""),
        ("domain", "Company Domain Name", _S, _T, "companyinformation", ""),
        ("hs_additional_domains", "Additional Domains", _S, "textarea", "companyinformation", "r"),
        ("website", "Website URL", _S, _T, "companyinformation", ""),
        ("phone", "Phone Number", _S, "phonenumber", "companyinformation", ""),
        ("city", "City", _S, _T, "companyinformation", ""),
        ("industry", "Industry", "enumeration", "select", "companyinformation", ""),
        ("type", "Type", "enumeration", "select", "companyinformation", ""),
        ("hubspot_owner_id", "Company owner", "enumeration", "select", "companyinformation", ""),
        ("createdate", "Create Date", "datetime", "date", "companyinformation", "r"),
        ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "companyinformation", "r"),
        ("hs_object_id", "Record ID", "number", "number", "companyinformation", "ru"),
    ],
    "deals": [
        ("dealname", "Deal Name", _S, _T, "dealinformation", ""),
        ("amount", "Amount", "number", "number", "dealinformation", ""),
        ("pipeline", "Pipeline", "enumeration", "select", "dealinformation", ""),
        ("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation", ""),
        ("closedate", "Close Date", "datetime", "date", "dealinformation", ""),
        ("hubspot_owner_id", "Deal owner", "enumeration", "select", "dealinformation", ""),
        ("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", "dealinformation", "cr"),
        ("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", "dealinformation", "cr"),
        ("createdate", "Create Date", "datetime", "date", "dealinformation", "r"),
        ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "dealinformation", "r"),
        ("hs_object_id", "Record ID", "number", "number", "dealinformation", "ru"),
    ],
    "calls": [
        ("hs_timestamp", "Activity date", "datetime", "date", "call", ""),
        ("hs_call_title", "Call Title", _S, _T, "call", ""),
        ("hs_call_body", "Call notes", _S, "html", "call", ""),
        ("hs_call_status", "Call status", "enumeration", "select", "call", ""),
        ("hs_call_direction", "Call direction", "enumeration", "select", "call", ""),
        ("hs_call_duration", "Call duration", "number", "number", "call", ""),
        ("hs_call_from_number", "From number", _S, _T, "call", ""),
        ("hs_call_to_number", "To number", _S, _T, "call", ""),
        ("hs_call_disposition", "Call outcome", "enumeration", "select", "call", ""),
        ("hubspot_owner_id", "Activity assigned to", "enumeration", "select", "call", ""),
        ("hs_createdate", "Create date", "datetime", "date", "call", "r"),
        ("createdate", "Create Date", "datetime", "date", "call", "r"),
        ("hs_lastmodifieddate", "Last modified date", "datetime", "date", "call", "r"),
        ("hs_object_id", "Record ID", "number", "number", "call", "ru"),
        ("hs_all_owner_ids", "All owner IDs", "enumeration", "checkbox", "call", "r"),
        ("hs_user_ids_of_all_owners", "User IDs of all owners", "enumeration", "checkbox", "call", "r"),
        ("hubspot_owner_assigneddate", "Owner assigned date", "datetime", "date", "call", "r"),
        ("hs_obj_coords", "Object coordinates", _S, _T, "call", "r"),
        ("hs_object_source", "Record source", _S, _T, "call", "r"),
        ("hs_object_source_id", "Record source ID", _S, _T, "call", "r"),
        ("hs_object_source_label", "Record source label", _S, _T, "call", "r"),
    ],
    "meetings": [
        ("hs_timestamp", "Activity date", "datetime", "date", "meeting", ""),
        ("hs_meeting_title", "Meeting name", _S, _T, "meeting", ""),
        ("hs_meeting_body", "Meeting description", _S, "html", "meeting", ""),
        ("hs_internal_meeting_notes", "Internal notes", _S, "html", "meeting", ""),
        ("hs_meeting_start_time", "Start Time", "datetime", "date", "meeting", ""),
        ("hs_meeting_end_time", "End Time", "datetime", "date", "meeting", ""),
        ("hs_meeting_outcome", "Meeting outcome", "enumeration", "select", "meeting", ""),
        ("hs_meeting_location", "Location", _S, _T, "meeting", ""),
        ("hubspot_owner_id", "Activity assigned to", "enumeration", "select", "meeting", ""),
        ("hs_createdate", "Create date", "datetime", "date", "meeting", "r"),
        ("createdate", "Create Date", "datetime", "date", "meeting", "r"),
        ("hs_lastmodifieddate", "Last modified date", "datetime", "date", "meeting", "r"),
        ("hs_object_id", "Record ID", "number", "number", "meeting", "ru"),
        ("hs_all_owner_ids", "All owner IDs", "enumeration", "checkbox", "meeting", "r"),
        ("hs_user_ids_of_all_owners", "User IDs of all owners", "enumeration", "checkbox", "meeting", "r"),
        ("hubspot_owner_assigneddate", "Owner assigned date", "datetime", "date", "meeting", "r"),
        ("hs_obj_coords", "Object coordinates", _S, _T, "meeting", "r"),
        ("hs_object_source", "Record source", _S, _T, "meeting", "r"),
        ("hs_object_source_id", "Record source ID", _S, _T, "meeting", "r"),
        ("hs_object_source_label", "Record source label", _S, _T, "meeting", "r"),
    ],
    "notes": [
        ("hs_timestamp", "Activity date", "datetime", "date", "note", ""),
        ("hs_note_body", "Note body", _S, "html", "note", ""),
        ("hubspot_owner_id", "Activity assigned to", "enumeration", "select", "note", ""),
        ("hs_attachment_ids", "Attached file IDs", "enumeration", "checkbox", "note", ""),
        ("hs_createdate", "Create date", "datetime", "date", "note", "r"),
        ("hs_lastmodifieddate", "Last modified date", "datetime", "date", "note", "r"),
        ("hs_object_id", "Record ID", "number", "number", "note", "ru"),
        ("hs_all_owner_ids", "All owner IDs", "enumeration", "checkbox", "note", "r"),
        ("hs_user_ids_of_all_owners", "User IDs of all owners", "enumeration", "checkbox", "note", "r"),
        ("hubspot_owner_assigneddate", "Owner assigned date", "datetime", "date", "note", "r"),
        ("hs_obj_coords", "Object coordinates", _S, _T, "note", "r"),
        ("hs_object_source", "Record source", _S, _T, "note", "r"),
        ("hs_object_source_id", "Record source ID", _S, _T, "note", "r"),
        ("hs_object_source_label", "Record source label", _S, _T, "note", "r"),
        ("hs_body_preview", "Body preview", _S, _T, "note", "cr"),
        ("hs_body_preview_html", "Body preview html", _S, "html", "note", "cr"),
        ("hs_body_preview_is_truncated", "Body preview truncated", "bool", "booleancheckbox", "note", "cr"),
    ],
}

_GROUP_LABELS = {
    "contactinformation": "Contact information",
    "sales_properties": "Sales properties",
    "companyinformation": "Company information",
    "dealinformation": "Deal information",
    "call": "Call properties",
    "meeting": "Meeting properties",
    "note": "Note properties",
}

CUSTOM_DEFINITIONS: dict[str, tuple[str, str, str, str]] = {
    "callmatch_call_id": ("Callmatch call id", _S, _T, "The call this activity records (set by callmatch)."),
    "callmatch_written": ("Written by callmatch", "bool", "booleancheckbox", "Whether callmatch created it."),
    "callmatch_attendee_emails": ("Attendee emails", _S, "textarea", "Attendees' emails, separated by `;`."),
    "callmatch_other_phones": ("Other phones", _S, "textarea", "More phone numbers, separated by `;`."),
}
"""How `callmatch setup` defines each property (label, type, fieldType, description)."""


def _options(*values: str) -> list[dict[str, Any]]:
    return [
        {"label": v.replace("_", " ").capitalize(), "value": v, "displayOrder": i, "hidden": False}
        for i, v in enumerate(values)
    ]


DEFAULT_OPTIONS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("contacts", "lifecyclestage"): _options(
        "subscriber",
        "lead",
        "marketingqualifiedlead",
        "salesqualifiedlead",
        "opportunity",
        "customer",
        "evangelist",
        "other",
    ),
    ("contacts", "hs_lead_status"): _options(
        "NEW",
        "OPEN",
        "IN_PROGRESS",
        "OPEN_DEAL",
        "UNQUALIFIED",
        "ATTEMPTED_TO_CONTACT",
        "CONNECTED",
        "BAD_TIMING",
    ),
    ("companies", "type"): _options("PROSPECT", "PARTNER", "RESELLER", "VENDOR", "OTHER"),
    ("calls", "hs_call_status"): _options(
        "BUSY",
        "CALLING_CRM_USER",
        "CANCELED",
        "COMPLETED",
        "CONNECTING",
        "FAILED",
        "IN_PROGRESS",
        "NO_ANSWER",
        "QUEUED",
        "RINGING",
    ),
    ("calls", "hs_call_direction"): _options("INBOUND", "OUTBOUND"),
    ("meetings", "hs_meeting_outcome"): _options(
        "SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"
    ),
}
"""The options of HubSpot's default enumeration properties that values are checked against
(contacts' lifecycle stages and lead statuses; companies' type, whose options a portal's admin may
edit; the calls and meetings guides' status, direction and outcome values). A lead status is a
lead's sales sub-stage (HubSpot, "Use lifecycle stages"), never a conversion: HubSpot keeps one
record per person, whose lifecycle stage moves on."""

BOOL_OPTIONS = [
    {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
    {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
]


def definition(
    name: str,
    label: str,
    type_: str,
    field_type: str,
    group: str,
    *,
    hubspot_defined: bool,
    calculated: bool = False,
    read_only_value: bool = False,
    unique: bool = False,
    description: str = "",
    options: list[dict[str, Any]] | None = None,
    display_order: int = -1,
    created_at: str = DEFINED_AT,
) -> dict[str, Any]:
    """A v3 property definition as the properties API answers it."""
    out: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "description": description,
        "groupName": group,
        "options": options if options is not None else (BOOL_OPTIONS if type_ == "bool" else []),
        "displayOrder": display_order,
        "calculated": calculated,
        "externalOptions": False,
        "hasUniqueValue": unique,
        "hidden": False,
        "modificationMetadata": {
            "archivable": not hubspot_defined,
            "readOnlyDefinition": hubspot_defined,
            "readOnlyValue": read_only_value,
        },
        "formField": not hubspot_defined,
        "createdAt": created_at,
        "updatedAt": created_at,
        "archived": False,
    }
    if hubspot_defined:
        out["hubspotDefined"] = True
    return out


def default_properties(object_type: str) -> dict[str, dict[str, Any]]:
    """HubSpot's default properties of `object_type`, by name."""
    return {
        name: definition(
            name,
            label,
            type_,
            field_type,
            group,
            hubspot_defined=True,
            calculated="c" in flags,
            read_only_value="r" in flags,
            unique="u" in flags,
            options=DEFAULT_OPTIONS.get((object_type, name)),
            display_order=order,
        )
        for order, (name, label, type_, field_type, group, flags) in enumerate(_DEFAULTS[object_type])
    }


def group(name: str, label: str, display_order: int = -1) -> dict[str, Any]:
    """A v3 property group as the groups API answers it."""
    return {"name": name, "label": label, "displayOrder": display_order, "archived": False}


def default_groups(object_type: str) -> dict[str, dict[str, Any]]:
    """The property groups a new portal has for `object_type`."""
    names = dict.fromkeys(row[4] for row in _DEFAULTS[object_type])
    return {name: group(name, _GROUP_LABELS[name], order) for order, name in enumerate(names)}


def custom_definition(object_type: str, name: str, *, unique: bool, group_name: str) -> dict[str, Any]:
    """The definition of a callmatch property as `callmatch setup` creates it."""
    label, type_, field_type, description = CUSTOM_DEFINITIONS.get(
        name, (name.replace("_", " ").capitalize(), _S, _T, "")
    )
    return definition(
        name,
        label,
        type_,
        field_type,
        group_name,
        hubspot_defined=False,
        unique=unique,
        description=description,
    )


def invalid_value(spec: dict[str, Any], value: str) -> tuple[str, str] | None:
    """(error code, message) when HubSpot would refuse `value` for the property `spec`, as its
    validation results name them (`INVALID_OPTION`, `INVALID_LONG`, `INVALID_FLOAT`); None when
    it is accepted. An empty value clears the property and is always accepted."""
    if value == "":
        return None
    type_ = spec.get("type")
    options = [str(o["value"]) for o in spec.get("options") or []]
    if type_ in ("enumeration", "bool") and options:
        given = value.split(";") if spec.get("fieldType") == "checkbox" else [value]
        bad = [v for v in given if v not in options]
        if bad:
            return "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{', '.join(options)}]"
    if type_ == "number":
        try:
            float(value)
        except ValueError:
            return "INVALID_FLOAT", f"{value} was not a valid number."
    return None
