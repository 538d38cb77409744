"""Ringover call `hangup`: `X-Ringover-Webhook-Signature` is an HS512 JWT signed with the webhook key.

The JWT's `payload` claim is the event as Ringover signed it; a body that
differs from it is refused, so nothing unsigned is ever enqueued. Nothing else
is taken from the claims: the event's strings are read from the body through
`Fields` (no lone surrogates, no control characters, ids of at most 255).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jwt

from worker.events import CallEvent
from worker.ingest.webhook import (
    Delivery,
    Fields,
    PayloadError,
    SignatureError,
    WebhookRequest,
    check_event,
    load_json,
)
from worker.model import CallKind, Direction, Person

PROVIDER = "ringover"
SIGNATURE_HEADER = "x-ringover-webhook-signature"


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


def external_party(data: Fields) -> Person | None:
    """The number that is not ours: the caller of an inbound call, the callee of an outbound one."""
    way = direction(data.opt_str("direction"))
    from_number = _number(_str_or_int(data, "from_number"))
    to_number = _number(_str_or_int(data, "to_number"))
    phone = from_number if way == Direction.INBOUND else to_number if way == Direction.OUTBOUND else None
    contact = data.opt_obj("contact")
    name = contact.opt_str("name") if contact is not None else None
    if phone is None:
        return None
    return Person(phone=phone, name=name)


def _str_or_int(data: Fields, key: str) -> str | None:
    value = data.data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return data.opt_str(key)


def organizer(data: Fields) -> Person:
    user = data.opt_obj("user")
    if user is None:
        return Person()
    first = (user.opt_str("firstname") or "").strip()
    last = (user.opt_str("lastname") or "").strip()
    return Person(email=user.opt_str("email"), name=" ".join(p for p in (first, last) if p) or None)


def handle(request: WebhookRequest) -> Delivery:
    claims = verify_signature(request.header(SIGNATURE_HEADER), request.config.webhook_secrets, request.now)
    body = load_json(request.body)
    signed = claims.get("payload")
    if signed is None:
        raise SignatureError("signature carries no payload", SIGNATURE_HEADER)
    if _canonical(signed) != _canonical(body):
        raise SignatureError("body differs from the signed payload", SIGNATURE_HEADER)
    root = Fields(body)
    event = root.str_("event")
    resource = root.opt_str("resource") or "call"
    if resource != "call" or event != "hangup":
        return Delivery(ignored="not a call hangup event")
    data = root.obj("data")
    call_id = data.ident("call_id")
    if data.opt_bool("is_internal"):
        return Delivery(ignored="internal call")
    started_at = data.unix_time("start_time", required=True)
    ended_at = data.unix_time("hangup_time") or data.unix_time("end_time")
    party = external_party(data)
    id_path = data.at("call_id")
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
                    started_at=started_at,
                    ended_at=ended_at,
                    direction=direction(data.opt_str("direction")),
                    organizer=organizer(data),
                    participants=(party,) if party else (),
                    source_ref=call_id,
                ),
                {"call_id": id_path, "event_id": id_path, "source_ref": id_path},
            ),
        )
    )
