"""Reading scenario-v1 documents into model values, with errors that name the field.

The reader is strict where the contract is (types, enums, dates with offsets,
known time zones and regions) and lenient where it says so (unknown keys,
missing policy keys, absent lists).
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypeVar

import phonenumbers

from worker.model import (
    LOCKABLE_FIELDS,
    Account,
    Activity,
    ActivityType,
    Call,
    CallKind,
    Contact,
    ContactRole,
    CrmSlice,
    Direction,
    Lead,
    Opportunity,
    OwnerMode,
    Person,
    Policy,
    Previous,
    Scenario,
    Strategy,
    User,
    Windows,
)
from worker.normalize import norm_domain

SUPPORTED_VERSION = 1
CRM_KINDS = ("salesforce", "hubspot", "generic")

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")


class ScenarioError(ValueError):
    """A document that is not a valid scenario; `path` is the offending field (`call.started_at`)."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


class _Obj:
    """A JSON object with its path, so every error names the field."""

    def __init__(self, value: object, path: str):
        if not isinstance(value, dict):
            raise ScenarioError(path or "(document)", f"expected an object, got {_type_name(value)}")
        self.data: Mapping[str, Any] = value
        self.path = path

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def obj(self, key: str, required: bool = False) -> _Obj | None:
        if not self.has(key):
            if required:
                raise ScenarioError(self.at(key), "missing")
            return None
        return _Obj(self.data[key], self.at(key))

    def str_(self, key: str, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise ScenarioError(self.at(key), "missing")
            return None
        if not isinstance(value, str):
            raise ScenarioError(self.at(key), f"expected a string, got {_type_name(value)}")
        if required and not value.strip():
            raise ScenarioError(self.at(key), "must not be empty")
        return value

    def id_(self, key: str = "id") -> str:
        value = self.str_(key, required=True)
        assert value is not None
        return value

    def bool_(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ScenarioError(self.at(key), f"expected true or false, got {_type_name(value)}")
        return value

    def int_(self, key: str, default: int, minimum: int = 0, maximum: int = 36500) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(self.at(key), f"expected a whole number, got {_type_name(value)}")
        if not minimum <= value <= maximum:
            raise ScenarioError(self.at(key), f"must be between {minimum} and {maximum}, got {value}")
        return value

    def enum(self, key: str, kind: type[E], default: E) -> E:
        value = self.str_(key)
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise ScenarioError(
                self.at(key), f"unknown value {value!r} (expected one of: {allowed})"
            ) from None

    def datetime(self, key: str, required: bool = False) -> dt.datetime | None:
        value = self.str_(key, required=required)
        if value is None:
            return None
        return parse_datetime(value, self.at(key))

    def date(self, key: str) -> dt.date | None:
        value = self.str_(key)
        if value is None:
            return None
        try:
            if len(value) != 10:
                raise ValueError(value)
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ScenarioError(self.at(key), "not a YYYY-MM-DD date") from None

    def list_(self, key: str) -> list[tuple[object, str]]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ScenarioError(self.at(key), f"expected a list, got {_type_name(value)}")
        return [(item, _join(self.at(key), index)) for index, item in enumerate(value)]

    def strs(self, key: str) -> tuple[str, ...]:
        out = []
        for item, path in self.list_(key):
            if not isinstance(item, str):
                raise ScenarioError(path, f"expected a string, got {_type_name(item)}")
            out.append(item)
        return tuple(out)

    def objs(self, key: str, read: Callable[[_Obj], T]) -> tuple[T, ...]:
        return tuple(read(_Obj(item, path)) for item, path in self.list_(key))


def parse_datetime(value: str, path: str) -> dt.datetime:
    """ISO-8601 with an offset, returned in UTC; a naive time is refused, not guessed."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ScenarioError(path, "not an ISO-8601 date-time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ScenarioError(path, "not an ISO-8601 date-time with an offset (add Z or +hh:mm)")
    return parsed.astimezone(dt.UTC)


@lru_cache(maxsize=512)
def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _policy(obj: _Obj | None) -> Policy:
    if obj is None:
        return Policy()
    base = Policy()
    crm = obj.str_("crm") or base.crm
    if crm not in CRM_KINDS:
        raise ScenarioError(obj.at("crm"), f"unknown value {crm!r} (expected one of: {', '.join(CRM_KINDS)})")
    region = (obj.str_("default_region") or base.default_region).strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ScenarioError(
            obj.at("default_region"), f"unknown region {region!r} (an ISO 3166 code such as US, FR)"
        )
    timezone = obj.str_("timezone") or base.timezone
    if not _known_zone(timezone):
        raise ScenarioError(
            obj.at("timezone"), f"unknown time zone {timezone!r} (an IANA name such as Europe/Paris)"
        )
    free_mail = (
        tuple(sorted({norm_domain(d) for d in obj.strs("free_mail_domains")}))
        if obj.data.get("free_mail_domains") is not None
        else base.free_mail_domains
    )
    windows_obj = obj.obj("windows")
    windows = base.windows
    if windows_obj is not None:
        windows = Windows(
            created_after_days=windows_obj.int_("created_after_days", windows.created_after_days),
            closed_before_days=windows_obj.int_("closed_before_days", windows.closed_before_days),
            closed_before_max_days=windows_obj.int_("closed_before_max_days", windows.closed_before_max_days),
        )
        if windows.closed_before_max_days < windows.closed_before_days:
            raise ScenarioError(
                windows_obj.at("closed_before_max_days"),
                f"must be at least closed_before_days ({windows.closed_before_days})",
            )
    return Policy(
        crm=crm,
        default_region=region,
        timezone=timezone,
        use_existing_activity=obj.bool_("use_existing_activity", base.use_existing_activity),
        match_by_domain=obj.bool_("match_by_domain", base.match_by_domain),
        free_mail_domains=free_mail,
        opportunity_strategy=obj.enum("opportunity_strategy", Strategy, base.opportunity_strategy),
        owner=obj.enum("owner", OwnerMode, base.owner),
        use_contact_roles=obj.bool_("use_contact_roles", base.use_contact_roles),
        activity_match_minutes=obj.int_("activity_match_minutes", base.activity_match_minutes, maximum=10080),
        windows=windows,
    )


def _person(obj: _Obj) -> Person:
    return Person(email=obj.str_("email"), phone=obj.str_("phone"), name=obj.str_("name"))


def _call(obj: _Obj) -> Call:
    started_at = obj.datetime("started_at", required=True)
    assert started_at is not None
    organizer = obj.obj("organizer")
    return Call(
        id=obj.id_("id"),
        kind=obj.enum("kind", CallKind, CallKind.CALL),
        started_at=started_at,
        ended_at=obj.datetime("ended_at"),
        organizer=_person(organizer) if organizer else Person(),
        participants=obj.objs("participants", _person),
        direction=obj.enum("direction", Direction, Direction.INBOUND) if obj.has("direction") else None,
        title=obj.str_("title"),
    )


def _user(obj: _Obj) -> User:
    return User(id=obj.id_(), email=obj.str_("email"))


def _account(obj: _Obj) -> Account:
    return Account(
        id=obj.id_(), name=obj.str_("name"), domains=tuple(norm_domain(d) for d in obj.strs("domains"))
    )


def _contact(obj: _Obj) -> Contact:
    return Contact(
        id=obj.id_(),
        email=obj.str_("email"),
        emails=obj.strs("emails"),
        phones=obj.strs("phones"),
        account_ids=obj.strs("account_ids"),
    )


def _lead(obj: _Obj) -> Lead:
    return Lead(id=obj.id_(), email=obj.str_("email"), emails=obj.strs("emails"), phones=obj.strs("phones"))


def _role(obj: _Obj) -> ContactRole:
    return ContactRole(id=obj.id_(), is_primary=obj.bool_("is_primary", False))


def _opportunity(obj: _Obj) -> Opportunity:
    created_at = obj.datetime("created_at", required=True)
    assert created_at is not None
    return Opportunity(
        id=obj.id_(),
        account_id=obj.str_("account_id"),
        owner_id=obj.str_("owner_id"),
        is_closed=obj.bool_("is_closed", False),
        is_won=obj.bool_("is_won", False),
        created_at=created_at,
        updated_at=obj.datetime("updated_at") or created_at,
        close_date=obj.date("close_date"),
        contacts=obj.objs("contacts", _role),
    )


def _activity(obj: _Obj) -> Activity:
    return Activity(
        id=obj.id_(),
        type=obj.enum("type", ActivityType, ActivityType.TASK),
        call_id=obj.str_("call_id"),
        start=obj.datetime("start"),
        attendee_emails=obj.strs("attendee_emails"),
        contact_ids=obj.strs("contact_ids"),
        account_id=obj.str_("account_id"),
        opportunity_id=obj.str_("opportunity_id"),
        written_by_us=obj.bool_("written_by_us", False),
    )


def _unique(records: Sequence[Any], path: str) -> None:
    seen: set[str] = set()
    for index, record in enumerate(records):
        if record.id in seen:
            raise ScenarioError(f"{path}[{index}].id", f"duplicate id {record.id!r}")
        seen.add(record.id)


def _crm(obj: _Obj | None) -> CrmSlice:
    if obj is None:
        return CrmSlice()
    crm = CrmSlice(
        users=obj.objs("users", _user),
        accounts=obj.objs("accounts", _account),
        contacts=obj.objs("contacts", _contact),
        leads=obj.objs("leads", _lead),
        opportunities=obj.objs("opportunities", _opportunity),
        activities=obj.objs("activities", _activity),
    )
    for name in ("users", "accounts", "contacts", "leads", "opportunities", "activities"):
        _unique(getattr(crm, name), obj.at(name))
    return crm


def _previous(obj: _Obj | None) -> Previous | None:
    if obj is None:
        return None
    locked = obj.strs("locked")
    for index, name in enumerate(locked):
        if name not in LOCKABLE_FIELDS:
            raise ScenarioError(
                f"{obj.at('locked')}[{index}]",
                f"unknown value {name!r} (expected any of: {', '.join(LOCKABLE_FIELDS)})",
            )
    return Previous(
        contact_ids=obj.strs("contact_ids"),
        lead_ids=obj.strs("lead_ids"),
        account_id=obj.str_("account_id"),
        opportunity_id=obj.str_("opportunity_id"),
        locked=frozenset(locked),
    )


def parse_policy(document: object, path: str = "policy") -> Policy:
    """A scenario-v1 `policy` object alone (as tenants configure it); errors name `policy.<field>`."""
    return _policy(_Obj(document, path))


def parse_scenario(document: object) -> Scenario:
    """A decoded JSON document -> Scenario, or ScenarioError naming the first bad field."""
    root = _Obj(document, "")
    version = root.data.get("version")
    if version is not None and (isinstance(version, bool) or version != SUPPORTED_VERSION):
        raise ScenarioError(
            "version", f"unsupported version {version!r} (this is scenario v{SUPPORTED_VERSION})"
        )
    call = root.obj("call", required=True)
    assert call is not None
    return Scenario(
        policy=_policy(root.obj("policy")),
        call=_call(call),
        crm=_crm(root.obj("crm")),
        previous=_previous(root.obj("previous")),
    )


def loads_scenario(text: str | bytes) -> Scenario:
    try:
        document = json.loads(text)
    except UnicodeDecodeError:
        raise ScenarioError("(document)", "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            "(document)", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return parse_scenario(document)
