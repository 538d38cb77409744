"""HubSpot API calls per association on each portal profile, for `make bench` (printed, never asserted).

Generated calls (tests.scenario_gen) are decided and written back through `HubSpotCrm`
against the emulator on a plain portal (HubSpot's defaults only), the same portal after
`callmatch setup`, and a full one (every optional property). Capabilities are discovered
once per portal (a warm tenant); each association has its own owner and pipeline cache.
On a plain portal the write is refused before any request (MissingRequirementError).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from adapters.crm.hubspot.adapter import HubSpotCrm, TenantCache
from adapters.crm.hubspot.capabilities import PortalCapabilities
from adapters.crm.hubspot.client import HubSpotClient, HubSpotSettings, TokenSource
from adapters.crm.hubspot.mapping import HubSpotMapping
from adapters.crm.readiness import MissingRequirementError
from tests.adapters.crm.hubspot.support import as_portal_holds
from tests.emulators.hubspot import HubSpotEmulator, Limits, PortalProfile, Store
from tests.scenario_gen import generate_scenarios
from worker.config.scenario import parse_scenario
from worker.core.model import Scenario
from worker.pipeline.association import associate, decide_scenario

TOKEN = "pat-emulator-token"
PROFILES: dict[str, Callable[[], PortalProfile]] = {
    "plain": PortalProfile.plain,
    "after setup": PortalProfile.after_setup,
    "full": PortalProfile.full,
}


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def _stats(values: list[int]) -> str:
    return (
        f"mean {statistics.mean(values):5.2f}  p50 {_pct(values, 0.5):3.0f}  "
        f"p95 {_pct(values, 0.95):3.0f}  max {max(values):3d}"
    )


def _without_trace(decision: Any) -> dict[str, Any]:
    return {k: v for k, v in decision.to_json().items() if k != "trace"}


def run_profile(scenarios: list[Scenario], profile: PortalProfile) -> dict[str, Any]:
    """Every scenario on one emulated portal of this profile, one tenant (capabilities shared)."""
    reads: list[int] = []
    writes: list[int] = []
    refused = 0
    same = 0
    capabilities = PortalCapabilities()
    discovery = 0
    started = time.perf_counter()
    with HubSpotEmulator(Store(), limits=Limits(burst=10**9, search=10**9, daily=10**9)) as emulator:
        client = HubSpotClient(HubSpotSettings(tenant="bench", host=emulator.url), TokenSource(TOKEN))
        for scenario in scenarios:
            emulator.store = Store.from_scenario(scenario, profile=profile)
            mapping = HubSpotMapping(default_region=scenario.policy.default_region)
            crm = HubSpotCrm(client, mapping, TenantCache(capabilities=capabilities))
            decision = associate(scenario.call, scenario.policy, crm, scenario.previous)
            discovery += crm.stats.by_method.get("capabilities", 0)
            read = crm.stats.requests - crm.stats.by_method.get("capabilities", 0)
            expected = decide_scenario(as_portal_holds(scenario, profile))
            same += _without_trace(decision) == _without_trace(expected)
            try:
                crm.upsert_activity(scenario.call, decision)
            except MissingRequirementError:
                refused += 1
            reads.append(read)
            writes.append(crm.stats.requests - read - crm.stats.by_method.get("capabilities", 0))
    return {
        "reads": reads,
        "writes": writes,
        "refused": refused,
        "same": same,
        "discovery": discovery,
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cost-count", type=int, default=1000, help="generated calls per profile")
    parser.add_argument("--cost-seed", type=int, default=10)
    args, _ = parser.parse_known_args(argv)
    scenarios = [parse_scenario(d) for d in generate_scenarios(args.cost_count, args.cost_seed)]
    print(
        f"hubspot: API calls per association by portal profile ({args.cost_count:,} generated calls, "
        f"seed {args.cost_seed}; capabilities discovered once per portal)"
    )
    for name, make in PROFILES.items():
        result = run_profile(scenarios, make())
        total = [r + w for r, w in zip(result["reads"], result["writes"], strict=True)]
        print(f"  {name}:")
        print(f"    reads        {_stats(result['reads'])}")
        print(f"    write-back   {_stats(result['writes'])}")
        print(f"    total        {_stats(total)}")
        print(
            f"    discovery {result['discovery']} requests per tenant (5 property lists, the pipelines); "
            f"writes refused before any request (MissingRequirementError): {result['refused']}; "
            f"decisions as the portal can hold them: {result['same']}/{len(scenarios)}; "
            f"{result['seconds']:.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
