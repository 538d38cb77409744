"""Graph call records: the record, its `participants_v2` (paged), and our users' emails.

Users of our own Entra tenant are internal and resolved to their mail through
`/users/{id}`; phone participants keep their number; guests and users of other
tenants are kept by name, which is all Graph tells about them.
"""

from __future__ import annotations

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
from worker.model import CallKind, Person
from worker.normalize import norm_email

DEFAULT_BASE_URL = "https://graph.microsoft.com"
DEFAULT_TOKEN_URL = "https://login.microsoftonline.com/{azure_tenant_id}/oauth2/v2.0/token"
SCOPE = "https://graph.microsoft.com/.default"
MAX_PAGES = 50


def _token(ctx: FetchContext, client: ApiClient) -> BearerToken:
    credentials = ctx.config.credentials
    template = ctx.config.setting("token_url", DEFAULT_TOKEN_URL) or DEFAULT_TOKEN_URL
    url = template.replace("{azure_tenant_id}", ctx.config.setting("azure_tenant_id", "common") or "common")

    def fetch_token() -> tuple[str, float]:
        body = client.post_token(
            url,
            {
                "client_id": credentials["client_id"],
                "client_secret": credentials["client_secret"],
                "scope": SCOPE,
                "grant_type": "client_credentials",
            },
        )
        return token_response("teams", body)

    return shared_token(ctx, url, "app", fetch_token)


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
