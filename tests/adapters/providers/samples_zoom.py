"""Zoom as it sends: `meeting.ended` with `host_id` and no `host_email`, and the API's answers about guests.

The past-meeting participants report shows a guest's email only when the guest
registered or was invited; registrants (paged) and the meeting's
`settings.meeting_invitees` are where those emails are.
"""

from __future__ import annotations

from typing import Any

MEETING_ID = 85432190876
UUID = "aDYlohsHRtCd4ii1uC2+hA=="
HOST_ID = "z8yCxjabcdEFGHfp8uQ"


def ended_document(uuid: str = UUID) -> dict[str, Any]:
    """A real `meeting.ended`: the host by id only, no `host_email`."""
    return {
        "event": "meeting.ended",
        "event_ts": 1773137100000,
        "payload": {
            "account_id": "AAAAAABBBB",
            "object": {
                "id": str(MEETING_ID),
                "uuid": uuid,
                "host_id": HOST_ID,
                "topic": "Acme renewal",
                "type": 2,
                "start_time": "2026-03-10T09:00:00Z",
                "end_time": "2026-03-10T09:45:00Z",
                "duration": 45,
                "timezone": "Europe/Paris",
            },
        },
    }


def participants() -> list[dict[str, Any]]:
    """The report: the host, a colleague, a signed-in guest, and two guests whose emails Zoom hides."""
    return [
        {
            "id": "h1",
            "user_id": "16778240",
            "name": "Rep One",
            "user_email": "rep@ourco.com",
            "status": "in_meeting",
        },
        {
            "id": "c1",
            "user_id": "16779264",
            "name": "Colleague",
            "user_email": "colleague@ourco.com",
            "status": "in_meeting",
        },
        {
            "id": "",
            "user_id": "16780288",
            "name": "Jane Doe",
            "user_email": "",
            "registrant_id": "r-jane",
            "status": "in_meeting",
        },
        {"id": "", "user_id": "16781312", "name": "Bob Martin", "user_email": "", "status": "in_meeting"},
        {
            "id": "",
            "user_id": "16782336",
            "name": "Signed In Guest",
            "user_email": "guest@partner.test",
            "status": "in_meeting",
        },
    ]


def past_meeting(uuid: str = UUID) -> dict[str, Any]:
    """`GET /past_meetings/{uuid}`."""
    return {
        "id": MEETING_ID,
        "uuid": uuid,
        "host_id": HOST_ID,
        "type": 2,
        "topic": "Acme renewal",
        "user_name": "Rep One",
        "user_email": "rep@ourco.com",
        "start_time": "2026-03-10T09:00:00Z",
        "end_time": "2026-03-10T09:45:00Z",
        "duration": 45,
        "total_minutes": 120,
        "participants_count": 5,
    }


def meeting(invitees: list[str]) -> dict[str, Any]:
    """`GET /meetings/{id}`: the scheduled meeting, its invitees under `settings.meeting_invitees`."""
    return {
        "id": MEETING_ID,
        "uuid": UUID,
        "host_id": HOST_ID,
        "topic": "Acme renewal",
        "type": 2,
        "settings": {"meeting_invitees": [{"email": email} for email in invitees], "approval_type": 0},
    }


def registrant(first: str, last: str, email: str, status: str = "approved") -> dict[str, Any]:
    return {
        "id": f"r-{first.lower()}",
        "first_name": first,
        "last_name": last,
        "email": email,
        "status": status,
        "create_time": "2026-03-01T08:00:00Z",
        "join_url": "https://zoom.us/w/85432190876?tk=x",
    }
