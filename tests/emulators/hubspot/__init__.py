"""HubSpot API emulator: a real HTTP server on loopback, seeded from a scenario."""

from tests.emulators.hubspot.server import Fault, HubSpotEmulator, Limits, rate_limit_body
from tests.emulators.hubspot.store import Store

__all__ = ["Fault", "HubSpotEmulator", "Limits", "Store", "rate_limit_body"]
