"""A scenario's CRM slice as Salesforce records, keeping the scenario's ids as record Ids.

Records are written in the vendor's terms (the Salesforce object reference's field
API names), never through the adapter's mapping: a contact's phones fill the
standard phone fields in order, extra emails go to the custom email fields only
when the org has them, a converted lead keeps `IsConverted` and the contact it became
(`ConvertedContactId`, with that contact's account), an account its `Type`, a second account becomes an AccountContactRelation row only
with "Contacts to Multiple Accounts", relation rows beyond WhoId/WhatId exist only
with "Shared Activities" (without it an event keeps its invitees alone).
"""

from __future__ import annotations

import datetime as dt

from tests.emulators.salesforce.org import STANDARD_PROFILE_ID, Org
from tests.emulators.salesforce.profile import OrgProfile
from worker.core.model import ActivityType, Contact, CrmSlice, Lead, User
from worker.core.normalize import norm_email

EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
EVENT_MINUTES = 30

CONTACT_PHONES = ("Phone", "MobilePhone", "HomePhone", "OtherPhone")
"""Contact's phone fields a person's numbers go to (AssistantPhone and Fax are someone else's)."""
LEAD_PHONES = ("Phone", "MobilePhone")
EXTRA_EMAILS = ("Secondary_Email__c", "Other_Email__c")
"""Custom email fields an org may have; a scenario's extra emails fill those present, in order."""


class SeedError(ValueError):
    """A scenario record that has no place in the org's fields (say, five phones on a lead)."""


def _spread(kind: str, owner: str, values: tuple[str, ...], fields: tuple[str, ...]) -> dict[str, str]:
    if len(values) > len(fields):
        raise SeedError(f"{kind} {owner} has {len(values)} values for {len(fields)} fields {fields}")
    return dict(zip(fields, values, strict=False))


def seed_org(crm: CrmSlice, profile: OrgProfile | None = None, *, now: dt.datetime | None = None) -> Org:
    """Load every record of `crm` into a new org with `profile` (plain by default); ids are the scenario's own.

    A value the org has no field for is left out (an extra email on a plain org), as a
    customer's data would be: the scenario then states more than the org can tell.
    """
    profile = profile or OrgProfile.plain()
    org = Org(profile=profile, now=now)
    has = profile.has_field
    for user in crm.users:
        org.insert(
            "User",
            {
                "Id": user.id,
                "Email": user.email,
                "Username": user.email or user.id,
                "LastName": user.id,
                "Name": user.id,
                "IsActive": True,
                "ProfileId": STANDARD_PROFILE_ID,
            },
        )
    for account in crm.accounts:
        values: dict[str, object] = {"Id": account.id, "Name": account.name or account.id}
        if account.type is not None:
            values["Type"] = account.type  # the standard picklist (unrestricted: any value is stored)
        if account.domains:
            values["Website"] = account.domains[0]
            rest = account.domains[1:]
            if rest and has("Account", "Domains__c"):
                values["Domains__c"] = "; ".join(rest)
        org.insert("Account", values)
    for contact in crm.contacts:
        values = {"Id": contact.id, "LastName": contact.id, "Name": contact.id, "Email": contact.email}
        emails = tuple(f for f in EXTRA_EMAILS if has("Contact", f))
        values |= dict(zip(emails, contact.emails, strict=False))
        values |= _spread("contact", contact.id, contact.phones, CONTACT_PHONES)
        if contact.account_ids:
            values["AccountId"] = contact.account_ids[0]
        org.insert("Contact", values)
        if profile.contacts_to_multiple_accounts:
            for index, account_id in enumerate(contact.account_ids):
                org.insert(
                    "AccountContactRelation",
                    {
                        "AccountId": account_id,
                        "ContactId": contact.id,
                        "IsDirect": index == 0,
                        "IsActive": True,
                    },
                )
    accounts_of = {contact.id: contact.account_ids for contact in crm.contacts}
    for lead in crm.leads:
        values = {
            "Id": lead.id,
            "LastName": lead.id,
            "Name": lead.id,
            "Company": lead.id,
            "Email": lead.email,
            "IsConverted": lead.is_converted,
        }
        if lead.is_converted:
            # What lead conversion leaves on the Lead: the contact (and its account) it became, and when.
            contact_id = lead.converted_contact_id
            accounts = accounts_of.get(contact_id or "", ())
            values |= {
                "ConvertedContactId": contact_id,
                "ConvertedAccountId": accounts[0] if accounts else None,
                "ConvertedDate": EPOCH.date(),
            }
        emails = tuple(f for f in EXTRA_EMAILS if has("Lead", f))
        values |= dict(zip(emails, lead.emails, strict=False))
        values |= _spread("lead", lead.id, lead.phones, LEAD_PHONES)
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
    _activities(org, crm, profile)
    return org


def _activities(org: Org, crm: CrmSlice, profile: OrgProfile) -> None:
    has = profile.has_field
    shared = profile.shared_activities
    by_email: dict[str, str] = {}
    people: list[User | Lead | Contact] = [*crm.users, *crm.leads, *crm.contacts]
    for person in people:
        email = norm_email(person.email)
        if email:
            by_email[email] = person.id
    taken: set[tuple[ActivityType, str | None]] = set()
    for activity in crm.activities:
        kind = "Task" if activity.type is ActivityType.TASK else "Event"
        values: dict[str, object] = {
            "Id": activity.id,
            "Subject": f"Activity {activity.id}",
            "WhoId": activity.contact_ids[0] if activity.contact_ids else None,
            "WhatId": activity.opportunity_id or activity.account_id,
        }
        if activity.written_by_us and has(kind, "Callmatch_Call_Id__c"):
            # unique per object when the field is Unique, as in the org: a second one keeps the call id alone
            ours = activity.call_id
            if profile.external_id_unique and (activity.type, ours) in taken:
                ours = None
            ours = ours or f"seed:{activity.id}"
            taken.add((activity.type, ours))
            values["Callmatch_Call_Id__c"] = ours
        start = activity.start.astimezone(dt.UTC) if activity.start else None
        if kind == "Task":
            values |= {
                "CallObject": activity.call_id,
                "TaskSubtype": "Call",
                "Status": "Completed",
                "ActivityDate": start.date() if start else None,
                "CreatedDate": start or EPOCH,
            }
            org.insert("Task", values)
            org.records["Task"][activity.id]["CreatedDate"] = start
            if shared:
                for contact_id in activity.contact_ids[1:]:
                    org.insert(
                        "TaskRelation", {"TaskId": activity.id, "RelationId": contact_id, "IsWhat": False}
                    )
            continue
        values |= {
            "StartDateTime": start,
            "EndDateTime": start + dt.timedelta(minutes=EVENT_MINUTES) if start else None,
            "DurationInMinutes": EVENT_MINUTES,
        }
        if has("Event", "Call_Id__c"):
            values["Call_Id__c"] = activity.call_id
        if activity.attendee_emails and has("Event", "Attendee_Emails__c"):
            values["Attendee_Emails__c"] = "; ".join(activity.attendee_emails)
        org.insert("Event", values)
        parents = list(activity.contact_ids[1:]) if shared else []
        linked = set(parents)
        invited = {by_email[e] for e in map(norm_email, activity.attendee_emails) if e and e in by_email}
        for relation_id in [*parents, *sorted(invited - linked)]:
            row: dict[str, object] = {
                "EventId": activity.id,
                "RelationId": relation_id,
                "IsInvitee": relation_id in invited,
            }
            if shared:
                row |= {"IsWhat": False, "IsParent": relation_id in linked}
            org.insert("EventRelation", row)
