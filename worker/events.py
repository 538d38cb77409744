"""The "call ended" event: what ingestion knows about a finished call or meeting.

It travels as the only argument of the `callmatch.process_call` Celery task, so it
round-trips through plain JSON (`to_json` / `from_json`) and keeps external
participants apart from the tenant's own users, who never become CRM matches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from worker.documents import REFUSED, field_path, location, reason, refuse
from worker.model import Call, CallKind, Direction, Person

EVENT_VERSION = 1


class EventError(ValueError):
    """A message that is not a valid event; `path` names the offending field."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class IncompleteEventError(ValueError):
    """The event lacks the call's start: fetch it from the provider before deciding."""


def iso_utc(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _person_json(person: Person) -> dict[str, str | None]:
    return {"email": person.email, "phone": person.phone, "name": person.name}


class _Message(BaseModel):
    """A JSON object of the message: unknown keys ignored (an older worker reads a newer event)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class PersonMessage(_Message):
    email: str | None = None
    phone: str | None = None
    name: str | None = None

    def value(self) -> Person:
        return Person(email=self.email, phone=self.phone, name=self.name)


def _required(value: object) -> object:
    """A required string: null or empty is missing."""
    if value is None or value == "":
        raise refuse("missing")
    return value


def _time(value: object) -> object:
    """An ISO-8601 date-time with an offset, in UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise refuse("expected a string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise refuse("not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        raise refuse("not an ISO-8601 date-time with an offset")
    return parsed.astimezone(dt.UTC)


def _choice(kind: type[CallKind] | type[Direction], reason: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str):
            raise refuse("expected a string")
        try:
            return kind(value)
        except ValueError:
            raise refuse(reason) from None

    return check


Required = Annotated[str, BeforeValidator(_required)]
Time = Annotated[dt.datetime | None, BeforeValidator(_time), Field(json_schema_extra={"type": "string"})]


def _people(value: object) -> object:
    """A JSON array (a list, nothing else) of people; null is none."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise refuse("expected a list")
    return tuple(value)


def _notes(value: object) -> object:
    if not value:
        return ()
    if not isinstance(value, list):
        raise refuse("expected a list of strings")
    return tuple(value)


People = Annotated[tuple[PersonMessage, ...], BeforeValidator(_people)]


class EventMessage(_Message):
    """The `callmatch.process_call` task's argument, as `CallEvent.to_json` writes it."""

    version: Literal[1] = 1
    kind: Annotated[
        CallKind, BeforeValidator(_choice(CallKind, "expected call or meeting")), BeforeValidator(_required)
    ]
    direction: Annotated[
        Direction | None,
        BeforeValidator(_choice(Direction, "expected inbound or outbound")),
        BeforeValidator(lambda v: v or None if isinstance(v, str) else v),
    ] = None
    received_at: Annotated[dt.datetime, BeforeValidator(_required), BeforeValidator(_time)]
    organizer: PersonMessage | None = None
    complete: bool = False
    notes: Annotated[tuple[str, ...], BeforeValidator(_notes)] = ()
    tenant: Required
    provider: Required
    call_id: Required
    event_id: Required
    started_at: Time = None
    ended_at: Time = None
    participants: People = ()
    internal: People = ()
    title: str | None = None
    source_ref: str | None = None
    organizer_ref: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        if value != EVENT_VERSION:
            raise refuse(f"unsupported version {value!r}")
        return EVENT_VERSION


_REASONS = {
    "string_type": "expected a string",
    "model_type": "expected an object",
    "bool_type": "expected true or false",
    "missing": "missing",
}


_CHECK_ORDER = (
    *("version", "kind", "direction", "received_at", "organizer", "complete", "notes", "tenant", "provider"),
    *("call_id", "event_id", "started_at", "ended_at", "organizer.", "participants", "internal", "title"),
    *("source_ref", "organizer_ref"),
)
"""The order fields were always checked in: the first error reported is the same one."""


def _rank(error: ErrorDetails) -> int:
    loc = error["loc"]
    name = f"{loc[0]}." if loc[0] == "organizer" and len(loc) > 1 else str(loc[0])
    return _CHECK_ORDER.index(name) if name in _CHECK_ORDER else len(_CHECK_ORDER)


def _event_error(exc: ValidationError) -> EventError:
    error = min(exc.errors(include_url=False), key=_rank)
    loc = tuple(error["loc"])
    if loc[0] == "notes":
        return EventError("notes", "expected a list of strings")
    text = reason(error) if error["type"] == REFUSED else _REASONS.get(error["type"], error["msg"])
    return EventError(field_path(location(error)), text)


@dataclass(frozen=True)
class CallEvent:
    """One ended call or meeting of one tenant, as a provider reported it.

    `event_id` is the provider's delivery identity (what de-duplication keys on);
    `call_id` is the stable id written to the CRM (`zoom:<uuid>`, `aircall:<id>`).
    `source_ref` is what the provider's API needs to fetch the rest, `organizer_ref`
    the provider's id of the organizer when the webhook gave no email; `complete`
    says whether participants were already fetched from it.
    """

    tenant: str
    provider: str
    call_id: str
    event_id: str
    kind: CallKind
    received_at: dt.datetime
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    direction: Direction | None = None
    organizer: Person = field(default_factory=Person)
    participants: tuple[Person, ...] = ()
    internal: tuple[Person, ...] = ()
    title: str | None = None
    source_ref: str | None = None
    organizer_ref: str | None = None
    complete: bool = False
    notes: tuple[str, ...] = ()
    """What the fetch could not learn and why (`participants not fetched: ...`, a lookup
    answered 403): the decision's trace starts with them (M3), so a thin decision explains itself."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": EVENT_VERSION,
            "tenant": self.tenant,
            "provider": self.provider,
            "call_id": self.call_id,
            "event_id": self.event_id,
            "kind": self.kind.value,
            "direction": self.direction.value if self.direction else None,
            "received_at": iso_utc(self.received_at),
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(self.ended_at),
            "organizer": _person_json(self.organizer),
            "participants": [_person_json(p) for p in self.participants],
            "internal": [_person_json(p) for p in self.internal],
            "title": self.title,
            "source_ref": self.source_ref,
            "organizer_ref": self.organizer_ref,
            "complete": self.complete,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: object) -> CallEvent:
        """The message back as an event, or EventError naming the first bad field."""
        if not isinstance(data, dict):
            raise EventError("(event)", "expected an object")
        try:
            message = EventMessage.model_validate(data)
        except ValidationError as exc:
            raise _event_error(exc) from None
        return cls(
            tenant=message.tenant,
            provider=message.provider,
            call_id=message.call_id,
            event_id=message.event_id,
            kind=message.kind,
            direction=message.direction,
            received_at=message.received_at,
            started_at=message.started_at,
            ended_at=message.ended_at,
            organizer=message.organizer.value() if message.organizer else Person(),
            participants=tuple(p.value() for p in message.participants),
            internal=tuple(p.value() for p in message.internal),
            title=message.title,
            source_ref=message.source_ref,
            organizer_ref=message.organizer_ref,
            complete=message.complete,
            notes=message.notes,
        )

    def with_details(self, **changes: Any) -> CallEvent:
        """A copy with fields filled in from the provider's API."""
        return replace(self, **changes)

    def noting(self, note: str) -> CallEvent:
        """A copy that says what the fetch skipped and why (kept once, in order)."""
        return self if note in self.notes else replace(self, notes=(*self.notes, note))

    def to_call(self) -> Call:
        """The engine's view: external participants only, the organizer apart."""
        if self.started_at is None:
            raise IncompleteEventError(
                f"{self.call_id}: start time unknown; fetch the call from {self.provider} first"
            )
        return Call(
            id=self.call_id,
            started_at=self.started_at,
            kind=self.kind,
            ended_at=self.ended_at,
            organizer=self.organizer,
            participants=self.participants,
            direction=self.direction,
            title=self.title,
        )
