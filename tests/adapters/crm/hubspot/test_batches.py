"""A batch of calls through one port: A1 by idProperty for all of them, one batch create per kind,
each decision what it is alone, a refused input its own call's outcome."""

from __future__ import annotations

import dataclasses

from adapters.crm.hubspot.adapter import HubSpotCrm, TenantCache
from adapters.crm.hubspot.client import HubSpotClient, TokenSource
from adapters.crm.hubspot.mapping import HubSpotMapping
from adapters.errors import FatalError
from tests.adapters.crm.hubspot.many_calls import many_calls
from tests.adapters.crm.hubspot.support import TOKEN, Sleeps, portal, settings
from worker.core.port import WrittenActivity
from worker.pipeline.association import associate
from worker.pipeline.batching import BatchItem, associate_many


def test_a_batch_of_twenty_reads_and_writes_in_few_requests_and_decides_as_alone() -> None:
    scenario, calls = many_calls(20)
    mapping = HubSpotMapping(default_region="US")
    with portal(scenario) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        cache = TenantCache()
        alone = [associate(c, scenario.policy, HubSpotCrm(client, mapping, cache)) for c in calls]
        emulator.reset_counts()
        crm = HubSpotCrm(client, mapping, cache)
        decisions = associate_many([BatchItem(c, scenario.policy) for c in calls], crm)
        assert [d.to_json() for d in decisions] == [d.to_json() for d in alone]
        assert emulator.requests["POST /crm/v3/objects/calls/batch/read"] == 1
        assert emulator.requests["POST /crm/v3/objects/meetings/batch/read"] == 1
        assert not emulator.requests["POST /crm/v3/objects/calls/search"]
        reads = emulator.total()
        written = crm.upsert_activities(list(zip(calls, decisions, strict=True)))
        assert all(isinstance(w, WrittenActivity) and w.created for w in written)
        # one batch create, and the organizer's owner once (the tenant cache had not read it yet)
        assert emulator.total() - reads == 2, dict(emulator.requests)
        assert emulator.requests["GET /crm/v3/owners/"] == 1
        assert emulator.requests["POST /crm/v3/objects/calls/batch/create"] == 1
        assert reads + 1 <= 20, dict(emulator.requests)
        for call, done in zip(calls, written, strict=True):
            assert isinstance(done, WrittenActivity)
            obj = emulator.store.objects["calls"][done.id]
            assert obj.properties["callmatch_call_id"] == call.id
        # written again: the ledger-less port finds them by idProperty and updates, creating none
        again = HubSpotCrm(client, mapping, cache)
        decisions = associate_many([BatchItem(c, scenario.policy) for c in calls], again)
        second = again.upsert_activities(list(zip(calls, decisions, strict=True)))
        assert [w.id for w in second if isinstance(w, WrittenActivity)] == [
            w.id for w in written if isinstance(w, WrittenActivity)
        ]
        assert not any(isinstance(w, WrittenActivity) and w.created for w in second)


def test_an_input_hubspot_refuses_is_its_own_calls_outcome() -> None:
    scenario, calls = many_calls(3)
    mapping = HubSpotMapping(default_region="US")
    with portal(scenario) as emulator:
        client = HubSpotClient(settings(emulator), TokenSource(TOKEN), sleep=Sleeps())
        crm = HubSpotCrm(client, mapping, TenantCache())
        decisions = associate_many([BatchItem(c, scenario.policy) for c in calls], crm)
        broken = dataclasses.replace(decisions[1], contact_ids=("999999",))
        written = crm.upsert_activities(
            [(calls[0], decisions[0]), (calls[1], broken), (calls[2], decisions[2])]
        )
        assert isinstance(written[0], WrittenActivity) and isinstance(written[2], WrittenActivity)
        assert isinstance(written[1], FatalError)
        assert emulator.requests["POST /crm/v3/objects/calls/batch/create"] == 1
        assert {o.properties["callmatch_call_id"] for o in emulator.store.objects["calls"].values()} == {
            calls[0].id,
            calls[2].id,
        }
