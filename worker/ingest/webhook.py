"""What every provider's webhook module takes and gives back.

A provider module turns one HTTP delivery into a `Challenge` (a handshake to
echo), or a `Delivery` of zero or more events, or raises a `WebhookError` whose
status the receiver answers with. Reasons name fields, never their values, so
that no email or phone number from a body reaches a response or a log line.

Every string taken from a delivery goes through `check_text` (by way of the
field types of `worker.ingest.payloads`, which every provider's body models use):
`json.loads` happily turns a `\\ud800` escape into a lone surrogate
that no UTF-8 encoder downstream (Redis, Celery, the CRM) accepts, and a
control character in an id or a name breaks CRM writes and log lines. Such a
delivery is refused with a 400 naming the field instead of reaching the queue.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.config.tenants import ProviderConfig, Tenant
from worker.core.model import Person
from worker.ingest.events import CallEvent, EventError


class WebhookError(Exception):
    status = 400

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


class PayloadError(WebhookError):
    """Broken JSON or a missing or mistyped field: 400, naming the field."""

    status = 400


class SignatureError(WebhookError):
    """Bad or missing signature, token or stale timestamp: 401."""

    status = 401


@dataclass(frozen=True)
class WebhookRequest:
    tenant: Tenant
    config: ProviderConfig
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    url: str = ""
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Challenge:
    """A handshake the provider expects echoed (Zoom URL validation, Graph validationToken)."""

    content: str | dict[str, Any]
    media_type: str = "application/json"


@dataclass(frozen=True)
class Delivery:
    """Verified events of one delivery; `ignored` says why a valid delivery carried none."""

    events: tuple[CallEvent, ...] = ()
    ignored: str | None = None


Outcome = Challenge | Delivery
Handler = Callable[[WebhookRequest], Outcome]


MAX_ID_LENGTH = 255
"""Longest call, event, user or record id we accept: ids become Redis keys, CRM fields and log lines."""

# Unicode category Cc (C0 controls, DEL, C1 controls) and the surrogate block.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str, max_length: int | None = None) -> str | None:
    """Why `value` is no storable text (over-long, a lone surrogate, a control character), or None."""
    if max_length is not None and len(value) > max_length:
        return f"longer than {max_length} characters"
    bad = _UNSAFE.search(value)
    if bad is None:
        return None
    if "\ud800" <= bad.group() <= "\udfff":
        return "not valid UTF-8 (lone surrogate)"
    return "contains a control character"


def check_text(value: str, path: str, max_length: int | None = None) -> str:
    """`value` unchanged if it is storable text; else a PayloadError naming `path` (never the value).

    Lone surrogates cannot be encoded to UTF-8 and control characters corrupt ids,
    CRM fields and logs, so neither may travel past the parser.
    """
    problem = text_problem(value, max_length)
    if problem is not None:
        raise PayloadError(problem, path)
    return value


def load_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise PayloadError("not UTF-8 text", "(body)") from None
    except (ValueError, RecursionError):  # JSONDecodeError, and integers over Python's 4300-digit limit
        raise PayloadError("not valid JSON", "(body)") from None


def parse_iso_reason(text: str) -> dt.datetime | str:
    """An ISO-8601 date-time in UTC (no offset: UTC), or why `text` is none."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+01:00 has no UTC time
        return "not an ISO-8601 date-time"


def parse_iso(value: str, path: str) -> dt.datetime:
    parsed = parse_iso_reason(check_text(value, path).strip())
    if isinstance(parsed, str):
        raise PayloadError(parsed, path)
    return parsed


def _people(event: CallEvent) -> Iterator[tuple[str, Person]]:
    yield "organizer", event.organizer
    for group, people in (("participants", event.participants), ("internal", event.internal)):
        for index, person in enumerate(people):
            yield f"{group}[{index}]", person


def check_event(event: CallEvent, sources: Mapping[str, str] | None = None) -> CallEvent:
    """`event` unchanged if the worker can use it, else a PayloadError naming the field.

    The last guard before the queue, whichever parser built the event: ids at most
    `MAX_ID_LENGTH`, no lone surrogate or control character in any string, and the
    event survives its own JSON round trip (what the Celery task will do with it).
    `sources` maps event fields to the JSON path they came from (`{"call_id": "data.id"}`),
    so a provider's 400 names the body's field rather than the event's.
    """
    where = sources or {}
    ids = {
        "call_id": event.call_id,
        "event_id": event.event_id,
        "source_ref": event.source_ref,
        "organizer_ref": event.organizer_ref,
    }
    for name, value in ids.items():
        if value is not None:
            check_text(value, where.get(name, name), MAX_ID_LENGTH)
    for name, text in (("tenant", event.tenant), ("provider", event.provider), ("title", event.title)):
        if text is not None:
            check_text(text, where.get(name, name))
    for path, person in _people(event):
        for name, text in (("email", person.email), ("phone", person.phone), ("name", person.name)):
            if text is not None:
                check_text(text, where.get(f"{path}.{name}", f"{path}.{name}"))
    try:
        CallEvent.from_json(event.to_json())
    except EventError as exc:
        raise PayloadError(exc.reason, where.get(exc.path, exc.path)) from None
    except (ValueError, OverflowError):
        raise PayloadError("not a valid event", "(event)") from None
    return event
