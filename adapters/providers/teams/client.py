"""Graph call records: the record, its `participants_v2` (paged), and our users' emails.

`participants_v2` already names most people: a user's `userPrincipalName` (their
sign-in name, in practice their email; a B2B guest's `jane_acme.com#EXT#@...`
spells the guest's own address), a phone participant's E.164 number. Only a
user the record names by id alone is looked up with `GET /users/{id}`, and that
lookup is best effort: without User.Read.All (403) or for a deleted user (404)
the person is kept by name and the event notes why (its trace starts with the
note, rule M3). Users of our Entra tenant are internal, users of other tenants
and guests external; anonymous guests, ACS and other identities are kept by name.
A peer-to-peer call with a phone participant has a direction: inbound when the
phone organized it (the caller), outbound otherwise.

`check` (for `callmatch doctor`) asks for a client-credentials token, reads the
application permissions actually granted from its `roles` claim (an app with
none granted gets a token without `roles`, and every call then answers 403), and
makes one harmless request: the call records of the last hour, one per page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import jwt

from adapters.crm.readiness import Check, Status
from adapters.errors import ExternalError, FatalError
from adapters.providers.aircall.client import merge
from adapters.providers.checks import missing_scopes, probe_client, refused, wording
from adapters.providers.teams.payloads import (
    CallRecord,
    IdentitySet,
    Participant,
    ParticipantsPage,
    User,
    UserIdentity,
)
from worker.config.tenants import Tenant
from worker.core.model import CallKind, Direction, Person
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

DEFAULT_BASE_URL = "https://graph.microsoft.com"
DEFAULT_TOKEN_URL = "https://login.microsoftonline.com/{azure_tenant_id}/oauth2/v2.0/token"
SCOPE = "https://graph.microsoft.com/.default"
MAX_PAGES = 50
# Application permissions this module's calls need (Graph permissions reference): any one of each.
NEEDED_ROLES: dict[str, tuple[str, ...]] = {
    "to read call records and their participants": ("CallRecords.Read.All",),
}
# Only for users a record names by id alone (no userPrincipalName): without it they stay by name.
OPTIONAL_ROLES: dict[str, tuple[str, ...]] = {
    "to read the email of a user the call record names by id only": (
        "User.ReadBasic.All",
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ),
}
USERS_DENIED_NOTE = (
    "teams: GET /users/{id} answered 403 (User.Read.All not granted); emails from participants_v2 only"
)
USER_GONE_NOTE = "teams: GET /users/{id} answered 404 (user deleted or unknown); kept by name"


def _token_url(ctx: FetchContext) -> str:
    template = ctx.config.setting("token_url", DEFAULT_TOKEN_URL) or DEFAULT_TOKEN_URL
    return template.replace("{azure_tenant_id}", ctx.config.setting("azure_tenant_id", "common") or "common")


def _token_body(ctx: FetchContext, client: ApiClient) -> Any:
    credentials = ctx.config.credentials
    return client.post_token(
        _token_url(ctx),
        {
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "scope": SCOPE,
            "grant_type": "client_credentials",
        },
    )


def _token(ctx: FetchContext, client: ApiClient) -> BearerToken:
    def fetch_token() -> tuple[str, float]:
        return token_response("teams", _token_body(ctx, client))

    return shared_token(ctx, _token_url(ctx), "app", fetch_token)


def granted_roles(access_token: str) -> set[str] | None:
    """The `roles` claim of an app-only token (read, not verified: Graph checks it, we only read it).

    None when the token is not a JWT we can read; an empty set when no permission is granted.
    """
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    roles = claims.get("roles", [])
    return {r for r in roles if isinstance(r, str)} if isinstance(roles, list) else set()


_APP_FIX = (
    "in the Microsoft Entra admin center, App registrations > the app: check the client ID,"
    " create a new client secret if it expired, and set providers.teams.credentials and azure_tenant_id"
)


def permissions_fix(missing: list[tuple[str, tuple[str, ...]]]) -> str:
    """Where an admin grants them: the first (least privileged) permission of each need."""
    names = ", ".join(options[0] for _, options in missing) or ", ".join(
        options[0] for options in NEEDED_ROLES.values()
    )
    return (
        "Microsoft Entra admin center > App registrations > the app > API permissions > Add a permission >"
        f" Microsoft Graph > Application permissions: {names}; then Grant admin consent"
    )


def check(ctx: FetchContext) -> list[Check]:
    """A token is issued, its roles cover what we call, and `GET /communications/callRecords` answers.

    CallRecords.Read.All is required (fail without it); a user-read role is optional (warn: users a
    record names by id only then stay without email).
    """
    base = ctx.config.api_base_url or DEFAULT_BASE_URL
    try:
        token, _ = token_response("teams", _token_body(ctx, probe_client(ctx, base)))
    except ExternalError as exc:
        return [refused("teams.api", "token (client_credentials)", exc, _APP_FIX)]
    roles = granted_roles(token)
    missing = missing_scopes(roles, NEEDED_ROLES) if roles is not None else []
    optional = missing_scopes(roles, OPTIONAL_ROLES) if roles is not None else []
    checks: list[Check] = []
    client = probe_client(
        ctx, base, auth=lambda: {"Authorization": f"Bearer {token}", "Prefer": "odata.maxpagesize=1"}
    )
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        client.get(
            "/v1.0/communications/callRecords", {"$select": "id", "$filter": f"startDateTime ge {since}"}
        )
        checks.append(
            Check("teams.api", Status.OK, "app token issued; GET /communications/callRecords answered")
        )
    except ExternalError as exc:
        fix = permissions_fix(missing) if exc.status == 403 else _APP_FIX
        checks.append(refused("teams.api", "GET /communications/callRecords", exc, fix))
    everything = list(NEEDED_ROLES.items()) + list(OPTIONAL_ROLES.items())
    if roles is None:
        checks.append(
            Check(
                "teams.permissions",
                Status.WARN,
                "the token is not a JWT: cannot read its roles",
                "check the app's application permissions: " + wording(everything),
            )
        )
    elif missing:
        granted = ", ".join(sorted(roles)) or "none"
        extra = f"; optional, not granted: {wording(optional)}" if optional else ""
        checks.append(
            Check(
                "teams.permissions",
                Status.FAIL,
                f"application permissions not granted: {wording(missing)}{extra}; granted: {granted}",
                permissions_fix(missing),
            )
        )
    elif optional:
        checks.append(
            Check(
                "teams.permissions",
                Status.WARN,
                f"optional application permission not granted: {wording(optional)}; emails come from"
                " participants_v2 only (users named by id alone are kept by name, and the trace says so)",
                permissions_fix(optional),
            )
        )
    else:
        covered = sorted(roles.intersection(r for _, options in everything for r in options))
        checks.append(Check("teams.permissions", Status.OK, f"granted: {', '.join(covered)}"))
    return checks


class _Directory:
    """`/users/{id}` lookups, once per user per call, best effort.

    403 (no user-read permission) stops asking for this call and 404 (a deleted
    user) skips that user; each is noted once. Anything else keeps its class.
    """

    def __init__(self, client: ApiClient):
        self.client = client
        self.cache: dict[str, str | None] = {}
        self.notes: list[str] = []
        self.denied = False

    def email(self, user_id: str) -> str | None:
        if user_id in self.cache:
            return self.cache[user_id]
        if self.denied:
            return None
        try:
            body = self.client.get(f"/v1.0/users/{user_id}", {"$select": "mail,userPrincipalName"})
        except FatalError as exc:
            if exc.status == 403:
                self.denied = True
                self._note(USERS_DENIED_NOTE)
            elif exc.status == 404:
                self._note(USER_GONE_NOTE)
            else:
                raise
            body = {}
        with reading("teams"):
            user = parse(User, body)
            self.cache[user_id] = norm_email(user.mail) or upn_email(user.userPrincipalName)[0]
        return self.cache[user_id]

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


def upn_email(upn: str | None) -> tuple[str | None, bool]:
    """(email, guest) of a userPrincipalName.

    A member's UPN is their sign-in address. A B2B guest's is `jane_acme.com#EXT#@ourco.onmicrosoft.com`:
    Entra replaced the `@` of the guest's own address with `_`, and since a domain holds no `_`,
    the last `_` before `#EXT#` is that `@`.
    """
    if not upn or "@" not in upn:
        return None, False
    local = upn.rsplit("@", 1)[0]
    marker = local.upper().find("#EXT#")
    if marker < 0:
        return norm_email(upn), False
    original = local[:marker]
    user, _, domain = original.rpartition("_")
    if not user or "." not in domain:
        return None, True
    return norm_email(f"{user}@{domain}"), True


@dataclass(frozen=True)
class _Who:
    """One identity set read: the person, whether they are one of ours, whether they called by phone."""

    person: Person
    internal: bool
    phone: bool = False
    user_id: str | None = None


class _People:
    """Reads communicationsIdentitySets: the record's own data first, `/users/{id}` only when it has no email."""

    def __init__(self, tenant: Tenant, our_tenant: str | None, directory: _Directory):
        self.tenant = tenant
        self.our_tenant = our_tenant.lower() if our_tenant else None
        self.directory = directory
        self.upns: dict[str, str] = {}

    def learn(self, identity: IdentitySet) -> None:
        """Remember each user's UPN from participants_v2, so the organizer (named by id) needs no lookup."""
        for user in identity.users():
            if user is not None and user.id and user.userPrincipalName:
                self.upns[user.id] = user.userPrincipalName

    def who(self, identity: IdentitySet) -> _Who | None:
        phone = identity.phone
        number = phone.id if phone is not None else None
        for user in identity.users():
            if user is not None and (user.id or user.userPrincipalName):
                return self._user(user, number)
        if phone is not None and number:
            return _Who(Person(phone=number, name=phone.displayName), False, phone=True)
        for other in identity.named_only():
            if other is not None and other.displayName:
                return _Who(Person(name=other.displayName), False)
        return None

    def _user(self, user: UserIdentity, number: str | None) -> _Who:
        user_id = user.id
        tenant_id = (user.tenantId or "").lower() or None
        upn = user.userPrincipalName or (self.upns.get(user_id) if user_id else None)
        email, guest = upn_email(upn)
        foreign = self.our_tenant is not None and tenant_id is not None and tenant_id != self.our_tenant
        if email is None and user_id and not foreign and not guest:
            email = self.directory.email(user_id)
        if self.tenant.is_internal_email(email):
            internal = True
        elif guest or foreign:
            internal = False
        elif self.our_tenant is not None and tenant_id == self.our_tenant:
            internal = True
        else:  # no tenant to tell: an email outside our domains is someone else's
            internal = email is None
        person = Person(email=email, phone=number, name=user.displayName)
        return _Who(person, internal, user_id=user_id)


def _pages(client: ApiClient, first: str) -> list[Participant]:
    """Every row of `participants_v2`, following `@odata.nextLink` (absolute URLs)."""
    rows: list[Participant] = []
    next_url: str | None = first
    for _ in range(MAX_PAGES):
        if next_url is None:
            break
        body = client.get(next_url)
        with reading("teams"):
            page = parse(ParticipantsPage, body)
        rows += page.value
        next_url = page.next_link
    return rows


def fetch(event: CallEvent, ctx: FetchContext) -> CallEvent:
    """The call record (unreadable: fatal), its participants; user lookups best effort and noted."""
    base = ctx.config.api_base_url or DEFAULT_BASE_URL
    token = _token(ctx, ctx.client(base))
    client = ctx.client(base, auth=token.headers, refresh=token.refresh)
    directory = _Directory(client)
    people = _People(ctx.tenant, ctx.config.setting("azure_tenant_id"), directory)
    record_path = f"/v1.0/communications/callRecords/{event.source_ref}"
    record_body = client.get(record_path)
    rows = _pages(client, f"{record_path}/participants_v2")
    with reading("teams"):
        record = parse(CallRecord, record_body)
        identities = [row.identity for row in rows if row.identity is not None]
        for identity in identities:
            people.learn(identity)
        organizer_set = record.organizer_v2
        organizer_identity = organizer_set.identity if organizer_set is not None else None
        host = people.who(organizer_identity) if organizer_identity is not None else None
        found = [w for w in (people.who(i) for i in identities) if w is not None]
        peer_to_peer = record.type == "peerToPeer"
        organizer = event.organizer
        if host is not None and host.internal:
            organizer = host.person
        elif peer_to_peer:  # a PSTN caller organized it: our user on the line is the one who took it
            organizer = next((w.person for w in found if w.internal), organizer)
        host_id = host.user_id if host is not None and host.internal else None
        external: list[Person] = []
        internal: list[Person] = []
        for who in found:
            if who.internal:
                if who.person != organizer and (host_id is None or who.user_id != host_id):
                    internal.append(who.person)
            else:
                external.append(who.person)
        direction = event.direction
        if peer_to_peer and (any(w.phone for w in found) or (host is not None and host.phone)):
            direction = Direction.INBOUND if host is not None and host.phone else Direction.OUTBOUND
        done = event.with_details(
            kind=CallKind.CALL if peer_to_peer else CallKind.MEETING,
            direction=direction,
            started_at=record.startDateTime,
            ended_at=record.endDateTime or event.ended_at,
            organizer=organizer,
            participants=merge(event.participants, external),
            internal=merge(event.internal, internal),
            complete=True,
        )
    for note in directory.notes:
        done = done.noting(note)
    return done
