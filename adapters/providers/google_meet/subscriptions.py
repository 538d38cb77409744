"""The Google Workspace Events subscription that publishes Meet's conference-ended events to Pub/Sub.

The subscription watches `events_target`: a Meet space (`//meet.googleapis.com/spaces/{space}`)
or a user (`//cloudidentity.googleapis.com/users/{id}`: the spaces that user owns), and
publishes to `pubsub_topic`, whose push subscription delivers to our receiver. Without the
resource in the payload Google keeps a Meet subscription at most 7 days, so
`worker.ingest.subscriptions` renews it (`PATCH subscriptions/{id}?updateMask=ttl`). Create, update
and reactivate answer a long-running Operation whose `response` is the subscription.

Google keeps one subscription per user, app and target: a second create answers 409
ALREADY_EXISTS. `find` lists the ones on a target (`GET subscriptions?filter=event_types:"..."
AND target_resource="..."`: the filter must name an event type; a user token lists only the
subscriptions that user authorized) so `worker.ingest.subscriptions` can adopt ours.

Lifecycle events reach the same topic as CloudEvents (`ce-type`): expirationReminder
(12 h and 1 h before expiry: renew), suspended (an error stopped delivery: reactivate once
fixed) and expired (the subscription is deleted: create a new one).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from adapters.errors import FatalError, RetryableError
from adapters.providers.google_meet.client import MEET_SCOPE, _Google
from adapters.providers.google_meet.payloads import (
    NotificationEndpoint,
    Operation,
    OperationDone,
    OperationError,
    Subscription,
    SubscriptionsPage,
    SubscriptionTimes,
)
from worker.ingest.apiclient import ApiClient, FetchContext, reading
from worker.ingest.payloads import parse

SERVICE = "google_meet"
EVENTS_URL = "https://workspaceevents.googleapis.com"
EVENT_TYPES = ("google.workspace.meet.conference.v2.ended",)
LIFECYCLE_PREFIX = "google.workspace.events.subscription.v1."
EXPIRATION_REMINDER = LIFECYCLE_PREFIX + "expirationReminder"
SUSPENDED = LIFECYCLE_PREFIX + "suspended"
EXPIRED = LIFECYCLE_PREFIX + "expired"
MAX_LIFETIME = dt.timedelta(days=7)
TARGET_PREFIXES = ("//meet.googleapis.com/spaces/", "//cloudidentity.googleapis.com/users/")
OPERATION_POLLS = 5
PAGE_SIZE = 100  # the list's maximum
MAX_PAGES = 20


@dataclass(frozen=True)
class WorkspaceSubscription:
    name: str
    target: str
    expires_at: dt.datetime
    state: str  # ACTIVE, SUSPENDED, DELETED
    suspension_reason: str | None = None
    topic: str | None = None
    created_at: dt.datetime | None = None  # createTime
    updated_at: dt.datetime | None = None  # updateTime: its expiry last set (created, renewed, reactivated)


def client(ctx: FetchContext) -> ApiClient:
    """A JSON client on the Workspace Events API, with a token as `events_subject` (or `delegated_user`)."""
    google = _Google(ctx)
    subject = ctx.config.setting("events_subject") or ctx.config.setting("delegated_user")
    # Meet's own scope only: delegation lacking the directory or calendar scope must not stop subscriptions.
    token = google._token(subject or google.key["client_email"], MEET_SCOPE)
    return ctx.client(ctx.config.api_base_url or EVENTS_URL, auth=token.headers, refresh=token.refresh)


def _subscription(body: object) -> WorkspaceSubscription:
    with reading(SERVICE):
        found = parse(Subscription, body)
        endpoint = found.notificationEndpoint
        topic = (
            parse(NotificationEndpoint, endpoint, "notificationEndpoint").pubsubTopic if endpoint else None
        )
        times = parse(SubscriptionTimes, body)
        return WorkspaceSubscription(
            name=found.name,
            target=found.targetResource,
            expires_at=found.expireTime,
            state=found.state or "ACTIVE",
            suspension_reason=found.suspensionReason,
            topic=topic,
            created_at=times.createTime,
            updated_at=times.updateTime,
        )


def _done(api: ApiClient, operation: Any) -> WorkspaceSubscription:
    """The subscription an Operation ends with (polled a few times when not done yet)."""
    for _ in range(OPERATION_POLLS):
        with reading(SERVICE):
            state = parse(Operation, operation)
            error = parse(OperationError, state.error, "error") if state.error is not None else None
        if error is not None:
            raise FatalError(SERVICE, f"operation failed: {error.message or 'no message'}")
        if state.done:
            with reading(SERVICE):
                return _subscription(parse(OperationDone, operation).response)
        api._sleep(1.0)
        operation = api.get(f"/v1/{state.name}")
    raise RetryableError(SERVICE, "operation not done yet")


def create(api: ApiClient, target: str, topic: str) -> WorkspaceSubscription:
    body = api.send(
        "POST",
        "/v1/subscriptions",
        {
            "targetResource": target,
            "eventTypes": list(EVENT_TYPES),
            "notificationEndpoint": {"pubsubTopic": topic},
            "payloadOptions": {"includeResource": False},
            "ttl": f"{int(MAX_LIFETIME.total_seconds())}s",
        },
    )
    return _done(api, body)


def renew(api: ApiClient, name: str) -> WorkspaceSubscription:
    """The longest lifetime again (`ttl`); what an expirationReminder asks for."""
    body = api.send("PATCH", f"/v1/{name}?updateMask=ttl", {"ttl": f"{int(MAX_LIFETIME.total_seconds())}s"})
    return _done(api, body)


def reactivate(api: ApiClient, name: str) -> WorkspaceSubscription:
    """Refused (FatalError, 400 FAILED_PRECONDITION) while the cause of the suspension remains."""
    return _done(api, api.send("POST", f"/v1/{name}:reactivate", {}))


def get(api: ApiClient, name: str) -> WorkspaceSubscription | None:
    try:
        return _subscription(api.get(f"/v1/{name}"))
    except FatalError as exc:
        if exc.status == 404:
            return None
        raise


def delete(api: ApiClient, name: str) -> None:
    try:
        api.send("DELETE", f"/v1/{name}")
    except FatalError as exc:
        if exc.status != 404:
            raise


def list_filter(target: str) -> str:
    """The list's documented filter: our event types (ORed, in parentheses) AND the target."""
    types = " OR ".join(f'event_types:"{kind}"' for kind in EVENT_TYPES)
    return f'{f"( {types} )" if len(EVENT_TYPES) > 1 else types} AND target_resource="{target}"'


def find(api: ApiClient, target: str) -> list[WorkspaceSubscription]:
    """The live subscriptions on `target` for our event types that the token's user authorized."""
    params: dict[str, str | int] = {"filter": list_filter(target), "pageSize": PAGE_SIZE}
    found: list[WorkspaceSubscription] = []
    for _ in range(MAX_PAGES):
        body = api.get("/v1/subscriptions", params)
        with reading(SERVICE):
            page = parse(SubscriptionsPage, body)
        # A row's errors name its own fields (`expireTime`), as they always have, not `subscriptions[0]...`.
        found += [_subscription(row) for row in page.subscriptions]
        token = page.nextPageToken
        if not token:
            break
        params = {**params, "pageToken": token}
    return [sub for sub in found if sub.target == target and sub.state != "DELETED"]
