"""v4 association reads follow each object's own paging (`results[].paging.next.after`).

The emulator pages every object's associations at `PortalProfile.association_page_size`
(3 on plain and after_setup portals): a company with seven deals answers three of them
and a cursor. Without following it the newest deal, on the last page, would never be a
candidate and an older one would win.
"""

from __future__ import annotations

from typing import Any

from adapters.crm.hubspot.client import HubSpotClient, TokenSource
from tests.adapters.crm.hubspot.support import TOKEN, Sleeps, as_portal_holds, crm_for, portal, settings
from tests.emulators.hubspot import PortalProfile
from worker.config.scenario import parse_scenario
from worker.core.model import Scenario
from worker.pipeline.association import associate, decide_scenario

DEALS = 7
V4_COMPANY_DEALS = "POST /crm/v4/associations/companies/deals/batch/read"


def many_deals() -> Scenario:
    """One participant, a contact at two companies, each company with seven open deals; no contact roles."""
    deals: list[dict[str, Any]] = [
        {
            "id": f"O{company}{i}",
            "account_id": f"A{company}",
            "created_at": f"2026-05-0{i}T10:00:00Z",
            "updated_at": f"2026-05-0{i}T10:00:00Z",
        }
        for company in (1, 2)
        for i in range(1, DEALS + 1)
    ]
    return parse_scenario(
        {
            "version": 1,
            "policy": {"default_region": "US", "opportunity_strategy": "most_recently_created_open"},
            "call": {
                "id": "aircall:paging",
                "kind": "call",
                "started_at": "2026-06-10T15:00:00Z",
                "organizer": {"email": "rep@seller.example"},
                "participants": [{"email": "jane@acme.example"}],
            },
            "crm": {
                "users": [{"id": "U1", "email": "rep@seller.example"}],
                "accounts": [
                    {"id": "A1", "name": "Acme", "domains": ["acme.example"]},
                    {"id": "A2", "name": "Acme Labs", "domains": ["labs.acme.example"]},
                ],
                "contacts": [{"id": "C1", "email": "jane@acme.example", "account_ids": ["A1", "A2"]}],
                "opportunities": deals,
            },
        }
    )


def test_every_page_of_every_object_is_read_and_pages_share_requests() -> None:
    scenario = many_deals()
    with portal(scenario, profile=PortalProfile.after_setup()) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        links = client.associations_of("companies", "deals", ["A1", "A2"])
        sent = emulator.requests[V4_COMPANY_DEALS]
    assert {k: sorted(str(e["toObjectId"]) for e in v) for k, v in links.items()} == {
        "A1": [f"O1{i}" for i in range(1, DEALS + 1)],
        "A2": [f"O2{i}" for i in range(1, DEALS + 1)],
    }
    assert sent == 3  # pages of 3: both companies in each request (3 + 3 + 1)


def test_the_newest_deal_on_the_last_page_wins() -> None:
    scenario = many_deals()
    profile = PortalProfile.after_setup()
    with portal(scenario, profile=profile) as emulator:
        decision = associate(scenario.call, scenario.policy, crm_for(scenario, emulator), scenario.previous)
        paged = emulator.requests[V4_COMPANY_DEALS]
    expected = decide_scenario(as_portal_holds(scenario, profile))
    assert decision.opportunity_id == expected.opportunity_id == f"O1{DEALS}"
    assert paged > 1
