"""`make bench` section: re-association throughput on the Salesforce emulator through the real adapter.

N calls of tenant acme (half of Acme's known contact, half of people at globex.com, an account
with no contact) are decided and written with `match_by_domain` off; the setting is turned on
and the calls are re-associated: first a dry run, then the real run (the globex half changes,
none -> domain, and is written back). Printed: calls/s and CRM API calls per call for each;
the local rate limit is set out of the way (what is measured is our cost, not a budget).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import redis

from tests.e2e.stack import CRM, TENANT
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.redis_server import redis_server
from tests.worker.test_reassociate import GLOBEX, NOW, call_event, write_tenants
from worker.config.scenario import parse_scenario
from worker.config.tenants import TenantsSource
from worker.pipeline import reassociate
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStore


def _run(pipe: Pipeline, emulator: SalesforceEmulator, dry_run: bool) -> tuple[reassociate.Run, float, int]:
    calls_before = emulator.stats.api_calls
    started = time.perf_counter()
    run = reassociate.start(pipe, TENANT, reassociate.parse_since("30d"), dry_run=dry_run)
    run = reassociate.proceed(pipe, TENANT, run.run_id)
    return run, time.perf_counter() - started, emulator.stats.api_calls - calls_before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    args, _ = parser.parse_known_args(argv)
    crm = {**CRM, "accounts": [*CRM["accounts"], GLOBEX]}
    scenario = parse_scenario({"call": {"id": "seed", "started_at": "2026-01-01T00:00:00Z"}, "crm": crm})
    with (
        redis_server() as url,
        tempfile.TemporaryDirectory() as directory,
        SalesforceEmulator(seed_org(scenario.crm, profile=OrgProfile.after_setup())) as emulator,
    ):
        client = redis.Redis.from_url(url, decode_responses=True)
        client.flushdb()
        os.environ.update(
            {
                "E2E_SF_ACCESS_TOKEN": emulator.issue_token(),
                "E2E_SF_CLIENT_ID": emulator.client_id,
                "E2E_SF_CLIENT_SECRET": emulator.client_secret,
                "E2E_SF_REFRESH_TOKEN": emulator.refresh_token,
                "E2E_AIRCALL_TOKEN": "token",
            }
        )
        source = TenantsSource(write_tenants(Path(directory), emulator, match_by_domain=False))
        pipe = Pipeline(
            source.current, CallStore(client, clock=lambda: NOW), CrmFactory(client).crm_for, source=source
        )
        for i in range(args.count):
            call_id = f"aircall:{1000 + i}"
            email = "jane@acme.com" if i % 2 else f"buyer{i}@globex.com"
            pipe.accept(call_event(call_id, email, NOW - dt.timedelta(days=1, minutes=i)))
            pipe.decide(TENANT, call_id)
            pipe.write(TENANT, call_id)
        write_tenants(Path(directory), emulator, match_by_domain=True)
        print(
            f"re-association, Salesforce emulator (real adapter), {args.count} calls, half of them changing"
        )
        for dry_run in (True, False):
            run, seconds, api_calls = _run(pipe, emulator, dry_run)
            s = run.summary
            print(
                f"  {'dry run' if dry_run else 'applied'}: {run.total / seconds:,.1f} calls/s"
                f" ({seconds:.2f} s), {api_calls / run.total:.2f} API calls per call;"
                f" changed {s.changed} {dict(s.cases)}, unchanged {s.unchanged}, failed {len(s.failed)}"
            )
        client.flushdb()
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
