"""Google Meet `google.workspace.meet.conference.v2.ended`, pushed by Pub/Sub.

The push carries a Google-signed OIDC token: we check its signature (keys from
a JWKS URL, or a PEM for tests and air-gapped setups), audience, issuer and
that it names the configured push service account with a verified email.
No claim reaches the event; the Pub/Sub attributes and the base64-decoded
`data` are read through `Fields` (no lone surrogates, no control characters,
ids of at most 255), like every provider's body.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import threading

import jwt

from worker.events import CallEvent
from worker.ingest.webhook import (
    MAX_ID_LENGTH,
    Delivery,
    Fields,
    PayloadError,
    SignatureError,
    WebhookError,
    WebhookRequest,
    check_event,
    load_json,
    parse_iso,
)
from worker.model import CallKind
from worker.tenants import ProviderConfig

PROVIDER = "google_meet"
ENDED = "google.workspace.meet.conference.v2.ended"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
DEFAULT_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
LEEWAY_SECONDS = 30

_jwks_lock = threading.Lock()
_jwks_clients: dict[str, jwt.PyJWKClient] = {}


def _jwks_client(url: str) -> jwt.PyJWKClient:
    with _jwks_lock:
        client = _jwks_clients.get(url)
        if client is None:
            client = jwt.PyJWKClient(url, cache_keys=True, lifespan=3600, timeout=2)
            _jwks_clients[url] = client
        return client


def _signing_key(token: str, config: ProviderConfig) -> object:
    if config.public_key:
        return config.public_key
    url = config.setting("jwks_url", DEFAULT_JWKS_URL) or DEFAULT_JWKS_URL
    try:
        return _jwks_client(url).get_signing_key_from_jwt(token).key
    except jwt.PyJWKClientConnectionError:
        raise SignatureError("signing keys unavailable", "authorization") from None
    except jwt.PyJWKClientError:
        raise SignatureError("token signed by an unknown key", "authorization") from None


def verify_token(authorization: str | None, config: ProviderConfig, now: dt.datetime) -> None:
    if not authorization or not authorization.startswith("Bearer "):
        raise SignatureError("missing bearer token", "authorization")
    token = authorization[len("Bearer ") :].strip()
    try:
        key = _signing_key(token, config)
        claims = jwt.decode(
            token,
            key,  # type: ignore[arg-type]
            algorithms=["RS256"],
            audience=config.setting("audience"),
            options={"require": ["exp", "iat", "aud", "iss"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError:
        raise SignatureError("token does not verify", "authorization") from None
    _check_lifetime(claims, now)
    issuer = config.setting("issuer")
    if claims.get("iss") not in ((issuer,) if issuer else GOOGLE_ISSUERS):
        raise SignatureError("token from another issuer", "authorization")
    if claims.get("email") != config.setting("service_account") or claims.get("email_verified") is not True:
        raise SignatureError("token names another service account", "authorization")


def _check_lifetime(claims: dict[str, object], now: dt.datetime) -> None:
    """Expiry against the receiver's clock (so tests and replays pin it), with a little leeway."""
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise SignatureError("token lifetime unreadable", "authorization")
    stamp = now.timestamp()
    if exp + LEEWAY_SECONDS < stamp:
        raise SignatureError("token expired", "authorization")
    if iat - LEEWAY_SECONDS > stamp:
        raise SignatureError("token issued in the future", "authorization")


def _decode_data(message: Fields) -> Fields:
    raw = message.str_("data")
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("not base64", message.at("data")) from None
    try:
        return Fields(load_json(decoded), message.at("data"))
    except PayloadError as exc:
        raise PayloadError(exc.reason, message.at("data")) from None


LIFECYCLE_PREFIX = "google.workspace.events.subscription.v1."


class LifecycleUnavailable(WebhookError):
    """The lifecycle event could not be queued: 503, Pub/Sub pushes it again."""

    status = 503


def _lifecycle(request: WebhookRequest, message: Fields, attributes: Fields, event_type: str) -> Delivery:
    """expirationReminder, suspended, expired: queued for `callmatch.subscription_lifecycle`, acknowledged now."""
    from worker.subscriptions import queue_lifecycle

    subscription = _decode_data(message).opt_obj("subscription")
    name = subscription.opt_str("name", MAX_ID_LENGTH) if subscription is not None else None
    if not name:
        subject = attributes.opt_str("ce-subject", MAX_ID_LENGTH) or ""
        name = (
            subject.split("//workspaceevents.googleapis.com/", 1)[-1] if "subscriptions/" in subject else ""
        )
    reason = None
    if subscription is not None:
        reason = subscription.opt_str("suspensionReason", MAX_ID_LENGTH) or subscription.opt_str(
            "suspension_reason", MAX_ID_LENGTH
        )
    notice = {
        "tenant": request.tenant.name,
        "provider": PROVIDER,
        "event": event_type[len(LIFECYCLE_PREFIX) :],
        "subscription_id": name,
    }
    if reason:
        notice["reason"] = reason
    try:
        queue_lifecycle([notice])
    except Exception as exc:
        raise LifecycleUnavailable(f"cannot queue the lifecycle event ({type(exc).__name__})") from None
    return Delivery(ignored="lifecycle event queued")


def handle(request: WebhookRequest) -> Delivery:
    verify_token(request.header("authorization"), request.config, request.now)
    root = Fields(load_json(request.body))
    message = root.obj("message")
    attributes = message.obj("attributes")
    event_type = attributes.str_("ce-type")
    if event_type.startswith(LIFECYCLE_PREFIX):
        return _lifecycle(request, message, attributes, event_type)
    if event_type != ENDED:
        return Delivery(ignored="not a conference ended event")
    event_id = attributes.opt_str("ce-id", MAX_ID_LENGTH)
    event_id_path = attributes.at("ce-id")
    if not event_id:
        event_id, event_id_path = message.str_("messageId", MAX_ID_LENGTH), message.at("messageId")
    record_fields = _decode_data(message).obj("conferenceRecord")
    record = record_fields.str_("name", MAX_ID_LENGTH)
    record_path = record_fields.at("name")
    if not record.startswith("conferenceRecords/") or len(record) <= len("conferenceRecords/"):
        raise PayloadError("expected conferenceRecords/{id}", record_path)
    record_id = record.split("/", 1)[1]
    ce_time = attributes.opt_str("ce-time")
    return Delivery(
        events=(
            check_event(
                CallEvent(
                    tenant=request.tenant.name,
                    provider=PROVIDER,
                    call_id=f"{PROVIDER}:{record_id}",
                    event_id=event_id,
                    kind=CallKind.MEETING,
                    received_at=request.now,
                    ended_at=parse_iso(ce_time, "message.attributes.ce-time") if ce_time else None,
                    source_ref=record,
                ),
                {"call_id": record_path, "event_id": event_id_path, "source_ref": record_path},
            ),
        )
    )
