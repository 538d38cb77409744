"""The tenant's CRM port, built from its configuration (one port per association)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import redis

from adapters.crm.scenario import RedisActivityLog, ScenarioCrm
from worker.model import CrmSlice
from worker.port import CrmPort
from worker.scenario import loads_scenario
from worker.tenants import Tenant


@lru_cache(maxsize=64)
def _scenario_crm(path: Path, mtime: float) -> CrmSlice:
    return loads_scenario(path.read_bytes()).crm


class CrmFactory:
    """Builds ports; CRM clients that hold sessions or tokens are kept per tenant here."""

    def __init__(self, client: redis.Redis):
        self.redis = client
        self._tenants: dict[str, tuple[object, Any]] = {}

    def _client(self, tenant: Tenant, build: Any) -> Any:
        """The tenant's client, built again when a reloaded tenants file changed its CRM settings."""
        cached = self._tenants.get(tenant.name)
        if cached is None or cached[0] is not tenant.crm:
            cached = (tenant.crm, build())
            self._tenants[tenant.name] = cached
        return cached[1]

    def crm_for(self, tenant: Tenant) -> CrmPort:
        kind = tenant.crm.kind
        if kind == "scenario":
            path = tenant.crm.scenario_file
            assert path is not None
            crm = _scenario_crm(path, path.stat().st_mtime)
            return ScenarioCrm(crm, tenant.policy.default_region, RedisActivityLog(self.redis, tenant.name))
        if kind == "salesforce":
            from adapters.crm.salesforce.tenant import SalesforceTenant

            port: CrmPort = self._client(
                tenant, lambda: SalesforceTenant.from_config(tenant, self.redis)
            ).port()
            return port
        if kind == "hubspot":
            from adapters.crm.hubspot.tenant import HubSpotTenant

            hubspot: CrmPort = self._client(
                tenant,
                lambda: HubSpotTenant.from_config(
                    tenant.name,
                    tenant.crm.settings,
                    tenant.crm.credentials,
                    default_region=tenant.policy.default_region,
                    redis_client=self.redis,
                ),
            ).port()
            return hubspot
        raise NotImplementedError(f"tenant {tenant.name}: CRM kind {kind!r} is not supported")
