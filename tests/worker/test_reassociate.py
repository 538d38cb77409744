"""Re-association over real Redis and the Salesforce emulator through the real adapter.

Tenant `acme` links calls of Acme's contact (unchanged by the settings change) and calls of
people at globex.com, a customer with no contact: `none` while `match_by_domain` is off,
`domain` (account 001A3) once it is on. A second tenant's calls are never read nor written.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.stack import CRM, TENANT, running_stack, tenants_file
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.worker.ops.conftest import CALL, DEAD, TOKENS, World, bearer, world  # noqa: F401  (the fixture)
from worker.config.scenario import parse_scenario
from worker.config.tenants import TenantsSource
from worker.ingest.events import CallEvent
from worker.ops.actions import celery_sender
from worker.pipeline import reassociate
from worker.pipeline.celery_app import create_celery, queue_keys
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStore

NOW = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.UTC)
GLOBEX = {"id": "001A3", "name": "Globex", "domains": ["globex.com"]}
KNOWN = [f"aircall:10{i}" for i in range(2)]  # jane@acme.com: a contact of Acme, opportunity 006O1
UNKNOWN = [f"aircall:20{i}" for i in range(3)]  # someone at globex.com: no contact
OLD = "aircall:300"  # a globex call of two months ago: outside --since 30d


def write_tenants(directory: Path, emulator: SalesforceEmulator, match_by_domain: bool) -> Path:
    """The e2e tenants file on the emulator, the local rate limit out of the way (this test is not about it)."""
    path = tenants_file(directory, emulator, {"match_by_domain": str(match_by_domain).lower()})
    text = path.read_text().replace(
        "      read_timeout: 10\n",
        "      read_timeout: 10\n      rate_limit: {per_second: 1000, burst: 1000}\n",
    )
    assert "rate_limit" in text
    path.write_text(text)
    return path


def call_event(call_id: str, email: str, started: dt.datetime, tenant: str = TENANT) -> CallEvent:
    return CallEvent.from_json(
        {
            "tenant": tenant,
            "provider": "aircall",
            "call_id": call_id,
            "event_id": f"evt-{call_id}",
            "kind": "call",
            "received_at": (started + dt.timedelta(minutes=25)).isoformat(),
            "started_at": started.isoformat(),
            "ended_at": (started + dt.timedelta(minutes=20)).isoformat(),
            "direction": "outbound",
            "organizer": {"email": "rep@ourco.com"},
            "participants": [{"email": email, "name": "Someone"}],
            "complete": True,
        }
    )


@dataclass
class Org:
    pipeline: Pipeline
    emulator: SalesforceEmulator
    directory: Path
    redis: Any

    def settings(self, match_by_domain: bool) -> None:
        """The tenant's settings change: the tenants file rewritten, as an admin would."""
        write_tenants(self.directory, self.emulator, match_by_domain)
        self.pipeline.reload_tenants(force=True)

    def snapshot(self) -> dict[str, Any]:
        """Every key with its value but the runs' own and the CRM budget and rate limit (reads cost API calls)."""
        mine = ("callmatch:reassociate:", "callmatch:budget:", "callmatch:ratelimit:")
        keys = [k for k in sorted(self.redis.keys("*")) if not k.startswith(mine)]
        return {key: self.redis.dump(key) for key in keys}

    def decision(self, call_id: str) -> dict[str, Any]:
        record = self.pipeline.store.require(TENANT, call_id)
        assert record.decision is not None
        return record.decision


@pytest.fixture()
def org(redis_client, tmp_path, monkeypatch) -> Iterator[Org]:
    crm = {**CRM, "accounts": [*CRM["accounts"], GLOBEX]}
    scenario = parse_scenario({"call": {"id": "seed", "started_at": "2026-01-01T00:00:00Z"}, "crm": crm})
    emulator = SalesforceEmulator(seed_org(scenario.crm, profile=OrgProfile.after_setup())).start()
    monkeypatch.setenv("E2E_SF_ACCESS_TOKEN", emulator.issue_token())
    monkeypatch.setenv("E2E_SF_CLIENT_ID", emulator.client_id)
    monkeypatch.setenv("E2E_SF_CLIENT_SECRET", emulator.client_secret)
    monkeypatch.setenv("E2E_SF_REFRESH_TOKEN", emulator.refresh_token)
    monkeypatch.setenv("E2E_AIRCALL_TOKEN", "token")
    path = write_tenants(tmp_path, emulator, match_by_domain=False)
    source = TenantsSource(path)
    pipeline = Pipeline(
        source.current,
        CallStore(redis_client, clock=lambda: NOW),
        CrmFactory(redis_client).crm_for,
        source=source,
    )
    calls = [(c, "jane@acme.com", i) for i, c in enumerate(KNOWN)]
    calls += [(c, f"buyer{i}@globex.com", i) for i, c in enumerate(UNKNOWN)]
    for call_id, email, i in calls:
        started = NOW - dt.timedelta(days=2, hours=i)
        pipeline.accept(call_event(call_id, email, started))
        pipeline.decide(TENANT, call_id)
        pipeline.write(TENANT, call_id)
    pipeline.accept(call_event(OLD, "old@globex.com", NOW - dt.timedelta(days=60)))
    pipeline.decide(TENANT, OLD)
    pipeline.write(TENANT, OLD)
    pipeline.store.index_statuses()  # done once by any deployment (status, the console): not the run's
    try:
        yield Org(pipeline, emulator, tmp_path, redis_client)
    finally:
        emulator.stop()


def run_all(org: Org, dry_run: bool, **options: Any) -> reassociate.Run:
    run = reassociate.start(org.pipeline, TENANT, reassociate.parse_since("30d"), dry_run=dry_run)
    return reassociate.proceed(org.pipeline, TENANT, run.run_id, **options)


def test_a_settings_change_is_summed_up_per_case_and_field_and_applied(org: Org) -> None:
    assert {org.decision(c)["case"] for c in UNKNOWN} == {"none"}
    org.settings(match_by_domain=True)
    run = run_all(org, dry_run=False)
    assert run.state == "done" and (run.total, run.done) == (5, 5)
    summary = run.summary.to_json()
    assert summary["changed"] == 3 and summary["unchanged"] == 2
    assert summary["cases"] == {"none -> domain": 3}
    assert summary["fields"] == {"opportunity_id": 0, "account_id": 3, "contact_ids": 0, "lead_ids": 0}
    assert summary["failed"] == [] and summary["skipped"] == []
    for call_id in UNKNOWN:  # stored and written back through the refresh path
        record = org.pipeline.store.require(TENANT, call_id)
        assert record.decision is not None and record.decision["account_id"] == "001A3"
        assert record.status.value == "written" and record.next_stage is None and record.refreshes == 1
        [task] = org.emulator.org.find_by("Task", "Callmatch_Call_Id__c", call_id)
        assert task["WhatId"] == "001A3"
    assert org.decision(OLD)["case"] == "none", "outside the window: left alone"
    assert all(org.pipeline.store.require(TENANT, c).refreshes == 0 for c in KNOWN), "unchanged: untouched"
    again = run_all(org, dry_run=True)
    assert again.summary.to_json()["changed"] == 0 and again.summary.unchanged == 5


def test_a_dry_run_reports_the_same_and_writes_nothing(org: Org) -> None:
    org.settings(match_by_domain=True)
    redis_before = org.snapshot()
    crm_before = copy.deepcopy(org.emulator.org.records)
    queries_before = len(org.emulator.stats.queries)
    run = run_all(org, dry_run=True)
    assert run.dry_run and run.summary.to_json()["cases"] == {"none -> domain": 3}
    assert run.summary.changed == 3 and run.summary.unchanged == 2
    assert org.snapshot() == redis_before, "a dry run stored nothing"
    assert org.emulator.org.records == crm_before, "a dry run wrote nothing to the CRM"
    assert len(org.emulator.stats.queries) > queries_before, "yet it asked the CRM"
    assert "(dry run: nothing written)" in reassociate.summary_lines(run)[0]
    assert "    none -> domain: 3" in reassociate.summary_lines(run)


def test_a_locked_field_never_changes(org: Org) -> None:
    locked = UNKNOWN[0]
    org.pipeline.override(TENANT, locked, account_id="001A2", by="ann")  # Contoso, by a person
    org.pipeline.decide(TENANT, locked)
    org.pipeline.write(TENANT, locked)
    assert org.decision(locked)["account_id"] == "001A2"
    org.settings(match_by_domain=True)
    run = run_all(org, dry_run=False)
    # its case follows the new setting (none -> domain), its account does not: 2 accounts change, not 3
    assert run.summary.cases == {"none -> domain": 3} and run.summary.fields == {"account_id": 2}
    record = org.pipeline.store.require(TENANT, locked)
    assert record.decision is not None and record.decision["account_id"] == "001A2"
    assert record.locked == ["account"]


def test_a_stopped_run_resumes_to_the_summary_of_an_uninterrupted_one(org: Org) -> None:
    org.settings(match_by_domain=True)
    whole = run_all(org, dry_run=True).summary.to_json()  # what an uninterrupted run finds
    run = reassociate.start(org.pipeline, TENANT, reassociate.parse_since("30d"), dry_run=False)
    seen: list[str] = []

    def ctrl_c_after_two(current: reassociate.Run, outcome: reassociate.Outcome) -> None:
        seen.append(outcome.call_id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reassociate.proceed(org.pipeline, TENANT, run.run_id, on_call=ctrl_c_after_two)
    stopped = reassociate.load(org.pipeline, TENANT, run.run_id)
    assert (stopped.state, stopped.done) == ("paused", 2)
    assert reassociate.latest_unfinished(org.pipeline, TENANT).run_id == run.run_id
    # killed between applying a call and counting it: the next call is stored but not counted
    next_call = org.redis.lindex(reassociate.run_key(TENANT, run.run_id, "todo"), 2)
    reassociate.visit(org.pipeline, TENANT, run.run_id, next_call, dry_run=False)
    part = reassociate.proceed(org.pipeline, TENANT, run.run_id, limit=2)
    assert (part.state, part.done) == ("paused", 4)
    done = reassociate.proceed(org.pipeline, TENANT, run.run_id)
    assert done.state == "done" and done.summary.to_json() == whole
    assert seen[:2] == [c for c in org.redis.lrange(reassociate.run_key(TENANT, run.run_id, "todo"), 0, 1)]
    assert org.redis.hlen(reassociate.run_key(TENANT, run.run_id, "before")) == 0
    assert reassociate.runs(org.pipeline, TENANT)[0].run_id == run.run_id


def test_another_tenants_calls_are_never_read_nor_written(org: Org) -> None:
    other = CallEvent.from_json(
        {**call_event("aircall:200", "b@globex.com", NOW).to_json(), "tenant": "other"}
    )
    org.pipeline.store.create("other", "aircall:200", other.to_json())
    org.pipeline.store.update("other", "aircall:200", lambda r: setattr(r, "decision", {"case": "none"}))
    before = org.redis.dump("callmatch:call:other:aircall:200")
    org.settings(match_by_domain=True)
    run = run_all(org, dry_run=False)
    assert run.total == 5 and "aircall:200" in UNKNOWN  # the same id, tenant acme's own
    assert org.redis.dump("callmatch:call:other:aircall:200") == before


def test_one_process_per_run_and_clear_errors() -> None:
    with pytest.raises(reassociate.ReassociateError) as refused:
        reassociate.parse_since("30x")
    assert str(refused.value) == "30x: not a duration (e.g. 30d, 12h)" and refused.value.field == "since"
    assert reassociate.parse_since("12h") == dt.timedelta(hours=12)
    assert reassociate.parse_since("2w") == dt.timedelta(days=14)
    for bad in ("0d", "d", "30", "-3d", "1.5d"):
        with pytest.raises(reassociate.ReassociateError):
            reassociate.parse_since(bad)


def test_a_run_another_process_holds_is_refused(org: Org) -> None:
    run = reassociate.start(org.pipeline, TENANT, reassociate.parse_since("30d"), dry_run=True)
    org.redis.set(reassociate.run_key(TENANT, run.run_id, "lock"), "someone-else", ex=30)
    with pytest.raises(reassociate.ReassociateError) as refused:
        reassociate.proceed(org.pipeline, TENANT, run.run_id)
    assert "being worked on by another process" in str(refused.value)
    with pytest.raises(reassociate.ReassociateError) as unknown:
        reassociate.load(org.pipeline, TENANT, "r-nope")
    assert "no re-association run 'r-nope'" in str(unknown.value)


def test_the_api_starts_a_background_run_and_shows_its_progress(world: World) -> None:  # noqa: F811
    client = world.make_client()
    viewer, admin = bearer(TOKENS["a-viewer"]), bearer(TOKENS["a-admin"])
    path = "/api/v1/tenants/a/reassociate"
    refused = client.post(path, headers=viewer, json={"since": "30d"})
    assert refused.status_code == 403 and "viewer token only reads" in refused.json()["error"]
    bad = client.post(path, headers=admin, json={"since": "30x", "dry_run": True})
    assert bad.status_code == 400
    assert bad.json() == {"error": "since: 30x: not a duration (e.g. 30d, 12h)", "field": "since"}
    assert world.redis.keys("callmatch:reassociate:*") == []
    started = client.post(path, headers=admin, json={"since": "30d", "dry_run": True})
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    [raw] = world.redis.lrange(queue_keys()[-1], 0, -1)
    assert json.loads(raw)["headers"]["task"] == reassociate.REASSOCIATE_TASK
    # what the worker's task does with it: one part of CHUNK calls (here all of them)
    reassociate.proceed(world.pipeline, "a", run_id, limit=reassociate.CHUNK, keep_running=True)
    progress = client.get(f"{path}/{run_id}", headers=viewer)
    assert progress.status_code == 200
    body = progress.json()
    assert (body["state"], body["done"], body["total"]) == ("done", 2, 2)
    assert body["summary"]["skipped"] == [  # nothing dropped silently: each one said, with why
        {"call_id": CALL, "reason": "owes its write stage: the pipeline has it"},
        {"call_id": DEAD, "reason": "a dead letter: replay it (`callmatch dead-letters replay`)"},
    ]
    other = client.get(f"{path}/{run_id}", headers=bearer(TOKENS["b-admin"]))
    assert other.status_code == 403
    unknown = client.get("/api/v1/tenants/b/reassociate/" + run_id, headers=bearer(TOKENS["b-admin"]))
    assert unknown.status_code == 404 and unknown.json()["field"] == "run_id"


def test_a_background_run_goes_through_a_real_worker_part_by_part(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run the API starts, sent as the API sends it, carried on by a Celery worker to its summary."""
    crm = {**CRM, "accounts": [*CRM["accounts"], GLOBEX]}
    with running_stack(redis_url, tmp_path, crm=crm, policy={"match_by_domain": "false"}) as stack:
        path = write_tenants(tmp_path, stack.emulator, match_by_domain=False)
        for key in (
            "E2E_SF_ACCESS_TOKEN",
            "E2E_SF_CLIENT_ID",
            "E2E_SF_CLIENT_SECRET",
            "E2E_SF_REFRESH_TOKEN",
        ):
            monkeypatch.setenv(key, stack.env[key])
        monkeypatch.setenv("E2E_AIRCALL_TOKEN", stack.env["E2E_AIRCALL_TOKEN"])
        source = TenantsSource(path)
        pipe = Pipeline(
            source.current,
            CallStore(stack.redis, clock=lambda: NOW),
            CrmFactory(stack.redis).crm_for,
            source=source,
        )
        emails = ["jane@acme.com", "a@globex.com", "b@globex.com", "jane@acme.com", "c@globex.com"]
        for i, email in enumerate(emails):
            pipe.accept(call_event(f"aircall:9{i}", email, NOW - dt.timedelta(days=1, hours=i)))
            pipe.decide(TENANT, f"aircall:9{i}")
            pipe.write(TENANT, f"aircall:9{i}")
        write_tenants(tmp_path, stack.emulator, match_by_domain=True)
        pipe.reload_tenants(force=True)
        run = reassociate.start(pipe, TENANT, reassociate.parse_since("30d"), dry_run=False, by="api")
        celery_sender(create_celery(redis_url))(reassociate.REASSOCIATE_TASK, [TENANT, run.run_id])
        wait_until(
            lambda: reassociate.load(pipe, TENANT, run.run_id).state == "done",
            timeout=60,
            what=f"the run to be done; see {tmp_path}/worker.log",
        )
        done = reassociate.load(pipe, TENANT, run.run_id).summary.to_json()
        assert done["cases"] == {"none -> domain": 3} and done["unchanged"] == 2 and done["failed"] == []
        assert stack.tasks_for("aircall:91")[0]["WhatId"] == "001A3"
        assert "callmatch.reassociate" in (tmp_path / "worker.log").read_text()
