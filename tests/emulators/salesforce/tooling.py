"""The Salesforce Tooling API's CustomField, the identity endpoints and /limits, as `setup` and `doctor` use them.

A field created through the Tooling API exists at once but no one sees it: Salesforce
gives a new field no field-level security, so until FieldPermissions on a permission
set assigned to the API user grant it, the Data API answers INVALID_FIELD and the
describe leaves it out (simple-salesforce issue #621 shows exactly that). Creating a
field twice answers DUPLICATE_DEVELOPER_NAME ("There is already a field named ...").
Without "Customize Application" every write here is refused.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tests.emulators.salesforce.org import (
    API_USER_ID,
    API_USERNAME,
    ORG_ID,
    FieldInfo,
    Org,
    OrgError,
    SObjectType,
    custom_field_info,
    tooling_metadata,
)
from tests.emulators.salesforce.profile import ACTIVITY, CALL_ID_FIELD, objects_of

if TYPE_CHECKING:
    from tests.emulators.salesforce.server import SalesforceEmulator

CUSTOM_FIELD_PREFIX = "00N"
_FIELD_OBJECTS = (ACTIVITY, "Account", "Contact", "Lead", "Opportunity")
"""Objects a custom field may be created on here (Task and Event fields are created on Activity)."""
_NAME = re.compile(r"^[A-Za-z](?:[A-Za-z0-9]|_(?!_))*__c$")
_METADATA_TYPES = ("Text", "Email", "TextArea", "LongTextArea")


def limits(emulator: SalesforceEmulator) -> dict[str, Any]:
    """GET /limits: the org's daily API budget (and a few neighbours, as the real resource lists many)."""
    used = emulator.stats.api_calls
    return {
        "DailyApiRequests": {"Max": emulator.daily_limit, "Remaining": max(0, emulator.daily_limit - used)},
        "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "FileStorageMB": {"Max": 20, "Remaining": 20},
    }


def userinfo(emulator: SalesforceEmulator, *, identity: bool = False) -> dict[str, Any]:
    """The API user as /services/oauth2/userinfo (OpenID Connect keys) or its identity URL answers."""
    org = emulator.org
    user = org.get(API_USER_ID) or {}
    base = emulator.instance_url
    urls = {
        "enterprise": f"{base}/services/Soap/c/{{version}}/{ORG_ID[:15]}",
        "metadata": f"{base}/services/Soap/m/{{version}}/{ORG_ID[:15]}",
        "partner": f"{base}/services/Soap/u/{{version}}/{ORG_ID[:15]}",
        "rest": f"{base}/services/data/v{{version}}/",
        "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
        "search": f"{base}/services/data/v{{version}}/search/",
        "query": f"{base}/services/data/v{{version}}/query/",
        "tooling_rest": f"{base}/services/data/v{{version}}/tooling/",
        "profile": f"{base}/{API_USER_ID}",
    }
    email = str(user.get("Email") or API_USERNAME)
    if identity:
        return {
            "id": f"{base}/id/{ORG_ID}/{API_USER_ID}",
            "asserted_user": True,
            "user_id": API_USER_ID,
            "organization_id": ORG_ID,
            "username": str(user.get("Username") or API_USERNAME),
            "nick_name": "integration",
            "display_name": str(user.get("Name") or ""),
            "email": email,
            "email_verified": True,
            "first_name": user.get("FirstName"),
            "last_name": user.get("LastName"),
            "timezone": "Europe/Paris",
            "active": bool(user.get("IsActive", True)),
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 3600000,
            "urls": urls,
        }
    return {
        "sub": f"{base}/id/{ORG_ID}/{API_USER_ID}",
        "user_id": API_USER_ID,
        "organization_id": ORG_ID,
        "preferred_username": str(user.get("Username") or API_USERNAME),
        "nickname": "integration",
        "name": str(user.get("Name") or ""),
        "email": email,
        "email_verified": True,
        "given_name": user.get("FirstName"),
        "family_name": user.get("LastName"),
        "zoneinfo": "Europe/Paris",
        "profile": f"{base}/{API_USER_ID}",
        "is_salesforce_integration_user": False,
        "active": bool(user.get("IsActive", True)),
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 3600000,
        "urls": urls,
    }


# --- Tooling API ---------------------------------------------------------------------------------------


def _custom_field_type() -> SObjectType:
    names = {
        "Id": "id",
        "DeveloperName": "string",
        "TableEnumOrId": "string",
        "NamespacePrefix": "string",
        "FullName": "string",
        "Metadata": "metadata",
        "CreatedDate": "datetime",
        "LastModifiedDate": "datetime",
        "SystemModstamp": "datetime",
        "IsDeleted": "boolean",
    }
    info = {name: FieldInfo(kind, filterable=kind != "metadata") for name, kind in names.items()}
    return SObjectType("CustomField", CUSTOM_FIELD_PREFIX, names, info=info)


def _field_id(org: Org, full_name: str) -> str:
    """A custom field's Id, stable for the org's life."""
    known = org.custom_ids.get(full_name)
    if known is None:
        known = f"{CUSTOM_FIELD_PREFIX}{len(org.custom_ids):012d}AAA"
        org.custom_ids[full_name] = known
    return known


def _info(org: Org, full_name: str) -> FieldInfo:
    obj = objects_of(full_name)[0]
    name = full_name.partition(".")[2]
    stored = org.stored.get(obj)
    canonical = stored.canonical(name) if stored else None
    if stored is not None and canonical is not None:
        return stored.field_info(canonical)
    return custom_field_info(name, org.custom_meta.get(full_name))


def _rows(org: Org) -> list[dict[str, Any]]:
    rows = []
    for full_name in sorted(org.profile.custom_fields):
        obj, _, name = full_name.partition(".")
        rows.append(
            {
                "Id": _field_id(org, full_name),
                "DeveloperName": name.removesuffix("__c"),
                "TableEnumOrId": obj,
                "NamespacePrefix": None,
                "FullName": full_name,
                "Metadata": tooling_metadata(_info(org, full_name)),
                "IsDeleted": False,
            }
        )
    return rows


def _tooling_org(org: Org) -> Org:
    """A throw-away org holding the CustomField rows, so tooling SOQL runs through the same engine."""
    store = Org({"CustomField": _custom_field_type()}, now=org.now)
    for row in _rows(org):
        store.insert("CustomField", row)
    return store


def tooling(
    emulator: SalesforceEmulator, method: str, parts: list[str], params: dict[str, list[str]], payload: Any
) -> tuple[int, Any]:
    """/tooling/query and /tooling/sobjects/CustomField[/{id}]."""
    org = emulator.org
    with org.lock:
        if parts[0] == "query" and method == "GET":
            return 200, _query(org, (params.get("q") or [""])[0])
        if parts[0] != "sobjects" or len(parts) < 2:
            raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
        if parts[1] != "CustomField":
            raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(parts) == 2 and method == "POST":
            return 201, _create(org, payload)
        if len(parts) == 3:
            full_name = next((n for n, i in org.custom_ids.items() if i == parts[2]), None)
            if full_name is None or full_name not in org.profile.custom_fields:
                raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
            if method == "GET":
                row = next(r for r in _rows(org) if r["FullName"] == full_name)
                return 200, {"attributes": _attributes(str(row["Id"])), **row}
            if method == "PATCH":
                _update(org, full_name, payload)
                return 204, None
        raise OrgError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed")


def _attributes(record_id: str) -> dict[str, str]:
    return {"type": "CustomField", "url": f"/services/data/v59.0/tooling/sobjects/CustomField/{record_id}"}


def _query(org: Org, text: str) -> dict[str, Any]:
    if not text:
        raise OrgError(400, "MALFORMED_QUERY", "q parameter is required")
    store = _tooling_org(org)
    rows = store.query(text)
    if len(rows) > 1 and re.search(r"\b(FullName|Metadata)\b", text.split(" FROM ", 1)[0], re.IGNORECASE):
        raise OrgError(
            400,
            "MALFORMED_QUERY",
            "When retrieving results with Metadata or FullName fields, the query qualificatio ns must "
            f"specify no more than one row for retrieval. Result size: {len(rows)}",
        )
    for row in rows:
        row["attributes"] = _attributes(str(row["Id"]))
    return {
        "size": len(rows),
        "totalSize": len(rows),
        "done": True,
        "queryLocator": None,
        "entityTypeName": "CustomField",
        "records": rows,
    }


def _refuse_without_customize(org: Org) -> None:
    if not org.profile.customize_application:
        raise OrgError(
            400,
            "INSUFFICIENT_ACCESS_OR_READONLY",
            "insufficient access rights on object id",
        )


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise OrgError(400, "JSON_PARSER_ERROR", "Metadata is required")
    kind = metadata.get("type")
    if kind not in _METADATA_TYPES:
        raise OrgError(400, "FIELD_INTEGRITY_EXCEPTION", f"Field type: bad value for field type: {kind}")
    if not metadata.get("label"):
        raise OrgError(
            400,
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Label]",
        )
    if kind in ("Text", "TextArea") and not 1 <= int(metadata.get("length") or 0) <= 255:
        raise OrgError(400, "FIELD_INTEGRITY_EXCEPTION", "Length: value must be between 1 and 255")
    return dict(metadata)


def _create(org: Org, payload: Any) -> dict[str, Any]:
    _refuse_without_customize(org)
    if not isinstance(payload, dict):
        raise OrgError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    full_name = str(payload.get("FullName") or "")
    obj, _, name = full_name.partition(".")
    if obj not in _FIELD_OBJECTS or not _NAME.match(name):
        raise OrgError(400, "FIELD_INTEGRITY_EXCEPTION", f"Invalid custom field full name: {full_name}")
    metadata = _check_metadata(payload.get("Metadata"))
    developer = name.removesuffix("__c")
    if any(org.profile.has_field(target, name) for target in objects_of(full_name)):
        raise OrgError(
            400,
            "DUPLICATE_DEVELOPER_NAME",
            f"There is already a field named {developer} on {obj}.",
        )
    org.custom_meta[full_name] = metadata
    profile = org.profile
    org.set_profile(
        replace(
            profile,
            custom_fields=profile.custom_fields | {full_name},
            hidden_fields=profile.hidden_fields | {full_name},  # no field-level security for anyone yet
            external_id_unique=bool(metadata.get("unique"))
            if full_name == CALL_ID_FIELD
            else profile.external_id_unique,
        )
    )
    return {"id": _field_id(org, full_name), "success": True, "errors": [], "warnings": [], "infos": []}


def _update(org: Org, full_name: str, payload: Any) -> None:
    """PATCH Metadata (merged over the current one): making a field External ID or Unique, say."""
    _refuse_without_customize(org)
    if not isinstance(payload, dict) or not isinstance(payload.get("Metadata"), dict):
        raise OrgError(400, "JSON_PARSER_ERROR", "Metadata is required")
    current = tooling_metadata(_info(org, full_name))
    metadata = _check_metadata({**current, **payload["Metadata"]})
    name = full_name.partition(".")[2]
    if metadata.get("unique") and not current.get("unique"):
        for obj in objects_of(full_name):
            seen: set[str] = set()
            for row in org.live(obj):
                value = row.get(name)
                if not isinstance(value, str):
                    continue
                key = value if metadata.get("caseSensitive") else value.lower()
                if key in seen:
                    raise OrgError(
                        400,
                        "DUPLICATE_VALUE",
                        f"Cannot make {name} unique: duplicate values exist on {obj}",
                    )
                seen.add(key)
    org.custom_meta[full_name] = metadata
    profile = org.profile
    org.set_profile(
        replace(
            profile,
            external_id_unique=bool(metadata.get("unique"))
            if full_name == CALL_ID_FIELD
            else profile.external_id_unique,
        )
    )
