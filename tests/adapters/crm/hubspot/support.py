"""Wiring for the HubSpot adapter tests: an emulator seeded from a scenario and a client pointed at it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.crm.hubspot.adapter import HubSpotCrm, TenantCache
from adapters.crm.hubspot.client import HubSpotClient, HubSpotSettings, TokenSource
from adapters.crm.hubspot.ledger import ActivityLedger
from adapters.crm.hubspot.mapping import HubSpotMapping
from tests.conftest import example_dir
from tests.emulators.hubspot import HubSpotEmulator, Limits, PortalProfile, Store
from worker.config.scenario import loads_scenario
from worker.core.model import ActivityType, Scenario
from worker.core.normalize import email_domain, norm_email, to_e164
from worker.core.port import ActivityQuery, Lookup

TOKEN = "pat-emulator-token"
GENEROUS = Limits(burst=100_000, search=100_000)
"""Functional tests never wait on the portal's limits; the limit tests set their own."""


def examples() -> list[Path]:
    return sorted(p for p in example_dir().glob("*.json") if not p.name.endswith(".expected.json"))


def load(path: Path) -> Scenario:
    return loads_scenario(path.read_text())


@dataclass
class Sleeps:
    """An injected sleep: records the waits the retry policy asked for instead of sleeping."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def settings(emulator: HubSpotEmulator, **overrides: Any) -> HubSpotSettings:
    values: dict[str, Any] = {"tenant": "t1", "host": emulator.url, "base_delay": 0.01, "max_delay": 0.05}
    values.update(overrides)
    return HubSpotSettings(**values)


@contextmanager
def portal(
    scenario: Scenario,
    *,
    limits: Limits | None = None,
    calculated_closed: bool = True,
    profile: PortalProfile | None = None,
) -> Iterator[HubSpotEmulator]:
    """The scenario's portal; `full()` unless a profile is given (the suites written before
    portals had profiles assume every optional property)."""
    emulator = HubSpotEmulator(
        Store.from_scenario(
            scenario, profile=profile or PortalProfile.full(), calculated_closed=calculated_closed
        ),
        limits=dataclasses.replace(limits or GENEROUS),
    )
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def crm_for(
    scenario: Scenario,
    emulator: HubSpotEmulator,
    *,
    client: HubSpotClient | None = None,
    cache: TenantCache | None = None,
    ledger: ActivityLedger | None = None,
) -> HubSpotCrm:
    client = client or HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
    return HubSpotCrm(client, HubSpotMapping(default_region=scenario.policy.default_region), cache, ledger)


def everything(scenario: Scenario) -> Lookup:
    """Every key the scenario could make the engine ask for, in one round."""
    call = scenario.call
    region = scenario.policy.default_region
    people = call.participants
    return Lookup(
        user_emails=frozenset(e for e in [norm_email(call.organizer.email)] if e),
        emails=frozenset(e for e in (norm_email(p.email) for p in people) if e),
        phones=frozenset(e for e in (to_e164(p.phone, region) for p in people) if e),
        domains=frozenset(d for d in (email_domain(p.email) for p in people) if d),
        contact_ids=frozenset(c.id for c in scenario.crm.contacts),
        account_ids=frozenset(a.id for a in scenario.crm.accounts),
        opportunity_ids=frozenset(o.id for o in scenario.crm.opportunities),
        activities=(
            ActivityQuery(
                call_id=call.id,
                kind=call.kind,
                started_at=call.started_at,
                window_minutes=scenario.policy.activity_match_minutes,
            ),
        ),
    )


PROFILES = {
    "plain": PortalProfile.plain,
    "after_setup": PortalProfile.after_setup,
    "full": PortalProfile.full,
}
"""The three portals every suite that depends on the portal's shape runs on."""


def as_portal_holds(scenario: Scenario, profile: PortalProfile) -> Scenario:
    """The scenario as far as a portal with `profile` can hold it: what the rules can still see.

    Without `contacts.callmatch_other_phones` only a person's first two phones exist (`phone`,
    `mobilephone`); without the activities' attendee emails, call id or marker, those values
    exist nowhere (HubSpot keeps no value of a property it does not have).
    """

    def has(kind: str, name: str) -> bool:
        return profile.has(kind, name)

    crm = scenario.crm
    contacts = crm.contacts
    leads = crm.leads
    if not has("contacts", "callmatch_other_phones"):
        contacts = tuple(dataclasses.replace(c, phones=c.phones[:2]) for c in contacts)
        leads = tuple(dataclasses.replace(lead, phones=lead.phones[:2]) for lead in leads)
    activities = []
    for activity in crm.activities:
        kind = "calls" if activity.type is ActivityType.TASK else "meetings"
        changes: dict[str, Any] = {}
        if not has(kind, "callmatch_attendee_emails"):
            changes["attendee_emails"] = ()
        if not has(kind, "callmatch_call_id"):
            changes["call_id"] = None
        if not has(kind, "callmatch_written"):
            changes["written_by_us"] = False
        activities.append(dataclasses.replace(activity, **changes))
    held = dataclasses.replace(crm, contacts=contacts, leads=leads, activities=tuple(activities))
    return dataclasses.replace(scenario, crm=held)
