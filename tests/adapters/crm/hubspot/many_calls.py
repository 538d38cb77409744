"""A portal with many ordinary calls of one tenant (the batch tests and `tests.bench_hubspot`).

Call i has one participant: an email of contact Ci at company Ai (two deals), or for every
third call a phone of that contact, so a batch mixes email and phone matches.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from worker.config.scenario import parse_scenario
from worker.core.model import Call, Person, Scenario


def many_calls(count: int) -> tuple[Scenario, list[Call]]:
    """The portal (as a scenario) and `count` calls whose records it holds."""
    contacts: list[dict[str, Any]] = []
    accounts: list[dict[str, Any]] = []
    opportunities: list[dict[str, Any]] = []
    for i in range(count):
        accounts.append({"id": f"A{i}", "name": f"Acme {i}", "domains": [f"acme{i}.example"]})
        contacts.append(
            {
                "id": f"C{i}",
                "email": f"jane{i}@acme{i}.example",
                "phone": f"+1415555{i:04d}",
                "account_ids": [f"A{i}"],
            }
        )
        opportunities += [
            {
                "id": f"O{i}-{k}",
                "account_id": f"A{i}",
                "owner_id": "U1",
                "is_closed": k == 2,
                "is_won": k == 2,
                "created_at": f"2026-0{k}-01T10:00:00Z",
                "updated_at": "2026-06-01T10:00:00Z",
                "contacts": [{"id": f"C{i}", "is_primary": True}],
            }
            for k in (1, 2)
        ]
    scenario = parse_scenario(
        {
            "version": 1,
            "policy": {"default_region": "US"},
            "call": {
                "id": "aircall:warm",
                "kind": "call",
                "started_at": "2026-06-10T15:00:00Z",
                "ended_at": "2026-06-10T15:20:00Z",
                "organizer": {"email": "rep@seller.example"},
                "participants": [{"email": "jane0@acme0.example", "phone": None}],
            },
            "crm": {
                "users": [{"id": "U1", "email": "rep@seller.example"}],
                "accounts": accounts,
                "contacts": contacts,
                "opportunities": opportunities,
            },
        }
    )
    calls = [
        dataclasses.replace(
            scenario.call,
            id=f"aircall:{i}",
            participants=(
                Person(phone=f"+1415555{i:04d}") if i % 3 == 2 else Person(email=f"jane{i}@acme{i}.example"),
            ),
        )
        for i in range(count)
    ]
    return scenario, calls
