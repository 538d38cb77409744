"""Ringover as it sends: the documented hangup (flags as 0/1) and its JWT in both claim shapes.

`X-Ringover-Webhook-Signature` is an HS512 JWT whose claims are either
`{"url", "payload", "iat"}` or the flat event with `iat` beside its keys.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import jwt

from tests.adapters.providers.samples import NOW, RINGOVER_KEY, Post, dumps

WEBHOOK_URL = "https://callmatch.test/webhooks/acme/ringover"
STARTED = NOW.timestamp() - 900.25


def hangup(
    call_id: int | str = 1849302761, direction: str = "inbound", **flags: int | bool
) -> dict[str, Any]:
    """The documented `hangup` event: numbers without `+`, times as float seconds, flags as 0/1."""
    data: dict[str, Any] = {
        "id": "4a1f7c3e-1b2d-4c5e-9f00-6a7b8c9d0e1f",
        "call_id": call_id,
        "channel_id": 3348820011,
        "start_time": STARTED,
        "hangup_time": STARTED + 600,
        "duration_in_seconds": 600,
        "direction": direction,
        "from_number": "33612345678" if direction == "inbound" else "33189000000",
        "to_number": "33189000000" if direction == "inbound" else "33612345678",
        "user_id": 77,
        "is_internal": 0,
        "is_anonymous": 0,
        "is_ivr": 0,
        "ivr_data": None,
        "user": {
            "user_id": 77,
            "firstname": "Rep",
            "lastname": "One",
            "email": "rep@ourco.com",
            "photo": "https://cdn.ringover.com/img/users/default.jpg",
        },
        "record": None,
    }
    data.update(flags)
    return {"resource": "call", "event": "hangup", "timestamp": STARTED + 601, "data": data, "attempt": 1}


def signed(
    document: dict[str, Any],
    shape: Literal["payload", "flat"] = "payload",
    key: str = RINGOVER_KEY,
    issued: dt.datetime | None = NOW,
    body: bytes | None = None,
) -> Post:
    """`document` as Ringover posts it, its JWT claims `{url, payload, iat}` or flat (`iat` omitted when None)."""
    claims: dict[str, Any] = (
        {"url": WEBHOOK_URL, "payload": document} if shape == "payload" else dict(document)
    )
    if issued is not None:
        claims["iat"] = int(issued.timestamp())
    token = jwt.encode(claims, key, algorithm="HS512")
    return Post(
        body if body is not None else dumps(document),
        {"content-type": "application/json", "x-ringover-webhook-signature": token},
    )
