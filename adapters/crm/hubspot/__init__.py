"""The CRM port over HubSpot (hubspot-api-client), with write-back W1/W3.

`HubSpotTenant.from_config(...)` wires one portal (client, limits, caches, ledger,
the portal's capabilities); its `port()` is the `CrmPort` for one association, and it is
the tenant's `CrmAdmin` (`setup()`, `doctor()`). docs/hubspot.md says what a portal needs.
"""

from adapters.crm.hubspot.adapter import HubSpotCrm, TenantCache
from adapters.crm.hubspot.capabilities import Capabilities, PortalCapabilities
from adapters.crm.hubspot.client import (
    HubSpotClient,
    HubSpotSettings,
    OAuthApp,
    PropertyMissingError,
    ScopeMissingError,
    TokenSource,
    classify,
)
from adapters.crm.hubspot.ledger import MemoryLedger, RedisLedger
from adapters.crm.hubspot.mapping import HubSpotMapping
from adapters.crm.hubspot.tenant import HubSpotConfigError, HubSpotTenant

__all__ = [
    "Capabilities",
    "HubSpotClient",
    "HubSpotConfigError",
    "HubSpotCrm",
    "HubSpotMapping",
    "HubSpotSettings",
    "HubSpotTenant",
    "MemoryLedger",
    "OAuthApp",
    "PortalCapabilities",
    "PropertyMissingError",
    "RedisLedger",
    "ScopeMissingError",
    "TenantCache",
    "TokenSource",
    "classify",
]
