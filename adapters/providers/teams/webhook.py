"""Microsoft Graph `callRecords` notifications.

Graph first proves the URL with a `validationToken` query parameter that we echo
as text; real deliveries carry several notifications, each with the
`clientState` we gave the subscription, compared in constant time. One bad
`clientState` refuses the whole delivery: nothing from it is enqueued.
"""

from __future__ import annotations

import hmac

from worker.events import CallEvent
from worker.ingest.webhook import (
    Challenge,
    Delivery,
    Fields,
    Outcome,
    PayloadError,
    SignatureError,
    WebhookRequest,
    load_json,
)
from worker.model import CallKind

PROVIDER = "teams"
RESOURCE_PREFIX = "communications/callRecords/"


def verify_client_state(value: str | None, secrets: tuple[str, ...], path: str) -> None:
    if not value:
        raise SignatureError("missing clientState", path)
    supplied = value.encode()
    if not any(hmac.compare_digest(supplied, secret.encode()) for secret in secrets):
        raise SignatureError("clientState does not match", path)


def _record_id(notification: Fields) -> str:
    data = notification.opt_obj("resourceData")
    if data is not None and data.opt_str("id"):
        return data.str_("id")
    resource = notification.str_("resource").lstrip("/")
    if not resource.startswith(RESOURCE_PREFIX) or len(resource) <= len(RESOURCE_PREFIX):
        raise PayloadError("expected communications/callRecords/{id}", notification.at("resource"))
    return resource[len(RESOURCE_PREFIX) :].split("/", 1)[0]


def handle(request: WebhookRequest) -> Outcome:
    token = request.query.get("validationToken")
    if token is not None:
        return Challenge(token, media_type="text/plain")
    root = Fields(load_json(request.body))
    notifications = root.objs("value")
    if root.data.get("value") is None:
        raise PayloadError("missing", "value")
    secrets = request.config.webhook_secrets
    for notification in notifications:
        verify_client_state(notification.opt_str("clientState"), secrets, notification.at("clientState"))
    events: list[CallEvent] = []
    for notification in notifications:
        if notification.data.get("lifecycleEvent") is not None:
            continue
        change = notification.str_("changeType")
        record_id = _record_id(notification)
        if change not in ("created", "updated"):
            continue
        events.append(
            CallEvent(
                tenant=request.tenant.name,
                provider=PROVIDER,
                call_id=f"{PROVIDER}:{record_id}",
                event_id=f"callRecords/{record_id}",
                kind=CallKind.MEETING,
                received_at=request.now,
                source_ref=record_id,
            )
        )
    if not events:
        return Delivery(ignored="no call record notification")
    return Delivery(events=tuple(events))
