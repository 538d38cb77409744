"""How fast the Salesforce emulator answers the adapter's association reads on a big org.

`python -m tests.emulators.bench_salesforce_org [--calls N] [--profile]`: seeds a
generated org (300 accounts, 600 contacts, 600 opportunities), then decides calls
through the real adapter over loopback HTTPS and times every composite request it
sends (the association read). `--profile` replays the captured composites in process
under cProfile, so the emulator's own hot spots show without the HTTP stack. The
chaos run needs this to be fast: a slow emulator turns every worker into a queue.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import pstats
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.salesforce.client import SalesforceClient, SubResponse
from adapters.crm.salesforce.mapping import SalesforceSettings
from tests.emulators.salesforce.bigorg import REFERENCE, generate_crm, user_email
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator, dispatch
from worker.config.scenario import parse_policy, parse_scenario
from worker.core.model import Call, Person
from worker.pipeline.association import associate

POLICY: dict[str, Any] = {"crm": "salesforce", "default_region": "FR", "timezone": "Europe/Paris"}


class TimedClient(SalesforceClient):
    """The adapter's client, timing each composite call and keeping its subrequests for replay."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.timings: list[float] = []
        self.captured: list[list[dict[str, Any]]] = []

    def composite(
        self, subrequests: Sequence[dict[str, Any]], *, all_or_none: bool = False
    ) -> list[SubResponse]:
        started = time.perf_counter()
        try:
            return super().composite(subrequests, all_or_none=all_or_none)
        finally:
            self.timings.append(time.perf_counter() - started)
            self.captured.append(list(subrequests))


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process replay")
    args = parser.parse_args(argv)
    crm = generate_crm(args.seed)
    scenario = parse_scenario({"call": {"id": "seed", "started_at": "2026-01-01T00:00:00Z"}, "crm": crm})
    settings = SalesforceSettings()
    policy = parse_policy(POLICY)
    rng = random.Random(args.seed)
    with SalesforceEmulator(seed_org(scenario.crm, profile=OrgProfile.full())) as emulator:
        client = TimedClient(
            tenant="bench",
            instance_url=emulator.instance_url,
            access_token=emulator.issue_token(),
            verify=emulator.ca_file,
        )
        per_call: list[float] = []
        for index in range(args.calls):
            contact = rng.choice(crm["contacts"])
            person = Person(
                email=contact["email"], phone=(contact["phones"] or [None])[0], name="Chaos Contact"
            )
            call = Call(
                id=f"aircall:{index}",
                started_at=REFERENCE + dt.timedelta(minutes=index),
                participants=(person,),
                organizer=Person(email=user_email(1)),
            )
            port = SalesforceCrm(client, settings, policy.default_region)
            started = time.perf_counter()
            associate(call, policy, port)
            per_call.append(time.perf_counter() - started)
        composite_ms = [t * 1000 for t in client.timings]
        print(
            f"org: {len(crm['accounts'])} accounts, {len(crm['contacts'])} contacts, "
            f"{len(crm['opportunities'])} opportunities; {args.calls} associations"
        )
        print(
            f"composite read (HTTPS round trip): mean {statistics.fmean(composite_ms):.1f} ms"
            f"  p50 {_percentile(composite_ms, 0.5):.1f}  p95 {_percentile(composite_ms, 0.95):.1f}"
            f"  max {max(composite_ms):.1f}  ({len(composite_ms)} composites)"
        )
        whole = [t * 1000 for t in per_call]
        print(
            f"whole association (all API calls): mean {statistics.fmean(whole):.1f} ms"
            f"  p95 {_percentile(whole, 0.95):.1f} ms; API calls {emulator.stats.by_path}"
        )
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        for subrequests in client.captured:
            dispatch(emulator, "POST", "composite", {}, {"compositeRequest": subrequests}, top_level=True)
        elapsed = time.perf_counter() - started
        print(
            f"in-process replay of the same composites: {elapsed / len(client.captured) * 1000:.1f} ms"
            f" / composite{' (under cProfile)' if profiler else ''}"
        )
        if profiler is not None:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
