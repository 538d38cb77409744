"""Google Meet's bodies as declared models: the Pub/Sub push, its Workspace event, and the APIs the client reads.

Documented by Google: Pub/Sub push (`{"message": {"attributes", "data", "messageId"},
"subscription"}`, or with payload unwrapping the data as the body and the attributes
as headers), the Workspace Events CloudEvents (`ce-*` attributes, data
`{"conferenceRecord": {"name"}}` or, for lifecycle events, `{"subscription": {...}}`),
the Meet REST API (ConferenceRecord, Participant, Space), the Admin SDK directory
User, the Calendar API Event, and the Workspace Events Subscription and Operation.

Bodies are read in steps, each model holding what one step reads, so a field that
the receiver or the client never looks at in that case (another calendar event, a
skipped attendee's name, `message_id` when `messageId` is set, the data of an
ignored event) cannot refuse a body, and the first error is the first field read.
An object read in a later step is kept as it came (`RawObject`) and parsed then,
named by its path.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, SkipValidation

from worker.config.documents import refuse, type_name
from worker.ingest.payloads import (
    Flag,
    IdText,
    IsoTime,
    Items,
    Payload,
    Present,
    RequiredIdText,
    RequiredIsoTime,
    RequiredText,
    Text,
)
from worker.ingest.webhook import (
    MAX_ID_LENGTH,
    PayloadError,
    load_json,
    parse_iso_reason,
    text_problem,
)

RECORD_PREFIX = "conferenceRecords/"

# --- field types of our own ---------------------------------------------------------------------


def _object(value: object) -> object:
    if not isinstance(value, dict):
        raise refuse(f"expected an object, got {type_name(value)}")
    return value


def _opt_object(value: object) -> object:
    return None if value is None else _object(value)


RawObject = Annotated[dict[str, Any], SkipValidation, BeforeValidator(_object)]
"""A JSON object kept as it came (a list's item: null is no object), parsed later with its path as root."""
OptRawObject = Annotated[dict[str, Any] | None, SkipValidation, BeforeValidator(_opt_object)]
"""An optional JSON object kept as it came."""
RequiredRawObject = Annotated[dict[str, Any], SkipValidation, BeforeValidator(_object), Present]
"""A JSON object that must be there (null is missing), kept as it came."""


def _attribute(value: object, max_length: int | None = None) -> str | None:
    """A CloudEvents attribute (or header): a string, storable text; empty is absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise refuse("expected a string")
    problem = text_problem(value, max_length)
    if problem is not None:
        raise refuse(problem)
    return value or None


def _attribute_id(value: object) -> str | None:
    return _attribute(value, MAX_ID_LENGTH)


def _attribute_time(value: object) -> object:
    text = _attribute(value)
    if text is None:
        return None
    parsed = parse_iso_reason(text.strip())
    if isinstance(parsed, str):
        raise refuse(parsed)
    return parsed


Attribute = Annotated[str | None, BeforeValidator(_attribute)]
"""A `ce-*` attribute: a string if there (no other type is said to be allowed), empty read as absent."""
AttributeId = Annotated[str | None, BeforeValidator(_attribute_id)]
"""An attribute that is an id: at most `MAX_ID_LENGTH` characters."""
AttributeTime = Annotated[dt.datetime | None, BeforeValidator(_attribute_time)]
"""An attribute that is an ISO-8601 date-time (`ce-time`)."""


def _base64_object(value: object) -> object:
    """The message's `data`: base64 of a JSON object (the Workspace event's data)."""
    if value is None:
        raise refuse("missing")
    if not isinstance(value, str):
        raise refuse(f"expected a string, got {type_name(value)}")
    problem = text_problem(value)
    if problem is not None:
        raise refuse(problem)
    if not value.strip():
        raise refuse("missing")
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise refuse("not base64") from None
    try:
        document = load_json(decoded)
    except PayloadError as exc:
        raise refuse(exc.reason) from None
    return _object(document)


Base64Object = Annotated[dict[str, Any], SkipValidation, BeforeValidator(_base64_object)]
"""A required string, base64 of a JSON object: the object, kept as it came (read with `root` its path)."""


def _record_name(value: str) -> str:
    if not value.startswith(RECORD_PREFIX) or len(value) <= len(RECORD_PREFIX):
        raise refuse("expected conferenceRecords/{id}")
    return value


RecordName = Annotated[RequiredIdText, AfterValidator(_record_name)]
"""`conferenceRecords/{id}`: a required id with its collection."""


# --- the Pub/Sub push ---------------------------------------------------------------------------


class Push(Payload):
    """A Pub/Sub push body: `message`, absent (or null) when the subscription unwraps payloads."""

    message: OptRawObject = None


class Message(Payload):
    """The pushed PubsubMessage: its attributes (read one at a time) and its id."""

    attributes: OptRawObject = None
    messageId: IdText = None


class SnakeMessage(Payload):
    """The message id as Pub/Sub also spells it: read when `messageId` is absent or empty."""

    message_id: IdText = None


class EncodedData(Payload):
    """The message's `data`: the Workspace event's data, base64-encoded JSON."""

    data: Base64Object


# --- CloudEvents attributes (`message.attributes`, or headers when unwrapped) -------------------


class EventType(Payload):
    """`ce-type`: the Workspace event's type, read first (other events are not read further)."""

    type: Attribute = Field(None, alias="ce-type")


class EventId(Payload):
    """`ce-id`: the event's id, unique per event (the message id stands in when absent)."""

    id: AttributeId = Field(None, alias="ce-id")


class EventTime(Payload):
    """`ce-time`: when the conference ended."""

    time: AttributeTime = Field(None, alias="ce-time")


class EventSubject(Payload):
    """`ce-subject`: names the subscription of a lifecycle event that carries none in its data."""

    subject: AttributeId = Field(None, alias="ce-subject")


class UnwrappedMessageId(Payload):
    """The message id Pub/Sub sets as a header when it unwraps payloads (write metadata)."""

    message_id: AttributeId = Field(None, alias="x-goog-pubsub-message-id")


# --- the Workspace event's data -----------------------------------------------------------------


class ConferenceRecordRef(Payload):
    """The conference record an event names (`conferenceRecord.name`)."""

    name: RecordName


class ConferenceEnded(Payload):
    """The data of `google.workspace.meet.conference.v2.ended`: `{"conferenceRecord": {"name": ...}}`."""

    conferenceRecord: ConferenceRecordRef


class LifecycleEvent(Payload):
    """The data of a subscription lifecycle event: `{"subscription": {...}}` (read step by step)."""

    subscription: OptRawObject = None


class SubscriptionName(Payload):
    """The lifecycle event's `subscription.name` (`subscriptions/{id}`)."""

    name: IdText = None


class SuspensionReason(Payload):
    """The lifecycle event's `subscription.suspensionReason`."""

    suspensionReason: IdText = None


class SnakeSuspensionReason(Payload):
    """`subscription.suspension_reason`: read when `suspensionReason` is absent or empty."""

    suspension_reason: IdText = None


# --- the Meet REST API --------------------------------------------------------------------------


class ConferenceRecord(Payload):
    """`GET /v2/conferenceRecords/{id}`: a Meet ConferenceRecord."""

    startTime: RequiredIsoTime
    endTime: IsoTime = None
    space: Text = None


class ParticipantsPage(Payload):
    """A page of `GET /v2/conferenceRecords/{id}/participants`: the rows (read later, one by one)."""

    participants: Annotated[tuple[RawObject, ...], Items] = ()
    nextPageToken: Text = None


class SignedIn(Payload):
    """A Meet Participant, first as a signed-in user (`signedinUser`, read on its own)."""

    signedinUser: OptRawObject = None


class SignedinUser(Payload):
    """A participant's `signedinUser`: `users/{id}`, looked up before its `displayName` is read."""

    user: RequiredText


class Named(Payload):
    """Someone known by a display name only: `anonymousUser`, `phoneUser`, or a calendar person."""

    displayName: Text = None


class Guest(Payload):
    """A Meet Participant that is not signed in: anonymous, or dialled in."""

    anonymousUser: Named | None = None
    phoneUser: Named | None = None


class Space(Payload):
    """`GET /v2/spaces/{id}`: a Meet Space, for its meeting code."""

    meetingCode: Text = None


# --- the Admin SDK directory --------------------------------------------------------------------


class DirectoryUser(Payload):
    """`GET /admin/directory/v1/users/{id}`: an Admin SDK User (its primary email)."""

    primaryEmail: Text = None


# --- the Calendar API ---------------------------------------------------------------------------


class EventsPage(Payload):
    """A page of `GET /calendar/v3/calendars/{id}/events`: its events, read until one is the meeting."""

    items: Annotated[tuple[RawObject, ...], Items] = ()


class PageToken(Payload):
    """A page's `nextPageToken`, read when the page did not have what was looked for."""

    nextPageToken: Text = None


class ConferenceData(Payload):
    """A calendar event's `conferenceData`: `conferenceId` is a Meet meeting's code."""

    conferenceId: Text = None


class MeetConference(Payload):
    """A calendar Event, for the conference it holds."""

    conferenceData: ConferenceData | None = None


class HangoutLink(Payload):
    """A calendar Event's `hangoutLink` (`https://meet.google.com/{code}`), read when no `conferenceId` matched."""

    hangoutLink: Text = None


class CalendarEvent(Payload):
    """The calendar Event of the meeting: its title and organizer (read on its own)."""

    summary: Text = None
    organizer: OptRawObject = None


class Email(Payload):
    """A calendar person's `email` (the organizer): the name is read only when there is one."""

    email: Text = None


class Attendees(Payload):
    """The calendar Event's `attendees` (each read on its own)."""

    attendees: Annotated[tuple[RawObject, ...], Items] = ()


class Attendee(Payload):
    """An attendee's email and whether it is a resource (a room): the name is read only when kept."""

    email: Text = None
    resource: Flag = None


# --- the Workspace Events API -------------------------------------------------------------------


class Subscription(Payload):
    """A Workspace Events Subscription, as get, list and a finished Operation answer it (times read apart)."""

    expireTime: RequiredIsoTime
    notificationEndpoint: OptRawObject = None
    name: RequiredIdText
    targetResource: RequiredText
    state: Text = None
    suspensionReason: Text = None


class NotificationEndpoint(Payload):
    """A Subscription's `notificationEndpoint`, read after its `suspensionReason`."""

    pubsubTopic: Text = None


class SubscriptionTimes(Payload):
    """A Subscription's `createTime` and `updateTime`, read after its endpoint's topic."""

    createTime: IsoTime = None
    updateTime: IsoTime = None


class SubscriptionsPage(Payload):
    """A page of `GET /v1/subscriptions` (`subscriptions` is left out when none)."""

    subscriptions: Annotated[tuple[RawObject, ...], Items] = ()
    nextPageToken: Text = None


class OperationError(Payload):
    """A failed Operation's `error` (a google.rpc.Status): its message."""

    message: Text = None


class Operation(Payload):
    """A long-running Operation (create, update, reactivate): `error` read after `name`, `response` once done."""

    done: Flag = None
    error: OptRawObject = None
    name: RequiredText


class OperationDone(Payload):
    """A done Operation's `response`: the Subscription."""

    response: RequiredRawObject
