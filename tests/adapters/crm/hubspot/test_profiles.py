"""The adapter on real portals: plain (HubSpot's defaults only), after `callmatch setup`, and full.

Over the real hubspot-api-client against the emulator: decisions follow what each portal
can hold; on a plain portal the write stops before anything is created, naming the
property and the fix; setup (twice: idempotent) makes a plain portal work and W1 hold;
a property deleted while the capabilities are cached refreshes them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from adapters.crm.hubspot.adapter import HubSpotCrm, TenantCache
from adapters.crm.hubspot.client import HubSpotClient, TokenSource
from adapters.crm.hubspot.mapping import HubSpotMapping
from adapters.crm.hubspot.setup import run_setup
from adapters.crm.readiness import MissingRequirementError
from tests.adapters.crm.hubspot.support import (
    PROFILES,
    TOKEN,
    Sleeps,
    as_portal_holds,
    crm_for,
    examples,
    load,
    portal,
    settings,
)
from tests.emulators.hubspot import PortalProfile
from worker.core.model import ActivityType, Call, CallKind, Case, Decision, Direction, Scenario
from worker.core.port import ActivityQuery
from worker.pipeline.association import associate, decide_scenario

PROPERTY_READS = "GET /crm/v3/properties/"


def without_trace(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "trace"}


def property_reads(requests: dict[str, int]) -> int:
    return sum(n for route, n in requests.items() if route.startswith(PROPERTY_READS))


WRITES = (
    "POST /crm/v3/objects/calls",
    "POST /crm/v3/objects/meetings",
    "PATCH /crm/v3/objects/calls/{id}",
    "PATCH /crm/v3/objects/meetings/{id}",
)


def writes(requests: dict[str, int]) -> dict[str, int]:
    """Creates, updates and association writes among the requests sent."""
    return {r: n for r, n in requests.items() if r in WRITES or r.endswith("/batch/create")}


@pytest.mark.parametrize("profile_name", list(PROFILES))
@pytest.mark.parametrize("path", examples(), ids=lambda p: p.stem)
def test_examples_decide_as_the_portal_can_hold_them(path: Path, profile_name: str) -> None:
    """Each portal decides like the scenario file stripped of what that portal cannot hold."""
    scenario = load(path)
    profile = PROFILES[profile_name]()
    with portal(scenario, profile=profile) as emulator:
        crm = crm_for(scenario, emulator)
        got = associate(scenario.call, scenario.policy, crm, scenario.previous)
        sent = sum(emulator.requests.values())
        statuses = dict(emulator.statuses)
    expected = decide_scenario(as_portal_holds(scenario, profile))
    assert without_trace(got.to_json()) == without_trace(expected.to_json())
    assert crm.stats.requests == sent
    assert statuses.get(400, 0) == 0  # no property the portal lacks was ever named


def basic(kind: CallKind = CallKind.CALL) -> tuple[Call, Scenario, Decision]:
    scenario = load(next(p for p in examples() if p.stem == "basic"))
    call = dataclasses.replace(scenario.call, kind=kind, direction=Direction.OUTBOUND, title="Intro")
    decision = Decision(
        call_id=call.id, case=Case.CONTACTS, contact_ids=("C1",), account_id="A1", opportunity_id="O1"
    )
    return call, scenario, decision


@pytest.mark.parametrize(("kind", "object_type"), [(CallKind.CALL, "calls"), (CallKind.MEETING, "meetings")])
def test_a_plain_portal_refuses_the_write_before_anything_is_written(
    kind: CallKind, object_type: str
) -> None:
    call, scenario, decision = basic(kind)
    with portal(scenario, profile=PortalProfile.plain()) as emulator:
        crm = crm_for(scenario, emulator)
        with pytest.raises(MissingRequirementError) as failure:
            crm.upsert_activity(call, decision)
        requests = dict(emulator.requests)
        objects = len(emulator.store.objects[object_type])
    assert failure.value.what == f"{object_type}.callmatch_call_id"
    assert failure.value.fix == "callmatch setup --tenant t1"
    assert f"{object_type}.callmatch_call_id is missing: callmatch setup --tenant t1" in str(failure.value)
    assert writes(requests) == {}
    kind_type = ActivityType.TASK if object_type == "calls" else ActivityType.EVENT
    assert objects == len([a for a in scenario.crm.activities if a.type is kind_type])


def test_w1_holds_on_a_plain_portal_after_setup() -> None:
    """Setup through the properties API, then two writers of one call and a later refresh: one object."""
    call, scenario, decision = basic()
    with portal(scenario, profile=PortalProfile.plain()) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        cache = TenantCache()
        run_setup(client, HubSpotMapping(), cache.capabilities)
        first = HubSpotCrm(client, HubSpotMapping(), cache).upsert_activity(call, decision)
        moved = Decision(call_id=call.id, case=Case.CONTACTS, contact_ids=("C1",), account_id="A1")
        second = HubSpotCrm(client, HubSpotMapping(), TenantCache()).upsert_activity(call, moved)
        ours = [
            o.id
            for o in emulator.store.objects["calls"].values()
            if o.properties.get("callmatch_call_id") == call.id
        ]
        stored = emulator.store.objects["calls"][first.id].properties
    assert first.created and not second.created and second.id == first.id
    assert ours == [first.id]
    assert stored["callmatch_written"] == "true"


def test_a_property_deleted_while_cached_refreshes_the_capabilities() -> None:
    """The call id property disappears after the tenant cached the portal: the next search is
    refused with PROPERTY_DOESNT_EXIST, the capabilities are read again at once, the reads
    finish without it, and the write is refused naming it (nothing written)."""
    call, scenario, decision = basic()
    with portal(scenario, profile=PortalProfile.after_setup()) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        cache = TenantCache()
        mapping = HubSpotMapping(default_region=scenario.policy.default_region)
        associate(call, scenario.policy, HubSpotCrm(client, mapping, cache), scenario.previous)
        assert property_reads(emulator.requests) == 5
        assert emulator.store.remove_property("calls", "callmatch_call_id")
        emulator.reset_counts()
        crm = HubSpotCrm(client, mapping, cache)
        got = associate(call, scenario.policy, crm, scenario.previous)
        refused = emulator.statuses.get(400, 0)
        rereads = property_reads(emulator.requests)
        with pytest.raises(MissingRequirementError) as failure:
            crm.upsert_activity(call, decision)
        written = writes(emulator.requests)
    assert refused == 1 and rereads == 5
    assert crm.stats.by_method["capabilities"] == 6  # five property lists and the pipelines
    assert got.case is not None
    assert failure.value.what == "calls.callmatch_call_id"
    assert written == {}


def test_a_marker_deleted_before_a_write_is_refused_at_the_write() -> None:
    call, scenario, decision = basic()
    with portal(scenario, profile=PortalProfile.after_setup()) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        cache = TenantCache()
        crm = HubSpotCrm(client, HubSpotMapping(), cache)
        crm.activities_for_call(ActivityQuery(call.id, call.kind, call.started_at, 15))
        emulator.store.remove_property("calls", "callmatch_written")
        with pytest.raises(MissingRequirementError) as failure:
            crm.upsert_activity(call, decision)
        created = emulator.requests.get("POST /crm/v3/objects/calls", 0)
        objects = sorted(emulator.store.objects["calls"])
    assert failure.value.what == "calls.callmatch_written"
    assert created == 1  # refused with 400 PROPERTY_DOESNT_EXIST: nothing stored
    assert objects == sorted(a.id for a in scenario.crm.activities if a.type is ActivityType.TASK)
