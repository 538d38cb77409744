"""One HubSpot portal as the worker sees it: a shared client, caches and ledger, and a fresh port per call.

Built from a tenant's `crm` settings and credentials (worker.config.tenants.CrmConfig):

- credentials: `access_token` (private app), or `client_id`, `client_secret` and
  `refresh_token` (public app; the access token is refreshed by `expires_in`);
- settings (all optional): `host`, `burst_limit` (180), `burst_period` (10),
  `search_limit` (4), `search_period` (1), `budget_reserve` (0.1) and the other
  numbers of HubSpotSettings, `capabilities_ttl` (seconds, 21600), `external_id_property`,
  `marker_property`, `attendee_emails_property`, `extra_domains_property`,
  `extra_phones_property`, `lead_stages` and `primary_labels` (comma-separated),
  `additional_emails` (always / missing / never), `activity_kinds` (both / own).

It is also the tenant's `CrmAdmin`: `setup()` creates the properties W1 needs,
`doctor()` says whether the tenant can run (docs/hubspot.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import redis

from adapters.crm.hubspot.adapter import HubSpotCrm, TenantCache
from adapters.crm.hubspot.capabilities import PortalCapabilities
from adapters.crm.hubspot.client import HubSpotClient, HubSpotSettings, OAuthApp, TokenSource
from adapters.crm.hubspot.doctor import run_doctor
from adapters.crm.hubspot.ledger import ActivityLedger, MemoryLedger, RedisLedger
from adapters.crm.hubspot.mapping import HubSpotMapping
from adapters.crm.hubspot.setup import run_setup
from adapters.crm.readiness import DEFAULT_CAPABILITY_TTL_SECONDS, CapabilityCache, Check, Step
from worker.core.model import Policy

_NUMBERS = {f.name: f.type for f in fields(HubSpotSettings) if f.name not in ("tenant", "host")}
CAPABILITIES_KEY = "hubspot:{tenant}:capabilities"
_MAPPING_TEXT = (
    "external_id_property",
    "marker_property",
    "attendee_emails_property",
    "extra_domains_property",
    "extra_phones_property",
)


class HubSpotConfigError(ValueError):
    """A tenant's HubSpot settings that cannot work; names the setting, never a secret."""


def _settings(tenant: str, raw: Mapping[str, str]) -> HubSpotSettings:
    values: dict[str, Any] = {"tenant": tenant}
    if raw.get("host"):
        values["host"] = raw["host"]
    for name, kind in _NUMBERS.items():
        if name in raw:
            try:
                values[name] = int(raw[name]) if kind in ("int", int) else float(raw[name])
            except ValueError:
                raise HubSpotConfigError(f"crm.{name}: not a number") from None
    return HubSpotSettings(**values)


def _mapping(raw: Mapping[str, str], default_region: str) -> HubSpotMapping:
    values: dict[str, Any] = {"default_region": default_region}
    for name in _MAPPING_TEXT:
        if name in raw:
            values[name] = raw[name] or None if name == "extra_phones_property" else raw[name]
    for name in ("lead_stages", "primary_labels"):
        if name in raw:
            values[name] = frozenset(p.strip().lower() for p in raw[name].split(",") if p.strip())
    for name in ("additional_emails", "activity_kinds"):
        if name in raw:
            values[name] = raw[name].strip().lower()
    try:
        return HubSpotMapping(**values)
    except ValueError as error:
        raise HubSpotConfigError(f"crm.{error}") from None


def _capability_ttl(raw: Mapping[str, str]) -> float:
    if "capabilities_ttl" not in raw:
        return DEFAULT_CAPABILITY_TTL_SECONDS
    try:
        ttl = float(raw["capabilities_ttl"])
    except ValueError:
        raise HubSpotConfigError("crm.capabilities_ttl: not a number") from None
    if ttl <= 0:
        raise HubSpotConfigError("crm.capabilities_ttl: must be positive")
    return ttl


def _tokens(credentials: Mapping[str, str], margin: float) -> TokenSource:
    if all(credentials.get(k) for k in ("client_id", "client_secret", "refresh_token")):
        app = OAuthApp(credentials["client_id"], credentials["client_secret"], credentials["refresh_token"])
        return TokenSource(credentials.get("access_token"), oauth=app, margin=margin)
    if credentials.get("access_token"):
        return TokenSource(credentials["access_token"], margin=margin)
    raise HubSpotConfigError(
        "crm.credentials: need access_token, or client_id, client_secret and refresh_token"
    )


@dataclass
class HubSpotTenant:
    """Long-lived per tenant and process; `port()` is cheap and made once per association."""

    client: HubSpotClient
    mapping: HubSpotMapping
    cache: TenantCache
    ledger: ActivityLedger
    policy: Policy = field(default_factory=Policy)
    """The tenant's rules policy: what rules v1.1 read only when asked (X1's company `type`), and doctor checks."""

    @classmethod
    def from_config(
        cls,
        tenant: str,
        settings: Mapping[str, str],
        credentials: Mapping[str, str],
        *,
        default_region: str = "US",
        redis_client: redis.Redis | None = None,
        policy: Policy | None = None,
        **client_options: Any,
    ) -> HubSpotTenant:
        """With `redis_client`, limits, the daily budget, the W1 ledger, the portal's capabilities
        and an OAuth app's token (refreshed by one worker at a time) are shared by all workers."""
        hs_settings = _settings(tenant, settings)
        tokens = _tokens(credentials, hs_settings.refresh_margin)
        store = CapabilityCache(
            redis_client, CAPABILITIES_KEY.format(tenant=tenant), _capability_ttl(settings)
        )
        if redis_client is not None:
            client = HubSpotClient.for_tenant(hs_settings, tokens, redis_client, **client_options)
            ledger: ActivityLedger = RedisLedger(redis_client, tenant)
        else:
            client = HubSpotClient(hs_settings, tokens, **client_options)
            ledger = MemoryLedger()
        cache = TenantCache(capabilities=PortalCapabilities(store))
        return cls(client, _mapping(settings, default_region), cache, ledger, policy or Policy())

    def port(self, policy: Policy | None = None) -> HubSpotCrm:
        """A port for one association; `policy` (the tenant's as of now, else the one it was built with)
        says which v1.1 properties its reads name."""
        return HubSpotCrm(self.client, self.mapping, self.cache, self.ledger, policy=policy or self.policy)

    def setup(self, *, dry_run: bool = False) -> list[Step]:
        """Create the `callmatch` property group and the W1 properties on calls and meetings
        (idempotent); with `dry_run`, change nothing and say what an admin would click."""
        return run_setup(self.client, self.mapping, self.cache.capabilities, dry_run=dry_run)

    def doctor(self) -> list[Check]:
        """Credentials, scopes, properties (required and optional), pipelines, daily budget."""
        return run_doctor(self.client, self.mapping, self.cache.capabilities, self.policy)
