"""`make bench` section: Salesforce API calls per association, batched vs one query per object.

A generated mix of calls is decided and written back through the real
simple-salesforce client against the emulator (HTTPS on loopback). Each call is
measured twice in the same run: through `SalesforceCrm` (composite rounds, semi-joins,
one SOSL for phones) and through the one-query-per-object baseline (the port's plain
`lookup`, every batch method its own query). The emulator counts API calls as
Salesforce does (a composite is one). Figures are printed, never asserted.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import Counter

from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.salesforce.client import SalesforceClient
from adapters.crm.salesforce.mapping import SalesforceSettings
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.scenario_gen import generate_scenario
from worker.config.scenario import parse_scenario
from worker.core.model import CrmSlice, OwnerMode, Scenario
from worker.core.port import CrmPort, Lookup
from worker.engine.rules import corresponding_activities
from worker.pipeline.association import associate


class PerObjectSalesforceCrm(SalesforceCrm):
    """The baseline: the port's default `lookup`, one query (one API call) per batch method."""

    def lookup(self, keys: Lookup) -> CrmSlice:
        return CrmPort.lookup(self, keys)


def _ordinary(scenario: Scenario) -> bool:
    """The everyday case the issue budgets at two calls: participants by email, default policy, no activity."""
    policy = scenario.policy
    return (
        all(p.phone is None for p in scenario.call.participants)
        and any(p.email for p in scenario.call.participants)
        and policy.owner is OwnerMode.OFF
        and not policy.use_contact_roles
        and not policy.match_by_domain
        and not corresponding_activities(scenario.call, policy, scenario.crm)
        and scenario.previous is None
    )


def _percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _measure(
    emulator: SalesforceEmulator,
    client: SalesforceClient,
    scenarios: list[Scenario],
    port_class: type[SalesforceCrm],
    settings: SalesforceSettings,
) -> tuple[list[int], list[int], list[int], Counter[str], float]:
    reads: list[int] = []
    writes: list[int] = []
    rounds: list[int] = []
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    for scenario in scenarios:
        emulator.org = seed_org(scenario.crm, profile=OrgProfile.full())
        port = port_class(client, settings, scenario.policy.default_region)
        before = emulator.stats.api_calls
        paths = Counter(emulator.stats.by_path)
        decision = associate(scenario.call, scenario.policy, port, scenario.previous)
        middle = emulator.stats.api_calls
        kinds.update(Counter(emulator.stats.by_path) - paths)
        port.upsert_activity(scenario.call, decision)
        reads.append(middle - before)
        writes.append(emulator.stats.api_calls - middle)
        rounds.append(port.stats.rounds)
    return reads, writes, rounds, kinds, time.perf_counter() - started


def _report(
    name: str,
    reads: list[int],
    writes: list[int],
    rounds: list[int],
    kinds: Counter[str],
    seconds: float,
    phones: list[bool],
    ordinary: list[bool],
) -> None:
    totals = [r + w for r, w in zip(reads, writes, strict=True)]
    count = len(totals)
    spread = Counter(totals)
    print(f"  {name}")
    print(
        f"    API calls / association  mean {statistics.fmean(totals):.2f}  p50 {_percentile(totals, 0.5)}"
        f"  p95 {_percentile(totals, 0.95)}  max {max(totals)}"
        f"  (reads {statistics.fmean(reads):.2f} + write {statistics.fmean(writes):.2f})"
    )
    print(f"    read rounds / association mean {statistics.fmean(rounds):.2f}, max {max(rounds)}")
    per_kind = ", ".join(f"{kind} {n / count:.2f}" for kind, n in sorted(kinds.items()))
    print(f"    read calls by resource      {per_kind} (per association)")
    for label, flag in (("with a phone", True), ("email only", False)):
        picked = [t for t, p in zip(totals, phones, strict=True) if p is flag]
        if picked:
            print(f"    calls {label:<13}        mean {statistics.fmean(picked):.2f} over {len(picked):,}")
    picked = [t for t, o in zip(totals, ordinary, strict=True) if o]
    if picked:
        print(
            f"    ordinary email calls       mean {statistics.fmean(picked):.2f}, max {max(picked)}"
            f" over {len(picked):,} (emails only, default policy, no activity for the call)"
        )
    print(f"    associations at <= 2 calls  {sum(v for k, v in spread.items() if k <= 2) / count:.1%}")
    print(f"    distribution                {dict(sorted(spread.items()))}")
    print(f"    wall time                   {seconds / count * 1000:.1f} ms / association (loopback HTTPS)")


def main(count: int | None = None, seed: int = 7) -> None:
    count = count or int(os.environ.get("BENCH_SALESFORCE_COUNT", "1000"))
    rng = random.Random(seed)
    scenarios = [parse_scenario(generate_scenario(rng)) for _ in range(count)]
    settings = SalesforceSettings()
    with SalesforceEmulator(seed_org(CrmSlice(), profile=OrgProfile.full())) as emulator:
        client = SalesforceClient(
            tenant="bench",
            instance_url=emulator.instance_url,
            access_token=emulator.issue_token(),
            verify=emulator.ca_file,
        )
        print(f"salesforce: API calls per association, {count:,} generated calls (seed {seed})")
        phones = [any(p.phone for p in s.call.participants) for s in scenarios]
        ordinary = [_ordinary(s) for s in scenarios]
        print(f"  mix: {sum(phones):,} calls with a participant phone, {count - sum(phones):,} without")
        batched = _measure(emulator, client, scenarios, SalesforceCrm, settings)
        _report("SalesforceCrm (composite rounds, SOSL for phones)", *batched, phones, ordinary)
        baseline = _measure(emulator, client, scenarios, PerObjectSalesforceCrm, settings)
        _report("baseline: one query per object (the port's plain lookup)", *baseline, phones, ordinary)
        saved = 1 - (sum(batched[0]) + sum(batched[1])) / (sum(baseline[0]) + sum(baseline[1]))
        print(f"  batching saves {saved:.0%} of API calls over the baseline")


if __name__ == "__main__":
    main()
