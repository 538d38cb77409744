"""The "call ended" event: what ingestion knows about a finished call or meeting.

It travels as the only argument of the `callmatch.process_call` Celery task, so it
round-trips through plain JSON (`to_json` / `from_json`) and keeps external
participants apart from the tenant's own users, who never become CRM matches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from worker.config.documents import REFUSED, field_path, location, reason, refuse
from worker.core.model import Call, CallKind, Direction, Person

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


def _time(value: object) -> object:
    """An ISO-8601 date-time with an offset, in UTC (Python's reading of it, as always)."""
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


def _notes(value: object) -> object:
    return value or []


Required = Annotated[str, Strict(), StringConstraints(min_length=1)]
"""A string that must be there: null or empty is missing."""
Text = Annotated[str | None, Strict()]
Time = Annotated[dt.datetime | None, BeforeValidator(_time), Field(json_schema_extra={"type": "string"})]


class EventMessage(BaseModel):
    """The `callmatch.process_call` task's argument, as `CallEvent.to_json` writes it.

    Unknown keys are ignored (an older worker reads a newer event). Every field is strict
    (no "1" for a number, no list for a string); people are read straight into `Person`
    (its strings would also take bytes, which no JSON message carries).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal[1] = 1
    kind: Literal["call", "meeting"]
    direction: Literal["inbound", "outbound", ""] | None = None
    received_at: Annotated[dt.datetime, BeforeValidator(_time), Field(json_schema_extra={"type": "string"})]
    organizer: Person | None = None
    complete: Annotated[bool, Strict()] = False
    notes: Annotated[list[Annotated[str, Strict()]], Strict(), BeforeValidator(_notes)] = []
    tenant: Required
    provider: Required
    call_id: Required
    event_id: Required
    started_at: Time = None
    ended_at: Time = None
    participants: Annotated[list[Person], Strict()] | None = None
    internal: Annotated[list[Person], Strict()] | None = None
    title: Text = None
    source_ref: Text = None
    organizer_ref: Text = None

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        if value != EVENT_VERSION:
            raise refuse(f"unsupported version {value!r}")
        return EVENT_VERSION


_REQUIRED = ("kind", "received_at", "tenant", "provider", "call_id", "event_id")
_CHOICES = {"kind": "expected call or meeting", "direction": "expected inbound or outbound"}
_REASONS = {
    "string_type": "expected a string",
    "dataclass_type": "expected an object",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
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
    """The first error, in the words the event always used."""
    error = min(exc.errors(include_url=False), key=_rank)
    kind, value, field = error["type"], error.get("input"), error["loc"][0]
    if kind == REFUSED:
        text = reason(error)
    elif kind == "missing" or (field in _REQUIRED and len(error["loc"]) == 1 and value in (None, "")):
        text = "missing"
    elif field == "notes":
        return EventError("notes", "expected a list of strings")
    elif kind == "literal_error":
        text = _CHOICES[str(field)] if isinstance(value, str) else "expected a string"
    else:
        text = _REASONS.get(kind, error["msg"])
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
            kind=CallKind(message.kind),
            direction=Direction(message.direction) if message.direction else None,
            received_at=message.received_at,
            started_at=message.started_at,
            ended_at=message.ended_at,
            organizer=message.organizer or Person(),
            participants=tuple(message.participants or ()),
            internal=tuple(message.internal or ()),
            title=message.title,
            source_ref=message.source_ref,
            organizer_ref=message.organizer_ref,
            complete=message.complete,
            notes=tuple(message.notes),
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
