"""Microsoft Graph `callRecords` notifications.

Graph first proves the URL with a `validationToken` query parameter that we echo
as text; real deliveries carry several notifications, each with the
`clientState` we gave the subscription, compared in constant time. One bad
`clientState` refuses the whole delivery: nothing from it is enqueued. So does
one unusable string (a lone surrogate, a control character, an id over 255
characters): the body is read as the models of `payloads.py`, one notification
at a time (its `clientState`, then the lifecycle or change it carries), and the
echoed `validationToken`, which comes from the query string, through `check_text`.
"""

from __future__ import annotations

import hmac

from adapters.providers.teams.payloads import (
    ByResource,
    Change,
    Lifecycle,
    Notifications,
    Raw,
    Signed,
)
from worker.core.model import CallKind
from worker.ingest.events import CallEvent
from worker.ingest.payloads import parse
from worker.ingest.webhook import (
    MAX_ID_LENGTH,
    Challenge,
    Delivery,
    Outcome,
    PayloadError,
    SignatureError,
    WebhookError,
    WebhookRequest,
    check_event,
    check_text,
    load_json,
)

PROVIDER = "teams"
RESOURCE_PREFIX = "communications/callRecords/"


def verify_client_state(value: str | None, secrets: tuple[str, ...], path: str) -> None:
    if not value:
        raise SignatureError("missing clientState", path)
    supplied = value.encode()
    if not any(hmac.compare_digest(supplied, secret.encode()) for secret in secrets):
        raise SignatureError("clientState does not match", path)


def _record_id(change: Change, notification: Raw, root: str) -> tuple[str, str]:
    """The call record's id and the JSON path it was read from (for a 400 that names it).

    `resourceData.id` names it; without one, `resource` (`communications/callRecords/{id}`) does.
    """
    data = change.resourceData
    if data is not None and data.id:
        return data.id, f"{root}.resourceData.id"
    path = f"{root}.resource"
    resource = parse(ByResource, notification, root).resource.lstrip("/")
    record_id = resource[len(RESOURCE_PREFIX) :].split("/", 1)[0]
    if not resource.startswith(RESOURCE_PREFIX) or not record_id.strip():
        raise PayloadError("expected communications/callRecords/{id}", path)
    return check_text(record_id, path, MAX_ID_LENGTH), path


class LifecycleUnavailable(WebhookError):
    """The lifecycle notification could not be queued: 503, Graph sends it again."""

    status = 503


def _lifecycle_notice(request: WebhookRequest, notification: Lifecycle) -> dict[str, str]:
    """reauthorizationRequired, subscriptionRemoved or missed, for `callmatch.subscription_lifecycle`."""
    return {
        "tenant": request.tenant.name,
        "provider": PROVIDER,
        "event": notification.lifecycleEvent,
        "subscription_id": notification.subscriptionId,
    }


def _queue_lifecycle(notices: list[dict[str, str]]) -> None:
    """Only queued here (a worker renews, recreates or lists the gap), so Graph gets its answer at once."""
    from worker.ingest.subscriptions import queue_lifecycle

    try:
        queue_lifecycle(notices)
    except Exception as exc:
        raise LifecycleUnavailable(
            f"cannot queue the lifecycle notification ({type(exc).__name__})"
        ) from None


def handle(request: WebhookRequest) -> Outcome:
    token = request.query.get("validationToken")
    if token is not None:
        return Challenge(check_text(token, "validationToken"), media_type="text/plain")
    notifications = parse(Notifications, load_json(request.body)).value
    secrets = request.config.webhook_secrets
    for index, notification in enumerate(notifications):
        root = f"value[{index}]"
        client_state = parse(Signed, notification, root).clientState
        verify_client_state(client_state, secrets, f"{root}.clientState")
    events: list[CallEvent] = []
    lifecycle: list[dict[str, str]] = []
    for index, notification in enumerate(notifications):
        root = f"value[{index}]"
        if notification.get("lifecycleEvent") is not None:
            lifecycle.append(_lifecycle_notice(request, parse(Lifecycle, notification, root)))
            continue
        change = parse(Change, notification, root)
        record_id, path = _record_id(change, notification, root)
        if change.changeType not in ("created", "updated"):
            continue
        events.append(
            check_event(
                CallEvent(
                    tenant=request.tenant.name,
                    provider=PROVIDER,
                    call_id=f"{PROVIDER}:{record_id}",
                    event_id=f"callRecords/{record_id}",
                    kind=CallKind.MEETING,
                    received_at=request.now,
                    source_ref=record_id,
                ),
                {"call_id": path, "event_id": path, "source_ref": path},
            )
        )
    if lifecycle:
        _queue_lifecycle(lifecycle)
    if not events:
        return Delivery(
            ignored="lifecycle notification queued" if lifecycle else "no call record notification"
        )
    return Delivery(events=tuple(events))
