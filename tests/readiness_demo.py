"""`make readiness-demo`: `callmatch doctor` and `callmatch setup` on a customer's first day, for real.

Starts a redis-server, a Salesforce emulator seeded as the plainest real org (no
optional feature, no custom field) and a HubSpot emulator as a plain portal, writes a
tenants file for both, then runs the installed `callmatch` script as an admin would:
doctor (fails), setup --dry-run (the admin's steps; changes nothing), setup (creates),
setup again (all present), doctor (can run). Prints every command and its output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from tests.emulators.hubspot import HubSpotEmulator, PortalProfile, Store
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.redis_server import redis_server
from worker.config.scenario import loads_scenario

ROOT = Path(__file__).resolve().parents[1]
BASIC = ROOT / "config" / "examples" / "basic.json"
BIN = Path(sys.executable).parent
HUBSPOT_TOKEN = "pat-na1-readiness-demo"


def _tenants(salesforce: SalesforceEmulator, hubspot: HubSpotEmulator) -> dict[str, Any]:
    return {
        "version": 1,
        "tenants": {
            "acme-sf": {
                "crm": {
                    "kind": "salesforce",
                    "instance_url": salesforce.instance_url,
                    "login_url": salesforce.instance_url,
                    "ca_file": str(salesforce.ca_file),
                    "credentials": {
                        "client_id_env": "SF_CLIENT_ID",
                        "client_secret_env": "SF_CLIENT_SECRET",
                        "refresh_token_env": "SF_REFRESH_TOKEN",
                    },
                },
                "policy": {"crm": "salesforce", "default_region": "US"},
            },
            "acme-hs": {
                "crm": {
                    "kind": "hubspot",
                    "host": hubspot.url,
                    "credentials": {"access_token_env": "HS_TOKEN"},
                },
                "policy": {"crm": "hubspot", "default_region": "US"},
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenant", choices=("acme-sf", "acme-hs"), action="append", help="default: both")
    args = parser.parse_args(argv)
    scenario = loads_scenario(BASIC.read_bytes())
    crm = scenario.crm
    with ExitStack() as stack, tempfile.TemporaryDirectory() as work:
        redis_url = stack.enter_context(redis_server())
        salesforce = SalesforceEmulator(seed_org(crm, profile=OrgProfile.plain())).start()
        stack.callback(salesforce.stop)
        hubspot = HubSpotEmulator(
            Store.from_scenario(scenario, profile=PortalProfile.plain()), access_token=HUBSPOT_TOKEN
        )
        hubspot.start()
        stack.callback(hubspot.stop)
        path = Path(work) / "tenants.yaml"
        path.write_text(yaml.safe_dump(_tenants(salesforce, hubspot)))
        env = {
            **os.environ,
            "CALLMATCH_TENANTS": str(path),
            "CALLMATCH_REDIS_URL": redis_url,
            "SF_CLIENT_ID": salesforce.client_id,
            "SF_CLIENT_SECRET": salesforce.client_secret,
            "SF_REFRESH_TOKEN": salesforce.refresh_token,
            "HS_TOKEN": HUBSPOT_TOKEN,
        }
        for tenant in args.tenant or ("acme-sf", "acme-hs"):
            for command in (
                ("doctor",),
                ("setup", "--dry-run"),
                ("setup",),
                ("setup",),
                ("doctor",),
            ):
                argv_ = ["callmatch", *command, "--tenant", tenant]
                done = subprocess.run(
                    [str(BIN / "callmatch"), *argv_[1:]],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                print(f"$ {' '.join(argv_)}    # exit {done.returncode}")
                print(done.stdout.rstrip())
                if done.stderr.strip():
                    print(done.stderr.rstrip())
                print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
