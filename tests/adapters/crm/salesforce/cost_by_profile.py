"""`make bench` section: Salesforce API calls per association on each org profile.

The same generated calls are decided and written back through the real
simple-salesforce client against the emulator seeded with each profile: the plain
org once `callmatch setup` ran (`OrgProfile.after_setup()`), every optional feature
on (`full()`), and the plain org without setup (`plain()`: the reads work, the write
is refused before any request). The tenant's capabilities are discovered once per
profile and then served from the cache, as a worker's are; that discovery is shown
apart. Figures are printed, never asserted.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections import Counter

from adapters.crm.readiness import CapabilityCache, MissingRequirementError
from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.salesforce.capabilities import Capabilities
from adapters.crm.salesforce.client import SalesforceClient
from adapters.crm.salesforce.mapping import SalesforceSettings
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.scenario_gen import generate_scenario
from worker.config.scenario import parse_scenario
from worker.core.model import CrmSlice, Scenario
from worker.pipeline.association import associate

PROFILES = (
    ("plain org after setup", OrgProfile.after_setup()),
    ("every feature on (full)", OrgProfile.full()),
    ("plain org, no setup", OrgProfile.plain()),
)


def _percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _profile(name: str, profile: OrgProfile, scenarios: list[Scenario]) -> None:
    settings = SalesforceSettings()
    with SalesforceEmulator(seed_org(CrmSlice(), profile=profile)) as emulator:
        client = SalesforceClient(
            tenant="bench",
            instance_url=emulator.instance_url,
            access_token=emulator.issue_token(),
            verify=emulator.ca_file,
        )
        capabilities = Capabilities(client, CapabilityCache(None, "salesforce:bench:capabilities"))
        started = time.perf_counter()
        capabilities.get()
        discovery_ms = (time.perf_counter() - started) * 1000
        discovery_calls = client.api_calls
        reads: list[int] = []
        writes: list[int] = []
        refused = 0
        kinds: Counter[str] = Counter()
        started = time.perf_counter()
        for scenario in scenarios:
            emulator.org = seed_org(scenario.crm, profile=profile)
            port = SalesforceCrm(client, settings, scenario.policy.default_region, capabilities=capabilities)
            before = emulator.stats.api_calls
            paths = Counter(emulator.stats.by_path)
            decision = associate(scenario.call, scenario.policy, port, scenario.previous)
            middle = emulator.stats.api_calls
            kinds.update(Counter(emulator.stats.by_path) - paths)
            try:
                port.upsert_activity(scenario.call, decision)
            except MissingRequirementError:
                refused += 1
            reads.append(middle - before)
            writes.append(emulator.stats.api_calls - middle)
        seconds = time.perf_counter() - started
    totals = [r + w for r, w in zip(reads, writes, strict=True)]
    count = len(totals)
    print(f"  {name}")
    print(
        f"    capabilities discovery     {discovery_calls} API call ({discovery_ms:.0f} ms), once per tenant "
        "and TTL, then 0 per association"
    )
    print(
        f"    API calls / association  mean {statistics.fmean(totals):.2f}  p50 {_percentile(totals, 0.5)}"
        f"  p95 {_percentile(totals, 0.95)}  max {max(totals)}"
        f"  (reads {statistics.fmean(reads):.2f} + write {statistics.fmean(writes):.2f})"
    )
    per_kind = ", ".join(f"{kind} {n / count:.2f}" for kind, n in sorted(kinds.items()))
    print(f"    read calls by resource      {per_kind} (per association)")
    if refused:
        print(
            f"    writes refused              {refused:,} of {count:,} (MissingRequirementError, "
            f"{sum(writes)} write requests sent)"
        )
    print(f"    wall time                   {seconds / count * 1000:.1f} ms / association (loopback HTTPS)")


def main(count: int | None = None, seed: int = 7) -> None:
    count = count or int(os.environ.get("BENCH_SALESFORCE_PROFILE_COUNT", "300"))
    rng = random.Random(seed)
    scenarios = [parse_scenario(generate_scenario(rng)) for _ in range(count)]
    print(
        f"salesforce: API calls per association on each org profile, {count:,} generated calls (seed {seed})"
    )
    for name, profile in PROFILES:
        _profile(name, profile, scenarios)


if __name__ == "__main__":
    main()
