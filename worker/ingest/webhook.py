"""What every provider's webhook module takes and gives back.

A provider module turns one HTTP delivery into a `Challenge` (a handshake to
echo), or a `Delivery` of zero or more events, or raises a `WebhookError` whose
status the receiver answers with. Reasons name fields, never their values, so
that no email or phone number from a body reaches a response or a log line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.events import CallEvent
from worker.tenants import ProviderConfig, Tenant


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


def load_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise PayloadError("not UTF-8 text", "(body)") from None
    except (json.JSONDecodeError, RecursionError):
        raise PayloadError("not valid JSON", "(body)") from None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object"
    )


class Fields:
    """A JSON object with its path, so a missing or mistyped field is named in the 400."""

    def __init__(self, value: object, path: str = ""):
        if not isinstance(value, dict):
            raise PayloadError(f"expected an object, got {_kind(value)}", path or "(body)")
        self.data: Mapping[str, Any] = value
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def obj(self, key: str) -> Fields:
        if self.data.get(key) is None:
            raise PayloadError("missing", self.at(key))
        return Fields(self.data[key], self.at(key))

    def opt_obj(self, key: str) -> Fields | None:
        return None if self.data.get(key) is None else Fields(self.data[key], self.at(key))

    def str_(self, key: str) -> str:
        value = self.opt_str(key)
        if value is None or not value.strip():
            raise PayloadError("missing", self.at(key))
        return value

    def opt_str(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise PayloadError(f"expected a string, got {_kind(value)}", self.at(key))
        return value

    def ident(self, key: str) -> str:
        """An id that providers send as a number or a string."""
        value = self.data.get(key)
        if isinstance(value, bool) or value is None:
            raise PayloadError("missing" if value is None else "expected an id", self.at(key))
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise PayloadError(f"expected an id, got {_kind(value)}", self.at(key))

    def opt_ident(self, key: str) -> str | None:
        return None if self.data.get(key) is None else self.ident(key)

    def list_(self, key: str) -> list[tuple[object, str]]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise PayloadError(f"expected a list, got {_kind(value)}", self.at(key))
        return [(item, f"{self.at(key)}[{index}]") for index, item in enumerate(value)]

    def objs(self, key: str) -> list[Fields]:
        return [Fields(item, path) for item, path in self.list_(key)]

    def opt_bool(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise PayloadError(f"expected true or false, got {_kind(value)}", self.at(key))
        return value

    def unix_time(self, key: str, required: bool = False) -> dt.datetime | None:
        """Seconds since the epoch (int, float or digits), as providers of telephony send times."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise PayloadError("missing", self.at(key))
            return None
        if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.iso_time(key, required)
        if not 0 <= value < 253402300800:
            raise PayloadError("not a time", self.at(key))
        return dt.datetime.fromtimestamp(value, dt.UTC)

    def iso_time(self, key: str, required: bool = False) -> dt.datetime | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise PayloadError("missing", self.at(key))
            return None
        if not isinstance(value, str):
            raise PayloadError(f"expected a date-time, got {_kind(value)}", self.at(key))
        return parse_iso(value, self.at(key))


def parse_iso(value: str, path: str) -> dt.datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError("not an ISO-8601 date-time", path) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)
