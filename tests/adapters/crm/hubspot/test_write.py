"""Write-back through the emulator: W1 (one activity per call id, updated not duplicated) and W3."""

from __future__ import annotations

import dataclasses
import datetime as dt

from tests.adapters.crm.hubspot.support import crm_for, examples, load, portal
from worker.model import Call, CallKind, Case, Decision, Direction, Scenario
from worker.port import ActivityQuery

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


def test_a_call_is_created_once_then_updated_with_its_associations() -> None:
    call, scenario = basic_call()
    with portal(scenario) as emulator:
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


def test_a_meeting_is_written_as_a_meeting_and_read_back_as_ours() -> None:
    call, scenario = basic_call(CallKind.MEETING)
    with portal(scenario) as emulator:
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
