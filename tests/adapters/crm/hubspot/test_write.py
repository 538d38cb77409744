"""Write-back through the emulator: W1 (one activity per call id, updated not duplicated) and W3."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
import redis

from adapters.crm.hubspot.ledger import MemoryLedger, RedisLedger
from tests.adapters.crm.hubspot.support import PROFILES, crm_for, examples, load, portal
from worker.core.model import Call, CallKind, Case, Decision, Direction, Scenario
from worker.core.port import ActivityQuery, WrittenActivity
from worker.pipeline.association import associate

PRIMARY_TYPES = {"calls": (194, 182, 206), "meetings": (200, 188, 212)}


def decision_for(call: Call) -> Decision:
    return Decision(
        call_id=call.id,
        case=Case.CONTACTS,
        contact_ids=("C1",),
        account_id="A1",
        opportunity_id="O1",
    )


def basic_call(kind: CallKind = CallKind.CALL) -> tuple[Call, Scenario]:
    scenario = load(next(p for p in examples() if p.stem == "basic"))
    call = dataclasses.replace(scenario.call, kind=kind, direction=Direction.OUTBOUND, title="Intro")
    return call, scenario


WRITABLE = ["after_setup", "full"]
"""Portals W1 can write to (a plain one refuses before writing: test_profiles)."""


@pytest.mark.parametrize("profile", WRITABLE)
def test_a_call_is_created_once_then_updated_with_its_associations(profile: str) -> None:
    call, scenario = basic_call()
    with portal(scenario, profile=PROFILES[profile]()) as emulator:
        crm = crm_for(scenario, emulator)
        first = crm.upsert_activity(call, decision_for(call))
        later = dataclasses.replace(call, ended_at=call.started_at + dt.timedelta(minutes=40))
        second = crm_for(scenario, emulator).upsert_activity(later, decision_for(later))
        store = emulator.store
        ours = [o for o in store.objects["calls"].values() if o.properties.get("callmatch_written") == "true"]
        assert first.created and not second.created
        assert first.id == second.id
        assert [o.id for o in ours] == [first.id]
        written = store.objects["calls"][first.id]
        assert written.properties["callmatch_written"] == "true"
        assert written.properties["hs_call_direction"] == "OUTBOUND"
        assert written.properties["hs_call_duration"] == str(40 * 60 * 1000)
        assert written.properties["hs_timestamp"] == "2026-03-10T09:30:00.000Z"
        assert written.properties["hubspot_owner_id"] == "U1"  # the organizer's HubSpot user
        assert written.properties["hs_call_body"].startswith("Linked by callmatch (contacts;")
        links = store.links
        for to_kind, to_id, type_id in zip(
            ("contacts", "companies", "deals"), ("C1", "A1", "O1"), PRIMARY_TYPES["calls"], strict=True
        ):
            types = links[("calls", to_kind)][first.id][to_id]
            assert ("HUBSPOT_DEFINED", type_id, None) in types
        # The scenario's own task T1 carries the same call id but is not ours: it is left alone.
        assert store.objects["calls"]["T1"].properties.get("callmatch_written") == "false"
        assert emulator.requests["POST /crm/v3/objects/calls"] == 1
        assert emulator.requests["PATCH /crm/v3/objects/calls/{id}"] == 1


@pytest.mark.parametrize("profile", WRITABLE)
def test_a_meeting_is_written_as_a_meeting_and_read_back_as_ours(profile: str) -> None:
    call, scenario = basic_call(CallKind.MEETING)
    with portal(scenario, profile=PROFILES[profile]()) as emulator:
        crm = crm_for(scenario, emulator)
        written = crm.upsert_activity(call, decision_for(call))
        meeting = emulator.store.objects["meetings"][written.id]
        assert written.kind == "meetings" and written.created
        assert meeting.properties["hs_meeting_title"] == "Intro"
        assert meeting.properties["hs_meeting_start_time"] == "2026-03-10T09:30:00.000Z"
        assert meeting.properties["hs_meeting_end_time"] == "2026-03-10T09:52:00.000Z"
        for to_kind, to_id, type_id in zip(
            ("contacts", "companies", "deals"), ("C1", "A1", "O1"), PRIMARY_TYPES["meetings"], strict=True
        ):
            assert ("HUBSPOT_DEFINED", type_id, None) in emulator.store.links[("meetings", to_kind)][
                written.id
            ][to_id]
        query = ActivityQuery(call.id, call.kind, call.started_at, 15)
        found = {a.id: a for a in crm_for(scenario, emulator).activities_for_call(query)}
        assert found[written.id].written_by_us
        assert found[written.id].opportunity_id == "O1"
        assert found["T1"].written_by_us is False


def test_a_lead_only_decision_links_the_lead_contact_and_nothing_else() -> None:
    call, scenario = basic_call()
    decision = Decision(call_id=call.id, case=Case.LEADS_ONLY, lead_ids=("L1",))
    with portal(scenario) as emulator:
        written = crm_for(scenario, emulator).upsert_activity(call, decision)
        links = emulator.store.links
        assert set(links[("calls", "contacts")][written.id]) == {"L1"}
        assert written.id not in links[("calls", "companies")]
        assert written.id not in links[("calls", "deals")]


def test_a_refresh_moves_the_call_off_a_deal_no_longer_chosen() -> None:
    call, scenario = basic_call()
    with portal(scenario) as emulator:
        first = crm_for(scenario, emulator).upsert_activity(call, decision_for(call))
        moved = Decision(call_id=call.id, case=Case.CONTACTS, contact_ids=("C1",), account_id="A1")
        second = crm_for(scenario, emulator).upsert_activity(call, moved)
        links = emulator.store.links
        assert second.id == first.id and not second.created
        assert first.id not in links[("calls", "deals")] or not links[("calls", "deals")][first.id]
        assert "A1" in links[("calls", "companies")][first.id]
        assert "C1" in links[("calls", "contacts")][first.id]
        assert emulator.requests["POST /crm/v4/associations/calls/deals/batch/archive"] == 1


def test_the_write_after_the_reads_reuses_their_search() -> None:
    call, scenario = basic_call()
    with portal(scenario) as emulator:
        crm = crm_for(scenario, emulator)
        decision = associate(scenario.call, scenario.policy, crm, scenario.previous)
        searches = emulator.requests["POST /crm/v3/objects/calls/search"]
        written = crm.upsert_activity(call, decision)
        assert written.created
        assert emulator.requests["POST /crm/v3/objects/calls/search"] == searches
        again = crm.upsert_activity(call, decision)
        assert again.id == written.id and not again.created


@pytest.mark.parametrize("profile", WRITABLE)
def test_the_ledger_keeps_one_activity_while_search_lags(redis_client: redis.Redis, profile: str) -> None:
    """HubSpot's search does not see a new call for a while: the ledger still finds it."""
    call, scenario = basic_call()
    with portal(scenario, profile=PROFILES[profile]()) as emulator:
        emulator.search_lag = 3600
        ledger = RedisLedger(redis_client, "t1")
        first = crm_for(scenario, emulator, ledger=ledger).upsert_activity(call, decision_for(call))
        second = crm_for(scenario, emulator, ledger=ledger).upsert_activity(call, decision_for(call))
        unguarded = crm_for(scenario, emulator).upsert_activity(call, decision_for(call))
        assert first.created and not second.created and second.id == first.id
        assert unguarded.created  # without the ledger the lagging search lets a duplicate through
        assert emulator.requests["POST /crm/v3/objects/calls"] == 2


@pytest.mark.parametrize("profile", WRITABLE)
def test_concurrent_writers_of_one_call_create_it_once(redis_client: redis.Redis, profile: str) -> None:
    call, scenario = basic_call()
    with portal(scenario, profile=PROFILES[profile]()) as emulator:
        emulator.search_lag = 3600
        emulator.latency = 0.01
        results: list[WrittenActivity] = []
        errors: list[BaseException] = []

        def write() -> None:
            try:
                crm = crm_for(scenario, emulator, ledger=RedisLedger(redis_client, "t1"))
                results.append(crm.upsert_activity(call, decision_for(call)))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=write) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert sorted(r.created for r in results) == [False, False, False, True]
        assert len({r.id for r in results}) == 1
        ours = [
            o
            for o in emulator.store.objects["calls"].values()
            if o.properties.get("callmatch_written") == "true"
        ]
        assert len(ours) == 1


def test_an_activity_deleted_in_hubspot_is_written_again() -> None:
    call, scenario = basic_call()
    ledger = MemoryLedger()
    with portal(scenario) as emulator:
        first = crm_for(scenario, emulator, ledger=ledger).upsert_activity(call, decision_for(call))
        del emulator.store.objects["calls"][first.id]
        second = crm_for(scenario, emulator, ledger=ledger).upsert_activity(call, decision_for(call))
        assert second.created and second.id != first.id
        assert ledger.find(call.id) == ("calls", second.id)


def test_a_unique_call_id_refused_on_create_updates_the_holder() -> None:
    """The ledger lost (no Redis record) and the search lagging: HubSpot itself refuses a second
    object with the same unique call id (409 CONFLICT); the holder, read by `idProperty` (which
    does not lag), is ours and is updated instead. One object per call, and no dead letter."""
    call, scenario = basic_call()
    scenario = dataclasses.replace(scenario, crm=dataclasses.replace(scenario.crm, activities=()))
    with portal(scenario, profile=PROFILES["after_setup"]()) as emulator:
        emulator.enforce_unique = True
        emulator.search_lag = 3600
        first = crm_for(scenario, emulator).upsert_activity(call, decision_for(call))
        later = dataclasses.replace(call, ended_at=call.started_at + dt.timedelta(minutes=40))
        second = crm_for(scenario, emulator).upsert_activity(later, decision_for(later))
        conflicts = emulator.statuses.get(409, 0)
        ours = [
            o.id
            for o in emulator.store.objects["calls"].values()
            if o.properties.get("callmatch_call_id") == call.id
        ]
        duration = emulator.store.objects["calls"][first.id].properties["hs_call_duration"]
    assert first.created and not second.created and second.id == first.id
    assert conflicts == 1
    assert ours == [first.id]
    assert duration == str(40 * 60 * 1000)
