"""Zoom `meeting.ended`: `x-zm-signature` is `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.

The timestamp must be within five minutes of our clock, so a captured delivery
cannot be replayed later; `endpoint.url_validation` is answered with the token
hashed under the secret that verified the request. The body is read as the
models of `payloads.py` (lone surrogates, control characters and ids over 255
characters are refused naming the field); `check_event` guards the event built
from them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from adapters.providers.zoom.payloads import Ended, Event, Validation
from worker.core.model import CallKind, Person
from worker.ingest.events import CallEvent
from worker.ingest.payloads import parse
from worker.ingest.webhook import (
    Challenge,
    Delivery,
    Outcome,
    SignatureError,
    WebhookRequest,
    check_event,
    load_json,
)

PROVIDER = "zoom"
SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
MAX_SKEW = dt.timedelta(minutes=5)
ENDED = "meeting.ended"
VALIDATION = "endpoint.url_validation"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(request: WebhookRequest) -> str:
    """The secret that signed the request; SignatureError for a bad, missing or stale one."""
    signature = request.header(SIGNATURE_HEADER)
    timestamp = request.header(TIMESTAMP_HEADER)
    if not signature:
        raise SignatureError("missing signature", SIGNATURE_HEADER)
    # isascii: headers arrive as latin-1, and "²" passes str.isdigit but not int().
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureError("missing or malformed timestamp", TIMESTAMP_HEADER)
    sent = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    if abs(request.now - sent) > MAX_SKEW:
        raise SignatureError("stale timestamp", TIMESTAMP_HEADER)
    supplied = signature.encode()
    for secret in request.config.webhook_secrets:
        if hmac.compare_digest(supplied, sign(secret, timestamp, request.body).encode()):
            return secret
    raise SignatureError("signature does not match", SIGNATURE_HEADER)


def handle(request: WebhookRequest) -> Outcome:
    secret = verify_signature(request)
    body = load_json(request.body)
    event = parse(Event, body).event
    if event not in (VALIDATION, ENDED):
        return Delivery(ignored=f"not a {ENDED} event")
    if event == VALIDATION:
        plain = parse(Validation, body).payload.plainToken
        encrypted = hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
        return Challenge({"plainToken": plain, "encryptedToken": encrypted})
    meeting = parse(Ended, body).payload.object
    uuid = meeting.uuid
    uuid_path = "payload.object.uuid"
    return Delivery(
        events=(
            check_event(
                CallEvent(
                    tenant=request.tenant.name,
                    provider=PROVIDER,
                    call_id=f"{PROVIDER}:{uuid}",
                    event_id=f"{ENDED}:{uuid}",
                    kind=CallKind.MEETING,
                    received_at=request.now,
                    started_at=meeting.start_time,
                    ended_at=meeting.end_time,
                    organizer=Person(email=meeting.host_email) if meeting.host_email else Person(),
                    title=meeting.topic,
                    source_ref=uuid,
                    organizer_ref=meeting.host_id,
                ),
                {
                    "call_id": uuid_path,
                    "event_id": uuid_path,
                    "source_ref": uuid_path,
                    "organizer.email": "payload.object.host_email",
                    "title": "payload.object.topic",
                    "organizer_ref": "payload.object.host_id",
                },
            ),
        )
    )
