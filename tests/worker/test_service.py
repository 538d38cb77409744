"""The pipeline's stages over the embedded scenario CRM and a real Redis."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from adapters.crm.scenario import RedisActivityLog, ScenarioCrm
from tests.conftest import example_dir
from worker.config.scenario import loads_scenario
from worker.config.tenants import CrmConfig, Tenant, Tenants
from worker.core.model import CallKind
from worker.ingest.events import CallEvent
from worker.pipeline.service import NotReadyError, Pipeline
from worker.pipeline.store import CallStatus, CallStore, Stage

NOW = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.UTC)


@pytest.fixture()
def pipeline(redis_client) -> Pipeline:
    scenario = loads_scenario((example_dir() / "basic.json").read_text())
    tenant = Tenant(name="demo", crm=CrmConfig(kind="scenario"), policy=scenario.policy)
    log = RedisActivityLog(redis_client, "demo")

    def crm_for(_: Tenant) -> ScenarioCrm:
        return ScenarioCrm(scenario.crm, scenario.policy.default_region, log)

    return Pipeline(Tenants({"demo": tenant}), CallStore(redis_client, clock=lambda: NOW), crm_for)


def event(call_id: str = "aircall:812731") -> CallEvent:
    scenario = json.loads((example_dir() / "basic.json").read_text())
    call = scenario["call"]
    return CallEvent.from_json(
        {
            "tenant": "demo",
            "provider": "aircall",
            "call_id": call_id,
            "event_id": f"evt-{call_id}",
            "kind": "call",
            "received_at": "2026-03-10T09:53:00Z",
            "started_at": call["started_at"],
            "ended_at": call["ended_at"],
            "organizer": call["organizer"],
            "participants": call["participants"],
            "complete": True,
        }
    )


def test_event_to_activity_once_however_often_written(pipeline: Pipeline) -> None:
    record, created = pipeline.accept(event())
    assert created and record.status is CallStatus.RECEIVED
    assert not pipeline.accept(event())[1]
    pipeline.fetch("demo", "aircall:812731")
    decision = pipeline.decide("demo", "aircall:812731")
    assert decision is not None
    assert (decision.case.value, decision.opportunity_id, decision.account_id) == (
        "activity_contact",
        "O1",
        "A1",
    )
    first = pipeline.write("demo", "aircall:812731")
    assert first is not None
    assert pipeline.write("demo", "aircall:812731") is None, "a duplicate message: already written"
    pipeline.store.request_stage("demo", "aircall:812731", Stage.WRITE)  # owed again (a replay, say)
    second = pipeline.write("demo", "aircall:812731")
    assert second is not None
    assert first.created and not second.created and first.id == second.id
    crm = pipeline.crm_for(pipeline.tenant("demo"))
    assert isinstance(crm, ScenarioCrm) and crm.log is not None
    activities = crm.log.all()
    assert len(activities) == 1 and activities[0]["writes"] == 2 and activities[0]["written_by_us"]
    stored = pipeline.explain("demo", "aircall:812731")
    assert stored.status is CallStatus.WRITTEN and stored.decision is not None
    assert any(entry["rule"] == "S1.1" for entry in stored.decision["trace"])


def test_written_activity_is_ignored_by_a1_on_refresh(pipeline: Pipeline) -> None:
    pipeline.accept(event("aircall:new"))
    first = pipeline.decide("demo", "aircall:new")
    pipeline.write("demo", "aircall:new")
    assert pipeline.decide("demo", "aircall:new") is None, "a duplicate message: nothing owed"
    pipeline.store.request_stage("demo", "aircall:new", Stage.ASSOCIATE)  # what a refresh does
    again = pipeline.decide("demo", "aircall:new")
    assert first is not None and again is not None
    assert first.case.value == again.case.value == "contacts"
    assert any(e.rule == "A1" and "written by callmatch" in e.message for e in again.trace)


def test_override_locks_fields_and_survives_refresh(pipeline: Pipeline) -> None:
    pipeline.accept(event())
    pipeline.decide("demo", "aircall:812731")
    pipeline.override("demo", "aircall:812731", opportunity_id="O-manual")
    refreshed = pipeline.decide("demo", "aircall:812731")
    assert refreshed is not None and refreshed.opportunity_id == "O-manual"
    assert any(e.rule == "R4" for e in refreshed.trace)


def test_write_before_decide_is_refused(pipeline: Pipeline) -> None:
    pipeline.accept(event())
    with pytest.raises(NotReadyError):
        pipeline.write("demo", "aircall:812731")


def test_no_opportunity_schedules_a_refresh_until_the_window_closes(pipeline: Pipeline, redis_client) -> None:
    ev = event("aircall:lonely")
    lonely = CallEvent.from_json({**ev.to_json(), "participants": [{"email": "stranger@nowhere.example"}]})
    pipeline.accept(lonely)
    decision = pipeline.decide("demo", "aircall:lonely")
    assert decision is not None and decision.opportunity_id is None
    assert pipeline.store.due_refreshes(NOW + dt.timedelta(days=1)) == [("demo", "aircall:lonely")]
    assert lonely.kind is CallKind.CALL


def test_a_call_without_fetched_participants_says_why_in_its_trace(pipeline: Pipeline) -> None:
    """A provider without API credentials: the webhook's data alone, and M3 first in the trace says so."""
    from dataclasses import replace

    from worker.ingest.enrich import complete_event

    fetching = replace(pipeline, fetch_participants=lambda tenant, e: complete_event(e, tenant))
    thin = replace(event("aircall:900"), complete=False, participants=())
    fetching.accept(thin)
    fetched = fetching.fetch("demo", "aircall:900")
    assert fetched is not None
    assert CallEvent.from_json(fetched.event).notes == (
        "participants not fetched from aircall (no API credentials): the webhook's data alone",
    )
    decision = fetching.decide("demo", "aircall:900")
    assert decision is not None and decision.case.value == "none"
    assert (decision.trace[0].rule, decision.trace[0].message) == (
        "M3",
        "participants not fetched from aircall (no API credentials): the webhook's data alone",
    )
    assert pipeline.store.require("demo", "aircall:900").decision["trace"][0]["rule"] == "M3"  # type: ignore[index]


def test_event_notes_round_trip_and_are_checked() -> None:
    from worker.ingest.events import EventError

    noted = event().noting("teams: GET /users/u1 answered 403").noting("teams: GET /users/u1 answered 403")
    assert noted.notes == ("teams: GET /users/u1 answered 403",)
    assert CallEvent.from_json(noted.to_json()) == noted
    with pytest.raises(EventError, match="notes"):
        CallEvent.from_json({**noted.to_json(), "notes": [1]})
