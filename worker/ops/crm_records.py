"""The CRM records a call names, as a person recognises them: names, details and links into the CRM.

A stored decision keeps ids only. To show a call (the console's call page, its "Fix it"
choices, the review queue) these are read back from the tenant's CRM through the same
port the rules use, in at most two batched rounds (one composite request each on
Salesforce). A CRM that cannot be read leaves the ids, with the reason: the page still
shows, a read failure never hides a call.

Links: Salesforce `https://<instance_url>/<id>` (the tenant's `crm.instance_url`), HubSpot
`https://app.hubspot.com/contacts/<portal_id>/record/<object type>/<id>` (the tenant's
`crm.portal_id`, and `crm.app_url` for a portal outside app.hubspot.com). Without them, or
for the scenario CRM, a record is shown by its id alone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from worker.config.tenants import Tenant
from worker.core.model import Account, Contact, CrmSlice, Opportunity
from worker.core.normalize import mask_email
from worker.core.port import Lookup
from worker.pipeline.service import Pipeline

log = logging.getLogger("callmatch.ops")

# HubSpot's object type ids in record URLs (contacts, companies, deals, meetings, calls).
HUBSPOT_OBJECT_TYPES = {
    "contact": "0-1",
    "lead": "0-1",
    "account": "0-2",
    "opportunity": "0-3",
    "meetings": "0-47",
    "calls": "0-48",
}
HUBSPOT_APP_URL = "https://app.hubspot.com"


def record_url(tenant: Tenant, kind: str, record_id: str) -> str | None:
    """The record's page in the tenant's CRM, or None when the CRM or its settings do not say where."""
    settings = tenant.crm.settings
    if tenant.crm.kind == "salesforce":
        instance = (settings.get("instance_url") or "").rstrip("/")
        return f"{instance}/{record_id}" if instance.startswith("https://") else None
    if tenant.crm.kind == "hubspot":
        portal = (settings.get("portal_id") or "").strip()
        object_type = HUBSPOT_OBJECT_TYPES.get(kind)
        if not portal.isdigit() or object_type is None:
            return None
        app_url = (settings.get("app_url") or HUBSPOT_APP_URL).rstrip("/")
        return f"{app_url}/contacts/{portal}/record/{object_type}/{record_id}"
    return None


@dataclass(frozen=True)
class CrmRecord:
    """One record as shown to a person: `name` (or None), a one-line `detail`, its `url` in the CRM."""

    type: str
    id: str
    name: str | None = None
    detail: str = ""
    url: str | None = None
    found: bool = True

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id})" if self.name else self.id


@dataclass(frozen=True)
class CallRecords:
    """The records of one call and what a person may pick instead, each list ranked by id."""

    records: dict[tuple[str, str], CrmRecord] = field(default_factory=dict)
    opportunities: list[CrmRecord] = field(default_factory=list)
    accounts: list[CrmRecord] = field(default_factory=list)
    contacts: list[CrmRecord] = field(default_factory=list)
    error: str | None = None

    def get(self, kind: str, record_id: str) -> CrmRecord:
        return self.records.get((kind, record_id)) or CrmRecord(kind, record_id, found=False)


def _opportunity_detail(opp: Opportunity, accounts: dict[str, Account]) -> str:
    parts = []
    if opp.account_id:
        account = accounts.get(opp.account_id)
        parts.append(f"{account.name} ({opp.account_id})" if account and account.name else opp.account_id)
    state = "won" if opp.is_won else "closed" if opp.is_closed else "open"
    parts.append(state)
    if opp.close_date is not None:
        parts.append(f"close date {opp.close_date.isoformat()}")
    parts.append(f"created {opp.created_at.date().isoformat()}")
    if opp.owner_id:
        parts.append(f"owner {opp.owner_id}")
    return " · ".join(parts)


def _contact_detail(contact: Contact, accounts: dict[str, Account]) -> str:
    names = [
        f"{accounts[a].name} ({a})" if a in accounts and accounts[a].name else a for a in contact.account_ids
    ]
    return " · ".join(names)


def _sorted(values: Iterable[str | None]) -> list[str]:
    return sorted({v for v in values if v})


def _read(pipeline: Pipeline, tenant: Tenant, lookup: Lookup, account_ids: Sequence[str]) -> CrmSlice:
    """Round 1: `lookup`; round 2: the accounts it named that it did not bring (names for the details)."""
    port = pipeline.crm_for(tenant)
    first = port.lookup(lookup) if not lookup.is_empty() else CrmSlice()
    known = {a.id for a in first.accounts}
    named = set(account_ids)
    named.update(c for contact in first.contacts for c in contact.account_ids)
    named.update(o.account_id for o in first.opportunities if o.account_id)
    missing = sorted(named - known)
    if not missing:
        return first
    more = port.accounts_by_ids(missing)
    return CrmSlice(
        users=first.users,
        accounts=first.accounts + tuple(more),
        contacts=first.contacts,
        leads=first.leads,
        opportunities=first.opportunities,
        activities=first.activities,
    )


def call_records(
    pipeline: Pipeline,
    tenant_name: str,
    *,
    contact_ids: Sequence[str] = (),
    lead_ids: Sequence[str] = (),
    account_ids: Sequence[str] = (),
    opportunity_ids: Sequence[str] = (),
) -> CallRecords:
    """Names, details and links of these records, and the choices around them.

    The choices are the opportunities of the contacts and accounts (open ones first), the
    accounts of the contacts, and the contacts themselves, next to those named here.
    """
    tenant = pipeline.tenant(tenant_name)
    contacts_asked, accounts_asked = _sorted(contact_ids), _sorted(account_ids)
    opportunities_asked = _sorted(opportunity_ids)
    lookup = Lookup(
        contact_ids=frozenset(contacts_asked),
        account_ids=frozenset(accounts_asked),
        opportunity_ids=frozenset(opportunities_asked),
    )
    error: str | None = None
    try:
        crm = _read(pipeline, tenant, lookup, accounts_asked)
    except Exception as exc:  # a read failure shows the ids with the reason, never an error page
        log.warning("crm records of tenant %s unreadable: %s", tenant_name, type(exc).__name__)
        error = f"the CRM could not be read ({type(exc).__name__}: {str(exc)[:200]}); ids are shown as stored"
        crm = CrmSlice()
    accounts = {a.id: a for a in crm.accounts}
    contacts = {c.id: c for c in crm.contacts}
    opportunities = {o.id: o for o in crm.opportunities}
    records: dict[tuple[str, str], CrmRecord] = {}
    for account in accounts.values():
        records["account", account.id] = CrmRecord(
            "account",
            account.id,
            account.name,
            ", ".join(account.domains),
            record_url(tenant, "account", account.id),
        )
    for contact in contacts.values():
        email = contact.email or next(iter(contact.emails), None)
        records["contact", contact.id] = CrmRecord(
            "contact",
            contact.id,
            mask_email(email) if email else None,
            _contact_detail(contact, accounts),
            record_url(tenant, "contact", contact.id),
        )
    for opp in opportunities.values():
        records["opportunity", opp.id] = CrmRecord(
            "opportunity",
            opp.id,
            None,
            _opportunity_detail(opp, accounts),
            record_url(tenant, "opportunity", opp.id),
        )
    found = error is None
    for kind, ids in (
        ("contact", contacts_asked),
        ("lead", _sorted(lead_ids)),
        ("account", accounts_asked),
        ("opportunity", opportunities_asked),
    ):
        for record_id in ids:
            if (kind, record_id) not in records:
                records[kind, record_id] = CrmRecord(
                    kind, record_id, url=record_url(tenant, kind, record_id), found=found and kind == "lead"
                )

    def rank_opportunity(opp: Opportunity) -> tuple[bool, str]:
        return (opp.is_closed, opp.id)

    choices_opp = [records["opportunity", o.id] for o in sorted(opportunities.values(), key=rank_opportunity)]
    return CallRecords(
        records=records,
        opportunities=choices_opp,
        accounts=[records["account", a] for a in sorted(accounts)],
        contacts=[records["contact", c] for c in sorted(contacts)],
        error=error,
    )


def open_opportunities_of_accounts(
    pipeline: Pipeline, tenant_name: str, account_ids: Sequence[str], today: dt.date | None = None
) -> dict[str, list[CrmRecord]]:
    """The open opportunities of each account (one batched read): the review queue's one-click choices."""
    tenant = pipeline.tenant(tenant_name)
    asked = _sorted(account_ids)
    if not asked:
        return {}
    try:
        crm = pipeline.crm_for(tenant).lookup(Lookup(account_ids=frozenset(asked)))
    except Exception as exc:
        log.warning("open opportunities of tenant %s unreadable: %s", tenant_name, type(exc).__name__)
        return {}
    accounts = {a.id: a for a in crm.accounts}
    out: dict[str, list[CrmRecord]] = {a: [] for a in asked}
    for opp in sorted(crm.opportunities, key=lambda o: o.id):
        if opp.is_closed or opp.account_id not in out:
            continue
        if today is not None and opp.close_date is not None and opp.close_date < today:
            continue
        out[opp.account_id].append(
            CrmRecord(
                "opportunity",
                opp.id,
                None,
                _opportunity_detail(opp, accounts),
                record_url(tenant, "opportunity", opp.id),
            )
        )
    return out
