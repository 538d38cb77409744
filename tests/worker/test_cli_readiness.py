"""`callmatch setup` and `callmatch doctor` through `main([...])` (and once as the installed script).

Tenants files point at real emulators: the provider emulator over HTTP, the
Salesforce emulator over loopback HTTPS on a plain org (no optional feature, no
custom field until `setup` creates it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.adapters.providers import samples
from tests.adapters.providers.api_tenant import provider_emulator
from tests.emulators.providers.server import ProviderEmulator
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.worker.test_readiness import subscribed
from worker.config.scenario import loads_scenario
from worker.ops import doctor_log
from worker.ops.cli import main

ROOT = Path(__file__).resolve().parents[2]
BASIC = ROOT / "config" / "examples" / "basic.json"
CALLMATCH = str(Path(sys.executable).parent / "callmatch")
AZURE_TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
SECRETS = {
    "T_AIRCALL": samples.AIRCALL_TOKEN,
    "T_TEAMS": samples.TEAMS_STATE,
    "T_ZOOM": samples.ZOOM_SECRET,
    "C_AIRCALL_ID": "api-id",
    "C_AIRCALL_TOKEN": "api-token",
    "C_GRAPH_CLIENT": "graph-client",
    "C_GRAPH_SECRET": "graph-secret",
    "C_ZOOM_ACCOUNT": "zoom-account",
    "C_ZOOM_CLIENT": "zoom-client",
    "C_ZOOM_SECRET": "zoom-secret",
}


@pytest.fixture()
def emulator() -> Iterator[ProviderEmulator]:
    with provider_emulator() as emu:
        yield emu


def providers_document(base: str) -> dict[str, Any]:
    """Two tenants: `acme` (scenario CRM, Aircall, Zoom and Teams on the emulator) and `demo`."""
    demo = yaml.safe_load((ROOT / "config" / "tenants.yaml").read_text())["tenants"]["demo"]
    demo["crm"]["scenario_file"] = str(BASIC)
    return {
        "version": 1,
        "tenants": {
            "demo": demo,
            "acme": {
                "crm": {"kind": "scenario", "scenario_file": str(BASIC)},
                "internal_domains": ["ourco.com"],
                "providers": {
                    "aircall": {
                        "webhook_secret_env": "T_AIRCALL",
                        "api_base_url": base,
                        "credentials": {"api_id_env": "C_AIRCALL_ID", "api_token_env": "C_AIRCALL_TOKEN"},
                    },
                    "zoom": {
                        "webhook_secret_env": "T_ZOOM",
                        "api_base_url": base,
                        "oauth_url": f"{base}/oauth/token",
                        "credentials": {
                            "account_id_env": "C_ZOOM_ACCOUNT",
                            "client_id_env": "C_ZOOM_CLIENT",
                            "client_secret_env": "C_ZOOM_SECRET",
                        },
                    },
                    "teams": {
                        "webhook_secret_env": "T_TEAMS",
                        "api_base_url": base,
                        "azure_tenant_id": AZURE_TENANT,
                        "token_url": f"{base}/{{azure_tenant_id}}/oauth2/v2.0/token",
                        "credentials": {
                            "client_id_env": "C_GRAPH_CLIENT",
                            "client_secret_env": "C_GRAPH_SECRET",
                        },
                    },
                },
            },
        },
    }


@pytest.fixture()
def tenants_env(monkeypatch, tmp_path, redis_url, redis_client, emulator) -> Path:
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump(providers_document(emulator.base_url)))
    monkeypatch.setenv("CALLMATCH_TENANTS", str(path))
    monkeypatch.setenv("CALLMATCH_REDIS_URL", redis_url)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines_of(out: str) -> dict[str, str]:
    """`name -> status` of doctor's lines (the `fix:` lines and the verdict left out)."""
    rows = [line.split() for line in out.splitlines() if line and not line.startswith(" ")]
    return {row[1]: row[0] for row in rows if row[0] in ("ok", "warn", "fail")}


def test_doctor_prints_one_line_per_check_and_exits_0_when_the_tenant_can_run(
    capsys, tenants_env, redis_client
) -> None:
    subscribed(redis_client, "acme", "teams")
    code, out, err = run(capsys, "doctor", "--tenant", "acme")
    assert code == 0, out + err
    assert lines_of(out) == {
        "redis": "warn",  # the test server keeps no append-only file
        "crm.scenario": "ok",
        "aircall.webhook": "ok",
        "aircall.api": "ok",
        "zoom.webhook": "ok",
        "zoom.api": "ok",
        "zoom.scopes": "ok",
        "teams.webhook": "ok",
        "teams.api": "ok",
        "teams.permissions": "ok",
        "teams.subscription": "ok",
    }
    assert re.search(r"^ok +teams\.permissions +granted: CallRecords\.Read\.All, User\.Read\.All$", out, re.M)
    assert out.splitlines()[-1] == "tenant acme can run (1 warning(s))"
    assert err == ""


def test_doctor_fails_with_the_fix_when_teams_lacks_a_permission(
    capsys, tenants_env, emulator, redis_client
) -> None:
    subscribed(redis_client, "acme", "teams")
    emulator.state.graph_roles = ("User.Read.All",)
    code, out, _ = run(capsys, "doctor", "--tenant", "acme")
    assert code == 1
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("fail  teams.permissions"))
    assert "CallRecords.Read.All (to read call records and their participants)" in lines[at]
    assert lines[at + 1].strip().startswith("fix: Microsoft Entra admin center > App registrations")
    assert lines[-1] == "tenant acme cannot run: 2 check(s) failed, 1 warning(s)"
    for secret in SECRETS.values():
        assert secret not in out


def test_doctor_json_is_the_report(capsys, tenants_env, emulator) -> None:
    emulator.state.zoom_scopes = ("meeting:read:admin",)
    code, out, _ = run(capsys, "doctor", "--tenant", "acme", "--json")
    assert code == 1
    report = json.loads(out)
    assert set(report) == {"tenant", "can_run", "checks"}
    assert report["tenant"] == "acme" and report["can_run"] is False
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "fix"}
        assert check["status"] in ("ok", "warn", "fail")
    scopes = next(c for c in report["checks"] if c["name"] == "zoom.scopes")
    assert scopes["status"] == "fail" and "user:read:user:admin" in scopes["detail"]


def test_doctor_keeps_its_report_for_the_consoles_health_page(capsys, tenants_env, redis_client) -> None:
    assert doctor_log.last(redis_client, "acme") is None
    code, out, err = run(capsys, "doctor", "--tenant", "acme", "--json")
    kept = doctor_log.last(redis_client, "acme")
    assert kept is not None and err == "", err
    report = json.loads(out)
    assert (kept.tenant, kept.can_run, kept.checks) == ("acme", report["can_run"], report["checks"])
    assert code == (0 if report["can_run"] else 1) and kept.at.endswith("Z")


def test_setup_of_a_scenario_tenant(capsys, tenants_env) -> None:
    code, out, _ = run(capsys, "setup", "--tenant", "acme", "--dry-run")
    assert code == 0
    assert out.splitlines()[0].startswith("present  crm.scenario  nothing to create")
    assert out.splitlines()[-1] == "tenant acme: no step failed (dry run: nothing was changed)"
    code, out, _ = run(capsys, "setup", "--tenant", "acme", "--json")
    assert code == 0
    assert json.loads(out) == {
        "tenant": "acme",
        "dry_run": False,
        "ok": True,
        "steps": [
            {
                "name": "crm.scenario",
                "outcome": "present",
                "detail": f"nothing to create: the scenario CRM reads its records from {BASIC}",
            }
        ],
    }


def test_usage_errors_exit_2(capsys, tenants_env, tmp_path, monkeypatch) -> None:
    code, out, err = run(capsys, "doctor")
    assert code == 2 and out == ""
    assert err == "callmatch doctor: name a tenant with --tenant (one of: acme, demo)\n"
    code, _, err = run(capsys, "setup", "--tenant", "nope")
    assert code == 2 and "unknown tenant 'nope' (known: acme, demo)" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ntenants: {x: {crm: {kind: pipedrive}}}\n")
    monkeypatch.setenv("CALLMATCH_TENANTS", str(bad))
    code, _, err = run(capsys, "doctor", "--tenant", "x")
    assert code == 2 and "crm.kind: unknown value 'pipedrive'" in err and "Traceback" not in err


def test_the_installed_script_runs_doctor(tenants_env, redis_url) -> None:
    env = {**os.environ, "CALLMATCH_TENANTS": str(tenants_env), "CALLMATCH_REDIS_URL": redis_url, **SECRETS}
    proc = subprocess.run(
        [CALLMATCH, "doctor", "--tenant", "demo", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["can_run"] is True
    assert [c["name"] for c in report["checks"]][:2] == ["redis", "crm.scenario"]
    assert {c["name"]: c["status"] for c in report["checks"]}["zoom.api"] == "warn"


# -- Salesforce: a plain org, before and after setup ---------------------------------------


@pytest.fixture()
def plain_org(monkeypatch, tmp_path, redis_url, redis_client) -> Iterator[SalesforceEmulator]:
    org = seed_org(loads_scenario(BASIC.read_bytes()).crm, profile=OrgProfile.plain())
    emu = SalesforceEmulator(org).start()
    document = {
        "version": 1,
        "tenants": {
            "acme-sf": {
                "crm": {
                    "kind": "salesforce",
                    "instance_url": emu.instance_url,
                    "login_url": emu.instance_url,
                    "ca_file": str(emu.ca_file),
                    "credentials": {
                        "client_id_env": "SF_CLIENT_ID",
                        "client_secret_env": "SF_CLIENT_SECRET",
                        "refresh_token_env": "SF_REFRESH_TOKEN",
                    },
                },
                "policy": {"crm": "salesforce", "default_region": "US"},
            }
        },
    }
    path = tmp_path / "tenants.yaml"
    path.write_text(yaml.safe_dump(document))
    monkeypatch.setenv("CALLMATCH_TENANTS", str(path))
    monkeypatch.setenv("CALLMATCH_REDIS_URL", redis_url)
    monkeypatch.setenv("SF_CLIENT_ID", emu.client_id)
    monkeypatch.setenv("SF_CLIENT_SECRET", emu.client_secret)
    monkeypatch.setenv("SF_REFRESH_TOKEN", emu.refresh_token)
    yield emu
    emu.stop()


def statuses_of(out: str) -> list[str]:
    """The status word of each doctor line (names may hold spaces: `field Task.X`)."""
    return [line.split()[0] for line in out.splitlines()[:-1] if line and not line.startswith(" ")]


def test_salesforce_plain_org_doctor_setup_dry_run_setup_doctor(capsys, plain_org) -> None:
    code, before, _ = run(capsys, "doctor")
    assert code == 1, before
    assert "fail  field Task.Callmatch_Call_Id__c" in before
    assert "fix: callmatch setup --tenant acme-sf" in before
    assert before.splitlines()[-1].startswith("tenant acme-sf cannot run: ")

    code, dry, _ = run(capsys, "setup", "--dry-run")
    assert code == 0, dry
    assert dry.startswith("manual  Activity.Callmatch_Call_Id__c")
    assert "created" not in statuses_of(dry)
    assert dry.splitlines()[-1].endswith("(dry run: nothing was changed)")
    assert run(capsys, "doctor")[0] == 1  # a dry run changed nothing

    code, done, _ = run(capsys, "setup")
    assert code == 0, done
    assert "created  Activity.Callmatch_Call_Id__c" in done
    assert set(statuses_of(done)) <= {"created", "present"}, done

    code, after, _ = run(capsys, "doctor")
    assert code == 0, after
    assert "fail" not in statuses_of(after)
    assert after.splitlines()[-1].startswith("tenant acme-sf can run")

    code, again, _ = run(capsys, "setup")
    assert code == 0 and set(statuses_of(again)) == {"present"}, again  # idempotent


# -- HubSpot: a plain portal, before and after setup ---------------------------------------


@pytest.fixture()
def plain_portal(monkeypatch, tmp_path, redis_url, redis_client) -> Iterator[str]:
    from tests.adapters.crm.hubspot.support import TOKEN, examples, load, portal
    from tests.emulators.hubspot import PortalProfile

    scenario = load(next(p for p in examples() if p.stem == "basic"))
    with portal(scenario, profile=PortalProfile.plain()) as emulator:
        document = {
            "version": 1,
            "tenants": {
                "acme-hs": {
                    "crm": {
                        "kind": "hubspot",
                        "host": emulator.url,
                        "base_delay": "0.01",
                        "credentials": {"access_token_env": "HS_TOKEN"},
                    },
                    "policy": {"crm": "hubspot", "default_region": "US"},
                }
            },
        }
        path = tmp_path / "tenants.yaml"
        path.write_text(yaml.safe_dump(document))
        monkeypatch.setenv("CALLMATCH_TENANTS", str(path))
        monkeypatch.setenv("CALLMATCH_REDIS_URL", redis_url)
        monkeypatch.setenv("HS_TOKEN", TOKEN)
        yield TOKEN


def test_hubspot_plain_portal_doctor_setup_dry_run_setup_doctor(capsys, plain_portal) -> None:
    code, before, _ = run(capsys, "doctor")
    assert code == 1, before
    assert "fail  property calls.callmatch_call_id" in before
    assert "fix: callmatch setup --tenant acme-hs" in before

    code, dry, _ = run(capsys, "setup", "--dry-run")
    assert code == 0, dry
    assert "manual" in statuses_of(dry) and "created" not in statuses_of(dry)
    assert dry.splitlines()[-1].endswith("(dry run: nothing was changed)")
    assert run(capsys, "doctor")[0] == 1  # a dry run changed nothing

    code, done, _ = run(capsys, "setup")
    assert code == 0, done
    assert "created" in statuses_of(done) and set(statuses_of(done)) <= {"created", "present"}, done

    code, after, _ = run(capsys, "doctor")
    assert code == 0, after
    assert "fail" not in statuses_of(after)

    code, again, _ = run(capsys, "setup", "--json")
    assert code == 0
    assert {step["outcome"] for step in json.loads(again)["steps"]} == {"present"}  # idempotent
    for out in (before, dry, done, after, again):
        assert plain_portal not in out
