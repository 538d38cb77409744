"""A batch re-write of existing activities: one batch update and v4 batch link changes, links as the
one-by-one path leaves them, a refused input its own call's outcome."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from typing import Any

from adapters.crm.hubspot.adapter import HubSpotCrm, TenantCache
from adapters.crm.hubspot.client import HubSpotClient, TokenSource
from adapters.crm.hubspot.mapping import HubSpotMapping
from adapters.errors import FatalError
from tests.adapters.crm.hubspot.many_calls import many_calls
from tests.adapters.crm.hubspot.support import TOKEN, Sleeps, portal, settings
from tests.emulators.hubspot import HubSpotEmulator
from worker.core.model import Call, Decision
from worker.core.port import WrittenActivity
from worker.pipeline.association import associate
from worker.pipeline.batching import BatchItem, associate_many

BROKEN = 7
"""The call whose re-write names a contact the portal lacks (HubSpot refuses that link)."""


def _changed(decisions: list[Decision]) -> list[Decision]:
    """Each call re-decided: the next call's company and deal, its contact added; one unknown contact."""
    out = []
    for i, decision in enumerate(decisions):
        other = decisions[(i + 1) % len(decisions)]
        contacts = (*decision.contact_ids, *other.contact_ids, *(("999999",) if i == BROKEN else ()))
        out.append(
            dataclasses.replace(
                decision,
                account_id=other.account_id,
                opportunity_id=other.opportunity_id,
                contact_ids=contacts,
            )
        )
    return out


def _links(emulator: HubSpotEmulator, calls: list[Call]) -> dict[str, dict[str, set[str]]]:
    """Call id -> target kind -> the ids its activity is linked to."""
    store = emulator.store
    by_call = {o.properties.get("callmatch_call_id"): o.id for o in store.objects["calls"].values()}
    return {
        call.id: {
            to_kind: set(store.associated("calls", by_call[call.id], to_kind))
            for to_kind in ("contacts", "companies", "deals")
        }
        for call in calls
    }


def _count_updates(emulator: HubSpotEmulator) -> Counter[str]:
    """Object id -> property updates the portal applied (PATCH or batch update alike)."""
    counts: Counter[str] = Counter()
    store = emulator.store
    update: Callable[..., Any] = store.update

    def counted(kind: str, object_id: str, props: dict[str, str], now: str) -> Any:
        counts[object_id] += 1
        return update(kind, object_id, props, now)

    store.update = counted  # type: ignore[method-assign]
    return counts


def test_rewriting_20_existing_activities_takes_6_requests_not_one_by_one() -> None:
    """20 existing calls re-written with changed decisions: 6 requests (contacts, companies and deals
    links created, companies and deals archived, one batch update) plus 3 for the refused call alone;
    one by one the same re-write takes 109."""
    scenario, calls = many_calls(20)
    mapping = HubSpotMapping(default_region="US")
    with portal(scenario) as batched, portal(scenario) as single:
        # the batch path
        client = HubSpotClient(settings(batched), TokenSource(TOKEN), sleep=Sleeps())
        cache = TenantCache()
        first = HubSpotCrm(client, mapping, cache)
        decisions = associate_many([BatchItem(c, scenario.policy) for c in calls], first)
        created = first.upsert_activities(list(zip(calls, decisions, strict=True)))
        assert all(isinstance(w, WrittenActivity) and w.created for w in created)
        again = HubSpotCrm(client, mapping, cache)
        associate_many([BatchItem(c, scenario.policy) for c in calls], again)  # the round's reads
        changed = _changed(decisions)
        batched.reset_counts()
        updates = _count_updates(batched)
        written = again.upsert_activities(list(zip(calls, changed, strict=True)))
        requests = dict(batched.requests)
        print(f"re-write of 20 existing activities: {batched.total()} requests {requests}")
        assert isinstance(written[BROKEN], FatalError)
        for i, (before, after) in enumerate(zip(created, written, strict=True)):
            if i == BROKEN:
                continue
            assert isinstance(before, WrittenActivity) and isinstance(after, WrittenActivity)
            assert after.id == before.id and not after.created
        ids = [w.id for w in created if isinstance(w, WrittenActivity)]
        assert sorted(updates) == sorted(ids) and set(updates.values()) == {1}, updates
        assert requests["POST /crm/v3/objects/calls/batch/update"] == 1
        assert requests.get("PATCH /crm/v3/objects/calls/{id}") == 1  # the refused call, alone
        assert batched.total() <= 6 + 3, requests

        # the one-by-one path on a second portal, same writes
        client2 = HubSpotClient(settings(single), TokenSource(TOKEN), sleep=Sleeps())
        cache2 = TenantCache()
        for call, decision in zip(calls, decisions, strict=True):
            HubSpotCrm(client2, mapping, cache2).upsert_activity(call, decision)
        alone = HubSpotCrm(client2, mapping, cache2)
        for call in calls:
            associate(call, scenario.policy, alone)
        single.reset_counts()
        for i, (call, decision) in enumerate(zip(calls, changed, strict=True)):
            try:
                alone.upsert_activity(call, decision)
            except FatalError:
                assert i == BROKEN
        print(f"one by one: {single.total()} requests")
        assert single.total() > 3 * batched.total()
        assert _links(batched, calls) == _links(single, calls)
        wanted = {
            call.id: {
                "contacts": set(d.contact_ids) - {"999999"},
                "companies": {d.account_id} - {None},
                "deals": {d.opportunity_id} - {None},
            }
            for i, (call, d) in enumerate(zip(calls, changed, strict=True))
            if i != BROKEN
        }
        got = _links(batched, calls)
        assert {k: v for k, v in got.items() if k in wanted} == wanted
