"""Each tenant's CRM kind gives its adapter; clients are kept per tenant, ports are per association."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.crm.hubspot.adapter import HubSpotCrm
from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.scenario import ScenarioCrm
from worker.config.tenants import CrmConfig, Tenant
from worker.core.model import Policy
from worker.pipeline.crm_factory import CrmFactory

ROOT = Path(__file__).resolve().parents[2]


def tenant(name: str, crm: CrmConfig) -> Tenant:
    return Tenant(name=name, crm=crm, policy=Policy(default_region="FR"))


def test_each_kind_gives_its_adapter(redis_client) -> None:
    factory = CrmFactory(redis_client)
    scenario = factory.crm_for(
        tenant("demo", CrmConfig(kind="scenario", scenario_file=ROOT / "config" / "examples" / "basic.json"))
    )
    assert isinstance(scenario, ScenarioCrm) and scenario.log is not None
    salesforce_tenant = tenant(
        "sf",
        CrmConfig(
            kind="salesforce",
            settings={"instance_url": "https://127.0.0.1:9"},
            credentials={"access_token": "00Dx"},
        ),
    )
    first, second = factory.crm_for(salesforce_tenant), factory.crm_for(salesforce_tenant)
    assert isinstance(first, SalesforceCrm) and isinstance(second, SalesforceCrm)
    assert first is not second and first.client is second.client
    hubspot = factory.crm_for(
        tenant("hs", CrmConfig(kind="hubspot", credentials={"access_token": "pat-na1-x"}))
    )
    assert isinstance(hubspot, HubSpotCrm)


def test_unknown_kind_is_refused(redis_client) -> None:
    with pytest.raises(NotImplementedError, match="CRM kind 'pipedrive' is not supported"):
        CrmFactory(redis_client).crm_for(tenant("x", CrmConfig(kind="pipedrive")))
