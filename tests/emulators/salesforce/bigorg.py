"""A generated org of a realistic size (hundreds of accounts, contacts, opportunities) as a scenario `crm`.

The small hand-written CRMs of the unit tests never show what is slow or racy at
scale; this one does, deterministically from a seed. Ids look like Salesforce ids
(`001`, `003`, `006`... prefixes) but never collide with the ids the org mints.
Emails, phones and domains are unique per record, except a few shared phones (a
switchboard) and contacts related to a second account, so the rules meet ambiguity.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

REFERENCE = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
INTERNAL_DOMAIN = "ourco.com"


def _id(prefix: str, index: int) -> str:
    return f"{prefix}CHA{index:09d}"


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _typed(e164: str, rng: random.Random) -> str:
    """A French mobile number the way people type it (E.164, 00, spaced, national)."""
    national = "0" + e164[3:]
    forms = [
        e164,
        "00" + e164[1:],
        f"+33 {e164[3]} {e164[4:6]} {e164[6:8]} {e164[8:10]} {e164[10:12]}",
        " ".join(national[i : i + 2] for i in range(0, 10, 2)),
        ".".join(national[i : i + 2] for i in range(0, 10, 2)),
    ]
    return rng.choice(forms)


def user_email(index: int) -> str:
    return f"rep{index}@{INTERNAL_DOMAIN}"


def generate_crm(
    seed: int = 0,
    *,
    accounts: int = 300,
    contacts: int = 600,
    opportunities: int = 600,
    leads: int = 60,
    users: int = 5,
) -> dict[str, Any]:
    """A scenario-v1 `crm` document; every reference resolves and ids are unique."""
    rng = random.Random(seed)
    user_ids = [_id("005", i) for i in range(1, users + 1)]
    account_docs: list[dict[str, Any]] = []
    for i in range(1, accounts + 1):
        domains = [f"acct{i}.example"]
        if rng.random() < 0.2:
            domains.append(f"acct{i}-group.example")
        account_docs.append({"id": _id("001", i), "name": f"Account {i}", "domains": domains})
    phone_numbers = rng.sample(range(10_000_000, 99_999_999), contacts * 2 + leads * 2)
    phones = iter(f"+336{n:08d}" for n in phone_numbers)
    contact_docs: list[dict[str, Any]] = []
    e164s: list[list[str]] = []
    by_account: dict[str, list[str]] = {a["id"]: [] for a in account_docs}
    for i in range(1, contacts + 1):
        primary = rng.randrange(accounts)
        account_ids = [account_docs[primary]["id"]]
        if rng.random() < 0.1:
            other = account_docs[rng.randrange(accounts)]["id"]
            if other not in account_ids:
                account_ids.append(other)
        domain = account_docs[primary]["domains"][0]
        own: list[str] = []
        if rng.random() < 0.85:
            own.append(next(phones))
        if rng.random() < 0.15:
            own.append(next(phones))
        if own and e164s and rng.random() < 0.03:
            own = own[:1] + e164s[rng.randrange(len(e164s))][:1]
        e164s.append(own)
        contact_id = _id("003", i)
        contact = {
            "id": contact_id,
            "email": f"person{i}@{domain}" if rng.random() < 0.92 else None,
            "emails": [f"person{i}.alt@{domain}"] if rng.random() < 0.15 else [],
            "phones": [_typed(p, rng) for p in own],
            "account_ids": account_ids,
        }
        contact_docs.append(contact)
        for account_id in account_ids:
            by_account[account_id].append(contact_id)
    lead_docs = [
        {
            "id": _id("00Q", i),
            "email": f"lead{i}@prospect{i}.example",
            "phones": [_typed(next(phones), rng)] if rng.random() < 0.6 else [],
        }
        for i in range(1, leads + 1)
    ]
    day = dt.timedelta(days=1)
    opportunity_docs: list[dict[str, Any]] = []
    for i in range(1, opportunities + 1):
        account_id = account_docs[rng.randrange(accounts)]["id"] if rng.random() < 0.95 else None
        created = REFERENCE + rng.randint(-400, 20) * day + rng.randint(0, 23) * dt.timedelta(hours=1)
        closed = rng.random() < 0.4
        people = by_account.get(account_id or "", [])
        roles = [
            {"id": cid, "is_primary": rng.random() < 0.4}
            for cid in rng.sample(people, min(len(people), rng.choice([0, 0, 1, 2])))
        ]
        opportunity_docs.append(
            {
                "id": _id("006", i),
                "account_id": account_id,
                "owner_id": rng.choice(user_ids),
                "is_closed": closed,
                "is_won": closed and rng.random() < 0.5,
                "created_at": _iso(created),
                "updated_at": _iso(created + rng.randint(0, 60) * day),
                "close_date": (created + rng.randint(10, 120) * day).date().isoformat(),
                "contacts": roles,
            }
        )
    return {
        "users": [{"id": uid, "email": user_email(n)} for n, uid in enumerate(user_ids, 1)],
        "accounts": account_docs,
        "contacts": contact_docs,
        "leads": lead_docs,
        "opportunities": opportunity_docs,
        "activities": [],
    }
