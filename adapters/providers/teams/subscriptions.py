"""The Graph subscription on `communications/callRecords`: create, renew, delete, and the records of a gap.

Graph only notifies while a subscription lives, and a callRecords subscription
lives at most 4230 minutes (under 3 days; Graph answers 400 beyond), so
`worker.ingest.subscriptions` renews it with `PATCH /subscriptions/{id}` well before it
lapses. The same PATCH answers a `reauthorizationRequired` lifecycle notification.
After `missed`, the call records of the gap are listed with
`GET /communications/callRecords?$filter=startDateTime ge ... and startDateTime lt ...`
(the list filters on `startDateTime` with lt/le/gt/ge only, and keeps 30 days).
`duplicates` finds the app's other subscriptions on our notification URL (`GET /subscriptions`:
with an app-only token, those the app created; no OData option is accepted there, and
`clientState` is not given back, so one cannot be proven to carry our secret).
Every call needs the application permission CallRecords.Read.All.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from adapters.errors import FatalError
from adapters.providers.teams.client import DEFAULT_BASE_URL, _token
from adapters.providers.teams.payloads import RecordsPage, Subscription, SubscriptionsPage
from worker.ingest.apiclient import ApiClient, FetchContext, reading
from worker.ingest.payloads import parse

SERVICE = "teams"
RESOURCE = "communications/callRecords"
CHANGE_TYPE = "created"
MAX_LIFETIME = dt.timedelta(minutes=4230)
# Asked for a little under Graph's maximum, so a clock a few minutes ahead of Graph's is not refused.
LIFETIME = MAX_LIFETIME - dt.timedelta(minutes=10)
RECORDS_KEPT = dt.timedelta(days=30)
MAX_PAGES = 100


@dataclass(frozen=True)
class GraphSubscription:
    id: str
    resource: str
    expires_at: dt.datetime
    notification_url: str | None = None


def client(ctx: FetchContext) -> ApiClient:
    base = ctx.config.api_base_url or DEFAULT_BASE_URL
    token = _token(ctx, ctx.client(base))
    return ctx.client(base, auth=token.headers, refresh=token.refresh)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def notification_url(public_url: str, tenant: str) -> str:
    return f"{public_url.rstrip('/')}/webhooks/{tenant}/teams"


def _subscription(body: object) -> GraphSubscription:
    with reading(SERVICE):
        subscription = parse(Subscription, body)
    return GraphSubscription(
        subscription.id,
        subscription.resource,
        subscription.expirationDateTime,
        subscription.notificationUrl,
    )


def create(api: ApiClient, url: str, client_state: str, now: dt.datetime) -> GraphSubscription:
    """One subscription; notifications and lifecycle notifications both go to `url` (Graph validates it)."""
    body = api.send(
        "POST",
        "/v1.0/subscriptions",
        {
            "changeType": CHANGE_TYPE,
            "notificationUrl": url,
            "lifecycleNotificationUrl": url,
            "resource": RESOURCE,
            "expirationDateTime": iso(now + LIFETIME),
            "clientState": client_state,
            "latestSupportedTlsVersion": "v1_2",
        },
    )
    return _subscription(body)


def renew(api: ApiClient, subscription_id: str, now: dt.datetime) -> GraphSubscription:
    """A new expiry; also what reauthorizes a subscription after `reauthorizationRequired`."""
    body = api.send(
        "PATCH", f"/v1.0/subscriptions/{subscription_id}", {"expirationDateTime": iso(now + LIFETIME)}
    )
    return _subscription(body)


def delete(api: ApiClient, subscription_id: str) -> None:
    """Gone already (404) is as good as deleted."""
    try:
        api.send("DELETE", f"/v1.0/subscriptions/{subscription_id}")
    except FatalError as exc:
        if exc.status != 404:
            raise


def records_between(api: ApiClient, start: dt.datetime, end: dt.datetime) -> list[str]:
    """Ids of the call records that started in [start, end), following @odata.nextLink."""
    start = max(start, end - RECORDS_KEPT)
    since = start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = end.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    params: dict[str, str | int] | None = {
        "$select": "id,startDateTime",
        "$filter": f"startDateTime ge {since} and startDateTime lt {until}",
    }
    next_url: str | None = f"/v1.0/{RESOURCE}"
    ids: list[str] = []
    for _ in range(MAX_PAGES):
        if next_url is None:
            break
        body = api.get(next_url, params)
        params = None  # the nextLink carries the query
        with reading(SERVICE):
            page = parse(RecordsPage, body)
        ids += [row.id for row in page.value]
        next_url = page.next_link
    return list(dict.fromkeys(ids))


def listed(api: ApiClient) -> list[GraphSubscription]:
    """The app's own subscriptions, every page (`GET /subscriptions` takes no $select or $filter)."""
    next_url: str | None = "/v1.0/subscriptions"
    found: list[GraphSubscription] = []
    for _ in range(MAX_PAGES):
        if next_url is None:
            break
        body = api.get(next_url)
        with reading(SERVICE):
            page = parse(SubscriptionsPage, body)
        next_url = page.next_link
        found += [_subscription(row) for row in page.value]
    return found


def duplicates(api: ApiClient, url: str, keep: str) -> list[GraphSubscription]:
    """The app's callRecords subscriptions notifying `url`, other than `keep` (ours)."""
    return [
        sub
        for sub in listed(api)
        if sub.id != keep
        and sub.notification_url == url
        and sub.resource.strip("/").lower() == RESOURCE.lower()
    ]
