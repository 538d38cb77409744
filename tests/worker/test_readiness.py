"""worker.ops.readiness: a tenant's doctor and setup, through the real CRM admin and the provider emulator."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from adapters.crm.readiness import Outcome, Status
from tests.adapters.providers import samples
from tests.adapters.providers.api_tenant import provider_emulator
from tests.adapters.providers.test_clients import _tenant as emulated_tenant
from tests.conftest import free_port
from tests.emulators.providers.server import ProviderEmulator
from worker.config.tenants import CrmConfig, ProviderConfig, Tenant, load_tenants
from worker.core.model import Policy
from worker.ops import readiness
from worker.pipeline.crm_factory import CrmFactory, ScenarioAdmin

ROOT = Path(__file__).resolve().parents[2]
BASIC = ROOT / "config" / "examples" / "basic.json"


@pytest.fixture()
def emulator() -> Iterator[ProviderEmulator]:
    with provider_emulator() as emu:
        yield emu


@pytest.fixture()
def tenant(emulator: ProviderEmulator, tmp_path: Any) -> Tenant:
    """All five providers on the emulator, and the scenario CRM."""
    return replace(emulated_tenant(emulator, tmp_path), crm=CrmConfig(kind="scenario", scenario_file=BASIC))


def statuses(report: readiness.Report) -> dict[str, Status]:
    return {check.name: check.status for check in report.checks}


def subscribed(redis_client: Any, tenant: str, *providers: str, state: str = "active") -> None:
    """Our Graph / Workspace Events subscriptions as `callmatch providers subscribe` leaves them."""
    import datetime as dt

    from worker.ingest.subscriptions import Subscription, SubscriptionStore
    from worker.pipeline.clock import process_clock

    now = process_clock()()
    for provider in providers:
        SubscriptionStore(redis_client).put(
            Subscription(
                tenant=tenant,
                provider=provider,
                id=f"sub-{provider}",
                resource="communications/callRecords" if provider == "teams" else "//meet/spaces",
                expires_at=now + dt.timedelta(hours=60),
                created_at=now,
                state=state,
                detail="the topic is gone" if state == "suspended" else None,
            )
        )


def test_a_scenario_tenant_with_every_provider_can_run(tenant, redis_client) -> None:
    subscribed(redis_client, "acme", "teams", "google_meet")
    report = readiness.doctor(tenant, CrmFactory(redis_client), redis_client=redis_client)
    assert [c.name for c in report.checks] == [
        "redis",
        "crm.scenario",
        "aircall.webhook",
        "aircall.api",
        "ringover.webhook",
        "ringover.api",
        "zoom.webhook",
        "zoom.api",
        "zoom.scopes",
        "google_meet.webhook",
        "google_meet.delegation",
        "google_meet.api",
        "teams.webhook",
        "teams.api",
        "teams.permissions",
        "teams.subscription",
        "google_meet.subscription",
    ]
    assert all(s is Status.OK for name, s in statuses(report).items() if name != "redis"), report.checks
    assert report.can_run
    crm = next(c for c in report.checks if c.name == "crm.scenario")
    assert crm.detail.startswith(f"{BASIC} readable: ") and " records (" in crm.detail
    webhook = next(c for c in report.checks if c.name == "aircall.webhook")
    assert webhook.detail == "secret set; the previous one is still accepted (rotation)"
    as_json = report.to_json()
    assert as_json["tenant"] == "acme" and as_json["can_run"] is True
    assert set(as_json["checks"][0]) == {"name", "status", "detail", "fix"}


def test_the_demo_tenant_warns_for_providers_without_api_credentials(redis_client) -> None:
    demo = load_tenants(ROOT / "config" / "tenants.yaml").tenants["demo"]
    report = readiness.doctor(demo, CrmFactory(redis_client))
    assert statuses(report) == {
        "crm.scenario": Status.OK,
        "aircall.webhook": Status.OK,
        "aircall.api": Status.WARN,
        "ringover.webhook": Status.OK,
        "ringover.api": Status.WARN,
        "zoom.webhook": Status.OK,
        "zoom.api": Status.WARN,
    }
    assert report.can_run
    zoom_api = next(c for c in report.checks if c.name == "zoom.api")
    assert zoom_api.detail.startswith("no API credentials: ") and zoom_api.fix == (
        "set providers.zoom.credentials in the tenants file"
    )


def test_a_missing_webhook_secret_fails(tenant, redis_client) -> None:
    bare = replace(tenant, providers={"zoom": ProviderConfig(name="zoom")})
    report = readiness.doctor(bare, CrmFactory(redis_client))
    check = next(c for c in report.checks if c.name == "zoom.webhook")
    assert check.status is Status.FAIL and "every delivery would be refused" in check.detail
    assert check.fix == "set providers.zoom.webhook_secret_env (or webhook_secret_file) in the tenants file"
    assert not report.can_run


def test_a_teams_secret_longer_than_graph_allows_fails(tenant, redis_client) -> None:
    teams = replace(tenant.providers["teams"], webhook_secrets=("s" * 129,))
    report = readiness.doctor(replace(tenant, providers={"teams": teams}), CrmFactory(redis_client))
    check = next(c for c in report.checks if c.name == "teams.webhook")
    assert check.status is Status.FAIL and "128 characters" in check.detail
    fits = replace(tenant.providers["teams"], webhook_secrets=("s" * 128,))
    report = readiness.doctor(replace(tenant, providers={"teams": fits}), CrmFactory(redis_client))
    assert next(c for c in report.checks if c.name == "teams.webhook").status is Status.OK


def test_google_push_needs_its_audience_and_keys(tenant, redis_client) -> None:
    config = tenant.providers["google_meet"]
    settings = {k: v for k, v in config.settings.items() if k != "audience"}
    broken = replace(tenant, providers={"google_meet": replace(config, settings=settings)})
    report = readiness.doctor(broken, CrmFactory(redis_client))
    check = next(c for c in report.checks if c.name == "google_meet.webhook")
    assert check.status is Status.FAIL and "audience not set" in check.detail


def test_a_missing_teams_role_and_a_refused_key_fail_the_tenant(emulator, tenant, redis_client) -> None:
    subscribed(redis_client, "acme", "teams", "google_meet")
    emulator.state.graph_roles = ("User.Read.All",)
    emulator.state.aircall_auth = ("api-id", "rotated")
    report = readiness.doctor(tenant, CrmFactory(redis_client), redis_client=redis_client)
    failed = sorted(name for name, s in statuses(report).items() if s is Status.FAIL)
    assert failed == ["aircall.api", "teams.api", "teams.permissions"]
    assert not report.can_run and report.to_json()["can_run"] is False


def test_an_unreadable_scenario_file_fails_the_crm_line(tmp_path, redis_client) -> None:
    copy = tmp_path / "crm.json"
    shutil.copy(BASIC, copy)
    scenario = Tenant(name="t", crm=CrmConfig(kind="scenario", scenario_file=copy), policy=Policy())
    copy.write_text("{not json")
    [check] = readiness.doctor(scenario, CrmFactory(redis_client)).checks
    assert check.name == "crm.scenario" and check.status is Status.FAIL
    assert "is not a scenario" in check.detail and check.fix is not None
    copy.unlink()
    [gone] = readiness.doctor(scenario, CrmFactory(redis_client)).checks
    assert "cannot read" in gone.detail


def test_a_crm_that_cannot_be_built_is_a_fail_line_naming_the_error(redis_client) -> None:
    salesforce = Tenant(
        name="sf",
        crm=CrmConfig(kind="salesforce", settings={"instance_url": "https://127.0.0.1:9"}),
        policy=Policy(),
    )
    [check] = readiness.doctor(salesforce, CrmFactory(redis_client)).checks
    assert check.name == "crm.salesforce" and check.status is Status.FAIL
    assert check.detail.startswith("check failed: SalesforceConfigError: crm.credentials: need OAuth")
    assert "Traceback" not in check.detail
    [step] = readiness.setup(salesforce, CrmFactory(redis_client)).steps
    assert step.outcome is Outcome.FAILED and step.detail.startswith("SalesforceConfigError: ")


def test_redis_down_is_a_fail_line_and_the_rest_is_still_checked(tenant) -> None:
    down = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    try:
        report = readiness.doctor(tenant, CrmFactory(down), redis_client=down)
    finally:
        down.close()
    checks = {c.name: c for c in report.checks}
    assert checks["redis"].status is Status.FAIL and checks["redis"].detail.startswith("unreachable: ")
    assert checks["redis"].fix is not None and "CALLMATCH_REDIS_URL" in checks["redis"].fix
    assert checks["crm.scenario"].status is Status.OK
    assert checks["teams.permissions"].status is Status.OK  # providers run without the shared limiter
    assert not report.can_run


def test_lines_never_show_a_secret_or_an_email(emulator, tenant, redis_client) -> None:
    # An API that echoes the key it refused, and a Google subject that is an email.
    emulator.fail_next("/v1/ping", 403, body={"error": "api-token"})
    emulator.state.google_delegated_scopes = frozenset()
    report = readiness.doctor(tenant, CrmFactory(redis_client))
    text = repr(report.to_json())
    aircall_api = next(c for c in report.checks if c.name == "aircall.api")
    assert aircall_api.detail == "GET /v1/ping: aircall: HTTP 403 (***)"
    delegation = next(c for c in report.checks if c.name == "google_meet.delegation")
    assert delegation.detail.startswith("token for a***@ourco.com: ")
    for secret in readiness.tenant_secrets(tenant):
        assert secret not in text
    assert "admin@ourco.com" not in text


def test_secrets_include_the_private_parts_of_a_json_key(tenant) -> None:
    secrets = readiness.tenant_secrets(tenant)
    assert samples.private_pem(samples.OTHER_KEY) in secrets
    assert "graph-secret" in secrets and samples.AIRCALL_TOKEN_OLD in secrets
    assert readiness.safe_text("key graph-secret for bob@acme.com", secrets) == "key *** for b***@acme.com"


def test_setup_of_a_scenario_tenant_has_nothing_to_do(redis_client) -> None:
    demo = load_tenants(ROOT / "config" / "tenants.yaml").tenants["demo"]
    for dry_run in (True, False):
        report = readiness.setup(demo, CrmFactory(redis_client), dry_run=dry_run)
        [step] = report.steps
        assert step.outcome is Outcome.PRESENT and step.name == "crm.scenario"
        assert report.ok and report.to_json()["dry_run"] is dry_run


def test_the_admin_of_a_crm_tenant_is_the_client_its_ports_use(redis_client) -> None:
    factory = CrmFactory(redis_client)
    salesforce = Tenant(
        name="sf",
        crm=CrmConfig(
            kind="salesforce",
            settings={"instance_url": "https://127.0.0.1:9"},
            credentials={"access_token": "00Dx"},
        ),
        policy=Policy(default_region="FR"),
    )
    admin: Any = factory.admin_for(salesforce)
    assert factory.crm_for(salesforce).client is admin.client  # type: ignore[attr-defined]
    hubspot = Tenant(name="hs", crm=CrmConfig(kind="hubspot", credentials={"access_token": "pat-na1-x"}))
    assert factory.admin_for(hubspot) is factory.admin_for(hubspot)
    scenario = factory.admin_for(
        Tenant(name="demo", crm=CrmConfig(kind="scenario", scenario_file=BASIC), policy=Policy())
    )
    assert isinstance(scenario, ScenarioAdmin)
    with pytest.raises(NotImplementedError, match="CRM kind 'pipedrive' is not supported"):
        factory.admin_for(Tenant(name="x", crm=CrmConfig(kind="pipedrive")))


def test_safe_text_keeps_a_portal_id_and_masks_emails_and_phones() -> None:
    from worker.ops.readiness import safe_text

    text = safe_text("token accepted (portal 243567891) for jane@acme.com, call +33 6 12 34 56 78", [])
    assert "portal 243567891" in text
    assert "jane@acme.com" not in text and "6 12 34 56 78" not in text
    assert safe_text("secret s3cr3t-value in 243567891", ["s3cr3t-value"]) == safe_text(
        "secret *** in 243567891", []
    )
    assert "243567891" not in safe_text("dialled 243567891", [])
    target = "//cloudidentity.googleapis.com/users/104857600012345678901"
    assert safe_text(f"already watches {target}", []) == f"already watches {target}"


def test_a_missing_or_suspended_subscription_fails_with_the_command_that_fixes_it(
    tenant, redis_client
) -> None:
    """Teams and Google Meet notify only while our subscription lives (docs/providers/subscriptions.md)."""
    subscribed(redis_client, "acme", "google_meet", state="suspended")
    report = readiness.doctor(tenant, CrmFactory(redis_client), redis_client=redis_client)
    checks = {c.name: c for c in report.checks}
    teams, meet = checks["teams.subscription"], checks["google_meet.subscription"]
    assert teams.status is Status.FAIL and teams.detail.startswith("no subscription")
    assert (
        teams.fix is not None and "callmatch providers subscribe --tenant acme --provider teams" in teams.fix
    )
    assert meet.status is Status.FAIL and meet.detail == (
        "suspended: no notification arrives until it is active again (the topic is gone)"
    )
    assert not report.can_run
