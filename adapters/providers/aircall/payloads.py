"""Aircall's bodies as declared models: the `call.ended` webhook and the public API's call object.

Documented in Aircall's API reference (Call object, Webhooks > call.ended). The
webhook carries the call under `data`; `GET /v1/calls/{id}` answers `{"call": {...}}`.
Ids are numbers (sometimes strings), times seconds since the epoch.
"""

from __future__ import annotations

from typing import Annotated

from worker.ingest.payloads import (
    Ident,
    Items,
    OptIdent,
    Payload,
    RequiredText,
    RequiredUnixTime,
    Text,
    UnixTime,
)


class Value(Payload):
    """One entry of a contact's `emails` or `phone_numbers` (`{"label": ..., "value": ...}`)."""

    value: Text = None


class Contact(Payload):
    first_name: Text = None
    last_name: Text = None
    emails: Annotated[tuple[Value, ...], Items] = ()
    phone_numbers: Annotated[tuple[Value, ...], Items] = ()


class User(Payload):
    """An Aircall user (the call's `user`, `assigned_to`, `transferred_by`, `transferred_to`)."""

    email: Text = None
    name: Text = None


class Participant(Payload):
    """An entry of `participants` or `conference_participants`: `type` is `user` for our own people."""

    type: Text = None
    name: Text = None
    email: Text = None
    phone_number: Text = None


class Call(Payload):
    """The call object, as the API answers it: every field optional."""

    id: OptIdent = None
    started_at: UnixTime = None
    user: User | None = None
    contact: Contact | None = None
    raw_digits: Text = None
    participants: Annotated[tuple[Participant, ...], Items] = ()
    conference_participants: Annotated[tuple[Participant, ...], Items] = ()
    transferred_by: User | None = None
    transferred_to: User | None = None
    assigned_to: User | None = None
    ended_at: UnixTime = None
    direction: Text = None


class EndedCall(Call):
    """The call of a `call.ended` webhook: its id and start are required."""

    id: Ident  # required here, optional in the API's answer
    started_at: RequiredUnixTime  # required here, optional in the API's answer


class Envelope(Payload):
    """What is read before the body is trusted: the webhook's token and the event's name."""

    token: Text = None


class Event(Payload):
    event: RequiredText


class Ended(Payload):
    data: EndedCall


class CallAnswer(Payload):
    """`GET /v1/calls/{id}`."""

    call: Call
