"""Google Meet `google.workspace.meet.conference.v2.ended`, pushed by Pub/Sub.

The push carries a Google-signed OIDC token: we check its signature (keys from
a JWKS URL, or a PEM for tests and air-gapped setups), audience, issuer and
that it names the configured push service account with a verified email.
No claim reaches the event; the Pub/Sub attributes and the base64-decoded
`data` are read through `Fields` (no lone surrogates, no control characters,
ids of at most 255), like every provider's body.

Two envelopes: the usual push (`{"message": {"attributes": {"ce-type": ...},
"data": base64, "messageId"/"message_id"}, "subscription"}`), and a push
subscription with payload unwrapping and write metadata, whose body is the
event data itself, its CloudEvents attributes `ce-*` HTTP headers and the
message id `x-goog-pubsub-message-id`. A verified push that names no event
type (`ce-type`) is acknowledged (200) and ignored, counted and logged:
Pub/Sub redelivers any 4xx or 5xx, and nothing can ever make it valid.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import threading
from collections.abc import Mapping

import jwt

from worker.config.tenants import ProviderConfig
from worker.core.model import CallKind
from worker.ingest.events import CallEvent
from worker.ingest.webhook import (
    MAX_ID_LENGTH,
    Delivery,
    Fields,
    PayloadError,
    SignatureError,
    WebhookError,
    WebhookRequest,
    check_event,
    check_text,
    load_json,
    parse_iso,
)

PROVIDER = "google_meet"
ENDED = "google.workspace.meet.conference.v2.ended"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
DEFAULT_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
LEEWAY_SECONDS = 30
NO_TYPE = "a push without ce-type (no Workspace event): acknowledged so that Pub/Sub stops redelivering it"
UNWRAPPED_MESSAGE_ID = "x-goog-pubsub-message-id"

log = logging.getLogger(__name__)

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


def _lifecycle(request: WebhookRequest, data: Fields, attributes: _Attributes, event_type: str) -> Delivery:
    """expirationReminder, suspended, expired: queued for `callmatch.subscription_lifecycle`, acknowledged now."""
    from worker.ingest.subscriptions import queue_lifecycle

    subscription = data.opt_obj("subscription")
    name = subscription.opt_str("name", MAX_ID_LENGTH) if subscription is not None else None
    if not name:
        subject = attributes.get("ce-subject", MAX_ID_LENGTH) or ""
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


class _Attributes:
    """The CloudEvents attributes, from `message.attributes` or (payload unwrapping) from HTTP headers."""

    def __init__(self, values: Mapping[str, object], path: str):
        self.values = values
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def get(self, key: str, max_length: int | None = None) -> str | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise PayloadError("expected a string", self.at(key))
        return check_text(value, self.at(key), max_length) or None


def _ignored_without_type(request: WebhookRequest, message_id: str | None) -> Delivery:
    log.warning(
        "google_meet/%s: push %s without ce-type acknowledged and ignored",
        request.tenant.name,
        message_id or "(no message id)",
    )
    return Delivery(ignored=NO_TYPE)


def handle(request: WebhookRequest) -> Delivery:
    verify_token(request.header("authorization"), request.config, request.now)
    root = Fields(load_json(request.body))
    if root.data.get("message") is None:
        return _handle_unwrapped(request, root)
    message = root.obj("message")
    raw_attributes = message.opt_obj("attributes")
    attributes = _Attributes(raw_attributes.data if raw_attributes else {}, message.at("attributes"))
    message_id, message_id_path = message.opt_str("messageId", MAX_ID_LENGTH), message.at("messageId")
    if not message_id:
        message_id, message_id_path = message.opt_str("message_id", MAX_ID_LENGTH), message.at("message_id")
    event_type = attributes.get("ce-type")
    if not event_type:
        return _ignored_without_type(request, message_id)
    if event_type.startswith(LIFECYCLE_PREFIX):
        return _lifecycle(request, _decode_data(message), attributes, event_type)
    if event_type != ENDED:
        return Delivery(ignored="not a conference ended event")
    if message_id is None:
        message_id_path = message.at("messageId")
    return _ended(request, attributes, _decode_data(message), message_id, message_id_path)


def _handle_unwrapped(request: WebhookRequest, data: Fields) -> Delivery:
    """Payload unwrapping: the body is the event data, the CloudEvents attributes are headers."""
    attributes = _Attributes(request.headers, "headers")
    message_id = attributes.get(UNWRAPPED_MESSAGE_ID, MAX_ID_LENGTH)
    event_type = attributes.get("ce-type")
    if not event_type:
        return _ignored_without_type(request, message_id)
    if event_type.startswith(LIFECYCLE_PREFIX):
        return _lifecycle(request, data, attributes, event_type)
    if event_type != ENDED:
        return Delivery(ignored="not a conference ended event")
    return _ended(request, attributes, data, message_id, attributes.at(UNWRAPPED_MESSAGE_ID))


def _ended(
    request: WebhookRequest,
    attributes: _Attributes,
    data: Fields,
    message_id: str | None,
    message_id_path: str,
) -> Delivery:
    """One event for a conference that ended, named by its conference record."""
    event_id = attributes.get("ce-id", MAX_ID_LENGTH)
    event_id_path = attributes.at("ce-id")
    if not event_id:
        if not message_id:
            raise PayloadError("missing", message_id_path)
        event_id, event_id_path = message_id, message_id_path
    record_fields = data.obj("conferenceRecord")
    record = record_fields.str_("name", MAX_ID_LENGTH)
    record_path = record_fields.at("name")
    if not record.startswith("conferenceRecords/") or len(record) <= len("conferenceRecords/"):
        raise PayloadError("expected conferenceRecords/{id}", record_path)
    record_id = record.split("/", 1)[1]
    ce_time = attributes.get("ce-time")
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
                    ended_at=parse_iso(ce_time, attributes.at("ce-time")) if ce_time else None,
                    source_ref=record,
                ),
                {"call_id": record_path, "event_id": event_id_path, "source_ref": record_path},
            ),
        )
    )
