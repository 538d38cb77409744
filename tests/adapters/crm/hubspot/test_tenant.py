"""A tenant's HubSpot settings wire a working port; bad settings fail naming the setting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import redis

from adapters.crm.hubspot import (
    HubSpotConfigError,
    HubSpotMapping,
    HubSpotSettings,
    HubSpotTenant,
    RedisLedger,
)
from adapters.errors import FatalError
from tests.adapters.crm.hubspot.support import TOKEN, Sleeps, examples, load, portal
from tests.config_example import load_example
from tests.emulators.hubspot import Fault
from worker.pipeline.association import associate, decide_scenario


def test_a_private_app_tenant_decides_and_writes_through_shared_redis(redis_client: redis.Redis) -> None:
    scenario = load(next(p for p in examples() if p.stem == "created-after-call"))
    with portal(scenario) as emulator:
        tenant = HubSpotTenant.from_config(
            "acme",
            {"host": emulator.url, "search_limit": "4", "lead_stages": "lead, subscriber"},
            {"access_token": TOKEN},
            default_region=scenario.policy.default_region,
            redis_client=redis_client,
            sleep=Sleeps(),
        )
        assert isinstance(tenant.ledger, RedisLedger)
        assert tenant.mapping.lead_stages == frozenset({"lead", "subscriber"})
        port = tenant.port()
        decision = associate(scenario.call, scenario.policy, port, scenario.previous)
        assert decision.to_json()["opportunity_id"] == decide_scenario(scenario).opportunity_id
        written = tenant.port().upsert_activity(scenario.call, decision)
        assert tenant.ledger.find(scenario.call.id) == (written.kind, written.id)
    assert redis_client.exists("callmatch:ratelimit:hubspot:acme:requests")
    assert redis_client.exists("callmatch:budget:hubspot:acme:daily")


def test_an_oauth_tenant_refreshes_its_token_first() -> None:
    scenario = load(examples()[0])
    with portal(scenario) as emulator:
        tenant = HubSpotTenant.from_config(
            "acme",
            {"host": emulator.url},
            {"client_id": "client-id", "client_secret": "client-secret", "refresh_token": "refresh-emulator"},
        )
        tenant.port().users_by_emails(["rep@ourco.com"])
        assert emulator.requests["POST /oauth/v1/token"] == 1
        assert tenant.client.tokens.refreshes == 1


@pytest.mark.parametrize(
    ("settings", "credentials", "named"),
    [
        ({}, {}, "crm.credentials"),
        ({"burst_limit": "lots"}, {"access_token": "s3cret-token"}, "crm.burst_limit"),
    ],
)
def test_bad_settings_name_the_setting(
    settings: dict[str, str], credentials: dict[str, str], named: str
) -> None:
    with pytest.raises(HubSpotConfigError, match=named) as failure:
        HubSpotTenant.from_config("acme", settings, credentials)
    assert "s3cret" not in str(failure.value)


def test_a_partial_batch_error_other_than_not_found_is_fatal() -> None:
    scenario = load(examples()[0])
    with portal(scenario) as emulator:
        tenant = HubSpotTenant.from_config("acme", {"host": emulator.url}, {"access_token": TOKEN})
        body = {
            "status": "COMPLETE",
            "results": [],
            "numErrors": 1,
            "errors": [{"status": "error", "category": "MISSING_SCOPES", "message": "no"}],
        }
        emulator.inject(Fault(207, body, path="/deals/batch/read"))
        with pytest.raises(FatalError) as failure:
            tenant.port().opportunities_by_ids(["O1", "O2"])  # one deal alone is a v3 GET
    assert failure.value.code == "MISSING_SCOPES"


def test_the_documented_hubspot_tenant_builds_with_every_setting(tmp_path: Path) -> None:
    """config/tenants.example.yaml's HubSpot tenant: every setting it documents is accepted and used."""
    tenants, document = load_example(tmp_path)
    globex = tenants.tenants["globex"]
    assert globex.crm.kind == "hubspot"
    tenant = HubSpotTenant.from_config(
        "globex", globex.crm.settings, globex.crm.credentials, default_region=globex.policy.default_region
    )
    documented = document["tenants"]["globex"]["crm"]
    hs = tenant.client.settings
    for name in (
        "burst_limit",
        "burst_period",
        "search_limit",
        "budget_reserve",
        "refresh_margin",
        "read_timeout",
    ):
        assert getattr(hs, name) == documented[name], name
    assert tenant.cache.capabilities.store.ttl == documented["capabilities_ttl"]
    assert tenant.mapping.external_id_property == documented["external_id_property"]
    assert tenant.mapping.activity_kinds == documented["activity_kinds"]
    assert tenant.client.tokens.current() == "value-of-GLOBEX_HUBSPOT_TOKEN"
    known = {f.name for f in dataclasses.fields(HubSpotSettings)} | {
        f.name for f in dataclasses.fields(HubSpotMapping)
    }
    assert set(documented) - {"kind", "credentials"} <= known | {"capabilities_ttl"}
