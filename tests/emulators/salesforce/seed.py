"""A scenario's CRM slice as Salesforce records, keeping the scenario's ids as record Ids."""

from __future__ import annotations

import datetime as dt

from adapters.crm.salesforce.mapping import CONTACT_PHONE_FIELDS, LEAD_PHONE_FIELDS, SalesforceSettings
from tests.emulators.salesforce.org import Org, default_schema
from worker.model import ActivityType, Contact, CrmSlice, Lead, User
from worker.normalize import norm_email

EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


class SeedError(ValueError):
    """A scenario record that has no place in the org's fields (say, five phones on a lead)."""


def schema_for(settings: SalesforceSettings) -> Org:
    return Org(
        default_schema(
            extra_email_fields=settings.extra_email_fields,
            account_domain_field=settings.account_domain_field or "Domains__c",
            call_id_fields=tuple(dict.fromkeys((settings.task_call_id_field, settings.event_call_id_field))),
            external_id_field=settings.external_id_field,
            attendee_field=settings.attendee_emails_field or "Attendee_Emails__c",
        )
    )


def _spread(kind: str, owner: str, values: tuple[str, ...], fields: tuple[str, ...]) -> dict[str, str]:
    if len(values) > len(fields):
        raise SeedError(f"{kind} {owner} has {len(values)} values for {len(fields)} fields {fields}")
    return dict(zip(fields, values, strict=False))


def seed_org(
    crm: CrmSlice, settings: SalesforceSettings | None = None, *, now: dt.datetime | None = None
) -> Org:
    """Load every record of `crm` into a new org; ids are the scenario's own."""
    settings = settings or SalesforceSettings()
    org = schema_for(settings)
    org.now = now
    for user in crm.users:
        org.insert(
            "User",
            {
                "Id": user.id,
                "Email": user.email,
                "Username": user.email or user.id,
                "Name": user.id,
                "IsActive": True,
            },
        )
    for account in crm.accounts:
        values: dict[str, object] = {"Id": account.id, "Name": account.name or account.id}
        if account.domains:
            values["Website"] = account.domains[0]
            rest = account.domains[1:]
            if rest:
                if not settings.account_domain_field:
                    raise SeedError(f"account {account.id} has several domains and no domain field")
                values[settings.account_domain_field] = "; ".join(rest)
        org.insert("Account", values)
    for contact in crm.contacts:
        values = {"Id": contact.id, "LastName": contact.id, "Name": contact.id, "Email": contact.email}
        values |= _spread("contact", contact.id, contact.emails, settings.extra_email_fields)
        values |= _spread("contact", contact.id, contact.phones, CONTACT_PHONE_FIELDS)
        if contact.account_ids:
            values["AccountId"] = contact.account_ids[0]
        org.insert("Contact", values)
        for index, account_id in enumerate(contact.account_ids):
            org.insert(
                "AccountContactRelation",
                {"AccountId": account_id, "ContactId": contact.id, "IsDirect": index == 0, "IsActive": True},
            )
    for lead in crm.leads:
        values = {
            "Id": lead.id,
            "LastName": lead.id,
            "Company": lead.id,
            "Email": lead.email,
            "IsConverted": False,
        }
        values |= _spread("lead", lead.id, lead.emails, settings.extra_email_fields)
        values |= _spread("lead", lead.id, lead.phones, LEAD_PHONE_FIELDS)
        org.insert("Lead", values)
    for opp in crm.opportunities:
        org.insert(
            "Opportunity",
            {
                "Id": opp.id,
                "Name": opp.id,
                "AccountId": opp.account_id,
                "OwnerId": opp.owner_id,
                "IsClosed": opp.is_closed,
                "IsWon": opp.is_won,
                "CloseDate": opp.close_date,
                "StageName": ("Closed Won" if opp.is_won else "Closed Lost")
                if opp.is_closed
                else "Prospecting",
                "CreatedDate": opp.created_at.astimezone(dt.UTC),
                "LastModifiedDate": opp.updated_at.astimezone(dt.UTC),
            },
        )
        for role in opp.contacts:
            org.insert(
                "OpportunityContactRole",
                {"OpportunityId": opp.id, "ContactId": role.id, "IsPrimary": role.is_primary},
            )
    by_email: dict[str, str] = {}
    people: list[User | Lead | Contact] = [*crm.users, *crm.leads, *crm.contacts]
    for person in people:
        email = norm_email(person.email)
        if email:
            by_email[email] = person.id
    taken: set[tuple[ActivityType, str | None]] = set()
    for activity in crm.activities:
        ours = None
        if activity.written_by_us:
            # our external id is unique per object, as in the org: a second one keeps the call id field only
            ours = activity.call_id if (activity.type, activity.call_id) not in taken else None
            ours = ours or f"seed:{activity.id}"
            taken.add((activity.type, ours))
        values = {
            "Id": activity.id,
            "Subject": f"Activity {activity.id}",
            "WhoId": activity.contact_ids[0] if activity.contact_ids else None,
            "WhatId": activity.opportunity_id or activity.account_id,
            settings.external_id_field: ours,
        }
        start = activity.start.astimezone(dt.UTC) if activity.start else None
        if activity.type is ActivityType.TASK:
            values |= {
                settings.task_call_id_field: activity.call_id,
                "TaskSubtype": "Call",
                "Status": "Completed",
                "ActivityDate": start.date() if start else None,
                "CreatedDate": start or EPOCH,
            }
            org.insert("Task", values)
            org.records["Task"][activity.id]["CreatedDate"] = start
            for contact_id in activity.contact_ids[1:]:
                org.insert("TaskRelation", {"TaskId": activity.id, "RelationId": contact_id, "IsWhat": False})
            continue
        values |= {
            settings.event_call_id_field: activity.call_id,
            "StartDateTime": start,
            "EndDateTime": start + dt.timedelta(minutes=settings.event_minutes_default) if start else None,
            "DurationInMinutes": settings.event_minutes_default,
        }
        if settings.attendee_emails_field and activity.attendee_emails:
            values[settings.attendee_emails_field] = "; ".join(activity.attendee_emails)
        org.insert("Event", values)
        linked = set(activity.contact_ids[1:])
        invited = {by_email[e] for e in map(norm_email, activity.attendee_emails) if e and e in by_email}
        for relation_id in [*activity.contact_ids[1:], *sorted(invited - linked)]:
            org.insert(
                "EventRelation",
                {
                    "EventId": activity.id,
                    "RelationId": relation_id,
                    "IsWhat": False,
                    "IsParent": relation_id in linked,
                    "IsInvitee": relation_id in invited,
                },
            )
    return org
