"""`HubSpotCrm`: the CRM port over HubSpot, one batched request per kind of read in each round.

One `HubSpotCrm` serves one association (it remembers what it read, so a later round
never asks twice); the `HubSpotClient`, `TenantCache` and ledger behind it are per
tenant and shared. Per round the strategy follows the number of keys: few keys go
through v3 GETs that bring the record and its association ids together (`?associations=`,
`idProperty=email`); more go through batch reads and v4 association batch reads.

A round (`lookup`) costs at most: owners (cached per tenant); contacts by email (one
email: one GET with its company and deal ids; more: one batch read by primary email);
one contact search per five filter groups (additional emails, calculated and exact
phone numbers); contacts by id (one or two: a GET each with their links; more: one
batch read); one contact->company association read (a single contact without links: a
GET instead); one company search by domain; one company batch read and one
company->deal association read (a single company: one GET with its deal ids); one
contact->deal association read (labels give the primary role); one deal batch read
(a single deal of unknown company: one GET with its company ids); a deal->company read
only for deals whose primary company is not among the links already read; pipelines
(cached per tenant, only without `hs_is_closed`); and a search each for calls and
meetings carrying the call id, plus a GET per hit (three association reads beyond two
hits). A v3 association block that HubSpot pages (over 100 entries) is read through
v4 instead. Write-back reuses that search (W1).

Every read, search and write names only properties the portal has (its capabilities,
discovered once per tenant: adapters.crm.hubspot.capabilities); a write without the W1
properties stops before any request with MissingRequirementError.

Rules v1.1 cost no request: with `excluded_account_types` (X1) the company reads above
name `type` among their properties; `skip_converted_leads` (M9) reads nothing, since a
HubSpot lead is never converted the Salesforce way (adapters.crm.hubspot.mapping)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from adapters.crm.hubspot.capabilities import (
    RECHECK_SECONDS,
    Capabilities,
    PortalCapabilities,
    require_for_write,
)
from adapters.crm.hubspot.client import (
    BATCH_SIZE,
    SEARCH_MAX_BODY,
    HubSpotClient,
    JsonObject,
    PropertyMissingError,
    search_body_size,
)
from adapters.crm.hubspot.ledger import ActivityLedger
from adapters.crm.hubspot.mapping import (
    ACTIVITY_ASSOCIATION_TYPES,
    COMPANY_DEAL_PRIMARY,
    COMPANY_TYPE_PROPERTY,
    CONTACT_COMPANY_PRIMARY,
    DEAL_COMPANY_PRIMARY,
    ClosedState,
    HubSpotMapping,
    account_from,
    activity_from,
    closed_from_properties,
    closed_from_stage,
    contact_from,
    domains_of,
    e164s_of,
    emails_of,
    entries_from_v3,
    has_label,
    is_lead,
    iso,
    lead_from,
    national_digits,
    opportunity_from,
    ordered_companies,
    props,
    to_ids,
    type_ids,
    user_from,
)
from adapters.crm.readiness import MissingRequirementError
from adapters.errors import (
    CredentialsExpiredError,
    ExternalError,
    FatalError,
    RateLimitedError,
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
from worker.core.normalize import norm_domain, norm_email
from worker.core.port import ActivityQuery, CrmPort, Lookup, WrittenActivity

MAX_GROUPS = 5
MAX_IN_VALUES = 100
IN_VALUE_CHARS = 1200
"""An IN filter's values stay under this many characters, so two such groups and the rest of
the body fit in HubSpot's 3,000-character search body."""
SINGLE_GETS = 2
"""Up to this many ids, one v3 GET each (record and association ids together) beats a batch
read plus one association read per linked kind."""
EMAIL_GETS = 1
"""Emails often match nobody: a GET by email pays off for one, not for two (two GETs against
one batch read when neither is a contact)."""

_V = TypeVar("_V")

log = logging.getLogger(__name__)


class TtlCache:
    """A small per-tenant cache (owners by email, pipelines) with a time to live."""

    def __init__(self, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._data: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is None or hit[0] < self._clock():
                return None
            return hit[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = (self._clock() + self.ttl, value)


@dataclass
class TenantCache:
    """What rarely changes in a portal: owners by email, deal pipelines, and its capabilities
    (properties and pipelines; in Redis when the tenant has it, see adapters.crm.hubspot.capabilities)."""

    owners: TtlCache = field(default_factory=TtlCache)
    pipelines: TtlCache = field(default_factory=TtlCache)
    capabilities: PortalCapabilities = field(default_factory=PortalCapabilities)


def _groups_in(prop: str, values: Sequence[str]) -> list[JsonObject]:
    """IN filter groups of at most 100 values and `IN_VALUE_CHARS` characters of values each."""
    parts: list[list[str]] = []
    size = 0
    for value in values:
        cost = len(value) + 4  # quotes, comma, space
        if not parts or len(parts[-1]) >= MAX_IN_VALUES or size + cost > IN_VALUE_CHARS:
            parts.append([])
            size = 0
        parts[-1].append(value)
        size += cost
    return [{"filters": [{"propertyName": prop, "operator": "IN", "values": part}]} for part in parts]


def _packed(groups: list[JsonObject], properties: list[str]) -> list[list[JsonObject]]:
    """Groups into searches of at most 5 groups and a body HubSpot accepts (3,000 characters)."""
    out: list[list[JsonObject]] = []
    for group in groups:
        if (
            out
            and len(out[-1]) < MAX_GROUPS
            and search_body_size([*out[-1], group], properties) <= SEARCH_MAX_BODY
        ):
            out[-1].append(group)
        else:
            out.append([group])
    return out


class HubSpotCrm(CrmPort):
    """Reads (rules M, A, C, S, V) and write-back (W1, W3) against one HubSpot portal."""

    def __init__(
        self,
        client: HubSpotClient,
        mapping: HubSpotMapping | None = None,
        cache: TenantCache | None = None,
        ledger: ActivityLedger | None = None,
        *,
        policy: Policy | None = None,
    ) -> None:
        """`policy`: the tenant's, for what rules v1.1 read only when asked (default: nothing more)."""
        super().__init__()
        self.client = client
        self.ledger = ledger
        self.mapping = mapping or HubSpotMapping()
        self.cache = cache or TenantCache()
        policy = policy or Policy()
        # The company properties every company read names, decided once per port (X1 adds `type`).
        self.company_properties: list[str] = [
            *self.mapping.company_properties,
            *([COMPANY_TYPE_PROPERTY] if policy.excluded_account_types else []),
        ]
        self._contacts: dict[str, JsonObject] = {}
        self._contact_companies: dict[str, list[str]] = {}
        self._companies: dict[str, JsonObject] = {}
        self._deal_objects: dict[str, JsonObject] = {}
        self._deal_company: dict[str, str | None] = {}
        self._deals_of_contact: dict[str, list[JsonObject]] = {}
        self._deals_of_company: dict[str, list[JsonObject]] = {}
        self._emails_read: set[str] = set()
        self._phones_read: set[str] = set()
        self._domains_read: set[str] = set()
        self._activities: dict[ActivityQuery, list[Activity]] = {}
        self._activity_hits: dict[tuple[str, str], list[JsonObject]] = {}
        self._activity_links: dict[tuple[str, str], dict[str, set[str]]] = {}
        """(kind, activity id) -> to kind -> linked ids, as this association's reads saw them."""
        self._capabilities: Capabilities | None = None
        self._guarded = False

    # -- plumbing ----------------------------------------------------------------------------
    def _meter(self, method: str) -> Callable[[str], None]:
        return lambda _route: self.stats.count(method)

    def _caps(self) -> Capabilities:
        """The portal's capabilities, read once per association (cached per tenant)."""
        if self._capabilities is None:
            self._capabilities = self.cache.capabilities.get(self.client, meter=self._meter("capabilities"))
        return self._capabilities

    def _refresh_caps(self) -> Capabilities:
        self._capabilities = self.cache.capabilities.refresh(self.client, meter=self._meter("capabilities"))
        return self._capabilities

    def _fresh(self, run: Callable[[], _V]) -> _V:
        """Run a port method; on `PROPERTY_DOESNT_EXIST` (the portal changed since the capabilities
        were read) drop them, read them again and run it once more. Nested calls run as they are."""
        if self._guarded:
            return run()
        self._guarded = True
        try:
            try:
                return run()
            except PropertyMissingError as error:
                log.warning(
                    "hubspot tenant %s: %s; capabilities read again",
                    self.client.settings.tenant,
                    error,
                )
                self._refresh_caps()
                return run()
        finally:
            self._guarded = False

    def _present(self, kind: str, groups: list[JsonObject]) -> list[JsonObject]:
        """Filter groups whose every property exists on `kind` (HubSpot refuses the others with 400)."""
        caps = self._caps()
        return [
            g for g in groups if all(caps.has(kind, f.get("propertyName")) for f in g.get("filters") or [])
        ]

    def _search(
        self, method: str, kind: str, groups: list[JsonObject], properties: list[str]
    ) -> list[JsonObject]:
        """Searches of at most 5 filter groups and 3,000 characters each; results by id. Only
        properties the portal has are named."""
        groups = self._present(kind, groups)
        properties = self._caps().only(kind, properties)
        found: dict[str, JsonObject] = {}
        for part in _packed(groups, properties):
            for obj in self.client.search(kind, part, properties, meter=self._meter(method)):
                found.setdefault(str(obj["id"]), obj)
        return [found[k] for k in sorted(found)]

    # -- people ------------------------------------------------------------------------------
    def _people(self, emails: Sequence[str], phones: Sequence[str]) -> list[JsonObject]:
        """Contacts (leads included) matching any email (M1) or phone (M2), confirmed in code."""
        mapping = self.mapping
        wanted_emails = {e for e in (norm_email(x) for x in emails) if e}
        wanted_phones = set(phones)
        new_emails = sorted(wanted_emails - self._emails_read)
        new_phones = sorted(wanted_phones - self._phones_read)
        if 0 < len(new_emails) <= EMAIL_GETS:
            for email in new_emails:
                self._contact_with_links(email, "email", "contacts_by_emails")
        elif new_emails:
            for obj in self.client.batch_read(
                "contacts",
                new_emails,
                self._caps().only("contacts", mapping.contact_properties),
                id_property="email",
                meter=self._meter("contacts_by_emails"),
            ):
                self._contacts.setdefault(str(obj["id"]), obj)
        groups: list[JsonObject] = []
        if new_emails and mapping.additional_emails != "never":
            primary = {norm_email(props(obj).get("email")) for obj in self._contacts.values()}
            searched = [e for e in new_emails if mapping.additional_emails == "always" or e not in primary]
            groups += [
                {
                    "filters": [
                        {"propertyName": "hs_additional_emails", "operator": "CONTAINS_TOKEN", "value": e}
                    ]
                }
                for e in searched
            ]
        groups = self._present("contacts", groups)
        if new_phones:
            digits = sorted({d for d in (national_digits(p) for p in new_phones) if d})
            calculated = self._present(
                "contacts",
                _groups_in("hs_searchable_calculated_phone_number", digits)
                + _groups_in("hs_searchable_calculated_mobile_number", digits),
            )
            groups += calculated
            raw = _groups_in("phone", new_phones) + _groups_in("mobilephone", new_phones)
            if not calculated:
                groups += raw
            else:  # exact `phone`/`mobilephone` values ride along when a search has room
                searched = self._caps().only("contacts", mapping.contact_properties)
                needed = len(_packed(groups, searched))
                for group in raw:
                    if len(_packed([*groups, group], searched)) > needed:
                        break
                    groups.append(group)
        if groups:
            for obj in self._search("contacts_search", "contacts", groups, mapping.contact_properties):
                self._contacts.setdefault(str(obj["id"]), obj)
        self._emails_read.update(new_emails)
        self._phones_read.update(new_phones)
        return [
            obj
            for _, obj in sorted(self._contacts.items())
            if set(emails_of(obj)) & wanted_emails or e164s_of(obj, mapping) & wanted_phones
        ]

    def _contact_with_links(self, key: str, id_property: str | None, method: str) -> None:
        """One contact (by email or id) with its company and deal ids: one v3 GET instead of a
        batch read and two association reads. A paged block is left to the v4 reads."""
        obj = self.client.find(
            "contacts",
            key,
            self._caps().only("contacts", self.mapping.contact_properties),
            ("companies", "deals"),
            id_property,
            meter=self._meter(method),
        )
        if obj is None:
            return
        contact_id = str(obj["id"])
        self._contacts.setdefault(contact_id, obj)
        companies = entries_from_v3("contacts", "companies", obj)
        if companies is not None:
            self._contact_companies.setdefault(
                contact_id, ordered_companies(companies, CONTACT_COMPANY_PRIMARY)
            )
        deals = entries_from_v3("contacts", "deals", obj)
        if deals is not None:
            self._deals_of_contact.setdefault(contact_id, deals)

    def _contacts_by_id(self, ids: Sequence[str]) -> list[JsonObject]:
        missing = [i for i in ids if i not in self._contacts]
        if len(missing) <= SINGLE_GETS:
            for contact_id in missing:
                self._contact_with_links(contact_id, None, "contacts_by_ids")
        else:
            for obj in self.client.batch_read(
                "contacts",
                missing,
                self._caps().only("contacts", self.mapping.contact_properties),
                meter=self._meter("contacts_by_ids"),
            ):
                self._contacts[str(obj["id"])] = obj
        return [self._contacts[i] for i in sorted(set(ids)) if i in self._contacts]

    def _as_contacts(self, objs: Iterable[JsonObject]) -> list[Contact]:
        people = [o for o in objs if not is_lead(o, self.mapping)]
        need = [str(o["id"]) for o in people if str(o["id"]) not in self._contact_companies]
        if len(need) == 1 and need[0] not in self._deals_of_contact:
            self._contact_with_links(need[0], None, "contacts_companies")
            need = [i for i in need if i not in self._contact_companies]
        if need:
            links = self.client.associations_of(
                "contacts", "companies", need, meter=self._meter("contacts_companies")
            )
            for contact_id in need:
                self._contact_companies[contact_id] = ordered_companies(
                    links.get(contact_id, []), CONTACT_COMPANY_PRIMARY
                )
        return [contact_from(o, self._contact_companies[str(o["id"])], self.mapping) for o in people]

    def _as_leads(self, objs: Iterable[JsonObject]) -> list[Lead]:
        return [lead_from(o, self.mapping) for o in objs if is_lead(o, self.mapping)]

    # -- companies ---------------------------------------------------------------------------
    def _companies_by_domains(self, domains: Sequence[str]) -> list[JsonObject]:
        wanted = sorted({norm_domain(d) for d in domains if norm_domain(d)})
        if not wanted:
            return []
        groups = _groups_in("domain", wanted) + [
            {
                "filters": [
                    {
                        "propertyName": self.mapping.extra_domains_property,
                        "operator": "CONTAINS_TOKEN",
                        "value": d,
                    }
                ]
            }
            for d in wanted
        ]
        hits = self._search("accounts_by_domains", "companies", groups, self.company_properties)
        out = [o for o in hits if domains_of(o, self.mapping) & set(wanted)]
        for obj in out:
            self._companies[str(obj["id"])] = obj
        return out

    def _company_with_deals(self, ids: Iterable[str]) -> None:
        """One company whose record and deals are both unread: one v3 GET with its deal ids.

        v3 names the company's primary deal link `company_to_deal` (v4 type 6) and the others
        `company_to_deal_unlabeled`; an unknown name only costs the deal->company read later.
        """
        unread = [i for i in ids if i not in self._companies and i not in self._deals_of_company]
        if len(unread) != 1:
            return
        company_id = unread[0]
        obj = self.client.find(
            "companies",
            company_id,
            self._caps().only("companies", self.company_properties),
            ("deals",),
            meter=self._meter("accounts_by_ids"),
        )
        if obj is None:
            return
        self._companies[company_id] = obj
        deals = entries_from_v3("companies", "deals", obj)
        if deals is not None:
            self._deals_of_company[company_id] = deals

    def _companies_by_id(self, ids: Sequence[str]) -> list[JsonObject]:
        missing = [i for i in ids if i not in self._companies]
        if missing:
            for obj in self.client.batch_read(
                "companies",
                missing,
                self._caps().only("companies", self.company_properties),
                meter=self._meter("accounts_by_ids"),
            ):
                self._companies[str(obj["id"])] = obj
        return [self._companies[i] for i in sorted(set(ids)) if i in self._companies]

    # -- deals ------------------------------------------------------------------------------
    def _deal_ids_of(
        self, from_kind: str, ids: Sequence[str], memo: dict[str, list[JsonObject]], method: str
    ) -> list[str]:
        """Deals associated with these contacts or companies; the links (with labels) are remembered."""
        need = [i for i in ids if i not in memo]
        if need:
            links = self.client.associations_of(from_kind, "deals", need, meter=self._meter(method))
            for from_id in need:
                memo[from_id] = list(links.get(from_id, []))
        return sorted({d for i in ids for d in to_ids(memo.get(i, []))})

    def _deals_by_id(self, ids: Iterable[str]) -> list[Opportunity]:
        """Deals with their account and contact roles.

        A deal's company comes from the company->deal links already read when one of them
        is the primary one (type 6); only the others cost a deal->company read. Contact
        roles come from the contact->deal links of the contacts this association asked
        about, the only roles the rules look at (C1, C4).
        """
        wanted = sorted(set(ids))
        for company_id, entries in self._deals_of_company.items():
            for entry in entries:
                if COMPANY_DEAL_PRIMARY in type_ids(entry):
                    self._deal_company.setdefault(str(entry["toObjectId"]), company_id)
        missing = [i for i in wanted if i not in self._deal_objects]
        if len(missing) == 1 and missing[0] not in self._deal_company:
            self._deal_with_company(missing[0])
        elif missing:
            for obj in self.client.batch_read(
                "deals",
                missing,
                self._caps().only("deals", self.mapping.deal_properties),
                meter=self._meter("opportunities_by_ids"),
            ):
                self._deal_objects[str(obj["id"])] = obj
        found = [i for i in wanted if i in self._deal_objects]
        unknown = [i for i in found if i not in self._deal_company]
        if unknown:
            links = self.client.associations_of(
                "deals", "companies", unknown, meter=self._meter("deal_companies")
            )
            for deal_id in unknown:
                companies = ordered_companies(links.get(deal_id, []), DEAL_COMPANY_PRIMARY)
                self._deal_company[deal_id] = companies[0] if companies else None
        roles: dict[str, list[ContactRole]] = {}
        for contact_id, entries in self._deals_of_contact.items():
            for entry in entries:
                primary = has_label(entry, self.mapping.primary_labels)
                roles.setdefault(str(entry["toObjectId"]), []).append(ContactRole(contact_id, primary))
        return [
            opportunity_from(
                self._deal_objects[i],
                account_id=self._deal_company[i],
                roles=roles.get(i, []),
                closed=self._closed_state(self._deal_objects[i]),
            )
            for i in found
        ]

    def _deal_with_company(self, deal_id: str) -> None:
        """A single unread deal whose company is unknown: one v3 GET instead of a batch read
        and a deal->company read (`deal_to_company` is the primary link, v4 type 5)."""
        obj = self.client.find(
            "deals",
            deal_id,
            self._caps().only("deals", self.mapping.deal_properties),
            ("companies",),
            meter=self._meter("opportunities_by_ids"),
        )
        if obj is None:
            return
        self._deal_objects[deal_id] = obj
        companies = entries_from_v3("deals", "companies", obj)
        if companies is not None:
            ordered = ordered_companies(companies, DEAL_COMPANY_PRIMARY)
            self._deal_company[deal_id] = ordered[0] if ordered else None

    def _closed_state(self, deal: JsonObject) -> ClosedState:
        calculated = closed_from_properties(deal)
        if calculated is not None:
            return calculated
        p = props(deal)
        pipeline_id = p.get("pipeline", "default")
        known = self._caps().stage(pipeline_id, p.get("dealstage", ""))
        if known is not None:
            return known
        stages: dict[str, ClosedState] | None = self.cache.pipelines.get(pipeline_id)
        if stages is None:
            pipeline = self.client.pipeline(pipeline_id, meter=self._meter("pipelines"))
            stages = {str(s["id"]): closed_from_stage(s) for s in pipeline.get("stages") or []}
            self.cache.pipelines.put(pipeline_id, stages)
        return stages.get(p.get("dealstage", ""), ClosedState(False, False))

    # -- port: batch reads -------------------------------------------------------------------
    def users_by_emails(self, emails: Sequence[str]) -> list[User]:
        out: dict[str, User] = {}
        for email in sorted({e for e in (norm_email(x) for x in emails) if e}):
            owners: list[JsonObject] | None = self.cache.owners.get(email)
            if owners is None:
                owners = self.client.owners_by_email(email, meter=self._meter("users_by_emails"))
                self.cache.owners.put(email, owners)
            for owner in owners:
                user = user_from(owner)
                if user.email == email:
                    out.setdefault(user.id, user)
        return [out[k] for k in sorted(out)]

    def contacts_by_emails(self, emails: Sequence[str]) -> list[Contact]:
        return self._fresh(lambda: self._as_contacts(self._people(emails, ())))

    def contacts_by_phones(self, phones: Sequence[str]) -> list[Contact]:
        return self._fresh(lambda: self._as_contacts(self._people((), phones)))

    def contacts_by_ids(self, ids: Sequence[str]) -> list[Contact]:
        return self._fresh(lambda: self._as_contacts(self._contacts_by_id(ids)))

    def leads_by_emails(self, emails: Sequence[str]) -> list[Lead]:
        return self._fresh(lambda: self._as_leads(self._people(emails, ())))

    def leads_by_phones(self, phones: Sequence[str]) -> list[Lead]:
        return self._fresh(lambda: self._as_leads(self._people((), phones)))

    def accounts_by_domains(self, domains: Sequence[str]) -> list[Account]:
        return self._fresh(
            lambda: [account_from(o, self.mapping) for o in self._companies_by_domains(domains)]
        )

    def accounts_by_ids(self, ids: Sequence[str]) -> list[Account]:
        return self._fresh(lambda: [account_from(o, self.mapping) for o in self._companies_by_id(ids)])

    def opportunities_of_contacts(self, contact_ids: Sequence[str]) -> list[Opportunity]:
        def run() -> list[Opportunity]:
            ids = self._deal_ids_of(
                "contacts", contact_ids, self._deals_of_contact, "opportunities_of_contacts"
            )
            return self._deals_by_id(ids)

        return self._fresh(run)

    def opportunities_of_accounts(self, account_ids: Sequence[str]) -> list[Opportunity]:
        def run() -> list[Opportunity]:
            ids = self._deal_ids_of(
                "companies", account_ids, self._deals_of_company, "opportunities_of_accounts"
            )
            return self._deals_by_id(ids)

        return self._fresh(run)

    def opportunities_by_ids(self, ids: Sequence[str]) -> list[Opportunity]:
        return self._fresh(lambda: self._deals_by_id(ids))

    def activities_for_call(self, query: ActivityQuery) -> list[Activity]:
        """Calls and meetings carrying the call id, and for a meeting those starting in the window (A1).

        Where the portal has no external id property (no `callmatch setup` yet) nothing can
        carry the call id: only a meeting's time window is searched, and a call's not at all.
        """
        return self._fresh(lambda: self._activities_for_call(query))

    def _activities_for_call(self, query: ActivityQuery) -> list[Activity]:
        self._activities_for([query])
        return list(self._activities[query])

    def _kinds_of(self, query: ActivityQuery) -> tuple[str, ...]:
        if self.mapping.activity_kinds == "own":
            return ("meetings",) if query.kind is CallKind.MEETING else ("calls",)
        return ("calls", "meetings")

    def _window_groups(self, kind: str, query: ActivityQuery) -> list[JsonObject]:
        """A meeting's A1 time window on `kind` (`hs_timestamp`, and a meeting's own start time)."""
        if query.kind is not CallKind.MEETING:
            return []
        window = query.window_minutes * 60
        low = str(int((query.started_at.timestamp() - window) * 1000))
        high = str(int((query.started_at.timestamp() + window) * 1000))
        names = ["hs_timestamp"] + (["hs_meeting_start_time"] if kind == "meetings" else [])
        return [
            {"filters": [{"propertyName": n, "operator": "BETWEEN", "value": low, "highValue": high}]}
            for n in names
        ]

    def _activities_for(self, queries: Sequence[ActivityQuery]) -> None:
        """A1 for every query of a round together, per kind: the call ids of queries without a time
        window through ONE batch read by `idProperty` where the external id has unique values (no
        search, no index lag); the others (meetings' windows, a portal without a unique external id)
        through one search for all of them, their call ids among its filter groups.
        A query may get more activities than it asked (a window hit of another meeting of the
        batch), never fewer: the engine applies A1 itself."""
        pending = [q for q in dict.fromkeys(queries) if q not in self._activities]
        if not pending:
            return
        mapping = self.mapping
        ext = mapping.external_id_property
        out: dict[ActivityQuery, list[Activity]] = {q: [] for q in pending}
        for kind in ("calls", "meetings"):
            mine = [q for q in pending if kind in self._kinds_of(q)]
            if not mine:
                continue
            caps = self._caps()
            unique = caps.has(kind, ext) and caps.is_unique(kind, ext)
            groups: list[JsonObject] = []
            asked: list[ActivityQuery] = []
            by_id: list[str] = []
            for query in mine:
                window = self._present(kind, self._window_groups(kind, query))
                if unique and not window:
                    by_id.append(query.call_id)  # no search needed for this one at all
                    asked.append(query)
                    continue
                own_groups = self._present(
                    kind, [{"filters": [{"propertyName": ext, "operator": "EQ", "value": query.call_id}]}]
                )
                if own_groups or window:
                    asked.append(query)
                groups += own_groups + window
            hits: dict[str, JsonObject] = {}
            if by_id:
                for obj in self.client.batch_read(
                    kind,
                    sorted(set(by_id)),
                    caps.only(kind, mapping.activity_properties(kind)),
                    id_property=ext,
                    meter=self._meter("activities_for_call"),
                ):
                    hits.setdefault(str(obj["id"]), obj)
            windowed: set[str] = set()
            if groups:
                for obj in self._search(
                    "activities_for_call", kind, groups, mapping.activity_properties(kind)
                ):
                    hits.setdefault(str(obj["id"]), obj)
                    windowed.add(str(obj["id"]))
            ordered = [hits[k] for k in sorted(hits)]
            linked = {a.id: a for a in self._linked_activities(kind, ordered)} if ordered else {}
            for query in asked:
                wanted = query.call_id.strip().lower()
                own = [
                    h
                    for h in ordered
                    if props(h).get(ext, "").strip().lower() == wanted
                    or (query.kind is CallKind.MEETING and str(h["id"]) in windowed)
                ]
                self._activity_hits[(kind, query.call_id)] = own
                out[query] += [linked[str(h["id"])] for h in own if str(h["id"]) in linked]
        for query in pending:
            self._activities[query] = sorted(out[query], key=lambda a: a.id)

    def _linked_activities(self, kind: str, hits: list[JsonObject]) -> list[Activity]:
        """The activities' contacts, company and deal: one GET per hit for a few, else three batch reads."""
        targets = ("contacts", "companies", "deals")
        linked: dict[str, dict[str, list[str]]] = {t: {} for t in targets}
        if len(hits) <= SINGLE_GETS:
            for hit in hits:
                hit_id = str(hit["id"])
                obj = self.client.get(kind, hit_id, [], targets, meter=self._meter("activity_links"))
                for target in targets:
                    block = (obj.get("associations") or {}).get(target) or {}
                    if block.get("paging"):
                        more = self.client.associations_of(
                            kind, target, [hit_id], meter=self._meter("activity_links")
                        )
                        linked[target][hit_id] = sorted(set(to_ids(more.get(hit_id, []))))
                    else:
                        linked[target][hit_id] = sorted({str(r["id"]) for r in block.get("results") or []})
        else:
            ids = [str(h["id"]) for h in hits]
            for target in targets:
                links = self.client.associations_of(kind, target, ids, meter=self._meter("activity_links"))
                for activity_id, entries in links.items():
                    linked[target][activity_id] = to_ids(entries)
        for hit in hits:
            hit_id = str(hit["id"])
            self._activity_links[(kind, hit_id)] = {t: set(linked[t].get(hit_id, [])) for t in targets}
        return [
            activity_from(
                kind,
                hit,
                contact_ids=linked["contacts"].get(str(hit["id"]), []),
                company_ids=linked["companies"].get(str(hit["id"]), []),
                deal_ids=linked["deals"].get(str(hit["id"]), []),
                mapping=self.mapping,
            )
            for hit in hits
        ]

    # -- port: one round ---------------------------------------------------------------------
    def lookup(self, keys: Lookup) -> CrmSlice:
        """One round, each kind of read batched once (emails and phones share one search)."""
        self.stats.rounds += 1
        return self._fresh(lambda: self._lookup(keys))

    def _lookup(self, keys: Lookup) -> CrmSlice:
        users = self.users_by_emails(sorted(keys.user_emails)) if keys.user_emails else []
        people: dict[str, JsonObject] = {}
        if keys.emails or keys.phones:
            for obj in self._people(sorted(keys.emails), sorted(keys.phones)):
                people[str(obj["id"])] = obj
        if keys.contact_ids:
            for obj in self._contacts_by_id(sorted(keys.contact_ids)):
                people.setdefault(str(obj["id"]), obj)
        ordered = [people[k] for k in sorted(people)]
        contacts = self._as_contacts(ordered)
        leads = self._as_leads(ordered)
        companies: dict[str, JsonObject] = {}
        if keys.domains:
            companies.update((str(o["id"]), o) for o in self._companies_by_domains(sorted(keys.domains)))
        if keys.account_ids:
            self._company_with_deals(keys.account_ids)
            companies.update((str(o["id"]), o) for o in self._companies_by_id(sorted(keys.account_ids)))
        accounts = [account_from(companies[k], self.mapping) for k in sorted(companies)]
        deal_ids: set[str] = set(keys.opportunity_ids)
        if keys.contact_ids:
            deal_ids |= set(
                self._deal_ids_of(
                    "contacts", sorted(keys.contact_ids), self._deals_of_contact, "opportunities_of_contacts"
                )
            )
        if keys.account_ids:
            deal_ids |= set(
                self._deal_ids_of(
                    "companies", sorted(keys.account_ids), self._deals_of_company, "opportunities_of_accounts"
                )
            )
        opportunities = self._deals_by_id(sorted(deal_ids)) if deal_ids else []
        self._activities_for(keys.activities)
        activities = [a for query in keys.activities for a in self._activities[query]]
        return CrmSlice(
            users=tuple(users),
            accounts=tuple(accounts),
            contacts=tuple(contacts),
            leads=tuple(leads),
            opportunities=tuple(opportunities),
            activities=tuple(activities),
        )

    # -- write-back (W1, W3) -----------------------------------------------------------------
    def upsert_activity(self, call: Call, decision: Decision) -> WrittenActivity:
        """W1: the call's one call (or meeting) object, found and updated, else created, marked as ours.

        The portal must have the external id and marker properties on that object: else
        MissingRequirementError names the property and the fix before anything is written.
        The existing one is found through the ledger (no request), else among the hits
        this association's reads already searched, else by one search on the external id.
        """
        return self._fresh(lambda: self._upsert_activity(call, decision))

    def _writable(self, kind: str) -> None:
        """Raise MissingRequirementError unless W1 can hold on `kind`.

        Before refusing, the shared copy is read (a `setup` elsewhere dropped it, so the
        portal is asked again), and a copy old enough that an admin may have added the
        property by hand since is replaced by a fresh one."""
        tenant = self.client.settings.tenant
        try:
            require_for_write(self._caps(), kind, self.mapping, tenant)
            return
        except MissingRequirementError:
            shared = self.cache.capabilities.get(self.client, meter=self._meter("capabilities"), local=False)
            self._capabilities = shared
        try:
            require_for_write(shared, kind, self.mapping, tenant)
        except MissingRequirementError:
            if self.cache.capabilities.age(shared) < RECHECK_SECONDS:
                raise
            require_for_write(self._refresh_caps(), kind, self.mapping, tenant)

    def _upsert_activity(self, call: Call, decision: Decision) -> WrittenActivity:
        kind = "meetings" if call.kind is CallKind.MEETING else "calls"
        self._writable(kind)
        with self.ledger.hold(call.id) if self.ledger is not None else nullcontext():
            properties = self._activity_properties(kind, call, decision)
            targets = self._targets(decision)
            existing = self._existing_activity(kind, call.id)
            if existing is not None:
                try:
                    self._update_activity(kind, existing, properties, targets)
                    if self.ledger is not None:
                        self.ledger.record(call.id, kind, existing)
                    return WrittenActivity(id=existing, kind=kind, created=False)
                except FatalError as error:
                    if error.status != 404:
                        raise
                    if self.ledger is not None:
                        self.ledger.forget(call.id)
            associations = self._inline_associations(kind, targets)
            try:
                created = self.client.create(
                    kind, properties, associations, meter=self._meter("upsert_activity")
                )
            except PropertyMissingError:
                raise
            except FatalError:
                holder = self._holder_of(kind, call.id)
                if holder is None:
                    raise
                self._update_activity(kind, holder, properties, targets)
                if self.ledger is not None:
                    self.ledger.record(call.id, kind, holder)
                return WrittenActivity(id=holder, kind=kind, created=False)
            object_id = str(created["id"])
            if self.ledger is not None:
                self.ledger.record(call.id, kind, object_id)
            self._activity_hits[(kind, call.id)] = [created]
            return WrittenActivity(id=object_id, kind=kind, created=True)

    @staticmethod
    def _inline_associations(kind: str, targets: dict[str, list[str]]) -> list[JsonObject]:
        return [
            {
                "to": {"id": to_id},
                "types": [
                    {
                        "associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": ACTIVITY_ASSOCIATION_TYPES[kind][to_kind],
                    }
                ],
            }
            for to_kind, to_list in targets.items()
            for to_id in to_list
        ]

    def upsert_activities(
        self, writes: Sequence[tuple[Call, Decision]]
    ) -> list[WrittenActivity | ExternalError]:
        """W1 for a batch: every call whose activity the round's reads (or the ledger) showed to be
        new goes out in one batch create per kind (100 inputs, associations inline, the call id
        as `objectWriteTraceId`); those they showed to exist, in one batch update per kind with
        their changed links in v4 batch creates / archives (`_batch_update`); the others, and an
        input HubSpot refuses in its 207 answer, go through `upsert_activity` one by one, so a
        call's own error is its outcome."""
        if len(writes) <= 1:
            return super().upsert_activities(writes)
        out: list[WrittenActivity | ExternalError | None] = [None] * len(writes)
        alone: list[int] = []
        creates: dict[str, list[int]] = {}
        for i, (call, _decision) in enumerate(writes):
            kind = "meetings" if call.kind is CallKind.MEETING else "calls"
            try:
                self._fresh(lambda kind=kind: self._writable(kind))  # type: ignore[misc]
            except (CredentialsExpiredError, RateLimitedError):
                raise
            except FatalError as error:
                out[i] = error
                continue
            known = (kind, call.id) in self._activity_hits
            ref = self.ledger.find(call.id) if self.ledger is not None else None
            if ref is None and known and self._existing_activity(kind, call.id) is None:
                creates.setdefault(kind, []).append(i)
            else:
                alone.append(i)
        for kind, indices in creates.items():
            for start in range(0, len(indices), BATCH_SIZE):
                part = indices[start : start + BATCH_SIZE]
                alone += self._fresh(lambda kind=kind, part=part: self._batch_create(kind, writes, part, out))  # type: ignore[misc]
        updates: dict[str, list[tuple[int, str]]] = {}
        for i in list(alone):
            call = writes[i][0]
            kind = "meetings" if call.kind is CallKind.MEETING else "calls"
            existing = self._known_activity(kind, call.id)
            if existing is not None:
                updates.setdefault(kind, []).append((i, existing))
                alone.remove(i)
        for kind, found in updates.items():
            for start in range(0, len(found), BATCH_SIZE):
                chunk = found[start : start + BATCH_SIZE]
                alone += self._fresh(
                    lambda kind=kind, chunk=chunk: self._batch_update(kind, writes, chunk, out)  # type: ignore[misc]
                )
        for i in sorted(alone):
            call, decision = writes[i]
            try:
                out[i] = self.upsert_activity(call, decision)
            except (CredentialsExpiredError, RateLimitedError):
                raise
            except FatalError as error:
                out[i] = error
        return [o if o is not None else FatalError("hubspot", "not written") for o in out]

    def _batch_create(
        self,
        kind: str,
        writes: Sequence[tuple[Call, Decision]],
        part: list[int],
        out: list[WrittenActivity | ExternalError | None],
    ) -> list[int]:
        """One batch create for `part`; the indices left to write one by one (refused inputs)."""
        calls = {writes[i][0].id: i for i in part}
        with ExitStack() as stack:
            if self.ledger is not None:
                for call_id in sorted(calls):
                    stack.enter_context(self.ledger.hold(call_id))
            inputs = [
                {
                    "properties": self._activity_properties(kind, writes[i][0], writes[i][1]),
                    "associations": self._inline_associations(kind, self._targets(writes[i][1])),
                    "objectWriteTraceId": writes[i][0].id,
                }
                for i in part
            ]
            try:
                data = self.client.batch_create(kind, inputs, meter=self._meter("upsert_activity"))
            except PropertyMissingError:
                raise
            except (CredentialsExpiredError, RateLimitedError):
                raise
            except FatalError:
                return list(part)  # the whole batch refused: each call tries alone
            ext = self.mapping.external_id_property
            for result in data.get("results") or []:
                call_id = str(result.get("objectWriteTraceId") or props(result).get(ext) or "")
                i = calls.pop(call_id, -1)
                if i < 0:
                    continue
                object_id = str(result["id"])
                if self.ledger is not None:
                    self.ledger.record(call_id, kind, object_id)
                self._activity_hits[(kind, call_id)] = [result]
                out[i] = WrittenActivity(id=object_id, kind=kind, created=True)
        return sorted(calls.values())

    def _known_activity(self, kind: str, call_id: str) -> str | None:
        """The call's existing activity when known without a request: the ledger, or this round's reads."""
        if self.ledger is not None:
            ref = self.ledger.find(call_id)
            if ref is not None:
                return ref[1] if ref[0] == kind else None
        if (kind, call_id) not in self._activity_hits:
            return None
        return self._existing_activity(kind, call_id)

    def _batch_update(
        self,
        kind: str,
        writes: Sequence[tuple[Call, Decision]],
        part: list[tuple[int, str]],
        out: list[WrittenActivity | ExternalError | None],
    ) -> list[int]:
        """Existing activities of a batch: their links changed as `_update_activity` would change them
        (only what differs; links known from this round's reads, else one v4 read per target kind),
        then one batch update. The indices left to write one by one: a call whose link or update
        HubSpot refused (so its error is classified as alone), every call of a request refused whole."""
        meter = self._meter("upsert_activity")
        calls = {writes[i][0].id: (i, object_id) for i, object_id in part}
        by_object = {object_id: writes[i][0].id for i, object_id in part}
        failed: set[str] = set()
        with ExitStack() as stack:
            if self.ledger is not None:
                for call_id in sorted(calls):
                    stack.enter_context(self.ledger.hold(call_id))
            targets = {call_id: self._targets(writes[i][1]) for call_id, (i, _) in calls.items()}
            unknown = sorted(o for o in by_object if (kind, o) not in self._activity_links)
            read: dict[str, dict[str, set[str]]] = {o: {} for o in unknown}
            for to_kind in ("contacts", "companies", "deals") if unknown else ():
                for object_id, entries in self.client.associations_of(
                    kind, to_kind, unknown, meter=meter
                ).items():
                    if object_id in read:
                        read[object_id][to_kind] = set(to_ids(entries))
            added: dict[str, list[JsonObject]] = {}
            stale: dict[str, dict[str, list[str]]] = {}
            for call_id, (_i, object_id) in calls.items():
                linked = read.get(object_id) or self._activity_links.get((kind, object_id)) or {}
                for to_kind, (new, old) in self._link_changes(
                    kind, object_id, linked, targets[call_id]
                ).items():
                    added.setdefault(to_kind, []).extend(new)
                    if old:
                        stale.setdefault(to_kind, {})[object_id] = old
            for to_kind in ("contacts", "companies", "deals"):  # the order `_update_activity` links in
                inputs = [x for x in added.get(to_kind, []) if by_object[str(x["from"]["id"])] not in failed]
                if not inputs:
                    continue
                try:
                    answers = self.client.batch_create_associations(kind, to_kind, inputs, meter=meter)
                except (CredentialsExpiredError, RateLimitedError):
                    raise
                except FatalError:
                    failed |= {by_object[str(x["from"]["id"])] for x in inputs}
                    continue
                for data in answers:
                    for error in data.get("errors") or []:
                        for from_id in (error.get("context") or {}).get("fromObjectId") or []:
                            failed.add(by_object.get(str(from_id), ""))
            for to_kind, by_from in sorted(stale.items()):
                by_from = {o: ids for o, ids in by_from.items() if by_object[o] not in failed}
                try:
                    self.client.batch_archive_associations(kind, to_kind, by_from, meter=meter)
                except (CredentialsExpiredError, RateLimitedError):
                    raise
                except FatalError:
                    failed |= {by_object[o] for o in by_from}
            inputs = [
                {
                    "id": object_id,
                    "properties": self._activity_properties(kind, writes[i][0], writes[i][1]),
                    "objectWriteTraceId": call_id,
                }
                for call_id, (i, object_id) in calls.items()
                if call_id not in failed
            ]
            done: set[str] = set()
            if inputs:
                try:
                    data = self.client.batch_update(kind, inputs, meter=meter)
                except PropertyMissingError:
                    raise
                except (CredentialsExpiredError, RateLimitedError):
                    raise
                except FatalError:
                    data = {}
                for result in data.get("results") or []:
                    call_id = str(
                        result.get("objectWriteTraceId") or by_object.get(str(result.get("id")), "")
                    )
                    if call_id not in calls or call_id in failed:
                        continue
                    i, object_id = calls[call_id]
                    if self.ledger is not None:
                        self.ledger.record(call_id, kind, object_id)
                    self._activity_links.pop((kind, object_id), None)  # changed: a later write reads again
                    out[i] = WrittenActivity(id=object_id, kind=kind, created=False)
                    done.add(call_id)
        return sorted(i for call_id, (i, _) in calls.items() if call_id not in done)

    def _holder_of(self, kind: str, call_id: str) -> str | None:
        """After a refused create, on a portal whose external id is unique (HubSpot refuses a second
        object with the same value): ours already holds the call id when the ledger and the
        lagging search both missed it. One read by `idProperty`, which does not lag."""
        mapping = self.mapping
        if not self._caps().is_unique(kind, mapping.external_id_property):
            return None
        obj = self.client.find(
            kind,
            call_id,
            [mapping.external_id_property, mapping.marker_property],
            id_property=mapping.external_id_property,
            meter=self._meter("upsert_activity"),
        )
        if obj is None or props(obj).get(mapping.marker_property, "").lower() != "true":
            return None
        return str(obj["id"])

    def _existing_activity(self, kind: str, call_id: str) -> str | None:
        mapping = self.mapping
        if self.ledger is not None:
            ref = self.ledger.find(call_id)
            if ref is not None and ref[0] == kind:
                return ref[1]
        hits = self._activity_hits.get((kind, call_id))
        if hits is None:
            hits = self._search(
                "upsert_activity",
                kind,
                [
                    {
                        "filters": [
                            {"propertyName": mapping.external_id_property, "operator": "EQ", "value": call_id}
                        ]
                    }
                ],
                mapping.activity_properties(kind),
            )
        ours = sorted(
            str(o["id"])
            for o in hits
            if props(o).get(mapping.external_id_property) == call_id
            and props(o).get(mapping.marker_property, "").lower() == "true"
        )
        return ours[0] if ours else None

    def _update_activity(
        self, kind: str, object_id: str, properties: dict[str, str], targets: dict[str, list[str]]
    ) -> None:
        """New properties; every target associated; a company or deal no longer chosen unlinked (R refresh)."""
        meter = self._meter("upsert_activity")
        current = self.client.get(kind, object_id, [], tuple(targets), meter=meter).get("associations") or {}
        self.client.update(kind, object_id, properties, meter=meter)
        linked = {
            to_kind: {str(r["id"]) for r in (current.get(to_kind) or {}).get("results") or []}
            for to_kind in targets
        }
        for to_kind, (added, stale) in self._link_changes(kind, object_id, linked, targets).items():
            self.client.create_associations(kind, to_kind, added, meter=meter)
            self.client.archive_associations(kind, to_kind, object_id, stale, meter=meter)

    @staticmethod
    def _link_changes(
        kind: str, object_id: str, linked: dict[str, set[str]], targets: dict[str, list[str]]
    ) -> dict[str, tuple[list[JsonObject], list[str]]]:
        """Per target kind: the v4 create inputs of the targets not yet linked, and the linked companies
        or deals no longer chosen (contacts are never unlinked: someone else may have put them there)."""
        out: dict[str, tuple[list[JsonObject], list[str]]] = {}
        for to_kind, wanted in targets.items():
            have = linked.get(to_kind, set())
            type_id = ACTIVITY_ASSOCIATION_TYPES[kind][to_kind]
            added = [
                {
                    "from": {"id": object_id},
                    "to": {"id": to_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
                }
                for to_id in wanted
                if to_id not in have
            ]
            stale = sorted(have - set(wanted)) if to_kind != "contacts" else []
            out[to_kind] = (added, stale)
        return out

    def _targets(self, decision: Decision) -> dict[str, list[str]]:
        """W3: every contact (leads are contacts here), the company and the deal."""
        people = list(dict.fromkeys([*decision.contact_ids, *decision.lead_ids]))
        return {
            "contacts": people,
            "companies": [decision.account_id] if decision.account_id else [],
            "deals": [decision.opportunity_id] if decision.opportunity_id else [],
        }

    def _activity_properties(self, kind: str, call: Call, decision: Decision) -> dict[str, str]:
        """Ours (marker, external id), owned by the organizer's HubSpot user, saying which rules decided."""
        mapping = self.mapping
        rules = ", ".join(dict.fromkeys(entry.rule for entry in decision.trace)) or "-"
        out = {
            "hs_timestamp": iso(call.started_at),
            mapping.external_id_property: call.id,
            mapping.marker_property: "true",
            "hs_call_body"
            if kind == "calls"
            else "hs_meeting_body": f"Linked by callmatch ({decision.case.value}; rules {rules}).",
        }
        owners = self.users_by_emails([call.organizer.email]) if call.organizer.email else []
        if owners:
            out["hubspot_owner_id"] = owners[0].id
        if kind == "calls":
            out["hs_call_title"] = call.title or "Call"
            out["hs_call_status"] = "COMPLETED"
            if call.direction is not None:
                out["hs_call_direction"] = "INBOUND" if call.direction is Direction.INBOUND else "OUTBOUND"
            if call.duration_seconds is not None:
                out["hs_call_duration"] = str(call.duration_seconds * 1000)
        else:
            out["hs_meeting_title"] = call.title or "Meeting"
            out["hs_meeting_start_time"] = iso(call.started_at)
            if call.ended_at is not None:
                out["hs_meeting_end_time"] = iso(call.ended_at)
            out["hs_meeting_outcome"] = "COMPLETED"
        present = set(self._caps().only(kind, out))
        return {k: v for k, v in out.items() if k in present}


__all__ = ["HubSpotCrm", "TenantCache", "TtlCache"]
