"""Zoom's past-meeting participants report, through a Server-to-Server OAuth token.

The meeting UUID is double URL-encoded in the path (a UUID may hold `/` or `//`),
pages are followed with `next_page_token`, and guests who gave no email are kept
by name: a person can still recognise them in the trace.

Zoom hides a guest's email in that report unless the guest registered or was
invited. When a participant has no email, three lookups may add it, each best
effort (a 400/403/404 answer is skipped and noted in the event, never fatal):
the past meeting (`GET /v2/past_meetings/{uuid}`, for the meeting's numeric id),
its registrants (`GET /v2/meetings/{id}/registrants`, paged) whose name matches
a guest's, and its invitees (`settings.meeting_invitees` of `GET /v2/meetings/{id}`).
Only the participants report itself is the call: its failure stays fatal.

`check` (for `callmatch doctor`) asks for a token, reads the scopes the token
response grants (`scope`) against what the calls here need, and makes one
harmless request, `GET /v2/users/me`.

Every answer read is a model of `payloads.py`; an unreadable one is a fatal
error naming its field (`participants[0].user_email: expected a string, got a
number`), or, for a best-effort lookup, a note in the event.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

from adapters.crm.readiness import Check, Status
from adapters.errors import ExternalError, FatalError
from adapters.providers.aircall.client import merge
from adapters.providers.checks import missing_scopes, probe_client, refused, wording
from adapters.providers.zoom.payloads import (
    Meeting,
    Participant,
    ParticipantsPage,
    PastMeeting,
    RegistrantsPage,
    User,
)
from worker.core.model import Person
from worker.core.normalize import norm_email
from worker.ingest.apiclient import (
    ApiClient,
    BearerToken,
    FetchContext,
    reading,
    shared_token,
    token_response,
)
from worker.ingest.events import CallEvent
from worker.ingest.payloads import parse
from worker.ingest.webhook import PayloadError

_T = TypeVar("_T")

_P = TypeVar("_P", ParticipantsPage, RegistrantsPage)
"""A page of a Zoom list: its rows, then `next_page_token` (none on the last)."""

DEFAULT_BASE_URL = "https://api.zoom.us"
DEFAULT_OAUTH_URL = "https://zoom.us/oauth/token"
PAGE_SIZE = 300
MAX_PAGES = 50
# What each call of this module needs, as Zoom names it: the classic scope or its granular one.
NEEDED_SCOPES: dict[str, tuple[str, ...]] = {
    "to read past meeting participants": ("meeting:read:admin", "meeting:read:list_past_participants:admin"),
    "to read the host's email": ("user:read:admin", "user:read:user:admin"),
}
# What the best-effort guest lookups need; without them a guest may stay a name only.
GUEST_SCOPES: dict[str, tuple[str, ...]] = {
    "to find the meeting's id": ("meeting:read:admin", "meeting:read:past_meeting:admin"),
    "to read registrants' emails": ("meeting:read:admin", "meeting:read:list_registrants:admin"),
    "to read invitees' emails": ("meeting:read:admin", "meeting:read:meeting:admin"),
}
# A lookup that only adds information is skipped, and noted, when Zoom answers one of these.
SKIPPED_STATUSES = frozenset({400, 403, 404})


def double_encode(uuid: str) -> str:
    return quote(quote(uuid, safe=""), safe="")


def _oauth_url(ctx: FetchContext) -> str:
    return ctx.config.setting("oauth_url", DEFAULT_OAUTH_URL) or DEFAULT_OAUTH_URL


def _token_body(ctx: FetchContext, client: ApiClient) -> Any:
    """The Server-to-Server OAuth token response (`access_token`, `expires_in`, `scope`)."""
    credentials = ctx.config.credentials
    basic = base64.b64encode(f"{credentials['client_id']}:{credentials['client_secret']}".encode()).decode()
    return client.post_token(
        _oauth_url(ctx),
        {"grant_type": "account_credentials", "account_id": credentials["account_id"]},
        {"Authorization": f"Basic {basic}"},
    )


def _token(ctx: FetchContext, client: ApiClient) -> BearerToken:
    def fetch_token() -> tuple[str, float]:
        return token_response("zoom", _token_body(ctx, client))

    return shared_token(ctx, _oauth_url(ctx), "account", fetch_token)


def granted_scopes(body: Any) -> set[str] | None:
    """The token response's `scope` (space-separated, or a list); None when it has none."""
    scope = body.get("scope") if isinstance(body, dict) else None
    if isinstance(scope, str):
        return set(scope.split())
    if isinstance(scope, list):
        return {s for s in scope if isinstance(s, str)}
    return None


# Zoom's answer (HTTP 400) to a token that lacks the scope a request needs.
MISSING_SCOPE_CODE = "4711"
_SCOPES_FIX = (
    "in the Zoom App Marketplace, add the scopes to the Server-to-Server OAuth app (Scopes), then activate"
    " the app again: " + wording(list(NEEDED_SCOPES.items()))
)
_APP_FIX = (
    "in the Zoom App Marketplace, open the Server-to-Server OAuth app (Manage), check its account ID,"
    " client ID and client secret against providers.zoom.credentials, and that the app is activated"
)


def check(ctx: FetchContext) -> list[Check]:
    """A token is issued, its scopes cover what we call, and `GET /v2/users/me` answers."""
    base = ctx.config.api_base_url or DEFAULT_BASE_URL
    client = probe_client(ctx, base)
    try:
        body = _token_body(ctx, client)
        token, _ = token_response("zoom", body)
    except ExternalError as exc:
        return [refused("zoom.api", "token (account_credentials)", exc, _APP_FIX)]
    checks: list[Check] = []
    api = probe_client(ctx, base, auth=lambda: {"Authorization": f"Bearer {token}"})
    try:
        api.get("/v2/users/me")
        checks.append(
            Check("zoom.api", Status.OK, "Server-to-Server OAuth token issued; GET /v2/users/me answered")
        )
    except ExternalError as exc:
        lacks_scope = exc.status == 400 and exc.code == MISSING_SCOPE_CODE
        checks.append(refused("zoom.api", "GET /v2/users/me", exc, _SCOPES_FIX if lacks_scope else _APP_FIX))
    granted = granted_scopes(body)
    if granted is None:
        checks.append(
            Check(
                "zoom.scopes",
                Status.WARN,
                "the token response lists no scopes: cannot tell whether they cover what callmatch reads",
                "check the app's scopes in the Zoom App Marketplace: " + wording(list(NEEDED_SCOPES.items())),
            )
        )
        return checks
    missing = missing_scopes(granted, NEEDED_SCOPES)
    if missing:
        checks.append(
            Check(
                "zoom.scopes",
                Status.FAIL,
                "the app's token lacks " + wording(missing),
                _SCOPES_FIX,
            )
        )
    else:
        covered = sorted(granted.intersection(s for options in NEEDED_SCOPES.values() for s in options))
        detail = f"the token grants {', '.join(covered)}"
        lacking = missing_scopes(granted, GUEST_SCOPES)
        if lacking:  # optional: without them a guest may stay a name, and the trace says so
            detail += f"; guests' emails stay hidden without {wording(lacking)}"
        checks.append(Check("zoom.scopes", Status.OK, detail))
    return checks


def fetch(event: CallEvent, ctx: FetchContext) -> CallEvent:
    base = ctx.config.api_base_url or DEFAULT_BASE_URL
    token = _token(ctx, ctx.client(base))
    client = ctx.client(base, auth=token.headers, refresh=token.refresh)
    path = f"/v2/past_meetings/{double_encode(event.source_ref or '')}/participants"
    rows: list[Participant] = []
    with reading("zoom"):
        for page in _pages(client, path, {}, ParticipantsPage):
            rows += page.participants
    if not event.organizer.email and event.organizer_ref:
        event = _with_host(event, client)
    with reading("zoom"):
        event = _event(event, ctx, rows)
        # A registered guest's row names its registrant: the surest way to the registrant's email.
        shown = {
            row.registrant_id or "": (row.name or "").strip()
            for row in rows
            if not norm_email(row.user_email)
        }
    if any(person.email is None for person in event.participants):
        event = _with_guests(event, ctx, client, shown)
    return event


def _pages(client: ApiClient, path: str, params: dict[str, str | int], model: type[_P]) -> Iterator[_P]:
    """Each page of a Zoom list read as `model`, following `next_page_token` (at most `MAX_PAGES`)."""
    page_token = ""
    for _ in range(MAX_PAGES):
        query: dict[str, str | int] = {**params, "page_size": PAGE_SIZE}
        if page_token:
            query["next_page_token"] = page_token
        page = parse(model, client.get(path, query))
        yield page
        page_token = page.next_page_token or ""
        if not page_token:
            return


def _skipped(event: CallEvent, what: str, exc: FatalError, then: str) -> CallEvent:
    """The event noting that a lookup which only adds information was refused (ids only, never emails)."""
    code = f", code {exc.code}" if exc.code else ""
    hint = " (a scope the app lacks)" if exc.code == MISSING_SCOPE_CODE or exc.status == 403 else ""
    return event.noting(f"zoom: {what} answered HTTP {exc.status}{code}{hint}; {then}")


def _optional(event: CallEvent, what: str, then: str, read: Callable[[], _T]) -> tuple[CallEvent, _T | None]:
    """`read()` for a best-effort lookup: a refusal (400/403/404) or an unreadable answer is noted and skipped."""
    try:
        return event, read()
    except FatalError as exc:
        if exc.status not in SKIPPED_STATUSES:
            raise
        return _skipped(event, what, exc, then), None
    except PayloadError as exc:
        return event.noting(f"zoom: {what} answered unexpectedly ({exc.field}: {exc.reason}); {then}"), None


def _with_host(event: CallEvent, client: ApiClient) -> CallEvent:
    """meeting.ended names the host by id only: `/users/{id}` gives the organizer's email."""

    def read() -> Person:
        user = parse(User, client.get(f"/v2/users/{quote(event.organizer_ref or '', safe='')}"))
        first = (user.first_name or "").strip()
        last = (user.last_name or "").strip()
        name = " ".join(p for p in (first, last) if p) or None
        return Person(email=norm_email(user.email), name=name)

    what = f"GET /v2/users/{event.organizer_ref}"
    event, host = _optional(event, what, "the organizer's email is unknown", read)
    return event if host is None else event.with_details(organizer=host)


def _with_guests(event: CallEvent, ctx: FetchContext, client: ApiClient, shown: dict[str, str]) -> CallEvent:
    """Guests' emails from the meeting's registrants and invitees, when Zoom lets us read them."""
    uuid = double_encode(event.source_ref or "")

    def meeting_id() -> str:
        return parse(PastMeeting, client.get(f"/v2/past_meetings/{uuid}")).id

    then = "guests' emails from the participants report only"
    event, found = _optional(event, "GET /v2/past_meetings/{uuid}", then, meeting_id)
    if found is None:
        return event
    meeting = quote(found, safe="")

    def registrants() -> list[tuple[Person, set[str]]]:
        """Each approved registrant with the names a guest may show: its own, and the report's for its id."""
        people: list[tuple[Person, set[str]]] = []
        path = f"/v2/meetings/{meeting}/registrants"
        for page in _pages(client, path, {"status": "approved"}, RegistrantsPage):
            for row in page.registrants:
                first = (row.first_name or "").strip()
                last = (row.last_name or "").strip()
                name = " ".join(p for p in (first, last) if p) or None
                names = {n.casefold() for n in (name, shown.get(row.id or "-")) if n}
                people.append((Person(email=norm_email(row.email), name=name), names))
        return people

    def invitees() -> list[tuple[Person, set[str]]]:
        settings = parse(Meeting, client.get(f"/v2/meetings/{meeting}")).settings
        rows = settings.meeting_invitees if settings is not None else ()
        return [(Person(email=norm_email(row.email)), set()) for row in rows]

    event, registered = _optional(event, f"GET /v2/meetings/{found}/registrants", then, registrants)
    event, invited = _optional(event, f"GET /v2/meetings/{found}", "invitees' emails not read", invitees)
    return _with_people(event, ctx, registered or [], invited or [])


def _with_people(
    event: CallEvent,
    ctx: FetchContext,
    registered: list[tuple[Person, set[str]]],
    invited: list[tuple[Person, set[str]]],
) -> CallEvent:
    """A guest shown by name takes the email of its registrant (by `registrant_id`, else by name);
    invitees join as they are.

    A registrant nobody recognises in the report is left out: registering is not attending.
    """
    participants = list(event.participants)
    internal = list(event.internal)
    organizer = norm_email(event.organizer.email)
    known = {p.email for p in (*participants, *internal) if p.email} | ({organizer} if organizer else set())
    for (person, names), join_unmatched in [(r, False) for r in registered] + [(i, True) for i in invited]:
        email = person.email
        if not email or email in known:
            continue
        guest = next(
            (
                index
                for index, p in enumerate(participants)
                if p.email is None and p.name and p.name.casefold() in names
            ),
            None,
        )
        if guest is not None:
            participants[guest] = Person(
                email=email, phone=participants[guest].phone, name=participants[guest].name
            )
        elif join_unmatched:
            ours = email == organizer or ctx.tenant.is_internal_email(email)
            (internal if ours else participants).append(Person(email=email, name=person.name))
        else:
            continue
        known.add(email)
    return event.with_details(participants=tuple(participants), internal=tuple(internal))


def _event(event: CallEvent, ctx: FetchContext, rows: list[Participant]) -> CallEvent:
    organizer_email = norm_email(event.organizer.email)
    external: list[Person] = []
    internal: list[Person] = []
    seen: set[str] = set()
    for row in rows:
        email = norm_email(row.user_email)
        name = (row.name or "").strip() or None
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
