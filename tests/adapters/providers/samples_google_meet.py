"""Google Meet as Google sends it: Workspace Events through Pub/Sub push, and the APIs behind them.

Push envelopes as Pub/Sub documents them: the wrapped message (CloudEvents
attributes `ce-*` in `message.attributes`, the event data base64 in
`message.data`, `messageId` and `message_id` both present), and payload
unwrapping with write metadata (the data as the body, `ce-*` and
`x-goog-pubsub-*` as headers). The Meet REST API's conference record, space and
participants (signed-in users as `users/{id}`, anonymous and phone users by
display name only), and a Calendar event with its Meet `conferenceData`.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.adapters.providers import samples

RECORD = "conferenceRecords/fd5a3b62-7c1a-4c51-9e7b-1d2c3e4f5a6b"
RECORD_ID = RECORD.split("/", 1)[1]
SPACE = "spaces/jQCFfuBOdN5z"
MEETING_CODE = "abc-mnop-xyz"
ENDED = "google.workspace.meet.conference.v2.ended"
REP_ID = "117492875012345678901"
COLLEAGUE_ID = "117492875012345678902"
GUEST_ID = "109876543210987654321"


def attributes(event_type: str | None = ENDED, record: str = RECORD) -> dict[str, str]:
    """The CloudEvents attributes Workspace Events sets on the Pub/Sub message."""
    values = {
        "ce-datacontenttype": "application/json",
        "ce-id": f"{record.rsplit('/', 1)[-1]}-ended",
        "ce-source": f"//meet.googleapis.com/{SPACE}",
        "ce-specversion": "1.0",
        "ce-subject": f"//meet.googleapis.com/{record}",
        "ce-time": "2026-03-10T09:45:10.123Z",
    }
    if event_type is not None:
        values["ce-type"] = event_type
    return values


def data(record: str = RECORD) -> dict[str, Any]:
    return {"conferenceRecord": {"name": record}}


def push_document(
    event_type: str | None = ENDED,
    record: str = RECORD,
    attrs: dict[str, str] | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A wrapped push: Pub/Sub sends camelCase and snake_case message fields side by side."""
    encoded = base64.b64encode(samples.dumps(payload if payload is not None else data(record))).decode()
    message: dict[str, Any] = {
        "data": encoded,
        "messageId": "12074830511234567",
        "message_id": "12074830511234567",
        "publishTime": "2026-03-10T09:45:11.321Z",
        "publish_time": "2026-03-10T09:45:11.321Z",
    }
    chosen = attrs if attrs is not None else attributes(event_type, record)
    if chosen:
        message["attributes"] = chosen
    return {"message": message, "subscription": "projects/acme-project/subscriptions/meet-events-push"}


def push(document: dict[str, Any] | None = None, token: str | None = None) -> samples.Post:
    return samples.google(document if document is not None else push_document(), token=token)


def unwrapped(event_type: str | None = ENDED, record: str = RECORD, token: str | None = None) -> samples.Post:
    """Payload unwrapping with write metadata: the event data is the body, the attributes are headers."""
    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer {token if token is not None else samples.google_token()}",
        "x-goog-pubsub-subscription-name": "projects/acme-project/subscriptions/meet-events-push",
        "x-goog-pubsub-message-id": "12074830519999999",
        "x-goog-pubsub-publish-time": "2026-03-10T09:45:11.321Z",
    }
    headers.update(attributes(event_type, record))
    return samples.Post(samples.dumps(data(record)), headers)


# --- the Meet REST API, the Admin directory, the Calendar API ------------------------------------


def conference_record(record: str = RECORD, space: str = SPACE) -> dict[str, Any]:
    return {
        "name": record,
        "startTime": "2026-03-10T09:00:02.451Z",
        "endTime": "2026-03-10T09:45:09.876Z",
        "expireTime": "2026-04-09T09:45:09.876Z",
        "space": space,
    }


def space(name: str = SPACE, code: str = MEETING_CODE) -> dict[str, Any]:
    return {
        "name": name,
        "meetingUri": f"https://meet.google.com/{code}",
        "meetingCode": code,
        "config": {"accessType": "TRUSTED", "entryPointAccess": "ALL"},
    }


def participants(record: str = RECORD) -> list[dict[str, Any]]:
    """Signed-in users as `users/{id}` (ours and a guest's), an anonymous visitor, a dial-in."""

    def row(n: int, **kind: Any) -> dict[str, Any]:
        return {
            "name": f"{record}/participants/{n}",
            "earliestStartTime": "2026-03-10T09:00:02.451Z",
            "latestEndTime": "2026-03-10T09:45:09.876Z",
            **kind,
        }

    return [
        row(1, signedinUser={"user": f"users/{REP_ID}", "displayName": "Rep One"}),
        row(2, signedinUser={"user": f"users/{COLLEAGUE_ID}", "displayName": "Colleague"}),
        row(3, signedinUser={"user": f"users/{GUEST_ID}", "displayName": "Jane Doe"}),
        row(4, anonymousUser={"displayName": "Visitor"}),
        row(5, phoneUser={"displayName": "+33 6** ** ** 78"}),
    ]


def directory() -> dict[str, dict[str, Any]]:
    """Our domain's users; the guest is no user of ours (the directory answers 404)."""
    return {
        REP_ID: {"kind": "admin#directory#user", "id": REP_ID, "primaryEmail": "rep@ourco.com"},
        COLLEAGUE_ID: {
            "kind": "admin#directory#user",
            "id": COLLEAGUE_ID,
            "primaryEmail": "colleague@ourco.com",
        },
    }


def calendar_event(
    code: str = MEETING_CODE, event_id: str = "7kq1v2o3h4", with_conference: bool = True
) -> dict[str, Any]:
    """The Calendar event the meeting came from: organizer, attendees, and its Meet conference."""
    event: dict[str, Any] = {
        "kind": "calendar#event",
        "id": event_id,
        "status": "confirmed",
        "summary": "Acme renewal",
        "organizer": {"email": "rep@ourco.com", "displayName": "Rep One", "self": True},
        "start": {"dateTime": "2026-03-10T10:00:00+01:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2026-03-10T10:45:00+01:00", "timeZone": "Europe/Paris"},
        "hangoutLink": f"https://meet.google.com/{code}",
        "attendees": [
            {"email": "rep@ourco.com", "organizer": True, "self": True, "responseStatus": "accepted"},
            {"email": "colleague@ourco.com", "responseStatus": "accepted"},
            {"email": "Jane.Doe@Acme.com", "displayName": "Jane Doe", "responseStatus": "accepted"},
            {"email": "bob@acme.com", "responseStatus": "needsAction", "optional": True},
            {"email": "c_1889abc@resource.calendar.google.com", "displayName": "Room 1", "resource": True},
        ],
    }
    if with_conference:
        event["conferenceData"] = {
            "entryPoints": [
                {
                    "entryPointType": "video",
                    "uri": f"https://meet.google.com/{code}",
                    "label": f"meet.google.com/{code}",
                },
                {
                    "entryPointType": "phone",
                    "uri": "tel:+33-1-00-00-00-00",
                    "label": "+33 1 00 00 00 00",
                    "pin": "123456789",
                },
            ],
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "conferenceId": code,
        }
    return event


def other_events(count: int) -> list[dict[str, Any]]:
    """Unrelated events of the same morning (other meetings, a focus block without a conference)."""
    events = [calendar_event(f"zzz-{i:04d}-zzz", event_id=f"other{i}") for i in range(count)]
    for event in events[::3]:
        del event["conferenceData"], event["hangoutLink"]
    return events
