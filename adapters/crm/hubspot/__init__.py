"""The CRM port over HubSpot (hubspot-api-client), with write-back W1/W3.

`HubSpotTenant.from_config(...)` wires one portal (client, limits, caches, ledger);
its `port()` is the `CrmPort` for one association.
"""

from adapters.crm.hubspot.adapter import HubSpotCrm, TenantCache
from adapters.crm.hubspot.client import HubSpotClient, HubSpotSettings, OAuthApp, TokenSource, classify
from adapters.crm.hubspot.ledger import MemoryLedger, RedisLedger
from adapters.crm.hubspot.mapping import HubSpotMapping
from adapters.crm.hubspot.tenant import HubSpotConfigError, HubSpotTenant

__all__ = [
    "HubSpotClient",
    "HubSpotConfigError",
    "HubSpotCrm",
    "HubSpotMapping",
    "HubSpotSettings",
    "HubSpotTenant",
    "MemoryLedger",
    "OAuthApp",
    "RedisLedger",
    "TenantCache",
    "TokenSource",
    "classify",
]
