"""Google Meet participants: the Meet API, the Admin directory for emails, the calendar for guests.

Meet participants carry no email: a signed-in one is `users/{id}` (the Admin
directory knows our domain's users, not a guest's), anonymous and dial-in ones
have a display name only. The calendar event the meeting came from does: found
in a participant's calendar by the space's meeting code (the event's
`conferenceData.conferenceId`), its attendees bring the guests' emails and its
organizer the organizer. Only the conference record and its participants are
required (unreadable: fatal); the directory, the space and the calendar only add
information, so a 403/404 there is skipped and noted on the event (the trace
starts with the note, rule M3). Calls use a service account with domain-wide
delegation, acting as `delegated_user` (or as the calendar's owner).

`check` (for `callmatch doctor`) asks for a token as `delegated_user`: that
works only when an admin granted the service account domain-wide delegation
for our scopes. Then one harmless request: one conference record.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import jwt

from adapters.crm.readiness import Check, Status
from adapters.errors import ExternalError, FatalError
from adapters.providers.aircall.client import merge
from adapters.providers.checks import probe_client, refused
from adapters.providers.google_meet.payloads import (
    Attendee,
    Attendees,
    CalendarEvent,
    ConferenceRecord,
    DirectoryUser,
    Email,
    EventsPage,
    Guest,
    HangoutLink,
    MeetConference,
    Named,
    PageToken,
    ParticipantsPage,
    SignedIn,
    SignedinUser,
    Space,
)
from worker.config.tenants import Tenant
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
from worker.ingest.events import CallEvent, iso_utc
from worker.ingest.payloads import parse

MEET_URL = "https://meet.googleapis.com"
DIRECTORY_URL = "https://admin.googleapis.com"
CALENDAR_URL = "https://www.googleapis.com"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"
MEET_SCOPE = "https://www.googleapis.com/auth/meetings.space.readonly"
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.user.readonly"
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar.events.readonly"
SCOPES = " ".join((MEET_SCOPE, DIRECTORY_SCOPE, CALENDAR_SCOPE))
# A fetch asks each API's token for that API's scope only: domain-wide delegation that lacks the
# directory or calendar scope then refuses that token alone (a noted lookup), not the whole call.
API_SCOPES = {"meet": MEET_SCOPE, "directory": DIRECTORY_SCOPE, "calendar": CALENDAR_SCOPE}
MAX_PAGES = 50
MAX_CALENDARS = 3
MAX_EVENT_PAGES = 5
# What a best-effort lookup could not learn, as the decision's trace shows it (never an email).
DIRECTORY_DENIED_NOTE = (
    "google_meet: GET /admin/directory/v1/users/{id} answered 403 (admin.directory.user.readonly"
    " not delegated); signed-in participants kept by name"
)
SPACE_UNREADABLE_NOTE = "google_meet: GET /v2/spaces/{id} answered {status}; calendar attendees not read"
CALENDAR_DENIED_NOTE = (
    "google_meet: GET /calendar/v3/calendars/{calendarId}/events answered {status} for a participant's"
    " calendar; its attendees not read"
)
DIRECTORY_NOT_DELEGATED_NOTE = (
    "google_meet: a token for the Admin directory was refused (unauthorized_client: domain-wide delegation"
    " lacks admin.directory.user.readonly); signed-in participants kept by name"
)
CALENDAR_NOT_DELEGATED_NOTE = (
    "google_meet: a token for the Calendar API was refused ({code}: domain-wide delegation lacks"
    " calendar.events.readonly, or the calendar's owner cannot be impersonated); guests kept by name"
)
NO_OWNER_NOTE = "google_meet: calendar attendees not read: no participant of ours has a known email"
NO_EVENT_NOTE = (
    "google_meet: no calendar event of our participants carries this meeting's code; guests by name"
)


class _Google:
    """Tokens per delegated subject, and one client per Google API host."""

    def __init__(self, ctx: FetchContext):
        self.ctx = ctx
        key = json.loads(ctx.config.credentials["service_account_key"])
        if not isinstance(key, dict) or "client_email" not in key or "private_key" not in key:
            raise FatalError("google_meet", "service_account_key is not a service account JSON key")
        self.key = key
        self.token_url = ctx.config.setting("token_url") or key.get("token_uri") or DEFAULT_TOKEN_URL
        base = ctx.config.api_base_url
        self.bases = {
            "meet": base or MEET_URL,
            "directory": base or DIRECTORY_URL,
            "calendar": base or CALENDAR_URL,
        }
        self.token_client = ctx.client(base or MEET_URL)
        self.tokens: dict[str, BearerToken] = {}
        self.clients: dict[tuple[str, str], ApiClient] = {}
        self.notes: list[str] = []
        self.directory_denied = False

    def token_body(self, subject: str, client: ApiClient, scopes: str = SCOPES) -> Any:
        """The token response for `subject` (JWT bearer grant signed with the service account's key)."""
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": self.key["client_email"],
                "sub": subject,
                "scope": scopes,
                "aud": self.token_url,
                "iat": now,
                "exp": now + 3600,
            },
            self.key["private_key"],
            algorithm="RS256",
        )
        return client.post_token(
            self.token_url,
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
        )

    def _token(self, subject: str, scopes: str = SCOPES) -> BearerToken:
        key = subject if scopes == SCOPES else f"{subject} {scopes}"
        if key not in self.tokens:

            def fetch_token() -> tuple[str, float]:
                return token_response("google_meet", self.token_body(subject, self.token_client, scopes))

            self.tokens[key] = shared_token(self.ctx, self.token_url, key, fetch_token)
        return self.tokens[key]

    def client(self, api: str, subject: str | None = None) -> ApiClient:
        who = subject or self.ctx.config.setting("delegated_user") or self.key["client_email"]
        if (api, who) not in self.clients:
            token = self._token(who, API_SCOPES.get(api, SCOPES))
            self.clients[(api, who)] = self.ctx.client(
                self.bases[api], auth=token.headers, refresh=token.refresh
            )
        return self.clients[(api, who)]

    def participants(self, record_name: str) -> list[tuple[dict[str, Any], str]]:
        """The record's participant rows, paged, each with its path in its page (read later, one by one)."""
        rows: list[tuple[dict[str, Any], str]] = []
        page_token = ""
        for _ in range(MAX_PAGES):
            params: dict[str, str | int] = {"pageSize": 250}
            if page_token:
                params["pageToken"] = page_token
            body = self.client("meet").get(f"/v2/{record_name}/participants", params)
            with reading("google_meet"):
                page = parse(ParticipantsPage, body)
                rows += [(row, f"participants[{index}]") for index, row in enumerate(page.participants)]
                page_token = page.nextPageToken or ""
            if not page_token:
                break
        return rows

    def email_of(self, user_name: str, cache: dict[str, str | None]) -> str | None:
        """`users/{id}` -> primary email, best effort: 403 stops asking (noted), 404 is someone not ours."""
        user_id = user_name.split("/", 1)[-1]
        if user_id not in cache:
            body: Any = {}
            if not self.directory_denied:
                try:
                    body = self.client("directory").get(f"/admin/directory/v1/users/{user_id}")
                except FatalError as exc:
                    if exc.status == 403:
                        self.directory_denied = True
                        self.note(DIRECTORY_DENIED_NOTE)
                    elif _token_refused(exc):
                        self.directory_denied = True
                        self.note(DIRECTORY_NOT_DELEGATED_NOTE)
                    elif exc.status != 404:
                        raise
            with reading("google_meet"):
                cache[user_id] = norm_email(parse(DirectoryUser, body).primaryEmail)
        return cache[user_id]

    def note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


_KEY_FIX = (
    "set providers.google_meet.credentials.service_account_key to the service account's JSON key"
    " (Google Cloud console > IAM & Admin > Service accounts > Keys)"
)
_DELEGATION_FIX = (
    "Google Admin console > Security > Access and data control > API controls > Manage Domain Wide"
    " Delegation: add the service account's client ID (client_id in its JSON key) with the scopes "
    + SCOPES.replace(" ", ",")
)


def check(ctx: FetchContext) -> list[Check]:
    """A token as `delegated_user` (domain-wide delegation works) and one conference record read with it."""
    try:
        google = _Google(ctx)
    except FatalError as exc:
        return [Check("google_meet.api", Status.FAIL, str(exc), _KEY_FIX)]
    except ValueError:
        return [
            Check("google_meet.api", Status.FAIL, "google_meet: service_account_key is not JSON", _KEY_FIX)
        ]
    subject = ctx.config.setting("delegated_user")
    token_client = probe_client(ctx, google.bases["meet"])
    checks: list[Check] = []
    if not subject:
        checks.append(
            Check(
                "google_meet.delegation",
                Status.WARN,
                "no delegated_user: participants' emails are looked up as the service account itself,"
                " which the Admin SDK refuses, so signed-in participants stay without email",
                "set providers.google_meet.delegated_user to a Workspace admin, and grant domain-wide"
                " delegation (" + _DELEGATION_FIX + ")",
            )
        )
        subject = google.key["client_email"]
    try:
        token, _ = token_response("google_meet", google.token_body(subject, token_client, MEET_SCOPE))
    except ExternalError as exc:
        if exc.code == "unauthorized_client":
            name, fix = "google_meet.delegation", _DELEGATION_FIX
        else:
            name = "google_meet.delegation" if ctx.config.setting("delegated_user") else "google_meet.api"
            fix = (
                "check that delegated_user is an existing user of the Workspace domain and that the"
                " service account key is still active; " + _KEY_FIX
            )
        checks.append(refused(name, f"token for {subject}", exc, fix))
        return checks
    if ctx.config.setting("delegated_user"):
        checks.append(_enrichment_delegation(google, subject, token_client))
    client = probe_client(ctx, google.bases["meet"], auth=lambda: {"Authorization": f"Bearer {token}"})
    try:
        client.get("/v2/conferenceRecords", {"pageSize": 1})
    except ExternalError as exc:
        checks.append(
            refused(
                "google_meet.api",
                "GET /v2/conferenceRecords",
                exc,
                "enable the Google Meet API in the service account's Google Cloud project, and grant"
                " domain-wide delegation (" + _DELEGATION_FIX + ")",
            )
        )
        return checks
    checks.append(Check("google_meet.api", Status.OK, "GET /v2/conferenceRecords answered"))
    return checks


_ENRICHMENT_SCOPES = (
    (DIRECTORY_SCOPE, "signed-in participants' emails (Admin directory)"),
    (CALENDAR_SCOPE, "guests' emails, the organizer and the title (the Calendar event)"),
)


def _enrichment_delegation(google: _Google, subject: str, token_client: ApiClient) -> Check:
    """Each enrichment scope asked for on its own, as the fetch does: one missing costs what it adds.

    Meet participants carry no email: without both scopes no participant can be matched,
    so that fails; without one of them the calls still run on what the other gives.
    """
    missing: list[tuple[str, str, ExternalError]] = []
    for scope, adds in _ENRICHMENT_SCOPES:
        try:
            token_response("google_meet", google.token_body(subject, token_client, scope))
        except ExternalError as exc:
            missing.append((scope, adds, exc))
    if not missing:
        return Check(
            "google_meet.delegation",
            Status.OK,
            f"a token for {subject} with the Meet, Admin directory and Calendar scopes",
        )
    lost = "; ".join(
        f"{scope.rsplit('/', 1)[-1]} refused ({exc.code or exc.status}): {adds} not fetched"
        for scope, adds, exc in missing
    )
    status = Status.FAIL if len(missing) == len(_ENRICHMENT_SCOPES) else Status.WARN
    return Check(
        "google_meet.delegation",
        status,
        f"a token for {subject} with the Meet scope; {lost}",
        _DELEGATION_FIX,
    )


def _token_refused(exc: FatalError) -> bool:
    """The token endpoint refused a delegated token (a scope not delegated, a subject not ours)."""
    return exc.code in ("unauthorized_client", "invalid_grant")


def _matches(item: dict[str, Any], path: str, meeting_code: str) -> bool:
    """The calendar event's Meet conference is this meeting: `conferenceData.conferenceId`, or its link."""
    conference = parse(MeetConference, item, path).conferenceData
    if conference is not None and conference.conferenceId == meeting_code:
        return True
    link = parse(HangoutLink, item, path).hangoutLink or ""
    return link.rstrip("/").rsplit("/", 1)[-1] == meeting_code


def _calendar_event(
    google: _Google, meeting_code: str, owners: list[str], start: dt.datetime, end: dt.datetime | None
) -> tuple[dict[str, Any], str] | None:
    """The calendar event of one of our users whose Meet conference is this meeting, and its path in its page.

    Paged, best effort; the page's events are read only until the meeting's.
    """
    for owner in owners[:MAX_CALENDARS]:
        page_token = ""
        for _ in range(MAX_EVENT_PAGES):
            params: dict[str, str | int] = {
                "timeMin": iso_utc(start - dt.timedelta(hours=1)) or "",
                "timeMax": iso_utc((end or start) + dt.timedelta(hours=1)) or "",
                "singleEvents": "true",
                "maxResults": 250,
            }
            if page_token:
                params["pageToken"] = page_token
            try:
                body = google.client("calendar", owner).get(f"/calendar/v3/calendars/{owner}/events", params)
            except FatalError as exc:
                if _token_refused(exc):
                    google.note(CALENDAR_NOT_DELEGATED_NOTE.replace("{code}", exc.code or "refused"))
                    if exc.code == "unauthorized_client":  # the scope: no calendar of ours will do better
                        return None
                    break
                if exc.status not in (403, 404):
                    raise
                google.note(CALENDAR_DENIED_NOTE.replace("{status}", str(exc.status)))
                break
            with reading("google_meet"):
                for index, item in enumerate(parse(EventsPage, body).items):
                    if _matches(item, f"items[{index}]", meeting_code):
                        return item, f"items[{index}]"
                page_token = parse(PageToken, body).nextPageToken or ""
            if not page_token:
                break
    return None


def _meeting_code(google: _Google, space: str) -> str | None:
    """The space's meeting code (`abc-mnop-xyz`), or None noted when the space cannot be read."""
    try:
        body = google.client("meet").get(f"/v2/{space}")
    except FatalError as exc:
        if exc.status not in (403, 404):
            raise
        google.note(SPACE_UNREADABLE_NOTE.replace("{status}", str(exc.status)))
        return None
    with reading("google_meet"):
        return parse(Space, body).meetingCode


def _participant(
    google: _Google, row: dict[str, Any], path: str, cache: dict[str, str | None], tenant: Tenant
) -> tuple[list[Person], list[Person]]:
    """(internal, external) of one participant row: a signed-in user by email, others by name."""
    raw = parse(SignedIn, row, path).signedinUser
    if raw is not None:
        at = f"{path}.signedinUser"
        email = google.email_of(parse(SignedinUser, raw, at).user, cache)
        person = Person(email=email, name=parse(Named, raw, at).displayName)
        return ([person], []) if tenant.is_internal_email(email) else ([], [person])
    guest = parse(Guest, row, path)
    names = [other.displayName for other in (guest.anonymousUser, guest.phoneUser) if other is not None]
    return [], [Person(name=name) for name in names if name]


def fetch(event: CallEvent, ctx: FetchContext) -> CallEvent:
    """The conference record and its participants (unreadable: fatal); emails best effort, noted."""
    google = _Google(ctx)
    record_name = event.source_ref or ""
    record_body = google.client("meet").get(f"/v2/{record_name}")
    rows = google.participants(record_name)
    cache: dict[str, str | None] = {}
    external: list[Person] = []
    internal: list[Person] = []
    with reading("google_meet"):
        record = parse(ConferenceRecord, record_body)
        started_at = record.startTime
        ended_at = record.endTime or event.ended_at
        space = record.space
        for row, path in rows:
            ours, others = _participant(google, row, path, cache, ctx.tenant)
            internal += ours
            external += others
    organizer = event.organizer
    title = event.title
    owners = [p.email for p in internal if p.email]
    if space and not owners:
        google.note(NO_OWNER_NOTE)
    meeting_code = _meeting_code(google, space) if space and owners else None
    calendar = _calendar_event(google, meeting_code, owners, started_at, ended_at) if meeting_code else None
    calendar_refused = any(
        n.startswith(("google_meet: GET /calendar/", "google_meet: a token for the Calendar"))
        for n in google.notes
    )
    if meeting_code and calendar is None and not calendar_refused:
        google.note(NO_EVENT_NOTE)
    if calendar is not None:
        with reading("google_meet"):
            organizer, title = _calendar_people(calendar, ctx.tenant, organizer, title, external)
    if organizer.email:
        internal = [p for p in internal if p.email != organizer.email]
    done = event.with_details(
        started_at=started_at,
        ended_at=ended_at,
        organizer=organizer,
        title=title,
        participants=merge(event.participants, external),
        internal=merge(event.internal, internal),
        complete=True,
    )
    for note in google.notes:
        done = done.noting(note)
    return done


def _calendar_people(
    calendar: tuple[dict[str, Any], str],
    tenant: Tenant,
    organizer: Person,
    title: str | None,
    external: list[Person],
) -> tuple[Person, str | None]:
    """(organizer, title) from the meeting's calendar event; its guests (not ours, no room) added to `external`."""
    item, path = calendar
    found = parse(CalendarEvent, item, path)
    title = found.summary or title
    if found.organizer is not None:
        at = f"{path}.organizer"
        email = parse(Email, found.organizer, at).email
        if email:
            organizer = Person(email=norm_email(email), name=parse(Named, found.organizer, at).displayName)
    for index, raw in enumerate(parse(Attendees, item, path).attendees):
        at = f"{path}.attendees[{index}]"
        attendee = parse(Attendee, raw, at)
        guest = norm_email(attendee.email)
        if attendee.resource or guest is None or tenant.is_internal_email(guest):
            continue
        if all(p.email != guest for p in external):
            external.append(Person(email=guest, name=parse(Named, raw, at).displayName))
    return organizer, title
