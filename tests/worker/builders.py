"""Terse builders of scenario documents for rule tests; decided through the real port path."""

from __future__ import annotations

import datetime as dt
from typing import Any

from worker.config.scenario import parse_scenario
from worker.pipeline.association import decide_scenario

T = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)
ORGANIZER = "rep@ourco.example"


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def days(n: float) -> dt.datetime:
    """T shifted by n days (negative: before the call)."""
    return T + dt.timedelta(days=n)


def date_days(n: int) -> str:
    return (T.date() + dt.timedelta(days=n)).isoformat()


def opp(
    oid: str,
    created: float,
    *,
    closed: bool = False,
    close: int | None = None,
    account: str | None = "A1",
    owner: str | None = "U1",
    updated: float | None = None,
    roles: tuple[tuple[str, bool], ...] = (),
) -> dict[str, Any]:
    """An opportunity created `created` days from T, closing `close` days from T's date."""
    return {
        "id": oid,
        "account_id": account,
        "owner_id": owner,
        "is_closed": closed,
        "is_won": False,
        "created_at": iso(days(created)),
        "updated_at": iso(days(updated if updated is not None else created)),
        "close_date": date_days(close) if close is not None else None,
        "contacts": [{"id": cid, "is_primary": primary} for cid, primary in roles],
    }


def contact(
    cid: str,
    email: str | None = None,
    *,
    phones: tuple[str, ...] = (),
    accounts: tuple[str, ...] = ("A1",),
    emails: tuple[str, ...] = (),
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": cid,
        "email": email,
        "phones": list(phones),
        "account_ids": list(accounts),
    }
    if emails:
        record["emails"] = list(emails)
    return record


def account(aid: str, *domains: str, type: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"id": aid, "name": aid, "domains": list(domains)}
    if type is not None:
        record["type"] = type
    return record


def doc(
    *,
    participants: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    accounts: list[dict[str, Any]] | None = None,
    leads: list[dict[str, Any]] | None = None,
    opportunities: list[dict[str, Any]] | None = None,
    activities: list[dict[str, Any]] | None = None,
    preferences: list[dict[str, Any]] | None = None,
    users: list[dict[str, Any]] | None = None,
    policy: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
    kind: str = "call",
    started_at: str | None = None,
    call_id: str = "aircall:1",
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "version": 1,
        "policy": policy or {},
        "call": {
            "id": call_id,
            "kind": kind,
            "started_at": started_at or iso(T),
            "organizer": {"email": ORGANIZER},
            "participants": participants if participants is not None else [{"email": "jane@acme.example"}],
        },
        "crm": {
            "users": users if users is not None else [{"id": "U1", "email": ORGANIZER}],
            "accounts": accounts if accounts is not None else [account("A1", "acme.example")],
            "contacts": contacts if contacts is not None else [contact("C1", "jane@acme.example")],
            "leads": leads or [],
            "opportunities": opportunities or [],
            "activities": activities or [],
        },
    }
    if preferences is not None:
        document["crm"]["preferences"] = preferences
    if previous is not None:
        document["previous"] = previous
    return document


def decide(document: dict[str, Any]) -> dict[str, Any]:
    return decide_scenario(parse_scenario(document)).to_json()


def rules_of(result: dict[str, Any]) -> list[str]:
    return [entry["rule"] for entry in result["trace"]]


def chosen(document: dict[str, Any]) -> str | None:
    opportunity_id: str | None = decide(document)["opportunity_id"]
    return opportunity_id


def activity_doc_free(document: dict[str, Any]) -> dict[str, Any]:
    """The same document with rules A switched off (no activity look-up)."""
    document["policy"] = {**document["policy"], "use_existing_activity": False}
    return document
