"""Zoom's past-meeting participants report, through a Server-to-Server OAuth token.

The meeting UUID is double URL-encoded in the path (a UUID may hold `/` or `//`),
pages are followed with `next_page_token`, and guests who gave no email are kept
by name: a person can still recognise them in the trace.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from adapters.errors import FatalError
from adapters.providers.aircall.client import merge
from worker.events import CallEvent
from worker.ingest.apiclient import (
    ApiClient,
    BearerToken,
    FetchContext,
    reading,
    shared_token,
    token_response,
)
from worker.ingest.webhook import Fields
from worker.model import Person
from worker.normalize import norm_email

DEFAULT_BASE_URL = "https://api.zoom.us"
DEFAULT_OAUTH_URL = "https://zoom.us/oauth/token"
PAGE_SIZE = 300
MAX_PAGES = 50


def double_encode(uuid: str) -> str:
    return quote(quote(uuid, safe=""), safe="")


def _token(ctx: FetchContext, client: ApiClient) -> BearerToken:
    credentials = ctx.config.credentials
    basic = base64.b64encode(f"{credentials['client_id']}:{credentials['client_secret']}".encode()).decode()
    url = ctx.config.setting("oauth_url", DEFAULT_OAUTH_URL) or DEFAULT_OAUTH_URL

    def fetch_token() -> tuple[str, float]:
        body = client.post_token(
            url,
            {"grant_type": "account_credentials", "account_id": credentials["account_id"]},
            {"Authorization": f"Basic {basic}"},
        )
        return token_response("zoom", body)

    return shared_token(ctx, url, "account", fetch_token)


def fetch(event: CallEvent, ctx: FetchContext) -> CallEvent:
    base = ctx.config.api_base_url or DEFAULT_BASE_URL
    token = _token(ctx, ctx.client(base))
    client = ctx.client(base, auth=token.headers, refresh=token.refresh)
    path = f"/v2/past_meetings/{double_encode(event.source_ref or '')}/participants"
    rows: list[Fields] = []
    page_token = ""
    for _ in range(MAX_PAGES):
        params: dict[str, str | int] = {"page_size": PAGE_SIZE}
        if page_token:
            params["next_page_token"] = page_token
        body = client.get(path, params)
        with reading("zoom"):
            page = Fields(body)
            rows += page.objs("participants")
            page_token = page.opt_str("next_page_token") or ""
        if not page_token:
            break
    if not event.organizer.email and event.organizer_ref:
        event = _with_host(event, client)
    with reading("zoom"):
        return _event(event, ctx, rows)


def _with_host(event: CallEvent, client: ApiClient) -> CallEvent:
    """meeting.ended names the host by id only: `/users/{id}` gives the organizer's email."""
    try:
        body = client.get(f"/v2/users/{quote(event.organizer_ref or '', safe='')}")
    except FatalError as exc:
        if exc.status == 404:
            return event
        raise
    with reading("zoom"):
        user = Fields(body)
        first = (user.opt_str("first_name") or "").strip()
        last = (user.opt_str("last_name") or "").strip()
        name = " ".join(p for p in (first, last) if p) or None
        return event.with_details(organizer=Person(email=norm_email(user.opt_str("email")), name=name))


def _event(event: CallEvent, ctx: FetchContext, rows: list[Fields]) -> CallEvent:
    organizer_email = norm_email(event.organizer.email)
    external: list[Person] = []
    internal: list[Person] = []
    seen: set[str] = set()
    for row in rows:
        email = norm_email(row.opt_str("user_email"))
        name = (row.opt_str("name") or "").strip() or None
        key = email or f"name:{(name or '').lower()}"
        if key in seen or (email is None and name is None):
            continue
        seen.add(key)
        person = Person(email=email, name=name)
        if email and (email == organizer_email or ctx.tenant.is_internal_email(email)):
            internal.append(person)
        else:
            external.append(person)
    return event.with_details(
        participants=merge(event.participants, external),
        internal=merge(event.internal, internal),
        complete=True,
    )
