"""Where callmatch's model lives in a Salesforce org: field names per tenant and record <-> model mapping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.core.model import Account, Activity, ActivityType, Contact, ContactRole, Lead, Opportunity, User
from worker.core.normalize import norm_domain, norm_email

CONTACT_PHONE_FIELDS: tuple[str, ...] = ("Phone", "MobilePhone", "HomePhone", "OtherPhone")
LEAD_PHONE_FIELDS: tuple[str, ...] = ("Phone", "MobilePhone")
OPPORTUNITY_COLUMNS: tuple[str, ...] = (
    "Id",
    "AccountId",
    "OwnerId",
    "IsClosed",
    "IsWon",
    "CloseDate",
    "CreatedDate",
    "LastModifiedDate",
)

Record = Mapping[str, Any]

LEAD_CONVERSION_FIELDS: tuple[str, ...] = ("IsConverted", "ConvertedContactId")
"""Rules v1.1, M9 (`policy.skip_converted_leads`): standard Lead fields (Salesforce Object Reference,
Lead: `IsConverted` boolean, `ConvertedContactId` reference to the Contact the lead became, set by
lead conversion and read-only after it). SOQL on Lead returns converted leads too unless the query
filters them out."""
ACCOUNT_TYPE_FIELD = "Type"
"""Rules v1.1, X1 (`policy.excluded_account_types`): Account's standard `Type` picklist (Object
Reference, Account; a new org's values: Prospect, Customer - Direct, Customer - Channel, Channel
Partner / Reseller, Installation Partner, Technology Partner, Other). Field-level security can hide it."""


@dataclass(frozen=True)
class SalesforceSettings:
    """Per-tenant field names; the defaults are the callmatch package's custom fields.

    `external_id_field` is our unique external id on Task and Event (W1): set only by
    our write-back, so a record carrying it is ours (A1 ignores it). The call-id
    fields are those the telephony or meeting integration fills in.
    """

    api_version: str = "59.0"
    extra_email_fields: tuple[str, ...] = ("Secondary_Email__c", "Other_Email__c")
    account_domain_field: str | None = "Domains__c"
    task_call_id_field: str = "CallObject"
    event_call_id_field: str = "Call_Id__c"
    external_id_field: str = "Callmatch_Call_Id__c"
    attendee_emails_field: str | None = "Attendee_Emails__c"
    task_start_field: str = "CreatedDate"
    event_minutes_default: int = 30
    users_ttl: float = 300.0
    """Seconds the tenant's users (owner resolution, by email) are kept in the process; 0 reads them every time."""


def parse_datetime(value: Any) -> dt.datetime | None:
    """Salesforce date-times: `2026-03-10T09:30:00.000+0000`."""
    if not value:
        return None
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def format_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(str(value)) if value else None


def split_list(value: Any) -> tuple[str, ...]:
    """Multi-value text fields (`a.com; b.com`, one per line or comma-separated)."""
    if not value:
        return ()
    parts = str(value).replace("\n", ";").replace(",", ";").split(";")
    return tuple(p.strip() for p in parts if p.strip())


def child_records(record: Record, relationship: str) -> list[Record]:
    nested = record.get(relationship)
    if not nested:
        return []
    return list(nested.get("records") or [])


def is_complete(record: Record, relationship: str) -> bool:
    """Whether a child subquery's rows all came back (no `nextRecordsUrl` left inside the record)."""
    nested = record.get(relationship)
    return not nested or nested.get("done", True) is not False


def _type_of(record: Record, relationship: str) -> str | None:
    nested = record.get(relationship)
    return str(nested.get("Type")) if isinstance(nested, Mapping) and nested.get("Type") else None


def _emails(record: Record, settings: SalesforceSettings) -> tuple[str | None, tuple[str, ...]]:
    extra = tuple(str(record[f]) for f in settings.extra_email_fields if record.get(f))
    return record.get("Email"), extra


def to_user(record: Record) -> User:
    return User(id=str(record["Id"]), email=record.get("Email"))


def to_account(record: Record, settings: SalesforceSettings) -> Account:
    domains: list[str] = []
    raw = [record.get("Website")]
    if settings.account_domain_field:
        raw += list(split_list(record.get(settings.account_domain_field)))
    for value in raw:
        if value:
            domain = norm_domain(str(value))
            if domain and domain not in domains:
                domains.append(domain)
    kind = record.get(ACCOUNT_TYPE_FIELD)
    return Account(
        id=str(record["Id"]),
        name=record.get("Name"),
        domains=tuple(domains),
        type=str(kind) if kind else None,
    )


def to_contact(record: Record, settings: SalesforceSettings) -> Contact:
    email, extra = _emails(record, settings)
    accounts: list[str] = []
    if record.get("AccountId"):
        accounts.append(str(record["AccountId"]))
    for relation in child_records(record, "AccountContactRelations"):
        account_id = relation.get("AccountId")
        if account_id and account_id not in accounts:
            accounts.append(str(account_id))
    phones = tuple(str(record[f]) for f in CONTACT_PHONE_FIELDS if record.get(f))
    return Contact(
        id=str(record["Id"]), email=email, emails=extra, phones=phones, account_ids=tuple(accounts)
    )


def to_lead(record: Record, settings: SalesforceSettings) -> Lead:
    """A Lead row; `IsConverted` / `ConvertedContactId` are in it only when M9 asked for them."""
    email, extra = _emails(record, settings)
    phones = tuple(str(record[f]) for f in LEAD_PHONE_FIELDS if record.get(f))
    converted = bool(record.get("IsConverted"))
    contact = record.get("ConvertedContactId")
    return Lead(
        id=str(record["Id"]),
        email=email,
        emails=extra,
        phones=phones,
        is_converted=converted,
        converted_contact_id=str(contact) if converted and contact else None,
    )


def to_opportunity(record: Record) -> Opportunity:
    roles = tuple(
        ContactRole(id=str(role["ContactId"]), is_primary=bool(role.get("IsPrimary")))
        for role in child_records(record, "OpportunityContactRoles")
        if role.get("ContactId")
    )
    created = parse_datetime(record.get("CreatedDate"))
    updated = parse_datetime(record.get("LastModifiedDate"))
    assert created is not None and updated is not None, "Opportunity without CreatedDate/LastModifiedDate"
    return Opportunity(
        id=str(record["Id"]),
        created_at=created,
        updated_at=updated,
        account_id=record.get("AccountId"),
        owner_id=record.get("OwnerId"),
        is_closed=bool(record.get("IsClosed")),
        is_won=bool(record.get("IsWon")),
        close_date=parse_date(record.get("CloseDate")),
        contacts=roles,
    )


def contact_roles(record: Record) -> tuple[list[tuple[Opportunity, ContactRole]], bool]:
    """A Contact's `OpportunityContactRoles` rows, each with its opportunity read through the
    `Opportunity.` parent fields, and whether they are all of this contact's roles."""
    out: list[tuple[Opportunity, ContactRole]] = []
    complete = is_complete(record, "OpportunityContactRoles")
    for role in child_records(record, "OpportunityContactRoles"):
        parent = role.get("Opportunity")
        if not role.get("OpportunityId") or not isinstance(parent, Mapping) or not parent.get("CreatedDate"):
            complete = False
            continue
        opportunity = to_opportunity({**parent, "Id": role["OpportunityId"]})
        out.append((opportunity, ContactRole(id=str(record["Id"]), is_primary=bool(role.get("IsPrimary")))))
    return out, complete


def _links(record: Record, relations: list[Record]) -> tuple[list[str], str | None, str | None]:
    contacts: list[str] = []
    if record.get("WhoId") and _type_of(record, "Who") == "Contact":
        contacts.append(str(record["WhoId"]))
    for relation in relations:
        if relation.get("IsWhat"):
            continue
        if _type_of(relation, "Relation") == "Contact" and relation.get("RelationId") not in contacts:
            contacts.append(str(relation["RelationId"]))
    what_type = _type_of(record, "What")
    what = record.get("WhatId")
    account = str(what) if what and what_type == "Account" else None
    opportunity = str(what) if what and what_type == "Opportunity" else None
    return contacts, account, opportunity


def to_task(record: Record, settings: SalesforceSettings) -> Activity:
    contacts, account, opportunity = _links(record, child_records(record, "TaskRelations"))
    ours = record.get(settings.external_id_field)
    return Activity(
        id=str(record["Id"]),
        type=ActivityType.TASK,
        call_id=record.get(settings.task_call_id_field) or ours,
        start=parse_datetime(record.get(settings.task_start_field)),
        contact_ids=tuple(contacts),
        account_id=account,
        opportunity_id=opportunity,
        written_by_us=bool(ours),
    )


def to_event(record: Record, settings: SalesforceSettings) -> Activity:
    relations = child_records(record, "EventRelations")
    contacts, account, opportunity = _links(record, [r for r in relations if r.get("IsParent")])
    attendees: list[str] = []
    emails: list[Any] = []
    if settings.attendee_emails_field:
        emails += list(split_list(record.get(settings.attendee_emails_field)))
    for relation in relations:
        nested = relation.get("Relation")
        if relation.get("IsInvitee") and isinstance(nested, Mapping):
            emails.append(nested.get("Email"))
    for value in emails:
        email = norm_email(value) if isinstance(value, str) else None
        if email and email not in attendees:
            attendees.append(email)
    ours = record.get(settings.external_id_field)
    return Activity(
        id=str(record["Id"]),
        type=ActivityType.EVENT,
        call_id=record.get(settings.event_call_id_field) or ours,
        start=parse_datetime(record.get("StartDateTime")),
        attendee_emails=tuple(attendees),
        contact_ids=tuple(contacts),
        account_id=account,
        opportunity_id=opportunity,
        written_by_us=bool(ours),
    )
