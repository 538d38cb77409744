"""The tenant's CRM port, built from its configuration (one port per association), and its admin."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import redis

from adapters.crm.readiness import Check, CrmAdmin, Outcome, Status, Step
from adapters.crm.scenario import RedisActivityLog, ScenarioCrm
from worker.config.scenario import ScenarioError, loads_scenario
from worker.config.tenants import Tenant
from worker.core.model import CrmSlice
from worker.core.port import CrmPort


@lru_cache(maxsize=64)
def _scenario_crm(path: Path, mtime: float) -> CrmSlice:
    return loads_scenario(path.read_bytes()).crm


class ScenarioAdmin:
    """`setup` / `doctor` of the scenario CRM: nothing to create, the file must read as a scenario."""

    def __init__(self, path: Path | None):
        self.path = path

    def setup(self, *, dry_run: bool = False) -> list[Step]:
        return [
            Step(
                "crm.scenario",
                Outcome.PRESENT,
                f"nothing to create: the scenario CRM reads its records from {self.path}",
            )
        ]

    def doctor(self) -> list[Check]:
        fix = "correct the file, or crm.scenario_file in the tenants file"
        if self.path is None:
            return [Check("crm.scenario", Status.FAIL, "no scenario_file configured", fix)]
        try:
            crm = loads_scenario(self.path.read_bytes()).crm
        except OSError as exc:
            return [Check("crm.scenario", Status.FAIL, f"cannot read {self.path}: {exc.strerror}", fix)]
        except ScenarioError as exc:
            return [Check("crm.scenario", Status.FAIL, f"{self.path} is not a scenario: {exc}", fix)]
        counts = {
            "users": len(crm.users),
            "accounts": len(crm.accounts),
            "contacts": len(crm.contacts),
            "leads": len(crm.leads),
            "opportunities": len(crm.opportunities),
            "activities": len(crm.activities),
        }
        parts = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        total = sum(counts.values())
        return [
            Check(
                "crm.scenario",
                Status.OK,
                f"{self.path} readable: {total} records" + (f" ({parts})" if parts else ""),
            )
        ]


class CrmFactory:
    """Builds ports and admins; CRM clients that hold sessions or tokens are kept per tenant here."""

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

    def _tenant_client(self, tenant: Tenant) -> Any:
        """The SalesforceTenant or HubSpotTenant of a CRM tenant: one per tenant, shared by ports and admin."""
        kind = tenant.crm.kind
        if kind == "salesforce":
            from adapters.crm.salesforce.tenant import SalesforceTenant

            return self._client(tenant, lambda: SalesforceTenant.from_config(tenant, self.redis))
        if kind == "hubspot":
            from adapters.crm.hubspot.tenant import HubSpotTenant

            return self._client(
                tenant,
                lambda: HubSpotTenant.from_config(
                    tenant.name,
                    tenant.crm.settings,
                    tenant.crm.credentials,
                    default_region=tenant.policy.default_region,
                    redis_client=self.redis,
                    policy=tenant.policy,
                ),
            )
        raise NotImplementedError(f"tenant {tenant.name}: CRM kind {kind!r} is not supported")

    def crm_for(self, tenant: Tenant) -> CrmPort:
        if tenant.crm.kind == "scenario":
            path = tenant.crm.scenario_file
            assert path is not None
            crm = _scenario_crm(path, path.stat().st_mtime)
            return ScenarioCrm(
                crm,
                tenant.policy.default_region,
                RedisActivityLog(self.redis, tenant.name),
                domain_match=tenant.policy.domain_match,
            )
        # The tenant's policy as of now says which rules v1.1 fields the port reads (M9, X1).
        port: CrmPort = self._tenant_client(tenant).port(tenant.policy)
        return port

    def admin_for(self, tenant: Tenant) -> CrmAdmin:
        """What `callmatch setup` and `callmatch doctor` ask of the tenant's CRM (the same cached client)."""
        if tenant.crm.kind == "scenario":
            return ScenarioAdmin(tenant.crm.scenario_file)
        admin: CrmAdmin = self._tenant_client(tenant)
        return admin
