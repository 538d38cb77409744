"""`SalesforceCrm`: the CRM port over one tenant's org, in composite rounds, with write-back W1/W2.

Every query and write is built from what the org has (`capabilities.OrgCapabilities`,
cached per tenant): without "Contacts to Multiple Accounts" a contact's account is
`Contact.AccountId` and the contacts' accounts are read by a semi-join on Contact;
without "Shared Activities" `WhoId` is the first contact and no TaskRelation /
EventRelation(IsParent) rows are read or written; an optional field the API user
cannot see (an extra email field, `Domains__c`, `Call_Id__c`, `Attendee_Emails__c`)
is left out of the queries. The W1 external id is required: without it (or without
External ID, or edit access) the write raises MissingRequirementError before any
request, never leaving a half-written activity. An INVALID_FIELD / INVALID_TYPE
answer drops the cached capabilities, describes the org again and sends the request
once more; refused again, it is a RetryableError (the org's metadata is changing).

One `lookup` round is one composite call (at most 5 queries each, so a round that
needs more is split). Each Contact row carries its contact roles with their
opportunities (`Opportunity.` parent fields) and, with Contacts to Multiple
Accounts, its AccountContactRelations; a query slot the round leaves free reads
those contacts' accounts with their opportunities by a semi-join. So on an ordinary
call the round that asks for the contacts' opportunities and accounts finds them
read already and costs no call. Records read are kept for the rest of the
association; an opportunity reached by several paths is merged (the union of the
roles seen).

Phones are searched by SOSL `IN PHONE FIELDS` (one call before the composite, since
a composite cannot hold a search) and by SOQL over the formats people type, every
hit confirmed by E.164 in code: SOSL finds unusual formats, SOQL finds records the
search index has not caught up with.

Rules v1.1 read more columns, never more requests, and only when the tenant's policy
asks: with `skip_converted_leads` (M9) the Lead queries and the SOSL search keep
converted leads (SOQL returns them unless filtered; without M9 they are filtered out,
as before: Salesforce relates no new activity to a converted lead) and select
`IsConverted, ConvertedContactId`, so the gather's next round reads the contact a lead
became; with `excluded_account_types` (X1) every Account query selects `Type`. A
field the API user cannot see is left out (doctor warns what the rule loses).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote as url_quote

from adapters.crm.readiness import MissingRequirementError
from adapters.crm.salesforce import mapping
from adapters.crm.salesforce.capabilities import (
    SCHEMA_ERRORS,
    Capabilities,
    OrgCapabilities,
    local_capabilities,
)
from adapters.crm.salesforce.client import (
    MAX_COLLECTION_RECORDS,
    MAX_SUBREQUESTS,
    SERVICE,
    SalesforceClient,
    SubResponse,
    classify_response,
)
from adapters.crm.salesforce.client import MAX_QUERY_SUBREQUESTS as MAX_QUERIES_PER_CALL
from adapters.crm.salesforce.mapping import (
    ACCOUNT_TYPE_FIELD,
    CONTACT_PHONE_FIELDS,
    LEAD_CONVERSION_FIELDS,
    LEAD_PHONE_FIELDS,
    Record,
    SalesforceSettings,
)
from adapters.crm.salesforce.soql import (
    any_in,
    datetime_literal,
    in_list,
    like_quote,
    national_digits,
    phone_variants,
    quote,
    sosl_escape,
)
from adapters.errors import (
    CredentialsExpiredError,
    ExternalError,
    FatalError,
    RateLimitedError,
    RetryableError,
)
from worker.core.model import (
    Account,
    Activity,
    Call,
    CallKind,
    Contact,
    ContactRole,
    CrmSlice,
    Decision,
    Direction,
    Lead,
    Opportunity,
    Policy,
    User,
)
from worker.core.normalize import norm_domain, norm_email, to_e164
from worker.core.port import ActivityQuery, CrmPort, Lookup, WrittenActivity

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

# Salesforce's REST API limits a request URI (GET /query?q=...) to 16,384 bytes, else 414.
MAX_URI_BYTES = 16_384

OPPORTUNITY_FIELDS = (
    f"{', '.join(mapping.OPPORTUNITY_COLUMNS)}, (SELECT ContactId, IsPrimary FROM OpportunityContactRoles)"
)
ACCOUNT_OPPORTUNITIES = f"(SELECT {', '.join(mapping.OPPORTUNITY_COLUMNS)} FROM Opportunities)"
CONTACT_ROLES = (
    "(SELECT OpportunityId, IsPrimary, "
    + ", ".join(f"Opportunity.{c}" for c in mapping.OPPORTUNITY_COLUMNS if c != "Id")
    + " FROM OpportunityContactRoles)"
)
ACTIVITY_LINK_FIELDS = "Id, WhoId, Who.Type, WhatId, What.Type"
# Fields of the activity body sent only when the API user may write them (FLS can hide standard fields).
_OPTIONAL_BODY_FIELDS = ("TaskSubtype", "Status", "ActivityDate", "CallDurationInSeconds", "CallType")


def _refreshing(
    method: Callable[Concatenate[SalesforceCrm, P], T],
) -> Callable[Concatenate[SalesforceCrm, P], T]:
    """The request(s) of `method`, sent once more with fresh capabilities after INVALID_FIELD/TYPE."""

    @functools.wraps(method)
    def wrapper(self: SalesforceCrm, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._fresh(lambda: method(self, *args, **kwargs))

    return wrapper


class UserCache:
    """A tenant's users by normalised email (None: no such user), kept `ttl` seconds in the process.

    Users change rarely and every association with an owner mode or contact roles asks
    for the organizer: served from here, the round's query slot goes to what changes.
    Shared by every port on the tenant's client (`of`); dropped when the org refuses a
    request as described (its metadata changed) and on `clear`.
    """

    _tenants: ClassVar[weakref.WeakKeyDictionary[SalesforceClient, UserCache]] = weakref.WeakKeyDictionary()
    _tenants_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, tuple[float, User | None]] = {}

    @classmethod
    def of(cls, client: SalesforceClient) -> UserCache:
        """The cache of the tenant's client (one per tenant and process: `SalesforceTenant` keeps it)."""
        with cls._tenants_lock:
            cache = cls._tenants.get(client)
            if cache is None:
                cache = cls._tenants[client] = cls()
            return cache

    def get(self, emails: Iterable[str]) -> tuple[list[User], list[str]]:
        """(users cached, emails not cached or expired)."""
        now = self._clock()
        found: list[User] = []
        missing: list[str] = []
        with self._lock:
            for email in emails:
                entry = self._users.get(email)
                if entry is None or entry[0] <= now:
                    missing.append(email)
                elif entry[1] is not None:
                    found.append(entry[1])
        return found, missing

    def put(self, emails: Iterable[str], users: Iterable[User], ttl: float) -> None:
        if ttl <= 0:
            return
        by_email = {norm_email(u.email): u for u in users if u.email}
        expires = self._clock() + ttl
        with self._lock:
            for email in emails:
                self._users[email] = (expires, by_email.get(email))

    def clear(self) -> None:
        with self._lock:
            self._users.clear()


class SalesforceCrm(CrmPort):
    """The port for one tenant; make one per association so `stats` and the read cache are per call."""

    def __init__(
        self,
        client: SalesforceClient,
        settings: SalesforceSettings | None = None,
        default_region: str = "US",
        *,
        search_phones: bool = True,
        capabilities: Capabilities | None = None,
        policy: Policy | None = None,
    ):
        """`policy`: the tenant's, for what rules v1.1 read only when asked (default: nothing more)."""
        super().__init__()
        self.search_phones = search_phones
        policy = policy or Policy()
        self.follows_conversions = policy.skip_converted_leads
        # What the policy adds to the Lead and Account field lists, decided once per port.
        self._lead_extra: tuple[str, ...] = LEAD_CONVERSION_FIELDS if policy.skip_converted_leads else ()
        self._account_extra: tuple[str, ...] = (ACCOUNT_TYPE_FIELD,) if policy.excluded_account_types else ()
        self.client = client
        self.settings = settings or SalesforceSettings()
        self.region = default_region
        self.capabilities = capabilities or local_capabilities(client)
        self._caps: OrgCapabilities | None = None
        self._refreshing = False
        self._contacts: dict[str, Contact] = {}
        self._accounts: dict[str, Account] = {}
        self._opportunities: dict[str, Opportunity] = {}
        self._roles: dict[str, dict[str, bool]] = {}
        self._roles_read: set[str] = set()
        self._account_opportunities_read: set[str] = set()
        self._ours: set[tuple[str, str]] = set()
        self.users = UserCache.of(client)

    # --- what the org has -------------------------------------------------------------------------

    @property
    def caps(self) -> OrgCapabilities:
        """The tenant's capabilities, read once per association (a discovery is counted as such)."""
        if self._caps is None:
            before = self.capabilities.client.api_calls
            self._caps = self.capabilities.get()
            if self.capabilities.client.api_calls > before:
                self.stats.count("capabilities", self.capabilities.client.api_calls - before)
        return self._caps

    def _fresh(self, send: Callable[[], T]) -> T:
        """`send()`; after INVALID_FIELD / INVALID_TYPE, once more with capabilities described again.

        Refused again, the org's metadata is changing under us (a field being deleted or
        its security edited): a RetryableError, so the call is tried later on a settled org.
        """
        if self._refreshing:
            return send()
        self._refreshing = True
        try:
            try:
                return send()
            except FatalError as error:
                if error.code not in SCHEMA_ERRORS:
                    raise
                log.warning(
                    "salesforce tenant %s: %s; describing the org again", self.client.tenant, error.code
                )
            self.users.clear()
            before = self.capabilities.client.api_calls
            self._caps = self.capabilities.refresh()
            self.stats.count("capabilities", self.capabilities.client.api_calls - before)
            try:
                return send()
            except FatalError as error:
                if error.code not in SCHEMA_ERRORS:
                    raise
                self.capabilities.drop()
                raise RetryableError(
                    SERVICE,
                    f"{error}: refused again with fresh capabilities (the org's fields are changing)",
                    status=error.status,
                    code=error.code,
                ) from error
        finally:
            self._refreshing = False

    def _setup_fix(self) -> str:
        return f"run `callmatch setup --tenant {self.client.tenant}`"

    def _require_read(self, *sobjects: str) -> None:
        for sobject in sobjects:
            if not self.caps.can(sobject, "read"):
                raise MissingRequirementError(
                    SERVICE,
                    f"read access to {sobject} for the API user",
                    f"grant Read on {sobject} to the integration user's profile or a permission set "
                    f"assigned to it, then `callmatch doctor --tenant {self.client.tenant}`",
                )

    def _require_write(self, sobject: str) -> None:
        """W1 needs our external id on the object, External ID, visible and editable; checked before any write."""
        caps, name = self.caps, self.settings.external_id_field
        for permission in ("create", "edit"):
            if not caps.can(sobject, permission):
                raise MissingRequirementError(
                    SERVICE,
                    f"{permission} access to {sobject} for the API user",
                    f"grant Create and Edit on {sobject} to the integration user's profile or a permission "
                    f"set assigned to it, then `callmatch doctor --tenant {self.client.tenant}`",
                )
        found = caps.field(sobject, name)
        if found is None:
            raise MissingRequirementError(
                SERVICE,
                f"{sobject}.{name}",
                f"{self._setup_fix()} (creates Activity.{name} as External ID + Unique and grants the API "
                "user read and edit on it)",
            )
        if not found.external_id:
            raise MissingRequirementError(
                SERVICE,
                f"External ID on {sobject}.{name}",
                f"{self._setup_fix()} (makes it External ID + Unique)",
            )
        if not (found.createable and found.updateable):
            raise MissingRequirementError(
                SERVICE,
                f"edit access to {sobject}.{name} for the API user",
                f"{self._setup_fix()} (grants read and edit through the Callmatch permission set)",
            )

    def _relations(self, sobject: str) -> bool:
        """Whether other contacts are related to an activity as rows (Shared Activities)."""
        caps = self.caps
        if sobject == "Task":
            return caps.shared_activities and caps.can("TaskRelation", "create")
        return (
            caps.shared_activities
            and caps.can("EventRelation", "create")
            and caps.has_field("EventRelation", "IsParent")
        )

    # --- query text -------------------------------------------------------------------------------

    def _email_fields(self, sobject: str) -> tuple[str, ...]:
        return self.caps.present(sobject, ("Email", *self.settings.extra_email_fields))

    def _phone_fields(self, sobject: str) -> tuple[str, ...]:
        return self.caps.present(sobject, CONTACT_PHONE_FIELDS if sobject == "Contact" else LEAD_PHONE_FIELDS)

    def _domain_field(self) -> str | None:
        name = self.settings.account_domain_field
        return name if name and self.caps.has_field("Account", name) else None

    def _contact_select(self) -> str:
        self._require_read("Contact")
        caps = self.caps
        fields = ", ".join(
            (
                "Id",
                *self._email_fields("Contact"),
                *self._phone_fields("Contact"),
                *caps.present("Contact", ["AccountId"]),
            )
        )
        children = ""
        if caps.contacts_to_multiple_accounts and caps.has_child("Contact", "AccountContactRelations"):
            children += ", (SELECT AccountId FROM AccountContactRelations)"
        if caps.has_child("Contact", "OpportunityContactRoles"):
            self._require_read("OpportunityContactRole", "Opportunity")
            children += f", {CONTACT_ROLES}"
        return f"SELECT {fields}{children} FROM Contact"

    def _converted_leads(self) -> bool:
        """M9 asked, and the API user sees `IsConverted`: converted leads are read, not filtered out."""
        return self.follows_conversions and self.caps.has_field("Lead", "IsConverted")

    def _lead_select(self) -> str:
        self._require_read("Lead")
        fields = ", ".join(
            (
                "Id",
                *self._email_fields("Lead"),
                *self._phone_fields("Lead"),
                *self.caps.present("Lead", self._lead_extra),
            )
        )
        return f"SELECT {fields} FROM Lead"

    def _account_select(self) -> str:
        self._require_read("Account")
        domain = self._domain_field()
        extra = "".join(
            f", {name}" for name in (domain, *self.caps.present("Account", self._account_extra)) if name
        )
        children = ""
        if self.caps.has_child("Account", "Opportunities"):
            self._require_read("Opportunity")
            children = f", {ACCOUNT_OPPORTUNITIES}"
        return f"SELECT Id, Name, Website{extra}{children} FROM Account"

    def _person_where(
        self, emails: Sequence[str], phones: Sequence[str], sobject: str, prefix: str = ""
    ) -> list[str]:
        conditions = []
        email_fields = self._email_fields(sobject)
        if emails and email_fields:
            conditions.append(any_in((prefix + f for f in email_fields), emails))
        phone_fields = self._phone_fields(sobject)
        if phones and phone_fields:
            variants = sorted({v for p in phones for v in phone_variants(p)})
            conditions.append(any_in((prefix + f for f in phone_fields), variants))
        return conditions

    def _contact_where(
        self, emails: Sequence[str], phones: Sequence[str], ids: Sequence[str], prefix: str = ""
    ) -> str | None:
        conditions = self._person_where(emails, phones, "Contact", prefix)
        if ids:
            conditions.append(f"{prefix}Id IN {in_list(ids)}")
        return " OR ".join(conditions) if conditions else None

    def _contact_query(self, emails: Sequence[str], phones: Sequence[str], ids: Sequence[str]) -> str | None:
        where = self._contact_where(emails, phones, ids)
        return f"{self._contact_select()} WHERE {where}" if where else None

    def _accounts_of_contacts_query(
        self, emails: Sequence[str], phones: Sequence[str], ids: Sequence[str]
    ) -> str | None:
        """The accounts (with their opportunities) related to the contacts this round matches.

        With Contacts to Multiple Accounts, a semi-join on AccountContactRelation under the
        contacts' own condition (which also holds each contact's primary account, IsDirect);
        without it, a semi-join on Contact.AccountId. Sent only in a query slot the round's
        composite call has free, so the next round needs no call for them.
        """
        if self.caps.contacts_to_multiple_accounts and self.caps.can("AccountContactRelation", "read"):
            where = self._contact_where(emails, phones, ids, prefix="Contact.")
            source = "AccountContactRelation"
        elif self.caps.has_field("Contact", "AccountId"):
            where = self._contact_where(emails, phones, ids)
            source = "Contact"
        else:
            return None
        if where is None:
            return None
        return f"{self._account_select()} WHERE Id IN (SELECT AccountId FROM {source} WHERE {where})"

    def _lead_query(
        self, emails: Sequence[str], phones: Sequence[str], ids: Sequence[str] = ()
    ) -> str | None:
        conditions = self._person_where(emails, phones, "Lead")
        if ids:
            conditions.append(f"Id IN {in_list(ids)}")
        if not conditions:
            return None
        if self._converted_leads():
            return f"{self._lead_select()} WHERE {' OR '.join(conditions)}"
        return f"{self._lead_select()} WHERE IsConverted = false AND ({' OR '.join(conditions)})"

    def _account_query(self, domains: Sequence[str], ids: Sequence[str]) -> str | None:
        """M6: `Website`, and the tenant's domain field when the org has it (else Website alone)."""
        conditions = []
        domain_field = self._domain_field() if domains else None
        for domain in sorted(set(domains)):
            conditions.append(f"Website LIKE {like_quote(domain)}")
            if domain_field:
                conditions.append(f"{domain_field} LIKE {like_quote(domain)}")
        if ids:
            conditions.append(f"Id IN {in_list(ids)}")
        return f"{self._account_select()} WHERE {' OR '.join(conditions)}" if conditions else None

    def _opportunity_query(self, account_ids: Sequence[str], ids: Sequence[str]) -> str | None:
        conditions = []
        if account_ids:
            conditions.append(f"AccountId IN {in_list(account_ids)}")
        if ids:
            conditions.append(f"Id IN {in_list(ids)}")
        if not conditions:
            return None
        self._require_read("Opportunity", "OpportunityContactRole")
        return f"SELECT {OPPORTUNITY_FIELDS} FROM Opportunity WHERE {' OR '.join(conditions)}"

    def _roles_query(self, contact_ids: Sequence[str]) -> str:
        self._require_read("Opportunity", "OpportunityContactRole")
        return (
            f"SELECT {OPPORTUNITY_FIELDS} FROM Opportunity WHERE Id IN "
            f"(SELECT OpportunityId FROM OpportunityContactRole WHERE ContactId IN {in_list(contact_ids)})"
        )

    def _user_query(self, emails: Sequence[str]) -> str:
        self._require_read("User")
        return f"SELECT Id, Email FROM User WHERE Email IN {in_list(emails)}"

    def _task_query(self, queries: Sequence[ActivityQuery]) -> str | None:
        """Tasks carrying one of the calls' ids in the telephony field or our external id, whichever the org has."""
        self._require_read("Task")
        s, caps = self.settings, self.caps
        keys = caps.present("Task", (s.task_call_id_field, s.external_id_field))
        if not keys or not queries:
            return None
        fields = ", ".join((ACTIVITY_LINK_FIELDS, *caps.present("Task", (*keys, s.task_start_field))))
        relations = ""
        if caps.shared_activities and caps.has_child("Task", "TaskRelations"):
            relations = ", (SELECT RelationId, Relation.Type, IsWhat FROM TaskRelations)"
        where = " OR ".join(_call_id_condition(key, queries) for key in keys)
        return f"SELECT {fields}{relations} FROM Task WHERE {where}"

    def _event_query(self, queries: Sequence[ActivityQuery]) -> str | None:
        """Events by the calls' ids in the fields the org has, and for meetings by their time windows (A1).

        Overlapping windows of several meetings are read as one. EventRelations are read
        for invitees' emails always; `IsParent` / `IsWhat` (the related contacts) exist
        only with Shared Activities.
        """
        self._require_read("Event")
        s, caps = self.settings, self.caps
        keys = caps.present("Event", (s.event_call_id_field, s.external_id_field))
        conditions = [_call_id_condition(key, queries) for key in keys] if queries else []
        for low, high in _windows(queries):
            conditions.append(
                f"(StartDateTime >= {datetime_literal(low)} AND StartDateTime <= {datetime_literal(high)})"
            )
        if not conditions:
            return None
        fields = ", ".join(
            (ACTIVITY_LINK_FIELDS, *caps.present("Event", (*keys, "StartDateTime", s.attendee_emails_field)))
        )
        relations = ""
        if caps.has_child("Event", "EventRelations") and caps.can("EventRelation", "read"):
            wanted = ("IsWhat", "IsParent", "IsInvitee") if caps.shared_activities else ("IsInvitee",)
            described = caps.object("EventRelation")
            flags = caps.present("EventRelation", wanted) if described and described.described else wanted
            columns = ", ".join(("RelationId", "Relation.Type", "Relation.Email", *flags))
            relations = f", (SELECT {columns} FROM EventRelations)"
        return f"SELECT {fields}{relations} FROM Event WHERE {' OR '.join(conditions)}"

    def _activity_queries(self, queries: Sequence[ActivityQuery]) -> dict[str, str]:
        """A1 for every call of the round: one Task and one Event query, in parts when a URI would pass the limit."""
        out: dict[str, str] = {}
        for kind, build in (("tasks", self._task_query), ("events", self._event_query)):
            parts = [list(queries)]
            while parts:
                part = parts.pop(0)
                soql = build(part)
                if soql is None:
                    continue
                if len(part) > 1 and len(self.client.query_url(soql).encode()) > MAX_URI_BYTES:
                    half = len(part) // 2
                    parts[:0] = [part[:half], part[half:]]
                    continue
                out[f"{kind}{sum(1 for name in out if name.startswith(kind))}"] = soql
        return out

    # --- confirmation -----------------------------------------------------------------------------

    def _phones_of(self, phones: Iterable[str]) -> set[str]:
        return {e for e in (to_e164(p, self.region) for p in phones) if e}

    def _emails_of(self, email: str | None, emails: Iterable[str]) -> set[str]:
        return {e for e in (norm_email(x) for x in (email, *emails)) if e}

    def _keep_person(self, record: Contact | Lead, emails: set[str], phones: set[str], ids: set[str]) -> bool:
        """Every hit is confirmed in code: normalised email, E.164 phone, or an asked id."""
        return (
            record.id in ids
            or bool(self._emails_of(record.email, record.emails) & emails)
            or bool(self._phones_of(record.phones) & phones)
        )

    def _keep_account(self, account: Account, domains: set[str], ids: set[str]) -> bool:
        return account.id in ids or bool({norm_domain(d) for d in account.domains} & domains)

    # --- one round --------------------------------------------------------------------------------

    def lookup(self, keys: Lookup) -> CrmSlice:
        """One round in one composite call (two when it needs more than five queries).

        Contacts come with their roles' opportunities (child subquery with `Opportunity.`
        parent fields) and, in a free slot, with their accounts and those accounts'
        opportunities, so the round that asks for them finds them read already.
        """
        self.stats.rounds += 1
        return self._fresh(lambda: self._lookup(keys))

    def _lookup(self, keys: Lookup) -> CrmSlice:
        """The round's calls are counted even when the org refuses one (a refresh then sends it again)."""
        self.caps  # noqa: B018 (a discovery, when one is due, is counted apart from the round)
        before = self.client.api_calls
        try:
            return self._round(keys)
        finally:
            self.stats.count("lookup", self.client.api_calls - before)

    def _round(self, keys: Lookup) -> CrmSlice:
        emails = sorted(e for e in (norm_email(x) for x in keys.emails) if e)
        phones = sorted(keys.phones)
        domains = sorted({norm_domain(d) for d in keys.domains})
        contact_ids = sorted(keys.contact_ids)
        new_contact_ids = [c for c in contact_ids if c not in self._contacts]
        account_ids = sorted(keys.account_ids)
        new_account_ids = [a for a in account_ids if a not in self._accounts]
        searched_contacts, searched_leads = self._search_phones(phones) if self.search_phones else ([], [])
        queries: dict[str, str] = {}
        user_emails = sorted({e for e in (norm_email(x) for x in keys.user_emails) if e})
        cached_users, unread_users = self.users.get(user_emails)
        if unread_users:
            queries["users"] = self._user_query(unread_users)
        by_id = sorted({*new_contact_ids, *searched_contacts})
        contact_where = self._contact_where(emails, phones, by_id)
        if contact_where:
            queries["contacts"] = f"{self._contact_select()} WHERE {contact_where}"
        lead_query = self._lead_query(emails, phones, searched_leads)
        if lead_query:
            queries["leads"] = lead_query
        account_query = self._account_query(domains, new_account_ids)
        if account_query:
            queries["accounts"] = account_query
        unread_roles = [c for c in contact_ids if c not in self._roles_read]
        if unread_roles:
            queries["roles"] = self._roles_query(unread_roles)
        unread_accounts = [a for a in account_ids if a not in self._account_opportunities_read]
        unread_opportunities = sorted(o for o in keys.opportunity_ids if o not in self._opportunities)
        opportunity_query = self._opportunity_query(unread_accounts, unread_opportunities)
        if opportunity_query:
            queries["opportunities"] = opportunity_query
        queries |= self._activity_queries(keys.activities)
        if contact_where and len(queries) % MAX_QUERIES_PER_CALL:
            related = self._accounts_of_contacts_query(emails, phones, by_id)
            if related:
                queries["contact_accounts"] = related
        results = {
            name: self._whole(records)
            for name, records in (self.client.composite_queries(queries) if queries else {}).items()
        }

        read_users = [mapping.to_user(r) for r in results.get("users", [])]
        if "users" in queries:
            self.users.put(unread_users, read_users, self.settings.users_ttl)
        users = [*cached_users, *read_users]
        wanted_phones = set(phones)
        for record in results.get("contacts", []):
            self._remember_roles(record)
        contacts = [
            c
            for c in (mapping.to_contact(r, self.settings) for r in results.get("contacts", []))
            if self._keep_person(c, set(emails), wanted_phones, set(new_contact_ids))
        ]
        leads = [
            lead
            for lead in (mapping.to_lead(r, self.settings) for r in results.get("leads", []))
            if self._keep_person(lead, set(emails), wanted_phones, set())
        ]
        for contact in contacts:
            self._contacts[contact.id] = contact
        contacts += [
            self._contacts[c] for c in contact_ids if c in self._contacts and c not in new_contact_ids
        ]
        for record in results.get("contact_accounts", []):
            self._remember_account(record)
        accounts = [
            self._remember_account(r)
            for r in results.get("accounts", [])
            if self._keep_account(mapping.to_account(r, self.settings), set(domains), set(new_account_ids))
        ]
        accounts += [
            self._accounts[a] for a in account_ids if a in self._accounts and a not in new_account_ids
        ]
        for record in [*results.get("roles", []), *results.get("opportunities", [])]:
            self._remember_opportunity(mapping.to_opportunity(record))
        self._roles_read |= set(unread_roles)
        self._account_opportunities_read |= set(unread_accounts)
        opportunities: list[Opportunity] = []
        if contact_ids or account_ids or keys.opportunity_ids:
            opportunities = [self._opportunity(o) for o in sorted(self._opportunities)]
        tasks = _parts(results, "tasks")
        events = _parts(results, "events")
        activities: list[Activity] = [
            *(mapping.to_task(r, self.settings) for r in tasks),
            *(mapping.to_event(r, self.settings) for r in events),
        ]
        for query in keys.activities:
            self._note_ours(query.call_id, tasks, events)
        return CrmSlice(
            users=tuple(_unique(users)),
            accounts=tuple(_unique(accounts)),
            contacts=tuple(_unique(contacts)),
            leads=tuple(_unique(leads)),
            opportunities=tuple(opportunities),
            activities=tuple(_unique(sorted(activities, key=lambda a: a.id))),
        )

    def _whole(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records with every subquery's rows: a paged child result is followed by query_more."""
        out = []
        for record in records:
            paged = {
                key: value
                for key, value in record.items()
                if isinstance(value, dict) and "records" in value and not mapping.is_complete(record, key)
            }
            if paged:
                record = dict(record)
                for key, value in paged.items():
                    rows = self.client.more(value)
                    record[key] = {"totalSize": len(rows), "done": True, "records": rows}
            out.append(record)
        return out

    def _remember_opportunity(self, opportunity: Opportunity) -> None:
        """One opportunity read by several paths: the first copy's fields, the union of the roles seen."""
        self._opportunities.setdefault(opportunity.id, opportunity)
        roles = self._roles.setdefault(opportunity.id, {})
        for role in opportunity.contacts:
            roles.setdefault(role.id, role.is_primary)

    def _opportunity(self, opportunity_id: str) -> Opportunity:
        """Complete for every contact whose roles were read, whichever path brought which role."""
        roles = self._roles.get(opportunity_id, {})
        return replace(
            self._opportunities[opportunity_id],
            contacts=tuple(ContactRole(id=c, is_primary=p) for c, p in roles.items()),
        )

    def _remember_roles(self, record: Record) -> None:
        """A Contact row's own roles; once all are in, its opportunities need no query of their own."""
        found, complete = mapping.contact_roles(record)
        for opportunity, role in found:
            self._remember_opportunity(replace(opportunity, contacts=(role,)))
        if complete:
            self._roles_read.add(str(record["Id"]))

    def _remember_account(self, record: Record) -> Account:
        """An Account row with its `Opportunities`; once all are in, they need no query of their own."""
        account = mapping.to_account(record, self.settings)
        self._accounts.setdefault(account.id, account)
        for row in mapping.child_records(record, "Opportunities"):
            self._remember_opportunity(mapping.to_opportunity(row))
        if mapping.is_complete(record, "Opportunities"):
            self._account_opportunities_read.add(account.id)
        return self._accounts[account.id]

    def _search_phones(self, phones: Sequence[str]) -> tuple[list[str], list[str]]:
        """SOSL over phone fields, one call for all numbers; ids of hits confirmed by E.164.

        SOSL finds formats no variant list foresees; its index lags for fresh records,
        which the SOQL variants in the same round still find.
        """
        if not phones:
            return [], []
        terms = " OR ".join(sosl_escape(national_digits(p)) for p in sorted(set(phones)))
        self._require_read("Contact", "Lead")
        contact_fields, lead_fields = self._phone_fields("Contact"), self._phone_fields("Lead")
        returning = []
        if contact_fields:
            returning.append(f"Contact({', '.join(('Id', *contact_fields))})")
        if lead_fields:
            unconverted = "" if self._converted_leads() else " WHERE IsConverted = false"
            returning.append(f"Lead({', '.join(('Id', *lead_fields))}{unconverted})")
        if not returning:
            return [], []
        records = self.client.search(f"FIND {{{terms}}} IN PHONE FIELDS RETURNING {', '.join(returning)}")
        wanted = set(phones)
        contacts: list[str] = []
        leads: list[str] = []
        for record in records:
            kind = record_type(record)
            fields = contact_fields if kind == "Contact" else lead_fields
            if self._phones_of(str(record[f]) for f in fields if record.get(f)) & wanted:
                (contacts if kind == "Contact" else leads).append(str(record["Id"]))
        return sorted(set(contacts)), sorted(set(leads))

    # --- the batch methods, one query each (the port's plain path and the bench baseline) -----------

    def _query(self, method: str, soql: str) -> list[dict[str, Any]]:
        before = self.client.api_calls
        try:
            return self._whole(self.client.query(soql))
        finally:
            self.stats.count(method, self.client.api_calls - before)

    @_refreshing
    def users_by_emails(self, emails: Sequence[str]) -> list[User]:
        wanted = sorted(e for e in (norm_email(x) for x in emails) if e)
        if not wanted:
            return []
        return [mapping.to_user(r) for r in self._query("users_by_emails", self._user_query(wanted))]

    def _contact_hits(
        self, method: str, soql: str | None, emails: set[str], phones: set[str], ids: set[str]
    ) -> list[Contact]:
        if soql is None:
            return []
        found = [mapping.to_contact(r, self.settings) for r in self._query(method, soql)]
        return sorted((c for c in found if self._keep_person(c, emails, phones, ids)), key=lambda c: c.id)

    @_refreshing
    def contacts_by_emails(self, emails: Sequence[str]) -> list[Contact]:
        wanted = sorted(e for e in (norm_email(x) for x in emails) if e)
        return self._contact_hits(
            "contacts_by_emails", self._contact_query(wanted, [], []), set(wanted), set(), set()
        )

    def _query_in_parts(
        self, method: str, build: Callable[[Sequence[str]], str | None], items: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The records of `build(items)`, in as many queries as the URI limit takes, each record once.

        Salesforce answers 414 to a GET whose URI passes 16,384 bytes; a handful of phones,
        each with its typed variants, gets there. Halving the items keeps every query under it.
        """
        soql = build(items)
        if soql is None:
            return []
        if len(items) <= 1 or len(self.client.query_url(soql).encode()) <= MAX_URI_BYTES:
            return self._query(method, soql)
        half = len(items) // 2
        records: dict[str, dict[str, Any]] = {}
        for part in (items[:half], items[half:]):
            for record in self._query_in_parts(method, build, part):
                records.setdefault(str(record.get("Id")), record)
        return list(records.values())

    @_refreshing
    def contacts_by_phones(self, phones: Sequence[str]) -> list[Contact]:
        before = self.client.api_calls
        searched, _ = self._search_phones(phones) if self.search_phones else ([], [])
        self.stats.count("contacts_by_phones", self.client.api_calls - before)
        records = self._query_in_parts(
            "contacts_by_phones", lambda part: self._contact_query([], part, searched), sorted(phones)
        )
        found = [mapping.to_contact(r, self.settings) for r in records]
        return sorted(
            (c for c in found if self._keep_person(c, set(), set(phones), set())), key=lambda c: c.id
        )

    @_refreshing
    def contacts_by_ids(self, ids: Sequence[str]) -> list[Contact]:
        return self._contact_hits("contacts_by_ids", self._contact_query([], [], ids), set(), set(), set(ids))

    def _leads(self, method: str, soql: str | None, emails: set[str], phones: set[str]) -> list[Lead]:
        if soql is None:
            return []
        found = [mapping.to_lead(r, self.settings) for r in self._query(method, soql)]
        return sorted((x for x in found if self._keep_person(x, emails, phones, set())), key=lambda x: x.id)

    @_refreshing
    def leads_by_emails(self, emails: Sequence[str]) -> list[Lead]:
        wanted = sorted(e for e in (norm_email(x) for x in emails) if e)
        return self._leads("leads_by_emails", self._lead_query(wanted, []), set(wanted), set())

    @_refreshing
    def leads_by_phones(self, phones: Sequence[str]) -> list[Lead]:
        before = self.client.api_calls
        _, searched = self._search_phones(phones) if self.search_phones else ([], [])
        self.stats.count("leads_by_phones", self.client.api_calls - before)
        records = self._query_in_parts(
            "leads_by_phones", lambda part: self._lead_query([], part, searched), sorted(phones)
        )
        found = [mapping.to_lead(r, self.settings) for r in records]
        return sorted(
            (x for x in found if self._keep_person(x, set(), set(phones), set())), key=lambda x: x.id
        )

    def _accounts_query(self, method: str, domains: Sequence[str], ids: Sequence[str]) -> list[Account]:
        soql = self._account_query(domains, ids)
        if soql is None:
            return []
        found = [mapping.to_account(r, self.settings) for r in self._query(method, soql)]
        return sorted((a for a in found if self._keep_account(a, set(domains), set(ids))), key=lambda a: a.id)

    @_refreshing
    def accounts_by_domains(self, domains: Sequence[str]) -> list[Account]:
        return self._accounts_query("accounts_by_domains", sorted({norm_domain(d) for d in domains}), [])

    @_refreshing
    def accounts_by_ids(self, ids: Sequence[str]) -> list[Account]:
        return self._accounts_query("accounts_by_ids", [], ids)

    @_refreshing
    def opportunities_of_contacts(self, contact_ids: Sequence[str]) -> list[Opportunity]:
        if not contact_ids:
            return []
        records = self._query("opportunities_of_contacts", self._roles_query(contact_ids))
        return sorted((mapping.to_opportunity(r) for r in records), key=lambda o: o.id)

    @_refreshing
    def opportunities_of_accounts(self, account_ids: Sequence[str]) -> list[Opportunity]:
        soql = self._opportunity_query(account_ids, [])
        if soql is None:
            return []
        records = self._query("opportunities_of_accounts", soql)
        return sorted((mapping.to_opportunity(r) for r in records), key=lambda o: o.id)

    @_refreshing
    def opportunities_by_ids(self, ids: Sequence[str]) -> list[Opportunity]:
        soql = self._opportunity_query([], ids)
        if soql is None:
            return []
        records = self._query("opportunities_by_ids", soql)
        return sorted((mapping.to_opportunity(r) for r in records), key=lambda o: o.id)

    @_refreshing
    def activities_for_call(self, query: ActivityQuery) -> list[Activity]:
        task_query, event_query = self._task_query([query]), self._event_query([query])
        task_records = self._query("activities_for_call", task_query) if task_query else []
        event_records = self._query("activities_for_call", event_query) if event_query else []
        self._note_ours(query.call_id, task_records, event_records)
        tasks = [mapping.to_task(r, self.settings) for r in task_records]
        events = [mapping.to_event(r, self.settings) for r in event_records]
        return sorted([*tasks, *events], key=lambda a: a.id)

    # --- write-back (W1, W2) ----------------------------------------------------------------------

    def activity_body(self, call: Call, decision: Decision) -> tuple[str, dict[str, Any], list[str]]:
        """W2: the sObject, its fields and the other contacts to relate, for this decision."""
        who: str | None = None
        what: str | None = decision.opportunity_id or decision.account_id
        others: list[str] = []
        if decision.contact_ids:
            who, others = decision.contact_ids[0], list(decision.contact_ids[1:])
        elif decision.lead_ids:
            who, what = decision.lead_ids[0], None
        title = call.title or ("Meeting" if call.kind is CallKind.MEETING else "Call")
        body: dict[str, Any] = {"Subject": title[:255], "WhoId": who, "WhatId": what}
        if call.kind is CallKind.MEETING:
            end = call.ended_at or call.started_at + dt.timedelta(minutes=self.settings.event_minutes_default)
            body |= {
                "StartDateTime": mapping.format_datetime(call.started_at),
                "EndDateTime": mapping.format_datetime(max(end, call.started_at)),
            }
            return "Event", body, others
        body |= {
            "TaskSubtype": "Call",
            "Status": "Completed",
            "ActivityDate": call.started_at.astimezone(dt.UTC).date().isoformat(),
            "CallDurationInSeconds": call.duration_seconds,
        }
        if call.direction is not None:
            body["CallType"] = "Inbound" if call.direction is Direction.INBOUND else "Outbound"
        return "Task", body, others

    def _note_ours(self, call_id: str, tasks: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
        """Remember whether our activity for this call exists, so the write knows create from update."""
        ext = self.settings.external_id_field
        for sobject, records in (("Task", tasks), ("Event", events)):
            if any(r.get(ext) == call_id for r in records):
                self._ours.add((sobject, call_id))

    def _write(
        self, sobject: str, call_id: str, body: dict[str, Any], others: list[str]
    ) -> tuple[SubResponse, list[SubResponse], SubResponse | None, str]:
        """Upsert, relations and the relation listing in one composite call.

        Without Shared Activities the composite holds the upsert alone (no relation rows
        exist to write or list). Relations beyond what one composite holds follow once
        the activity's id is known.
        """
        relation, parent = ("TaskRelation", "TaskId") if sobject == "Task" else ("EventRelation", "EventId")
        key = url_quote(call_id, safe="")
        upsert: dict[str, Any] = {
            "method": "PATCH",
            "url": self.client.data_path(f"sobjects/{sobject}/{self.settings.external_id_field}/{key}"),
            "referenceId": "activity",
            "body": body,
        }
        if not self._relations(sobject):
            return self.client.composite([upsert])[0], [], None, relation

        def relation_request(index: int, contact_id: str, activity_id: str) -> dict[str, Any]:
            fields: dict[str, Any] = {parent: activity_id, "RelationId": contact_id}
            if relation == "EventRelation":
                fields |= {"IsParent": True, "IsInvitee": False}
            return {
                "method": "POST",
                "url": self.client.data_path(f"sobjects/{relation}"),
                "referenceId": f"relation{index}",
                "body": fields,
            }

        inline = others[: MAX_SUBREQUESTS - 2]
        # An Event's invitees are EventRelation rows too: only the related (IsParent) ones are ours to replace.
        related = " AND IsParent = true" if relation == "EventRelation" else ""
        soql = f"SELECT Id, RelationId FROM {relation} WHERE IsWhat = false{related} AND {parent} = "
        subrequests: list[dict[str, Any]] = [
            upsert,
            *(relation_request(i, c, "@{activity.id}") for i, c in enumerate(inline)),
            {
                "method": "GET",
                "url": self.client.data_path("query?q=" + url_quote(soql, safe="") + "'@{activity.id}'"),
                "referenceId": "relations",
            },
        ]
        responses = self.client.composite(subrequests)
        head, created, listed = responses[0], responses[1:-1], responses[-1]
        if head.status < 300 and len(others) > len(inline):
            activity_id = str(head.body["id"])
            rest = [relation_request(i, c, activity_id) for i, c in enumerate(others) if i >= len(inline)]
            created += self.client.composite(rest)
        return head, created, listed, relation

    def _writable(self, sobject: str, body: dict[str, Any]) -> dict[str, Any]:
        """The body without the optional fields the API user may not write (hidden or read-only by FLS)."""
        out = dict(body)
        for name in _OPTIONAL_BODY_FIELDS:
            found = self.caps.field(sobject, name)
            if name in out and (found is None or not (found.createable or found.updateable)):
                del out[name]
        return out

    def _head_error(self, sobject: str, head: SubResponse) -> ExternalError:
        """The upsert's refusal, named: several records with this call id (300), or our field unusable."""
        external_id = self.settings.external_id_field
        if head.status == 300:
            urls = head.body if isinstance(head.body, list) else []
            ids = ", ".join(str(u).rstrip("/").rsplit("/", 1)[-1] for u in urls if isinstance(u, str))
            return FatalError(
                SERVICE,
                f"upsert {sobject}: HTTP 300: {len(urls)} {sobject} records share this call's "
                f"{external_id} ({ids}), so {sobject}.{external_id} is not Unique on this org. Fix: delete "
                f"all but one of them, then {self._setup_fix()} to make the field Unique",
                status=300,
                code="MULTIPLE_RECORDS",
            )
        if head.status == 404 and _code(head.body) == "NOT_FOUND":
            # The documented answer when the field named in the URL is not an external id.
            return FatalError(
                SERVICE,
                f"upsert {sobject}: HTTP 404 NOT_FOUND: {external_id} is not an external id",
                status=404,
                code="INVALID_FIELD",
            )
        return classify_response(head.status, head.body, f"upsert {sobject}")

    @_refreshing
    def upsert_activity(self, call: Call, decision: Decision) -> WrittenActivity:
        """W1: upsert by our external id keyed on the call id, relations in the same composite call.

        Our external id must be on the object, External ID and editable (else
        MissingRequirementError, before any request). TaskSubtype can be set on create
        only, so it is sent when the read round did not see our Task; if another worker
        created it meanwhile, the write is sent again without it. Relations left from an
        earlier decision are deleted (a second call, only when the contacts changed).
        """
        sobject, body, others = self.activity_body(call, decision)
        self._require_write(sobject)
        body = self._writable(sobject, body)
        if not self._relations(sobject):
            others = []  # W2 without Shared Activities: WhoId, the first contact, is the only link
        if (sobject, call.id) in self._ours:
            body.pop("TaskSubtype", None)
        before = self.client.api_calls
        head, created, listed, relation = self._write(sobject, call.id, body, others)
        if (
            head.status >= 300
            and "TaskSubtype" in body
            and _code(head.body) == "INVALID_FIELD_FOR_INSERT_UPDATE"
        ):
            body.pop("TaskSubtype")
            head, created, listed, relation = self._write(sobject, call.id, body, others)
        if head.status >= 300:
            self.stats.count("upsert_activity", self.client.api_calls - before)
            raise self._head_error(sobject, head)
        for sub in created:
            if sub.status >= 300 and not _is_duplicate(sub.body):
                self.stats.count("upsert_activity", self.client.api_calls - before)
                raise classify_response(sub.status, sub.body, f"create {relation}")
        stale: list[str] = []
        if listed is not None:
            if listed.status >= 300:
                self.stats.count("upsert_activity", self.client.api_calls - before)
                raise classify_response(listed.status, listed.body, f"list {relation}")
            keep = {body.get("WhoId"), *others}
            stale = [str(r["Id"]) for r in self.client.more(listed.body) if r.get("RelationId") not in keep]
        if stale:
            deletes = [
                {
                    "method": "DELETE",
                    "url": self.client.data_path(f"sobjects/{relation}/{record_id}"),
                    "referenceId": f"stale{index}",
                }
                for index, record_id in enumerate(stale)
            ]
            for sub in self.client.composite(deletes):
                if sub.status >= 300 and sub.status != 404:
                    raise classify_response(sub.status, sub.body, f"delete {relation}")
        self.stats.count("upsert_activity", self.client.api_calls - before)
        self._ours.add((sobject, call.id))
        return WrittenActivity(
            id=str(head.body["id"]), kind=sobject.lower(), created=bool(head.body.get("created"))
        )

    # --- write-back for a batch (sObject Collections) ----------------------------------------------

    @_refreshing
    def upsert_activities(
        self, writes: Sequence[tuple[Call, Decision]]
    ) -> list[WrittenActivity | ExternalError]:
        """W1 for a batch: every Task and Event upserted by sObject Collections in one composite call.

        A record's refusal is its call's outcome and the others land (allOrNone false);
        refused credentials or the rate limit stop the batch (raised). With Shared
        Activities the relations of every activity are created and listed in one more
        composite call, and stale ones deleted in one more. A call id twice in the batch
        is written alone after the batch (a collection refuses a repeated external id).
        """
        before = self.client.api_calls
        try:
            return self._upsert_batch(writes)
        finally:
            self.stats.count("upsert_activities", self.client.api_calls - before)

    def _upsert_batch(self, writes: Sequence[tuple[Call, Decision]]) -> list[WrittenActivity | ExternalError]:
        outcomes: dict[int, WrittenActivity | ExternalError] = {}
        pending: list[_Pending] = []
        repeated: list[int] = []
        seen: set[str] = set()
        for index, (call, decision) in enumerate(writes):
            if call.id in seen:
                repeated.append(index)
                continue
            seen.add(call.id)
            sobject, body, others = self.activity_body(call, decision)
            try:
                self._require_write(sobject)
            except FatalError as error:
                outcomes[index] = error
                continue
            body = self._writable(sobject, body)
            if not self._relations(sobject):
                others = []
            if (sobject, call.id) in self._ours:
                body.pop("TaskSubtype", None)
            pending.append(_Pending(index, call.id, sobject, body, others))
        self._upsert_collections(pending)
        retry = [
            p
            for p in pending
            if p.error is not None
            and "TaskSubtype" in p.body
            and p.error.code == "INVALID_FIELD_FOR_INSERT_UPDATE"
        ]
        for item in retry:
            item.body.pop("TaskSubtype")
            item.error = None
        self._upsert_collections(retry)
        written = [p for p in pending if p.error is None]
        self._write_relations([p for p in written if self._relations(p.sobject)])
        for item in pending:
            if item.error is not None:
                outcomes[item.index] = item.error
                continue
            self._ours.add((item.sobject, item.call_id))
            outcomes[item.index] = WrittenActivity(
                id=item.id, kind=item.sobject.lower(), created=item.created
            )
        for index in repeated:
            call, decision = writes[index]
            try:
                outcomes[index] = self.upsert_activity(call, decision)
            except (CredentialsExpiredError, RateLimitedError):
                raise
            except ExternalError as error:
                outcomes[index] = error
        return [outcomes[i] for i in range(len(writes))]

    def _upsert_collections(self, items: Sequence[_Pending]) -> None:
        """Upsert `items` (each object's collection, 200 records each) in composite calls; set id or error."""
        if not items:
            return
        external_id = self.settings.external_id_field
        groups: list[tuple[str, list[_Pending]]] = []
        for sobject in ("Task", "Event"):
            mine = [p for p in items if p.sobject == sobject]
            for start in range(0, len(mine), MAX_COLLECTION_RECORDS):
                groups.append((sobject, mine[start : start + MAX_COLLECTION_RECORDS]))
        subrequests = [
            {
                "method": "PATCH",
                "url": self.client.data_path(f"composite/sobjects/{sobject}/{external_id}"),
                "referenceId": f"upsert{number}",
                "body": {
                    "allOrNone": False,
                    "records": [
                        {"attributes": {"type": sobject}, **p.body, external_id: p.call_id} for p in group
                    ],
                },
            }
            for number, (sobject, group) in enumerate(groups)
        ]
        for (sobject, group), sub in zip(groups, self.client.composite(subrequests), strict=True):
            if sub.status >= 300 or not isinstance(sub.body, list) or len(sub.body) != len(group):
                error = self._head_error(sobject, sub)
                if (
                    isinstance(error, (CredentialsExpiredError, RateLimitedError))
                    or error.code in SCHEMA_ERRORS
                ):
                    raise error  # a schema refusal: described again and sent once more (_refreshing)
                for item in group:
                    item.error = error
                continue
            for item, result in zip(group, sub.body, strict=True):
                if result.get("success"):
                    item.id, item.created = str(result["id"]), bool(result.get("created"))
                else:
                    item.error = self._record_error(sobject, f"upsert {sobject}", result.get("errors"))

    def _record_error(self, sobject: str, what: str, errors: Any) -> ExternalError:
        """A collection record's refusal (`statusCode` entries), classified as a single request's would be."""
        entries = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        code = str(entries[0].get("statusCode")) if entries else ""
        if code == "DUPLICATE_EXTERNAL_ID":
            external_id = self.settings.external_id_field
            return FatalError(
                SERVICE,
                f"{what}: several {sobject} records share this call's {external_id}, so {sobject}.{external_id} "
                f"is not Unique on this org. Fix: delete all but one of them, then {self._setup_fix()} to make "
                "the field Unique",
                status=300,
                code="MULTIPLE_RECORDS",
            )
        error = classify_response(
            400,
            [
                {"errorCode": e.get("statusCode"), "message": e.get("message"), "fields": e.get("fields")}
                for e in entries
            ],
            what,
        )
        if isinstance(error, (CredentialsExpiredError, RateLimitedError)):
            raise error
        return error

    def _write_relations(self, items: Sequence[_Pending]) -> None:
        """Relations of many activities: created and listed in one composite call, stale ones deleted after."""
        if not items:
            return
        subrequests: list[dict[str, Any]] = []
        owners: list[list[_Pending]] = []
        for sobject in ("Task", "Event"):
            relation, parent = _RELATION_OF[sobject]
            mine = [p for p in items if p.sobject == sobject]
            rows: list[tuple[_Pending, dict[str, Any]]] = []
            for item in mine:
                for contact_id in item.others:
                    fields: dict[str, Any] = {
                        "attributes": {"type": relation},
                        parent: item.id,
                        "RelationId": contact_id,
                    }
                    if relation == "EventRelation":
                        fields |= {"IsParent": True, "IsInvitee": False}
                    rows.append((item, fields))
            for start in range(0, len(rows), MAX_COLLECTION_RECORDS):
                part = rows[start : start + MAX_COLLECTION_RECORDS]
                subrequests.append(
                    {
                        "method": "POST",
                        "url": self.client.data_path("composite/sobjects"),
                        "referenceId": f"relations{len(subrequests)}",
                        "body": {"allOrNone": False, "records": [fields for _, fields in part]},
                    }
                )
                owners.append([owner for owner, _ in part])
        listings: list[tuple[str, dict[str, Any]]] = []
        for sobject in ("Task", "Event"):
            relation, parent = _RELATION_OF[sobject]
            ids = [p.id for p in items if p.sobject == sobject]
            related = " AND IsParent = true" if relation == "EventRelation" else ""
            for start in range(0, len(ids), _IDS_PER_LISTING):
                soql = (
                    f"SELECT Id, RelationId, {parent} FROM {relation} WHERE IsWhat = false{related} "
                    f"AND {parent} IN {in_list(ids[start : start + _IDS_PER_LISTING])}"
                )
                listings.append(
                    (
                        relation,
                        {
                            "method": "GET",
                            "url": self.client.query_url(soql),
                            "referenceId": f"list{len(listings)}",
                        },
                    )
                )
        responses = self.client.composite([*subrequests, *(sub for _, sub in listings)])
        created, listed = responses[: len(subrequests)], responses[len(subrequests) :]
        for group, sub in zip(owners, created, strict=True):
            if sub.status >= 300 or not isinstance(sub.body, list):
                error = classify_response(sub.status, sub.body, "create relations")
                if isinstance(error, (CredentialsExpiredError, RateLimitedError)):
                    raise error
                for item in group:
                    item.error = item.error or error
                continue
            for item, result in zip(group, sub.body, strict=True):
                errors = result.get("errors") or []
                if not result.get("success") and not any(
                    isinstance(e, dict) and e.get("statusCode") == "DUPLICATE_VALUE" for e in errors
                ):
                    item.error = item.error or self._record_error(
                        item.sobject, f"create {_RELATION_OF[item.sobject][0]}", errors
                    )
        by_id = {p.id: p for p in items}
        stale: list[tuple[str, _Pending]] = []
        for (relation, _), sub in zip(listings, listed, strict=True):
            parent = "TaskId" if relation == "TaskRelation" else "EventId"
            if sub.status >= 300:
                error = classify_response(sub.status, sub.body, f"list {relation}")
                if isinstance(error, (CredentialsExpiredError, RateLimitedError)):
                    raise error
                for item in items:
                    if _RELATION_OF[item.sobject][0] == relation:
                        item.error = item.error or error
                continue
            for row in self.client.more(sub.body):
                owner = by_id.get(str(row.get(parent)))
                if owner is not None and row.get("RelationId") not in {
                    owner.body.get("WhoId"),
                    *owner.others,
                }:
                    stale.append((str(row["Id"]), owner))
        for start in range(0, len(stale), MAX_COLLECTION_RECORDS):
            doomed = stale[start : start + MAX_COLLECTION_RECORDS]
            results = self.client.rest(
                "delete relations",
                "composite/sobjects",
                method="DELETE",
                params={"ids": ",".join(record_id for record_id, _ in doomed), "allOrNone": "false"},
            )
            for (_, holder), outcome in zip(
                doomed, results if isinstance(results, list) else [], strict=False
            ):
                failures = outcome.get("errors") or []
                if not outcome.get("success") and not any(
                    isinstance(e, dict) and e.get("statusCode") in ("ENTITY_IS_DELETED", "NOT_FOUND")
                    for e in failures
                ):
                    holder.error = holder.error or self._record_error(
                        holder.sobject, "delete relation", failures
                    )


@dataclass
class _Pending:
    """One call's activity in a batch write: what is sent, then its id or its refusal."""

    index: int
    call_id: str
    sobject: str
    body: dict[str, Any]
    others: list[str]
    id: str = ""
    created: bool = False
    error: ExternalError | None = None


_RELATION_OF = {"Task": ("TaskRelation", "TaskId"), "Event": ("EventRelation", "EventId")}
# Activity ids per relation listing: 100 ids of 18 characters keep the query's URI far under 16,384 bytes.
_IDS_PER_LISTING = 100


def _call_id_condition(key: str, queries: Sequence[ActivityQuery]) -> str:
    ids = sorted({q.call_id for q in queries})
    return f"{key} = {quote(ids[0])}" if len(ids) == 1 else f"{key} IN {in_list(ids)}"


def _windows(queries: Sequence[ActivityQuery]) -> list[tuple[dt.datetime, dt.datetime]]:
    """The meetings' A1 windows, overlapping ones merged (one condition each)."""
    spans = sorted(
        (
            q.started_at - dt.timedelta(minutes=q.window_minutes),
            q.started_at + dt.timedelta(minutes=q.window_minutes),
        )
        for q in queries
        if q.kind is CallKind.MEETING
    )
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for low, high in spans:
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _parts(results: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    """The rows of every part of one kind of query (`tasks0`, `tasks1`...), each record once."""
    rows: dict[str, dict[str, Any]] = {}
    for name, records in results.items():
        if name.rstrip("0123456789") == kind:
            for record in records:
                rows.setdefault(str(record.get("Id")), record)
    return list(rows.values())


def _code(body: Any) -> str | None:
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode"))
    return None


def _is_duplicate(body: Any) -> bool:
    return isinstance(body, list) and any(
        isinstance(e, dict) and e.get("errorCode") == "DUPLICATE_VALUE" for e in body
    )


def _unique(records: Iterable[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for record in records:
        if record.id not in seen:
            seen.add(record.id)
            out.append(record)
    return out


def record_type(record: Record) -> str | None:
    attributes = record.get("attributes")
    return str(attributes.get("type")) if isinstance(attributes, dict) else None
