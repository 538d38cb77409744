"""Cross-call batching: every call of a batch is decided exactly as alone (trace included), for fewer reads.

The CRM is ONE CRM shared by the batch: generated scenarios with ids made unique
per scenario, merged, so calls share people (emails, phones), domains and users,
read through the reference adapter (`ScenarioCrm`). Run as a module
(`python -m tests.worker.test_batching`) it prints the reads of 20 calls alone and batched.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.crm.scenario import RedisActivityLog, ScenarioCrm
from adapters.errors import FatalError, RateLimitedError, RetryableError
from tests.conftest import example_dir
from tests.scenario_gen import generate_scenario
from tests.worker.test_properties_v1_1 import generate_v1_1
from worker.config.scenario import loads_scenario, parse_scenario
from worker.config.tenants import CrmConfig, Tenant, Tenants
from worker.core.model import Call, CrmSlice, Decision, Opportunity, Preference
from worker.core.port import Lookup, PortStats, WrittenActivity
from worker.ingest.events import CallEvent
from worker.pipeline.association import PreferencesFor, associate
from worker.pipeline.batching import BatchItem, associate_many
from worker.pipeline.service import BusyError, NotReadyError, Pipeline
from worker.pipeline.store import CallStatus, CallStore, Stage

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(min_value=0, max_value=2**32 - 1)

ID_KEYS = {"id", "account_id", "opportunity_id", "contact_id", "converted_contact_id", "owner_id", "call_id"}
ID_LISTS = {"contact_ids", "account_ids", "lead_ids"}


def _unique_ids(value: Any, prefix: str) -> Any:
    """The document with every record id and reference prefixed (emails, phones and domains stay shared)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in ID_KEYS and isinstance(item, str):
                out[key] = prefix + item
            elif key in ID_LISTS and isinstance(item, list):
                out[key] = [prefix + i if isinstance(i, str) else i for i in item]
            else:
                out[key] = _unique_ids(item, prefix)
        return out
    if isinstance(value, list):
        return [_unique_ids(item, prefix) for item in value]
    return value


class Batch:
    """Calls of one tenant on one shared CRM: the items, the CRM, and L1's preferences of the whole tenant."""

    def __init__(self, seed: int, size: int) -> None:
        rng = random.Random(seed)
        documents = [
            _unique_ids(generate_v1_1(rng) if rng.random() < 0.5 else generate_scenario(rng), f"s{k}-")
            for k in range(size)
        ]
        scenarios = [parse_scenario(d) for d in documents]
        tenant = scenarios[0].policy
        names = ("users", "accounts", "contacts", "leads", "opportunities", "activities", "preferences")
        self.crm = CrmSlice(
            **{name: tuple(r for s in scenarios for r in getattr(s.crm, name)) for name in names}
        )
        self.region, self.domain_match = tenant.default_region, tenant.domain_match
        source = self.preferences_source()
        self.items = [
            BatchItem(
                s.call,
                # One tenant: one region and one way to read domains (the port's); the rest of the policy varies.
                replace(
                    s.policy if rng.random() < 0.5 else tenant,
                    default_region=self.region,
                    domain_match=self.domain_match,
                ),
                s.previous,
                source if rng.random() < 0.5 else s.crm.preferences,
            )
            for s in scenarios
        ]

    def preferences_source(self) -> PreferencesFor:
        preferences = self.crm.preferences

        def live(contact_ids: Any, opportunities: list[Opportunity] | Any) -> tuple[Preference, ...]:
            closed = {o.id for o in opportunities if o.is_closed}
            wanted = set(contact_ids)
            return tuple(p for p in preferences if p.contact_id in wanted and p.opportunity_id not in closed)

        return live

    def port(self) -> ScenarioCrm:
        return ScenarioCrm(replace(self.crm, preferences=()), self.region, domain_match=self.domain_match)

    def alone(self) -> tuple[dict[str, Decision], PortStats]:
        stats = PortStats()
        decisions = {}
        for item in self.items:
            port = self.port()
            decisions[item.call.id] = associate(item.call, item.policy, port, item.previous, item.preferences)
            stats.rounds += port.stats.rounds
            stats.requests += port.stats.requests
        return decisions, stats

    def batched(self, order: int) -> tuple[dict[str, Decision], PortStats]:
        items = list(self.items)
        random.Random(order).shuffle(items)
        port = self.port()
        decisions = associate_many(items, port)
        return {d.call_id: d for d in decisions}, port.stats


@SETTINGS
@given(seed=seeds, order=seeds, size=st.integers(min_value=1, max_value=20))
def test_each_call_of_a_batch_is_decided_as_alone_trace_included(seed: int, order: int, size: int) -> None:
    batch = Batch(seed, size)
    alone, _ = batch.alone()
    batched, _ = batch.batched(order)
    assert batched == alone  # Decision equality: case, ids, candidates and the trace


def test_batches_of_twenty_on_many_crms_are_decided_as_alone() -> None:
    """Seeded and wide: a shared slice seen whole by every call does change traces (A2's order, L1, U1.1) here."""
    for seed in range(60):
        batch = Batch(seed, 20)
        assert batch.batched(seed)[0] == batch.alone()[0], seed


def test_calls_sharing_people_share_their_reads() -> None:
    """The shared CRM really is shared (else the property above proves little), and is read in fewer rounds."""
    batch = Batch(7, 20)
    emails = [{p.email for p in item.call.participants if p.email} for item in batch.items]
    assert any(a & b for i, a in enumerate(emails) for b in emails[i + 1 :])
    alone, alone_stats = batch.alone()
    batched, batched_stats = batch.batched(0)
    assert batched == alone
    assert batched_stats.rounds < alone_stats.rounds / 4
    assert batched_stats.requests < alone_stats.requests / 4


def test_a_batch_of_one_reads_like_the_call_alone() -> None:
    batch = Batch(3, 1)
    alone, alone_stats = batch.alone()
    batched, batched_stats = batch.batched(0)
    assert batched == alone
    assert (batched_stats.rounds, batched_stats.requests) == (alone_stats.rounds, alone_stats.requests)


def main(argv: list[str]) -> int:
    """Rounds and requests per association, 20 calls alone vs in one batch (seeds 0..9)."""
    size = int(argv[0]) if argv else 20
    totals = {"alone": [0, 0], "batched": [0, 0]}
    for seed in range(10):
        batch = Batch(seed, size)
        alone, a = batch.alone()
        batched, b = batch.batched(seed)
        assert batched == alone
        totals["alone"][0] += a.rounds
        totals["alone"][1] += a.requests
        totals["batched"][0] += b.rounds
        totals["batched"][1] += b.requests
    calls = 10 * size
    for name, (rounds, requests) in totals.items():
        print(
            f"{name:8} {size} calls x 10 batches: {rounds / calls:.2f} rounds, {requests / calls:.2f} requests per association"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# The service: decide_batch / write_batch over the scenario CRM and a real Redis.

NOW = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.UTC)
PEOPLE: list[list[dict[str, Any]]] = [
    [{"email": "jane@acme.com", "name": "Jane"}],
    [{"email": None, "phone": "06 12 34 56 78"}],
    [{"email": "stranger@nowhere.example"}],
    [{"email": "jane@acme.com"}, {"email": "bob@acme.com"}],
    [],
]


class RefusingCrm(ScenarioCrm):
    """The scenario CRM refusing one call's record (a validation rule), or every write (the rate limit)."""

    refused: str | None = None
    limited = False
    reads_fail = False

    def upsert_activity(self, call: Call, decision: Decision) -> WrittenActivity:
        if self.limited:
            raise RateLimitedError("scenario", "daily limit", retry_after=30.0)
        if call.id == self.refused:
            raise FatalError("scenario", "FIELD_CUSTOM_VALIDATION_EXCEPTION")
        return super().upsert_activity(call, decision)

    def lookup(self, keys: Lookup) -> CrmSlice:
        if self.reads_fail:
            raise RetryableError("scenario", "503 Service Unavailable")
        return super().lookup(keys)


class Service:
    """Two tenants on the same CRM and policy: `batch` is decided in batches, `alone` call by call."""

    def __init__(self, redis_client: Any) -> None:
        scenario = loads_scenario((example_dir() / "basic.json").read_text())
        self.scenario = scenario
        self.ports: list[RefusingCrm] = []
        self.refused: str | None = None
        self.limited = False
        self.reads_fail = False
        tenants = {
            name: Tenant(name=name, crm=CrmConfig(kind="scenario"), policy=scenario.policy)
            for name in ("batch", "alone")
        }
        self.pipe = Pipeline(Tenants(tenants), CallStore(redis_client, clock=lambda: NOW), self.crm_for)

    def crm_for(self, tenant: Tenant) -> RefusingCrm:
        port = RefusingCrm(
            self.scenario.crm,
            self.scenario.policy.default_region,
            RedisActivityLog(self.pipe.store.redis, tenant.name),
        )
        port.refused, port.limited, port.reads_fail = self.refused, self.limited, self.reads_fail
        self.ports.append(port)
        return port

    def accept(self, tenant: str, call_id: str, participants: list[dict[str, Any]]) -> None:
        call = json.loads((example_dir() / "basic.json").read_text())["call"]
        self.pipe.accept(
            CallEvent.from_json(
                {
                    "tenant": tenant,
                    "provider": "aircall",
                    "call_id": call_id,
                    "event_id": f"evt-{call_id}",
                    "kind": "call",
                    "received_at": "2026-03-10T09:53:00Z",
                    "started_at": call["started_at"],
                    "ended_at": call["ended_at"],
                    "organizer": call["organizer"],
                    "participants": participants,
                    "complete": True,
                }
            )
        )


@pytest.fixture()
def service(redis_client: Any) -> Service:
    return Service(redis_client)


CALL_IDS = [f"aircall:{n}" for n in range(len(PEOPLE))]


def test_decide_batch_decides_and_keeps_like_decide_with_one_round_of_reads_for_all(service: Service) -> None:
    for call_id, people in zip(CALL_IDS, PEOPLE, strict=True):
        service.accept("batch", call_id, people)
        service.accept("alone", call_id, people)
    alone = {call_id: service.pipe.decide("alone", call_id) for call_id in CALL_IDS}
    alone_requests = sum(p.stats.requests for p in service.ports)
    service.ports.clear()
    batched = service.pipe.decide_batch("batch", [*CALL_IDS, "aircall:missing"])
    assert batched == {**alone, "aircall:missing": None}
    assert len(service.ports) == 1 and service.ports[0].stats.requests < alone_requests
    for call_id in CALL_IDS:
        a, b = service.pipe.explain("alone", call_id), service.pipe.explain("batch", call_id)
        assert (b.status, b.next_stage, b.decision) == (CallStatus.DECIDED, Stage.WRITE.value, a.decision)
    assert service.pipe.decide_batch("batch", CALL_IDS) == dict.fromkeys(CALL_IDS), (
        "a duplicate: nothing owed"
    )
    assert len(service.ports) == 1, "nothing owed: no CRM read"


def test_failed_reads_leave_every_call_owing_its_association(service: Service) -> None:
    for call_id, people in zip(CALL_IDS, PEOPLE, strict=True):
        service.accept("batch", call_id, people)
    service.reads_fail = True
    with pytest.raises(RetryableError):
        service.pipe.decide_batch("batch", CALL_IDS)
    for call_id in CALL_IDS:
        record = service.pipe.explain("batch", call_id)
        assert record.decision is None and record.status is CallStatus.RECEIVED
    service.reads_fail = False
    assert all(d is not None for d in service.pipe.decide_batch("batch", CALL_IDS).values())


def test_write_batch_writes_each_call_once_and_one_refusal_stays_that_calls_own(service: Service) -> None:
    for call_id, people in zip(CALL_IDS, PEOPLE, strict=True):
        service.accept("batch", call_id, people)
    service.accept("batch", "aircall:undecided", PEOPLE[0])
    service.pipe.decide_batch("batch", CALL_IDS)
    busy = service.pipe.store.lock("write", "batch", CALL_IDS[4], 60.0)
    assert busy is not None
    service.refused = CALL_IDS[1]
    out = service.pipe.write_batch("batch", [*CALL_IDS, "aircall:undecided"])
    assert isinstance(out[CALL_IDS[1]], FatalError)
    assert isinstance(out[CALL_IDS[4]], BusyError)
    assert isinstance(out["aircall:undecided"], NotReadyError)
    written = [out[c] for c in (CALL_IDS[0], CALL_IDS[2], CALL_IDS[3])]
    assert all(isinstance(w, WrittenActivity) and w.created for w in written)
    assert service.pipe.explain("batch", CALL_IDS[1]).next_stage == Stage.WRITE.value, "still owed"
    assert service.pipe.explain("batch", CALL_IDS[0]).status is CallStatus.WRITTEN
    service.pipe.store.unlock("write", "batch", CALL_IDS[4], busy)
    service.refused = None
    again = service.pipe.write_batch("batch", CALL_IDS)
    assert again[CALL_IDS[0]] is None, "already written: a duplicate message"
    assert all(isinstance(again[c], WrittenActivity) for c in (CALL_IDS[1], CALL_IDS[4]))
    activities = RedisActivityLog(service.pipe.store.redis, "batch").all()
    assert sorted(a["call_id"] for a in activities) == sorted(CALL_IDS)
    assert all(a["writes"] == 1 for a in activities)


def test_a_rate_limit_stops_the_whole_batch_and_keeps_nothing(service: Service) -> None:
    for call_id, people in zip(CALL_IDS, PEOPLE, strict=True):
        service.accept("batch", call_id, people)
    service.pipe.decide_batch("batch", CALL_IDS)
    service.limited = True
    with pytest.raises(RateLimitedError):
        service.pipe.write_batch("batch", CALL_IDS)
    assert all(service.pipe.explain("batch", c).next_stage == Stage.WRITE.value for c in CALL_IDS)
    service.limited = False
    out = service.pipe.write_batch("batch", CALL_IDS)  # the locks were released
    assert all(isinstance(w, WrittenActivity) for w in out.values())
