"""The provider modules the receiver routes to, by the name used in URLs and in tenants.yaml."""

from __future__ import annotations

from adapters.providers.aircall import webhook as aircall
from adapters.providers.google_meet import webhook as google_meet
from adapters.providers.ringover import webhook as ringover
from adapters.providers.teams import webhook as teams
from adapters.providers.zoom import webhook as zoom
from worker.ingest.webhook import Handler

HANDLERS: dict[str, Handler] = {
    "aircall": aircall.handle,
    "ringover": ringover.handle,
    "zoom": zoom.handle,
    "google_meet": google_meet.handle,
    "teams": teams.handle,
}
