"""Zoom's bodies as declared models: the webhook events and the API answers the client reads.

Documented in Zoom's API reference (Webhooks > `endpoint.url_validation` and
`meeting.ended`; Meetings > past meeting participants, past meeting details,
meeting registrants, get a meeting; Users > get a user). Webhooks carry their
document under `payload` (`payload.object` for a meeting event); list answers are
paged with `next_page_token`. Meeting UUIDs are text, times ISO-8601.
"""

from __future__ import annotations

from typing import Annotated

from worker.ingest.payloads import (
    Ident,
    IdText,
    IsoTime,
    Items,
    Payload,
    RequiredIdText,
    RequiredIsoTime,
    RequiredText,
    Text,
)


class Event(Payload):
    """What is read first of a (verified) webhook: the event's name."""

    event: RequiredText


class ValidationPayload(Payload):
    """The `payload` of `endpoint.url_validation`: the token to hash under the webhook's secret."""

    plainToken: RequiredText  # Zoom spells it so


class Validation(Payload):
    """An `endpoint.url_validation` webhook."""

    payload: ValidationPayload


class EndedMeeting(Payload):
    """`payload.object` of `meeting.ended`: the meeting that ended, its host by email and id."""

    uuid: RequiredIdText
    host_email: Text = None
    start_time: RequiredIsoTime
    end_time: IsoTime = None
    topic: Text = None
    host_id: IdText = None


class EndedPayload(Payload):
    """The `payload` of `meeting.ended`."""

    object: EndedMeeting


class Ended(Payload):
    """A `meeting.ended` webhook."""

    payload: EndedPayload


class Participant(Payload):
    """A row of the past meeting participants report (a guest's email may be hidden)."""

    user_email: Text = None
    name: Text = None
    registrant_id: Text = None


class ParticipantsPage(Payload):
    """A page of `GET /v2/past_meetings/{uuid}/participants`."""

    participants: Annotated[tuple[Participant, ...], Items] = ()
    next_page_token: Text = None


class User(Payload):
    """`GET /v2/users/{id}`: the host's name and email."""

    first_name: Text = None
    last_name: Text = None
    email: Text = None


class PastMeeting(Payload):
    """`GET /v2/past_meetings/{uuid}`: the meeting's numeric id."""

    id: Ident


class Registrant(Payload):
    """A registrant of `GET /v2/meetings/{id}/registrants`."""

    first_name: Text = None
    last_name: Text = None
    id: Text = None
    email: Text = None


class RegistrantsPage(Payload):
    """A page of `GET /v2/meetings/{id}/registrants`."""

    registrants: Annotated[tuple[Registrant, ...], Items] = ()
    next_page_token: Text = None


class Invitee(Payload):
    """An entry of a meeting's `settings.meeting_invitees`."""

    email: Text = None


class Settings(Payload):
    """A meeting's `settings`, of which only the invitees are read."""

    meeting_invitees: Annotated[tuple[Invitee, ...], Items] = ()


class Meeting(Payload):
    """`GET /v2/meetings/{id}`: the scheduled meeting, for its invitees."""

    settings: Settings | None = None
