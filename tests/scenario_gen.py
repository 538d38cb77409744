"""Random but valid scenario-v1 documents that reach every branch of the rules.

Dates sit near the window boundaries, phones come in the formats people type, and
records refer to each other consistently, so every returned id exists.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

STRATEGIES = [
    "timeline",
    "timeline",
    "timeline",
    "most_recently_created_open",
    "most_recently_updated_open",
    "most_recently_updated",
    "oldest_created_open",
]
ZONES = ["UTC", "Europe/Paris", "America/Los_Angeles", "Asia/Tokyo", "Pacific/Auckland"]
DOMAINS = ["acme.example", "northwind.example", "contoso.example", "globex.example", "initech.example"]
FREE = ["gmail.com", "yahoo.com"]
ORGANIZER_DOMAIN = "seller.example"

# (region, E.164 numbers, ways to type one of them)
PHONES: dict[str, list[str]] = {
    "FR": ["+33612345601", "+33612345602", "+33612345603", "+33145678901"],
    "US": ["+12125550101", "+12125550102", "+14155550103", "+13125550104"],
    "GB": ["+442079460101", "+447700900102"],
}


def _typed(e164: str, region: str, rng: random.Random) -> str:
    """One of the ways a person writes this number when dialling from `region`."""
    digits = e164[1:]
    country = {"FR": "33", "US": "1", "GB": "44"}
    forms = [e164, "00" + digits, "+" + " ".join([digits[:2], digits[2:5], digits[5:8], digits[8:]])]
    for reg, code in country.items():
        if reg == region and digits.startswith(code):
            national = digits[len(code) :]
            if reg == "US":
                forms.append(f"({national[:3]}) {national[3:6]}-{national[6:]}")
            else:
                forms.append("0" + " ".join(national[i : i + 2] for i in range(0, len(national), 2)))
    form = rng.choice(forms)
    if rng.random() < 0.1:
        form += " ext. 12"
    return form


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def generate_scenario(rng: random.Random) -> dict[str, Any]:
    """A scenario document; ids are unique per kind and every reference resolves."""
    region = rng.choice(list(PHONES))
    start = dt.datetime(2026, 6, 10, rng.choice([0, 6, 15, 23]), rng.choice([0, 30]), tzinfo=dt.UTC)
    kind = rng.choice(["call", "meeting"])
    policy: dict[str, Any] = {
        "crm": rng.choice(["salesforce", "hubspot", "generic"]),
        "default_region": region,
        "timezone": rng.choice(ZONES),
        "use_existing_activity": rng.random() < 0.7,
        "match_by_domain": rng.random() < 0.4,
        "opportunity_strategy": rng.choice(STRATEGIES),
        "owner": rng.choice(["off", "off", "filter", "prefer"]),
        "use_contact_roles": rng.random() < 0.3,
    }
    if rng.random() < 0.3:
        policy["free_mail_domains"] = FREE
    if rng.random() < 0.2:
        policy["windows"] = {
            "created_after_days": rng.choice([7, 30]),
            "closed_before_days": 30,
            "closed_before_max_days": rng.choice([60, 90]),
        }

    users = [{"id": f"U{i}", "email": f"rep{i}@{ORGANIZER_DOMAIN}"} for i in range(1, rng.randint(1, 3) + 1)]
    organizer_email = rng.choice([u["email"] for u in users] + [f"nobody@{ORGANIZER_DOMAIN}"])
    user_ids = [u["id"] for u in users]

    accounts = [
        {"id": f"A{i}", "name": f"Account {i}", "domains": rng.sample(DOMAINS, rng.choice([0, 1, 1, 2]))}
        for i in range(1, rng.randint(1, 4) + 1)
    ]
    account_ids = [a["id"] for a in accounts]
    phones = PHONES[region] + [p for r, ps in PHONES.items() if r != region for p in ps[:1]]

    people = [(f"p{i}@{rng.choice(DOMAINS + FREE)}", rng.choice(phones)) for i in range(8)]
    contacts = []
    for i in range(1, rng.randint(0, 6) + 1):
        email, phone = rng.choice(people)
        contacts.append(
            {
                "id": f"C{i:02d}",
                "email": email if rng.random() < 0.8 else None,
                "emails": [rng.choice(people)[0].upper()] if rng.random() < 0.2 else [],
                "phones": [_typed(phone, region, rng)] if rng.random() < 0.6 else [],
                "account_ids": rng.sample(account_ids, min(len(account_ids), rng.choice([0, 1, 1, 1, 2]))),
            }
        )
    contact_ids = [c["id"] for c in contacts]
    leads = []
    for i in range(1, rng.randint(0, 3) + 1):
        email, phone = rng.choice(people)
        leads.append(
            {
                "id": f"L{i}",
                "email": email,
                "phones": [_typed(phone, region, rng)] if rng.random() < 0.5 else [],
            }
        )

    day = dt.timedelta(days=1)
    offsets = [-400, -120, -91, -90, -89, -45, -31, -30, -29, -5, -1, 0, 1, 5, 29, 30, 31, 60]
    opportunities = []
    for i in range(1, rng.randint(0, 7) + 1):
        created = (
            start
            + rng.choice(offsets) * day
            + rng.choice([-1, 0, 1]) * dt.timedelta(hours=rng.choice([0, 1, 12]))
        )
        closed = rng.random() < 0.5
        updated = max(created, created + rng.randint(0, 40) * day)
        roles = []
        for cid in rng.sample(contact_ids, min(len(contact_ids), rng.choice([0, 0, 1, 2]))):
            roles.append({"id": cid, "is_primary": rng.random() < 0.4})
        opportunities.append(
            {
                "id": f"O{i:02d}",
                "account_id": rng.choice(account_ids) if account_ids and rng.random() < 0.9 else None,
                "owner_id": rng.choice([*user_ids, "U9"]),
                "is_closed": closed,
                "is_won": closed and rng.random() < 0.5,
                "created_at": _iso(created),
                "updated_at": _iso(updated),
                "close_date": (start.date() + rng.choice(offsets) * day).isoformat()
                if rng.random() < 0.9
                else None,
                "contacts": roles,
            }
        )

    participants = []
    for _ in range(rng.randint(0, 4)):
        email, phone = rng.choice(people)
        shape = rng.random()
        if shape > 0.95:
            participants.append({"email": None, "phone": None, "name": "Guest without contact details"})
            continue
        participants.append(
            {
                "email": email if shape < 0.6 else None,
                "phone": _typed(phone, region, rng)
                if shape > 0.4
                else ("garbage-123" if shape < 0.05 else None),
                "name": "Guest",
            }
        )

    call_id = f"{rng.choice(['aircall', 'zoom', 'teams'])}:{rng.randint(1, 10**6)}"
    activities = []
    for i in range(1, rng.choice([0, 0, 1, 2]) + 1):
        activity_type = rng.choice(["task", "event"])
        activities.append(
            {
                "id": f"T{i}",
                "type": activity_type,
                "call_id": call_id if rng.random() < 0.5 else None,
                "start": _iso(start + dt.timedelta(minutes=rng.choice([-20, -15, -5, 0, 10, 16])))
                if rng.random() < 0.9
                else None,
                "attendee_emails": [rng.choice(people)[0]] if rng.random() < 0.7 else [],
                "contact_ids": rng.sample(contact_ids, min(len(contact_ids), rng.choice([0, 1, 2]))),
                "account_id": rng.choice(account_ids) if account_ids and rng.random() < 0.3 else None,
                "opportunity_id": rng.choice(opportunities)["id"]
                if opportunities and rng.random() < 0.3
                else None,
                "written_by_us": rng.random() < 0.15,
            }
        )

    document: dict[str, Any] = {
        "version": 1,
        "policy": policy,
        "call": {
            "id": call_id,
            "kind": kind,
            "started_at": _iso(start),
            "ended_at": _iso(start + dt.timedelta(minutes=rng.randint(1, 60))),
            "organizer": {"email": organizer_email},
            "participants": participants,
        },
        "crm": {
            "users": users,
            "accounts": accounts,
            "contacts": contacts,
            "leads": leads,
            "opportunities": opportunities,
            "activities": activities,
        },
    }
    if rng.random() < 0.25:
        locked = rng.sample(["contacts", "account", "opportunity"], rng.choice([0, 1, 2]))
        document["previous"] = {
            "contact_ids": rng.sample(contact_ids, min(len(contact_ids), rng.choice([0, 1]))),
            "lead_ids": [],
            "account_id": rng.choice([*account_ids, None]) if account_ids else None,
            "opportunity_id": rng.choice(opportunities)["id"]
            if opportunities and rng.random() < 0.5
            else None,
            "locked": locked,
        }
    return document


def generate_scenarios(count: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [generate_scenario(rng) for _ in range(count)]
