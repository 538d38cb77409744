"""Zoom `meeting.ended`: `x-zm-signature` is `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`.

The timestamp must be within five minutes of our clock, so a captured delivery
cannot be replayed later; `endpoint.url_validation` is answered with the token
hashed under the secret that verified the request. Body strings are read
through `Fields` (no lone surrogates, no control characters, ids of at most 255).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from worker.core.model import CallKind, Person
from worker.ingest.events import CallEvent
from worker.ingest.webhook import (
    MAX_ID_LENGTH,
    Challenge,
    Delivery,
    Fields,
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
    root = Fields(load_json(request.body))
    event = root.str_("event")
    if event not in (VALIDATION, ENDED):
        return Delivery(ignored=f"not a {ENDED} event")
    payload = root.obj("payload")
    if event == VALIDATION:
        plain = payload.str_("plainToken")
        encrypted = hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()
        return Challenge({"plainToken": plain, "encryptedToken": encrypted})
    meeting = payload.obj("object")
    uuid = meeting.str_("uuid", MAX_ID_LENGTH)
    host_email = meeting.opt_str("host_email")
    uuid_path = meeting.at("uuid")
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
                    started_at=meeting.iso_time("start_time", required=True),
                    ended_at=meeting.iso_time("end_time"),
                    organizer=Person(email=host_email) if host_email else Person(),
                    title=meeting.opt_str("topic"),
                    source_ref=uuid,
                    organizer_ref=meeting.opt_str("host_id", MAX_ID_LENGTH),
                ),
                {
                    "call_id": uuid_path,
                    "event_id": uuid_path,
                    "source_ref": uuid_path,
                    "organizer.email": meeting.at("host_email"),
                    "title": meeting.at("topic"),
                    "organizer_ref": meeting.at("host_id"),
                },
            ),
        )
    )
