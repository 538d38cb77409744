"""Graph call records: the record, its `participants_v2` (paged), and our users' emails.

Users of our own Entra tenant are internal and resolved to their mail through
`/users/{id}`; phone participants keep their number; guests and users of other
tenants are kept by name, which is all Graph tells about them.

`check` (for `callmatch doctor`) asks for a client-credentials token, reads the
application permissions actually granted from its `roles` claim (an app with
none granted gets a token without `roles`, and every call then answers 403), and
makes one harmless request: the call records of the last hour, one per page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import jwt

from adapters.crm.readiness import Check, Status
from adapters.errors import ExternalError
from adapters.providers.aircall.client import merge
from adapters.providers.checks import missing_scopes, probe_client, refused, wording
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
from worker.model import CallKind, Person
from worker.normalize import norm_email

DEFAULT_BASE_URL = "https://graph.microsoft.com"
DEFAULT_TOKEN_URL = "https://login.microsoftonline.com/{azure_tenant_id}/oauth2/v2.0/token"
SCOPE = "https://graph.microsoft.com/.default"
MAX_PAGES = 50
# Application permissions this module's calls need (Graph permissions reference): any one of each.
NEEDED_ROLES: dict[str, tuple[str, ...]] = {
    "to read call records and their participants": ("CallRecords.Read.All",),
    "to read our users' email": (
        "User.ReadBasic.All",
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ),
}


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
    """A token is issued, its roles cover what we call, and `GET /communications/callRecords` answers."""
    base = ctx.config.api_base_url or DEFAULT_BASE_URL
    try:
        token, _ = token_response("teams", _token_body(ctx, probe_client(ctx, base)))
    except ExternalError as exc:
        return [refused("teams.api", "token (client_credentials)", exc, _APP_FIX)]
    roles = granted_roles(token)
    missing = missing_scopes(roles, NEEDED_ROLES) if roles is not None else []
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
    if roles is None:
        checks.append(
            Check(
                "teams.permissions",
                Status.WARN,
                "the token is not a JWT: cannot read its roles",
                "check the app's application permissions: " + wording(list(NEEDED_ROLES.items())),
            )
        )
    elif missing:
        granted = ", ".join(sorted(roles)) or "none"
        checks.append(
            Check(
                "teams.permissions",
                Status.FAIL,
                f"application permissions not granted: {wording(missing)}; granted: {granted}",
                permissions_fix(missing),
            )
        )
    else:
        covered = sorted(roles.intersection(r for options in NEEDED_ROLES.values() for r in options))
        checks.append(Check("teams.permissions", Status.OK, f"granted: {', '.join(covered)}"))
    return checks


class _Directory:
    """`/users/{id}` lookups, once per user per call."""

    def __init__(self, client: ApiClient):
        self.client = client
        self.cache: dict[str, str | None] = {}

    def email(self, user_id: str) -> str | None:
        if user_id not in self.cache:
            body = self.client.get(f"/v1.0/users/{user_id}", {"$select": "mail,userPrincipalName"})
            with reading("teams"):
                user = Fields(body)
                self.cache[user_id] = norm_email(user.opt_str("mail") or user.opt_str("userPrincipalName"))
        return self.cache[user_id]


def _identity(identity: Fields, our_tenant: str | None, directory: _Directory) -> tuple[Person, bool] | None:
    """(person, internal) of one communicationsIdentitySet, or None when it names nobody."""
    phone = identity.opt_obj("phone")
    if phone is not None and phone.opt_str("id"):
        return Person(phone=phone.opt_str("id"), name=phone.opt_str("displayName")), False
    user = identity.opt_obj("user")
    if user is not None and user.opt_str("id"):
        name = user.opt_str("displayName")
        tenant = user.opt_str("tenantId")
        if our_tenant is None or tenant is None or tenant.lower() == our_tenant.lower():
            return Person(email=directory.email(user.str_("id")), name=name), True
        return Person(name=name), False
    for key in ("guest", "externalUser", "acsUser", "spoolUser"):
        other = identity.opt_obj(key)
        if other is not None and other.opt_str("displayName"):
            return Person(name=other.opt_str("displayName")), False
    return None


def fetch(event: CallEvent, ctx: FetchContext) -> CallEvent:
    base = ctx.config.api_base_url or DEFAULT_BASE_URL
    token = _token(ctx, ctx.client(base))
    client = ctx.client(base, auth=token.headers, refresh=token.refresh)
    directory = _Directory(client)
    our_tenant = ctx.config.setting("azure_tenant_id")
    record_path = f"/v1.0/communications/callRecords/{event.source_ref}"
    record_body = client.get(record_path)
    rows: list[Fields] = []
    next_url: str | None = f"{record_path}/participants_v2"
    for _ in range(MAX_PAGES):
        if next_url is None:
            break
        body = client.get(next_url)
        with reading("teams"):
            page = Fields(body)
            rows += page.objs("value")
            next_url = page.opt_str("@odata.nextLink")
    with reading("teams"):
        record = Fields(record_body)
        organizer = event.organizer
        organizer_set = record.opt_obj("organizer_v2")
        if organizer_set is not None:
            identity = organizer_set.opt_obj("identity")
            found = _identity(identity, our_tenant, directory) if identity is not None else None
            if found is not None and found[1]:
                organizer = found[0]
        external: list[Person] = []
        internal: list[Person] = []
        for row in rows:
            identity = row.opt_obj("identity")
            found = _identity(identity, our_tenant, directory) if identity is not None else None
            if found is None:
                continue
            person, is_internal = found
            if is_internal or ctx.tenant.is_internal_email(person.email):
                if person != organizer:
                    internal.append(person)
            else:
                external.append(person)
        kind = CallKind.CALL if record.opt_str("type") == "peerToPeer" else CallKind.MEETING
        return event.with_details(
            kind=kind,
            started_at=record.iso_time("startDateTime", required=True),
            ended_at=record.iso_time("endDateTime") or event.ended_at,
            organizer=organizer,
            participants=merge(event.participants, external),
            internal=merge(event.internal, internal),
            complete=True,
        )
