"""Ringover call `hangup`: `X-Ringover-Webhook-Signature` is an HS512 JWT signed with the webhook key.

The JWT's claims come in two shapes: `{url, payload, iat}` (the event under
`payload`) or the flat event itself with `iat` beside its keys. Either way the
signed event must equal the body, so nothing unsigned is ever enqueued. `iat`
is the replay window: a token issued more than five minutes ago (or more than
`MAX_FUTURE` ahead of our clock) is 401, and a token without `iat` has no window
and is refused too. Nothing else is taken from the claims: the event's strings
are read from the body as the models of `payloads.py` (no lone surrogates, no
control characters, ids of at most 255, each refused naming the field). The
documented hangup sends its flags (`is_internal`, `is_anonymous`, ...) as 0/1;
booleans are accepted as well.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jwt

from adapters.providers.ringover.payloads import CallRecord, Event, Gate, Hangup, HangupCall, User
from worker.core.model import CallKind, Direction, Person
from worker.ingest.events import CallEvent
from worker.ingest.payloads import parse
from worker.ingest.webhook import (
    Delivery,
    PayloadError,
    SignatureError,
    WebhookRequest,
    check_event,
    load_json,
)

PROVIDER = "ringover"
SIGNATURE_HEADER = "x-ringover-webhook-signature"
MAX_AGE = dt.timedelta(minutes=5)
MAX_FUTURE = dt.timedelta(seconds=30)
# Registered JWT claims and the envelope's `url`: never part of a flat-signed event.
_CLAIMS = frozenset({"iat", "exp", "nbf", "iss", "aud", "sub", "jti", "url"})


def verify_signature(token: str | None, secrets: tuple[str, ...], now: dt.datetime) -> dict[str, Any]:
    """The JWT's claims; its `exp`, when it has one, is checked against the receiver's clock."""
    if not token:
        raise SignatureError("missing signature", SIGNATURE_HEADER)
    for secret in secrets:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=["HS512"],
                options={"verify_aud": False, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except (jwt.InvalidTokenError, RecursionError):  # RecursionError: a payload claim nested too deep
            continue
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool) and exp + 30 < now.timestamp():
            raise SignatureError("signature expired", SIGNATURE_HEADER)
        return claims
    raise SignatureError("signature does not verify", SIGNATURE_HEADER)


def _canonical(value: object) -> str:
    """One spelling of a JSON value, so the body and the signed payload compare whatever their formatting."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (RecursionError, ValueError):  # nesting that json.loads took but dumps cannot
        raise PayloadError("nested too deeply", "(body)") from None


def check_issued(claims: dict[str, Any], now: dt.datetime) -> None:
    """401 unless `iat` is within the last five minutes (and not ahead of us by more than `MAX_FUTURE`)."""
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float):
        raise SignatureError("signature carries no iat", SIGNATURE_HEADER)
    if not 0 <= iat < 253402300800:
        raise SignatureError("signature iat is not a time", SIGNATURE_HEADER)
    issued = dt.datetime.fromtimestamp(iat, dt.UTC)
    if now - issued > MAX_AGE:
        raise SignatureError("signature issued more than 5 minutes ago", SIGNATURE_HEADER)
    if issued - now > MAX_FUTURE:
        raise SignatureError("signature issued in the future", SIGNATURE_HEADER)


def signed_event(claims: dict[str, Any]) -> object:
    """The event the JWT signs: its `payload` claim, or the claims themselves less the JWT's own."""
    if "payload" in claims:
        payload = claims["payload"]
        if isinstance(payload, str):  # a payload signed as JSON text
            # surrogatepass: a lone surrogate (JSON's \ud800 escape) is read as the body's bytes are
            return load_json(payload.encode("utf-8", "surrogatepass"))
        return payload
    return {key: value for key, value in claims.items() if key not in _CLAIMS}


def direction(value: str | None) -> Direction | None:
    if value in ("in", "inbound"):
        return Direction.INBOUND
    if value in ("out", "outbound"):
        return Direction.OUTBOUND
    return None


def _number(value: str | None) -> str | None:
    if not value or not any(ch.isdigit() for ch in value):
        return None
    text = value.strip()
    return text if text.startswith("+") or not text.isdigit() else "+" + text


def external_party(call: HangupCall | CallRecord) -> Person | None:
    """The number that is not ours: the caller of an inbound call, the callee of an outbound one."""
    way = direction(call.direction)
    from_number = _number(call.from_number)
    to_number = _number(call.to_number)
    phone = from_number if way == Direction.INBOUND else to_number if way == Direction.OUTBOUND else None
    name = call.contact.name if call.contact is not None else None
    if phone is None:
        return None
    return Person(phone=phone, name=name)


def organizer(user: User | None) -> Person:
    if user is None:
        return Person()
    first = (user.firstname or "").strip()
    last = (user.lastname or "").strip()
    return Person(email=user.email, name=" ".join(p for p in (first, last) if p) or None)


def handle(request: WebhookRequest) -> Delivery:
    claims = verify_signature(request.header(SIGNATURE_HEADER), request.config.webhook_secrets, request.now)
    body = load_json(request.body)
    signed = signed_event(claims)
    if not signed:
        raise SignatureError("signature carries no payload", SIGNATURE_HEADER)
    check_issued(claims, request.now)
    if _canonical(signed) != _canonical(body):
        raise SignatureError("body differs from the signed payload", SIGNATURE_HEADER)
    event = parse(Event, body)
    if (event.resource or "call") != "call" or event.event != "hangup":
        return Delivery(ignored="not a call hangup event")
    if parse(Gate, body).data.is_internal:
        return Delivery(ignored="internal call")
    data = parse(Hangup, body).data
    call_id = data.call_id
    party = None if data.is_anonymous else external_party(data)
    id_path = "data.call_id"
    return Delivery(
        events=(
            check_event(
                CallEvent(
                    tenant=request.tenant.name,
                    provider=PROVIDER,
                    call_id=f"{PROVIDER}:{call_id}",
                    event_id=f"hangup:{call_id}",
                    kind=CallKind.CALL,
                    received_at=request.now,
                    started_at=data.start_time,
                    ended_at=data.hangup_time or data.end_time,
                    direction=direction(data.direction),
                    organizer=organizer(data.user),
                    participants=(party,) if party else (),
                    source_ref=call_id,
                ),
                {"call_id": id_path, "event_id": id_path, "source_ref": id_path},
            ),
        )
    )
