"""The "call ended" event: what ingestion knows about a finished call or meeting.

It travels as the only argument of the `callmatch.process_call` Celery task, so it
round-trips through plain JSON (`to_json` / `from_json`) and keeps external
participants apart from the tenant's own users, who never become CRM matches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

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


def _opt_str(data: Mapping[str, Any], key: str, path: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(f"{path}.{key}" if path else key, "expected a string")
    return value


def _req_str(data: Mapping[str, Any], key: str) -> str:
    value = _opt_str(data, key, "")
    if not value:
        raise EventError(key, "missing")
    return value


def _time(data: Mapping[str, Any], key: str) -> dt.datetime | None:
    text = _opt_str(data, key, "")
    if text is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise EventError(key, "not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        raise EventError(key, "not an ISO-8601 date-time with an offset")
    return parsed.astimezone(dt.UTC)


def _people(data: Mapping[str, Any], key: str) -> tuple[Person, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise EventError(key, "expected a list")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise EventError(f"{key}[{index}]", "expected an object")
        out.append(_person(item, f"{key}[{index}]"))
    return tuple(out)


def _person(item: Mapping[str, Any], path: str) -> Person:
    return Person(
        email=_opt_str(item, "email", path),
        phone=_opt_str(item, "phone", path),
        name=_opt_str(item, "name", path),
    )


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
        if not isinstance(data, dict):
            raise EventError("(event)", "expected an object")
        version = data.get("version", EVENT_VERSION)
        if version != EVENT_VERSION:
            raise EventError("version", f"unsupported version {version!r}")
        try:
            kind = CallKind(_req_str(data, "kind"))
        except ValueError as exc:
            if isinstance(exc, EventError):
                raise
            raise EventError("kind", "expected call or meeting") from None
        direction_text = _opt_str(data, "direction", "")
        try:
            direction = Direction(direction_text) if direction_text else None
        except ValueError:
            raise EventError("direction", "expected inbound or outbound") from None
        received_at = _time(data, "received_at")
        if received_at is None:
            raise EventError("received_at", "missing")
        organizer = data.get("organizer")
        if organizer is not None and not isinstance(organizer, dict):
            raise EventError("organizer", "expected an object")
        complete = data.get("complete", False)
        if not isinstance(complete, bool):
            raise EventError("complete", "expected true or false")
        notes = data.get("notes") or []
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise EventError("notes", "expected a list of strings")
        return cls(
            tenant=_req_str(data, "tenant"),
            provider=_req_str(data, "provider"),
            call_id=_req_str(data, "call_id"),
            event_id=_req_str(data, "event_id"),
            kind=kind,
            direction=direction,
            received_at=received_at,
            started_at=_time(data, "started_at"),
            ended_at=_time(data, "ended_at"),
            organizer=_person(organizer, "organizer") if organizer else Person(),
            participants=_people(data, "participants"),
            internal=_people(data, "internal"),
            title=_opt_str(data, "title", ""),
            source_ref=_opt_str(data, "source_ref", ""),
            organizer_ref=_opt_str(data, "organizer_ref", ""),
            complete=complete,
            notes=tuple(notes),
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
