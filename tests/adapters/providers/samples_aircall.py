"""Aircall as it sends: `call.ended` bodies with `raw_digits` alone, and the public API's call object.

Captured `call.ended` deliveries carry neither `participants` nor `contact`; the
API's `GET /v1/calls/{id}` answers `{"call": {...}}` and may list the people of a
conference under `conference_participants` (and `participants`).
"""

from __future__ import annotations

from typing import Any

from tests.adapters.providers.samples import AIRCALL_TOKEN, NOW, Post, dumps

STARTED = int(NOW.timestamp()) - 1800


def bare_call(
    call_id: int = 913402, raw_digits: str = "+33 6 12 34 56 78", direction: str = "outbound"
) -> dict[str, Any]:
    """The call of a captured `call.ended`: no `contact`, no `participants`, the other party in `raw_digits`."""
    return {
        "id": call_id,
        "direct_link": f"https://api.aircall.io/v1/calls/{call_id}",
        "direction": direction,
        "status": "done",
        "missed_call_reason": None,
        "started_at": STARTED,
        "answered_at": STARTED + 12,
        "ended_at": STARTED + 600,
        "duration": 600,
        "voicemail": None,
        "recording": None,
        "asset": None,
        "raw_digits": raw_digits,
        "user": {
            "id": 456,
            "direct_link": "https://api.aircall.io/v1/users/456",
            "name": "Rep One",
            "email": "rep@ourco.com",
            "available": True,
        },
        "number": {
            "id": 1234,
            "direct_link": "https://api.aircall.io/v1/numbers/1234",
            "name": "Paris",
            "digits": "+33 1 89 00 00 00",
            "country": "FR",
        },
        "archived": False,
        "assigned_to": None,
        "transferred_by": None,
        "transferred_to": None,
        "cost": "0.0",
        "teams": [],
        "comments": [],
        "tags": [],
    }


def ended(data: dict[str, Any], token: str | None = AIRCALL_TOKEN) -> Post:
    """A `call.ended` delivery of `data`, with the webhook's static token in the body."""
    document: dict[str, Any] = {
        "resource": "call",
        "event": "call.ended",
        "timestamp": int(NOW.timestamp()),
        "data": data,
    }
    if token is not None:
        document["token"] = token
    return Post(dumps(document), {"content-type": "application/json"})


def conference_call(call_id: int = 913402) -> dict[str, Any]:
    """The API's call object for a conference: users and outside numbers under `conference_participants`."""
    call = bare_call(call_id)
    call["conference_participants"] = [
        {"id": "456", "type": "user", "name": "Rep One", "phone_number": "+33 1 89 00 00 00"},
        {"id": "457", "type": "user", "name": "Colleague", "phone_number": "+33 1 89 00 00 01"},
        {"id": "c1", "type": "contact", "name": "Jane Doe", "phone_number": "+33 6 12 34 56 78"},
        {"id": "x9", "type": "external", "name": None, "phone_number": "+44 20 7946 0000"},
    ]
    return call
