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
from dataclasses import dataclass, field
from typing import Any

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
    _lower: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def canonical(self, name: str) -> str | None:
        """The field's own spelling; a dict look-up, since every record of every query asks."""
        if len(self._lower) != len(self.fields):
            self._lower = {known.lower(): known for known in self.fields}
        return self._lower.get(name.lower())


_SYSTEM = {"Id": "id", "CreatedDate": "datetime", "LastModifiedDate": "datetime", "IsDeleted": "boolean"}


def _object(name: str, prefix: str, fields: dict[str, str], **kwargs: Any) -> SObjectType:
    return SObjectType(name, prefix, {**_SYSTEM, **fields}, **kwargs)


def default_schema(
    extra_email_fields: tuple[str, ...] = ("Secondary_Email__c", "Other_Email__c"),
    account_domain_field: str = "Domains__c",
    call_id_fields: tuple[str, ...] = ("CallObject", "Call_Id__c"),
    external_id_field: str = "Callmatch_Call_Id__c",
    attendee_field: str = "Attendee_Emails__c",
) -> dict[str, SObjectType]:
    """The objects and fields of the emulated org (custom fields named by the adapter's settings)."""
    emails = {name: "email" for name in extra_email_fields}
    owner = {"OwnerId": Reference("Owner", ("User",))}
    activity_fields = {
        "Subject": "string",
        "WhoId": "reference",
        "WhatId": "reference",
        "OwnerId": "reference",
        "Description": "textarea",
        external_id_field: "string",
        **{name: "string" for name in call_id_fields},
    }
    activity_refs = {
        "WhoId": Reference("Who", ("Contact", "Lead")),
        "WhatId": Reference("What", ("Account", "Opportunity")),
        **owner,
    }
    types = [
        _object(
            "User",
            "005",
            {"Email": "email", "Username": "string", "Name": "string", "IsActive": "boolean"},
            email_fields=("Email",),
            name_fields=("Name",),
        ),
        _object(
            "Account",
            "001",
            {"Name": "string", "Website": "url", account_domain_field: "textarea", "OwnerId": "reference"},
            references=dict(owner),
            children={
                "Contacts": ("Contact", "AccountId"),
                "Opportunities": ("Opportunity", "AccountId"),
                "AccountContactRelations": ("AccountContactRelation", "AccountId"),
            },
            name_fields=("Name",),
        ),
        _object(
            "Contact",
            "003",
            {
                "FirstName": "string",
                "LastName": "string",
                "Name": "string",
                "Email": "email",
                **emails,
                "Phone": "phone",
                "MobilePhone": "phone",
                "HomePhone": "phone",
                "OtherPhone": "phone",
                "AccountId": "reference",
                "OwnerId": "reference",
            },
            references={"AccountId": Reference("Account", ("Account",)), **owner},
            children={
                "AccountContactRelations": ("AccountContactRelation", "ContactId"),
                "OpportunityContactRoles": ("OpportunityContactRole", "ContactId"),
            },
            phone_fields=("Phone", "MobilePhone", "HomePhone", "OtherPhone"),
            email_fields=("Email", *extra_email_fields),
            name_fields=("FirstName", "LastName", "Name"),
        ),
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
                **emails,
                "Phone": "phone",
                "MobilePhone": "phone",
                "IsConverted": "boolean",
                "OwnerId": "reference",
            },
            references=dict(owner),
            phone_fields=("Phone", "MobilePhone"),
            email_fields=("Email", *extra_email_fields),
            name_fields=("FirstName", "LastName", "Name", "Company"),
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
            children={"OpportunityContactRoles": ("OpportunityContactRole", "OpportunityId")},
            name_fields=("Name",),
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
                "ActivityDate": "date",
            },
            references=dict(activity_refs),
            children={"TaskRelations": ("TaskRelation", "TaskId")},
            external_ids=(external_id_field,),
        ),
        _object(
            "TaskRelation",
            "0RT",
            {"TaskId": "reference", "RelationId": "reference", "IsWhat": "boolean"},
            references={
                "TaskId": Reference("Task", ("Task",)),
                "RelationId": Reference("Relation", ("Contact", "Lead", "Account", "Opportunity")),
            },
        ),
        _object(
            "Event",
            "00U",
            {
                **activity_fields,
                "StartDateTime": "datetime",
                "EndDateTime": "datetime",
                "DurationInMinutes": "int",
                attendee_field: "textarea",
            },
            references=dict(activity_refs),
            children={"EventRelations": ("EventRelation", "EventId")},
            external_ids=(external_id_field,),
        ),
        _object(
            "EventRelation",
            "0RE",
            {
                "EventId": "reference",
                "RelationId": "reference",
                "IsWhat": "boolean",
                "IsParent": "boolean",
                "IsInvitee": "boolean",
                "Status": "string",
            },
            references={
                "EventId": Reference("Event", ("Event",)),
                "RelationId": Reference("Relation", ("Contact", "Lead", "User", "Account", "Opportunity")),
            },
        ),
    ]
    return {t.name: t for t in types}


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
    """Records by object and id, with a clock and a lock: the emulator's whole state."""

    def __init__(self, schema: dict[str, SObjectType] | None = None, now: dt.datetime | None = None):
        self.schema = schema or default_schema()
        self.records: dict[str, dict[str, RecordData]] = {name: {} for name in self.schema}
        self.object_of: dict[str, str] = {}
        self.lock = threading.RLock()
        self.now = now
        self.unsearchable: set[str] = set()
        self._counter = itertools.count(1)
        self.semi_join_runs = 0
        self._types: dict[tuple[str, str], str | None] = {}
        self._refs: dict[tuple[str, str], str | None] = {}
        self._checked: set[tuple[str, str]] = set()

    def clock(self) -> dt.datetime:
        return self.now or dt.datetime.now(dt.UTC).replace(microsecond=0)

    def sobject(self, name: str) -> SObjectType:
        for known, sobject in self.schema.items():
            if known.lower() == name.lower():
                return sobject
        raise OrgError(400, "NOT_FOUND", f"sObject type '{name}' is not supported.")

    def new_id(self, sobject: SObjectType) -> str:
        return f"{sobject.key_prefix}{next(self._counter):012d}AAA"

    def insert(self, object_name: str, values: RecordData, *, searchable: bool = True) -> str:
        """Store a record (seeding or create); unknown fields are refused."""
        sobject = self.sobject(object_name)
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
            record_id = record.get("Id") or self.new_id(sobject)
            record["Id"] = record_id
            now = self.clock()
            if "CreatedDate" not in values:
                record["CreatedDate"] = now
            if "LastModifiedDate" not in values:
                record["LastModifiedDate"] = record["CreatedDate"] or now
            record["IsDeleted"] = False
            self.records[sobject.name][record_id] = record
            self.object_of[record_id] = sobject.name
            if not searchable:
                self.unsearchable.add(record_id)
            return str(record_id)

    def update(self, object_name: str, record_id: str, values: RecordData) -> None:
        sobject = self.sobject(object_name)
        with self.lock:
            record = self.records[sobject.name].get(record_id)
            if record is None or record["IsDeleted"]:
                raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
            for key, value in values.items():
                name = sobject.canonical(key)
                if name is None or name in _SYSTEM:
                    raise OrgError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{key}' on sobject of type {sobject.name}",
                        [key],
                    )
                record[name] = value
            record["LastModifiedDate"] = self.clock()

    def delete(self, object_name: str, record_id: str) -> None:
        sobject = self.sobject(object_name)
        with self.lock:
            record = self.records[sobject.name].get(record_id)
            if record is None or record["IsDeleted"]:
                raise OrgError(404, "ENTITY_IS_DELETED", "entity is deleted")
            record["IsDeleted"] = True

    def get(self, record_id: str | None) -> RecordData | None:
        if record_id is None:
            return None
        name = self.object_of.get(record_id)
        return None if name is None else self.records[name].get(record_id)

    def live(self, object_name: str, include_deleted: bool = False) -> Iterable[RecordData]:
        rows = self.records[self.sobject(object_name).name].values()
        return [r for r in rows if include_deleted or not r["IsDeleted"]]

    def find_by(self, object_name: str, field_name: str, value: str) -> list[RecordData]:
        sobject = self.sobject(object_name)
        name = sobject.canonical(field_name)
        if name is None:
            raise OrgError(400, "INVALID_FIELD", f"No such column '{field_name}' on {sobject.name}")
        return [r for r in self.live(sobject.name) if r.get(name) == value]

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
            current_type = self.schema[self.object_of[str(target["Id"])]] if target else None
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
                        if stored and any(stored.endswith(d) or d.endswith(stored) for d in numbers):
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
