"""`make bench` section: Salesforce API calls per association, one call at a time and in batches of 20.

A generated mix of calls is decided and written back through the real
simple-salesforce client against the emulator (HTTPS on loopback); the emulator
counts API calls as Salesforce does (a composite is one). In the same run:

- one call at a time through `SalesforceCrm` as it is, with the tenant's users cache
  warm (a tenant's users are read once per `users_ttl`, not per call) and cold;
- the same calls through the adapter as it was at commit 0406385 (issue #15's
  baseline, loaded from git) or, without git, the one-query-per-object port;
- batches of 20 calls of one tenant: one round of reads for the batch
  (`worker.pipeline.batching.associate_many`) and one `upsert_activities` (sObject
  Collections). Each batch's scenarios share one org: their ids, emails and domains
  are namespaced so that they do not meet (phones are left as generated).

Figures are printed, never asserted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from adapters.crm.salesforce.adapter import SalesforceCrm, UserCache
from adapters.crm.salesforce.client import SalesforceClient
from adapters.crm.salesforce.mapping import SalesforceSettings
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.scenario_gen import generate_scenario
from worker.config.scenario import parse_scenario
from worker.core.model import CrmSlice, OwnerMode, Scenario
from worker.core.normalize import norm_email
from worker.core.port import CrmPort, Lookup, merge_slices
from worker.engine.rules import corresponding_activities
from worker.pipeline.association import associate
from worker.pipeline.batching import BatchItem, associate_many

BASELINE_COMMIT = "0406385"
BATCH = 20


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


def _warm_users(
    client: SalesforceClient, scenario: Scenario, settings: SalesforceSettings, warm: bool
) -> None:
    """A fresh org per scenario: the users cache starts empty, or holds the org's users (read earlier in the TTL)."""
    cache = UserCache.of(client)
    cache.clear()
    if warm:
        users = scenario.crm.users
        emails = {e for e in (norm_email(u.email) for u in users) if e}
        organizer = norm_email(scenario.call.organizer.email)
        cache.put({*emails, *((organizer,) if organizer else ())}, users, settings.users_ttl)


def _measure(
    emulator: SalesforceEmulator,
    client: SalesforceClient,
    scenarios: list[Scenario],
    port_class: Callable[..., CrmPort],
    settings: SalesforceSettings,
    *,
    warm: bool = True,
) -> tuple[list[int], list[int], list[int], Counter[str], float]:
    reads: list[int] = []
    writes: list[int] = []
    rounds: list[int] = []
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    for scenario in scenarios:
        emulator.org = seed_org(scenario.crm, profile=OrgProfile.full())
        _warm_users(client, scenario, settings, warm)
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


def _baseline_class() -> tuple[str, Callable[..., CrmPort]]:
    """`SalesforceCrm` as it was at BASELINE_COMMIT (from git), else the one-query-per-object port."""
    root = Path(__file__).resolve().parent.parent
    try:
        source = subprocess.run(
            ["git", "show", f"{BASELINE_COMMIT}:adapters/crm/salesforce/adapter.py"],
            cwd=root,
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return (
            "baseline: one query per object (the port's plain lookup; git history not available)",
            PerObjectSalesforceCrm,
        )
    name = f"_salesforce_adapter_{BASELINE_COMMIT}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"{BASELINE_COMMIT}:adapters/crm/salesforce/adapter.py", "exec"), module.__dict__)
    port_class: Callable[..., CrmPort] = module.SalesforceCrm
    return f"baseline: SalesforceCrm at {BASELINE_COMMIT} (issue #15's starting point)", port_class


_EXAMPLE_DOMAIN = re.compile(r"([A-Za-z0-9-]+)\.(example)\b", re.IGNORECASE)


def _namespaced(document: dict[str, Any], tag: str) -> dict[str, Any]:
    """The scenario with ids, email local parts and `.example` domains of its own, so a batch's scenarios share an org."""

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if not isinstance(value, str):
            return value
        if key == "id" or key.endswith("_id") or key.endswith("_ids") or key == "contacts":
            value = f"{tag}{value}"
        if "@" in value:
            local, _, domain = value.partition("@")
            value = f"{tag}.{local}@{domain}"
        return _EXAMPLE_DOMAIN.sub(lambda m: f"{tag.lower()}{m.group(1)}.{m.group(2)}", value)

    out: dict[str, Any] = walk(document)
    return out


def _measure_batches(
    emulator: SalesforceEmulator,
    client: SalesforceClient,
    documents: list[dict[str, Any]],
    settings: SalesforceSettings,
) -> tuple[int, int, int, int, list[int], float]:
    """(associations, read calls, write calls, refused writes, calls per batch, seconds): batches of BATCH calls."""
    by_region: dict[str, list[Scenario]] = {}
    for index, document in enumerate(documents):
        scenario = parse_scenario(_namespaced(json.loads(json.dumps(document)), f"S{index}x"))
        by_region.setdefault(scenario.policy.default_region, []).append(scenario)
    reads = writes = refused = count = 0
    per_batch: list[int] = []
    started = time.perf_counter()
    for region, scenarios in sorted(by_region.items()):
        for start in range(0, len(scenarios), BATCH):
            batch = scenarios[start : start + BATCH]
            crm = CrmSlice()
            for scenario in batch:
                crm = merge_slices(crm, scenario.crm)
            emulator.org = seed_org(crm, profile=OrgProfile.full())
            UserCache.of(client).clear()
            port = SalesforceCrm(client, settings, region)
            before = emulator.stats.api_calls
            decisions = associate_many([BatchItem(s.call, s.policy, s.previous) for s in batch], port)
            middle = emulator.stats.api_calls
            outcomes = port.upsert_activities([(s.call, d) for s, d in zip(batch, decisions, strict=True)])
            refused += sum(1 for o in outcomes if isinstance(o, Exception))
            reads += middle - before
            writes += emulator.stats.api_calls - middle
            per_batch.append(emulator.stats.api_calls - before)
            count += len(batch)
    return count, reads, writes, refused, per_batch, time.perf_counter() - started


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
    documents = [generate_scenario(rng) for _ in range(count)]
    scenarios = [parse_scenario(d) for d in documents]
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
        alone = _measure(emulator, client, scenarios, SalesforceCrm, settings)
        _report(
            "one call at a time: SalesforceCrm (users cache warm, as in steady state)",
            *alone,
            phones,
            ordinary,
        )
        cold = _measure(emulator, client, scenarios, SalesforceCrm, settings, warm=False)
        _report(
            "one call at a time: SalesforceCrm, users cache cold (every call reads its users)",
            *cold,
            phones,
            ordinary,
        )
        name, baseline_class = _baseline_class()
        baseline = _measure(emulator, client, scenarios, baseline_class, settings, warm=False)
        _report(name, *baseline, phones, ordinary)
        associations, reads, writes, refused, per_batch, seconds = _measure_batches(
            emulator, client, documents, settings
        )
        print(f"  batches of {BATCH} calls of one tenant (one region each): {len(per_batch)} batches")
        print(
            f"    API calls / association  {(reads + writes) / associations:.2f}"
            f"  (reads {reads / associations:.2f} + writes {writes / associations:.2f});"
            f" per batch mean {statistics.fmean(per_batch):.1f}, max {max(per_batch)}"
        )
        print(f"    writes refused            {refused} of {associations:,}")
        print(
            f"    wall time                 {seconds / associations * 1000:.1f} ms / association (loopback HTTPS)"
        )
        print(
            "  summary: API calls per association (target: <= 2.0 alone, phone included; <= 1.2 in batches of 20)"
        )

        def mean(
            totals: tuple[list[int], list[int], list[int], Counter[str], float], flag: bool | None
        ) -> str:
            values = [
                r + w
                for r, w, p in zip(totals[0], totals[1], phones, strict=True)
                if flag is None or p is flag
            ]
            return f"{statistics.fmean(values):.2f}" if values else "-"

        for label, flag in (("all calls", None), ("with a phone", True), ("email only", False)):
            print(
                f"    alone, {label:<13} now {mean(alone, flag)} (users cold {mean(cold, flag)})"
                f"  baseline {mean(baseline, flag)}"
            )
        print(
            f"    batches of {BATCH:<7}      now {(reads + writes) / associations:.2f}  baseline {mean(baseline, None)}"
        )


if __name__ == "__main__":
    main()
