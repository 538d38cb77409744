"""HubSpot API emulator: a real HTTP server on loopback, seeded from a scenario on a portal profile."""

from tests.emulators.hubspot.profile import PortalProfile
from tests.emulators.hubspot.server import Fault, HubSpotEmulator, Limits, rate_limit_body
from tests.emulators.hubspot.store import Store

__all__ = ["Fault", "HubSpotEmulator", "Limits", "PortalProfile", "Store", "rate_limit_body"]
