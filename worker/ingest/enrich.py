"""Completing an event from its provider's API, in the worker (never in the HTTP receiver).

The pipeline task calls `complete_event` before `to_call()`: it adds the
participants the webhook did not carry (and, for Teams and Meet, the times).
A provider without API credentials keeps what the webhook said, and the event
notes why (the decision's trace starts with that note, cited as M3).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
import requests

from adapters.providers.aircall import client as aircall
from adapters.providers.google_meet import client as google_meet
from adapters.providers.ringover import client as ringover
from adapters.providers.teams import client as teams
from adapters.providers.zoom import client as zoom
from worker.config.tenants import Tenant
from worker.ingest.apiclient import FetchContext
from worker.ingest.events import CallEvent

Fetcher = Callable[[CallEvent, FetchContext], CallEvent]

FETCHERS: dict[str, Fetcher] = {
    "aircall": aircall.fetch,
    "ringover": ringover.fetch,
    "zoom": zoom.fetch,
    "google_meet": google_meet.fetch,
    "teams": teams.fetch,
}


def complete_event(
    event: CallEvent,
    tenant: Tenant,
    redis_client: redis.Redis | None = None,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CallEvent:
    """The event with the provider's participants; raises the adapters.errors vocabulary on failure."""
    config = tenant.providers.get(event.provider)
    if event.complete:
        return event
    if config is None or not config.has_api():
        return event.noting(
            f"participants not fetched from {event.provider} (no API credentials): the webhook's data alone"
        )
    if not event.source_ref:
        return event.noting(
            f"participants not fetched from {event.provider} (the webhook named no call to fetch): the webhook's data alone"
        )
    ctx = FetchContext(tenant=tenant, config=config, redis_client=redis_client, session=session, sleep=sleep)
    return FETCHERS[event.provider](event, ctx)
