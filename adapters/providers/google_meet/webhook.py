"""Google Meet `google.workspace.meet.conference.v2.ended`, pushed by Pub/Sub.

The push carries a Google-signed OIDC token: we check its signature (keys from
a JWKS URL, or a PEM for tests and air-gapped setups), audience, issuer and
that it names the configured push service account with a verified email.
No claim reaches the event; the Pub/Sub attributes and the base64-decoded
`data` are read as the models of `payloads.py` (no lone surrogates, no control
characters, ids of at most 255), like every provider's body, one step at a time:
what a step does not need (the data of an ignored event) is not read.

Two envelopes: the usual push (`{"message": {"attributes": {"ce-type": ...},
"data": base64, "messageId"/"message_id"}, "subscription"}`), and a push
subscription with payload unwrapping and write metadata, whose body is the
event data itself, its CloudEvents attributes `ce-*` HTTP headers and the
message id `x-goog-pubsub-message-id`. A verified push that names no event
type (`ce-type`) is acknowledged (200) and ignored, counted and logged:
Pub/Sub redelivers any 4xx or 5xx, and nothing can ever make it valid.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import TypeVar

import jwt
from pydantic import BaseModel

from adapters.providers.google_meet.payloads import (
    ConferenceEnded,
    EncodedData,
    EventId,
    EventSubject,
    EventTime,
    EventType,
    LifecycleEvent,
    Message,
    Push,
    SnakeMessage,
    SnakeSuspensionReason,
    SubscriptionName,
    SuspensionReason,
    UnwrappedMessageId,
)
from worker.config.tenants import ProviderConfig
from worker.core.model import CallKind
from worker.ingest.events import CallEvent
from worker.ingest.payloads import parse
from worker.ingest.webhook import (
    Delivery,
    PayloadError,
    SignatureError,
    WebhookError,
    WebhookRequest,
    check_event,
    load_json,
)

PROVIDER = "google_meet"
ENDED = "google.workspace.meet.conference.v2.ended"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
DEFAULT_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
LEEWAY_SECONDS = 30
NO_TYPE = "a push without ce-type (no Workspace event): acknowledged so that Pub/Sub stops redelivering it"
UNWRAPPED_MESSAGE_ID = "x-goog-pubsub-message-id"

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

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


LIFECYCLE_PREFIX = "google.workspace.events.subscription.v1."


class LifecycleUnavailable(WebhookError):
    """The lifecycle event could not be queued: 503, Pub/Sub pushes it again."""

    status = 503


@dataclass(frozen=True)
class _Part:
    """A JSON object of the push and where it is (`message.attributes`, `headers`, `message.data`, or the body)."""

    value: object
    path: str

    def read(self, model: type[M]) -> M:
        """The part read as `model`: errors name its fields below `path`."""
        return parse(model, self.value, self.path)

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


def _lifecycle(request: WebhookRequest, data: _Part, attributes: _Part, event_type: str) -> Delivery:
    """expirationReminder, suspended, expired: queued for `callmatch.subscription_lifecycle`, acknowledged now."""
    from worker.ingest.subscriptions import queue_lifecycle

    raw = data.read(LifecycleEvent).subscription
    subscription = _Part(raw, data.at("subscription")) if raw is not None else None
    name = subscription.read(SubscriptionName).name if subscription is not None else None
    if not name:
        subject = attributes.read(EventSubject).subject or ""
        name = (
            subject.split("//workspaceevents.googleapis.com/", 1)[-1] if "subscriptions/" in subject else ""
        )
    reason = None
    if subscription is not None:
        reason = (
            subscription.read(SuspensionReason).suspensionReason
            or subscription.read(SnakeSuspensionReason).suspension_reason
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


def _ignored_without_type(request: WebhookRequest, message_id: str | None) -> Delivery:
    log.warning(
        "google_meet/%s: push %s without ce-type acknowledged and ignored",
        request.tenant.name,
        message_id or "(no message id)",
    )
    return Delivery(ignored=NO_TYPE)


def _decoded(message: _Part) -> _Part:
    """The message's `data`, base64 then JSON: the event data, named `message.data`."""
    return _Part(message.read(EncodedData).data, message.at("data"))


def handle(request: WebhookRequest) -> Delivery:
    verify_token(request.header("authorization"), request.config, request.now)
    body = load_json(request.body)
    raw_message = parse(Push, body).message
    if raw_message is None:
        return _handle_unwrapped(request, _Part(body, ""))
    message = _Part(raw_message, "message")
    fields = message.read(Message)
    attributes = _Part(fields.attributes or {}, message.at("attributes"))
    message_id, message_id_path = fields.messageId, message.at("messageId")
    if not message_id:
        message_id, message_id_path = message.read(SnakeMessage).message_id, message.at("message_id")
    event_type = attributes.read(EventType).type
    if not event_type:
        return _ignored_without_type(request, message_id)
    if event_type.startswith(LIFECYCLE_PREFIX):
        return _lifecycle(request, _decoded(message), attributes, event_type)
    if event_type != ENDED:
        return Delivery(ignored="not a conference ended event")
    if message_id is None:
        message_id_path = message.at("messageId")
    return _ended(request, attributes, _decoded(message), message_id, message_id_path)


def _handle_unwrapped(request: WebhookRequest, data: _Part) -> Delivery:
    """Payload unwrapping: the body is the event data, the CloudEvents attributes are headers."""
    attributes = _Part(dict(request.headers), "headers")
    message_id = attributes.read(UnwrappedMessageId).message_id
    event_type = attributes.read(EventType).type
    if not event_type:
        return _ignored_without_type(request, message_id)
    if event_type.startswith(LIFECYCLE_PREFIX):
        return _lifecycle(request, data, attributes, event_type)
    if event_type != ENDED:
        return Delivery(ignored="not a conference ended event")
    return _ended(request, attributes, data, message_id, attributes.at(UNWRAPPED_MESSAGE_ID))


def _ended(
    request: WebhookRequest,
    attributes: _Part,
    data: _Part,
    message_id: str | None,
    message_id_path: str,
) -> Delivery:
    """One event for a conference that ended, named by its conference record."""
    event_id = attributes.read(EventId).id
    event_id_path = attributes.at("ce-id")
    if not event_id:
        if not message_id:
            raise PayloadError("missing", message_id_path)
        event_id, event_id_path = message_id, message_id_path
    record = data.read(ConferenceEnded).conferenceRecord.name
    record_path = data.at("conferenceRecord.name")
    record_id = record.split("/", 1)[1]
    ended_at = attributes.read(EventTime).time
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
                    ended_at=ended_at,
                    source_ref=record,
                ),
                {"call_id": record_path, "event_id": event_id_path, "source_ref": record_path},
            ),
        )
    )
