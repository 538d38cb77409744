"""Ringover's bodies as declared models: the call `hangup` webhook and `GET /v2/calls/{call_id}`.

Documented in Ringover's API reference (Webhooks > Call events, Calls > Get a
call). The webhook carries the call under `data`; the API answers
`{"call_list": [call]}`. Ids are numbers or strings, times seconds since the
epoch (the API also writes ISO-8601), numbers digits without `+` sent as
numbers or strings, and flags 0/1 (booleans are accepted as well).

Models declare what is read, in the order it is read, and nothing more: an
`end_time` beside a `hangup_time`, an anonymous caller's numbers and contact,
and the calls of `call_list` after the first are never read, so they cannot
refuse a body.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, model_validator

from worker.config.documents import refuse, type_name
from worker.ingest.payloads import (
    Ident,
    Items,
    Payload,
    RequiredText,
    RequiredUnixTime,
    Text,
    UnixTime,
)


def _flag(value: object) -> bool | None:
    """`true`/`false` or, as the documented hangup sends them, 0/1."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    raise refuse("expected 0, 1, true or false")


def _is_set(value: object) -> bool:
    """A flag's raw value is on (1 or true); anything else is off, or refused by the flag's own field."""
    return value is True or (type(value) is int and value == 1)


def _digits_as_text(value: object) -> object:
    """A number sent as a JSON number is read as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Flag = Annotated[bool | None, BeforeValidator(_flag)]
"""An optional Ringover flag: 0, 1, `true` or `false`."""
Number = Annotated[Text, BeforeValidator(_digits_as_text)]
"""An optional phone number, sent as a string or as a (whole) number."""


def _first_call(value: object) -> object:
    """Only the first call of `call_list` is read: the others need only be objects."""
    if not isinstance(value, list):
        return value
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise refuse(f"expected an object, got {type_name(item)}", at=(index,))
    return value[:1]


class Contact(Payload):
    """A call's `contact`: the Ringover contact the external number belongs to."""

    name: Text = None


class User(Payload):
    """A call's `user`: the Ringover user who took or placed the call."""

    firstname: Text = None
    lastname: Text = None
    email: Text = None


class Event(Payload):
    """What a webhook is before its call is read: `{"resource": "call", "event": "hangup", ...}`."""

    event: RequiredText
    resource: Text = None


class CallGate(Payload):
    """The hangup's `data` as far as deciding to ignore it: an internal call is read no further."""

    call_id: Ident
    is_internal: Flag = None


class Gate(Payload):
    """The hangup webhook, its `data` read as `CallGate`."""

    data: CallGate


class HangupCall(Payload):
    """The `data` of the `hangup` webhook: the ended call."""

    call_id: Ident
    is_internal: Flag = None
    is_anonymous: Flag = None
    start_time: RequiredUnixTime
    hangup_time: UnixTime = None
    end_time: UnixTime = None  # read only without a `hangup_time`
    direction: Text = None
    from_number: Number = None  # this and `to_number`, `contact`: read only when not anonymous
    to_number: Number = None
    contact: Contact | None = None
    user: User | None = None

    @model_validator(mode="before")
    @classmethod
    def _unread(cls, value: object) -> object:
        """The call without what is never read: `end_time` beside a `hangup_time`, an anonymous caller's party."""
        if not isinstance(value, dict):
            return value
        unread: set[str] = set()
        if value.get("hangup_time") is not None:
            unread.add("end_time")
        if _is_set(value.get("is_anonymous")):
            unread |= {"from_number", "to_number", "contact"}
        return {key: item for key, item in value.items() if key not in unread}


class Hangup(Payload):
    """The `hangup` webhook: `{"resource": "call", "event": "hangup", "data": {...}}`."""

    data: HangupCall


class CallRecord(Payload):
    """A call of `GET /v2/calls/{call_id}`'s `call_list`: every field optional."""

    direction: Text = None
    from_number: Number = None
    to_number: Number = None
    contact: Contact | None = None
    user: User | None = None
    start_time: UnixTime = None
    end_time: UnixTime = None


class CallList(Payload):
    """`GET /v2/calls/{call_id}`: `{"call_list_count": 1, "call_list": [call]}`, only its first call kept."""

    call_list: Annotated[tuple[CallRecord, ...], Items, BeforeValidator(_first_call)] = ()
