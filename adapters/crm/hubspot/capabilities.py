"""What one HubSpot portal has: the properties of the objects callmatch reads and writes, and the deal pipelines.

A real portal has HubSpot's default properties and whatever its admins created; the
callmatch properties exist only once `callmatch setup` (or an admin) made them. The
adapter asks only for properties the portal has (HubSpot answers a search or write
naming any other with 400 `PROPERTY_DOESNT_EXIST`), refuses to write without the W1
properties (`MissingRequirementError`, before any write), and leaves out the optional
ones (and what they add) when absent.

Discovery costs one `GET /crm/v3/properties/{objectType}` per object and one
`GET /crm/v3/pipelines/deals`: six requests per tenant, kept in Redis
(`CapabilityCache`, key `hubspot:<tenant>:capabilities`) for the TTL and in the
process for `LOCAL_SECONDS`, dropped at once when HubSpot says a property is missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.crm.hubspot.client import HubSpotClient, Meter
from adapters.crm.hubspot.mapping import COMPANY_TYPE_PROPERTY, ClosedState, HubSpotMapping, closed_from_stage
from adapters.crm.readiness import CapabilityCache, MissingRequirementError
from adapters.redis_errors import redis_call
from worker.core.model import Policy

SERVICE = "hubspot"
WHAT = "hubspot capabilities"
OBJECTS = ("contacts", "companies", "deals", "calls", "meetings")
FORMAT = 1
LOCAL_SECONDS = 30.0
"""How long a worker trusts its own copy before reading Redis again (a setup elsewhere drops the key)."""
RECHECK_SECONDS = 300.0
"""A required property reported missing by a copy older than this is looked up again first
(an admin may have created it by hand since): one discovery per five minutes at most."""


@dataclass(frozen=True)
class Capabilities:
    """The portal's property names per object (and which are unique), and its deal pipelines' stages."""

    properties: Mapping[str, frozenset[str]]
    unique: Mapping[str, frozenset[str]] = field(default_factory=dict)
    pipelines: Mapping[str, Mapping[str, ClosedState]] = field(default_factory=dict)
    discovered_at: float = 0.0
    """Epoch seconds of the discovery (wall clock: the copy is shared between processes)."""

    def has(self, kind: str, name: str | None) -> bool:
        return bool(name) and name in self.properties.get(kind, frozenset())

    def is_unique(self, kind: str, name: str) -> bool:
        return name in self.unique.get(kind, frozenset())

    def only(self, kind: str, names: Iterable[str | None]) -> list[str]:
        """`names` the portal has on `kind`, in order (what a read or search may name)."""
        return [n for n in dict.fromkeys(names) if n and self.has(kind, n)]

    def stage(self, pipeline_id: str, stage_id: str) -> ClosedState | None:
        stages = self.pipelines.get(pipeline_id)
        return None if stages is None else stages.get(stage_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "discovered_at": self.discovered_at,
            "properties": {k: sorted(v) for k, v in self.properties.items()},
            "unique": {k: sorted(v) for k, v in self.unique.items()},
            "pipelines": {
                p: {s: [c.is_closed, c.is_won] for s, c in stages.items()}
                for p, stages in self.pipelines.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Capabilities | None:
        """None for anything not written by this version (the caller discovers again)."""
        if data.get("format") != FORMAT:
            return None
        try:
            return cls(
                properties={str(k): frozenset(map(str, v)) for k, v in data["properties"].items()},
                unique={str(k): frozenset(map(str, v)) for k, v in (data.get("unique") or {}).items()},
                pipelines={
                    str(p): {str(s): ClosedState(bool(v[0]), bool(v[1])) for s, v in stages.items()}
                    for p, stages in (data.get("pipelines") or {}).items()
                },
                discovered_at=float(data.get("discovered_at") or 0.0),
            )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            return None


def discover(
    client: HubSpotClient, *, meter: Meter | None = None, clock: Callable[[], float] = time.time
) -> Capabilities:
    """Ask the portal: five property lists and the deal pipelines (six requests)."""
    properties: dict[str, frozenset[str]] = {}
    unique: dict[str, frozenset[str]] = {}
    for kind in OBJECTS:
        listed = client.properties_of(kind, meter=meter)
        properties[kind] = frozenset(str(p["name"]) for p in listed if p.get("name"))
        unique[kind] = frozenset(str(p["name"]) for p in listed if p.get("name") and p.get("hasUniqueValue"))
    pipelines = {
        str(p["id"]): {str(s["id"]): closed_from_stage(s) for s in p.get("stages") or []}
        for p in client.pipelines_of("deals", meter=meter)
    }
    return Capabilities(properties, unique, pipelines, discovered_at=clock())


@dataclass(frozen=True)
class Requirement:
    """A property callmatch needs (`required`) or uses when present, and what its absence costs."""

    kind: str
    name: str
    required: bool
    loses: str
    unique: bool = False
    """Wanted with unique values (the W1 external id): HubSpot then refuses a duplicate itself."""

    @property
    def path(self) -> str:
        return f"{self.kind}.{self.name}"


def requirements(mapping: HubSpotMapping, policy: Policy | None = None) -> list[Requirement]:
    """W1 needs the external id (which activity holds the call) and the marker (ours, A1 skips it)
    on both activity objects; every other property only adds matches when the portal has it.
    With `policy`, the properties its rules v1.1 read follow (X1: companies' `type`)."""
    out = [
        Requirement(kind, name, True, loses, unique)
        for kind in ("calls", "meetings")
        for name, loses, unique in (
            (mapping.external_id_property, "W1: no activity can be written (no key to find it again)", True),
            (
                mapping.marker_property,
                "W1: our activities cannot be told from others (A1 would count them)",
                False,
            ),
        )
    ]
    out += [
        Requirement(
            "meetings",
            mapping.attendee_emails_property,
            False,
            "A1: a meeting logged by someone else is matched by its call id only, not by time and attendees",
        ),
    ]
    if mapping.extra_phones_property:
        out.append(
            Requirement(
                "contacts",
                mapping.extra_phones_property,
                False,
                "M2: phones beyond phone and mobilephone are not compared",
            )
        )
    out += [
        Requirement(
            "contacts", "hs_additional_emails", False, "M1: contacts are matched on their primary email only"
        ),
        Requirement(
            "contacts",
            "hs_searchable_calculated_phone_number",
            False,
            "M2: phones are searched as stored, not by their digits",
        ),
        Requirement(
            "contacts",
            "hs_searchable_calculated_mobile_number",
            False,
            "M2: mobile phones are searched as stored, not by their digits",
        ),
        Requirement(
            "companies",
            mapping.extra_domains_property,
            False,
            "M6: companies are matched on their primary domain only",
        ),
        Requirement(
            "deals",
            "hs_is_closed",
            False,
            "none (closed and won come from the pipeline stages, cached per tenant)",
        ),
    ]
    if policy is not None and policy.excluded_account_types:
        out.append(
            Requirement(
                "companies",
                COMPANY_TYPE_PROPERTY,
                False,
                "X1: no company's type is read, so excluded_account_types excludes no company",
            )
        )
    return out


def fix_for(tenant: str) -> str:
    return f"callmatch setup --tenant {tenant}"


def require_for_write(caps: Capabilities, kind: str, mapping: HubSpotMapping, tenant: str) -> None:
    """W1 on `kind` (calls or meetings) needs its external id and marker: else MissingRequirementError."""
    for name in (mapping.external_id_property, mapping.marker_property):
        if not caps.has(kind, name):
            raise MissingRequirementError(SERVICE, f"{kind}.{name}", fix_for(tenant))


class PortalCapabilities:
    """A tenant's capabilities: in the process for a few seconds, in Redis for the TTL, else discovered."""

    def __init__(
        self,
        store: CapabilityCache | None = None,
        *,
        local_seconds: float = LOCAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store if store is not None else CapabilityCache(None, "hubspot:local:capabilities")
        self.local_seconds = local_seconds
        self._monotonic = monotonic
        self._clock = clock
        self._lock = threading.Lock()
        self._held: tuple[float, Capabilities] | None = None
        self.discoveries = 0

    def get(self, client: HubSpotClient, *, meter: Meter | None = None, local: bool = True) -> Capabilities:
        """The process's copy while fresh (`local`), else Redis's, else the portal's."""
        with self._lock:
            held = self._held
            if local and held is not None and self._monotonic() - held[0] < self.local_seconds:
                return held[1]
        with redis_call(WHAT):
            raw = self.store.get()
        caps = Capabilities.from_json(raw) if raw is not None else None
        if caps is None:
            caps = self._discover(client, meter)
        with self._lock:
            self._held = (self._monotonic(), caps)
        return caps

    def refresh(self, client: HubSpotClient, *, meter: Meter | None = None) -> Capabilities:
        """Forget every copy and ask the portal again (after PROPERTY_DOESNT_EXIST, or a setup)."""
        self.drop()
        caps = self._discover(client, meter)
        with self._lock:
            self._held = (self._monotonic(), caps)
        return caps

    def drop(self) -> None:
        with self._lock:
            self._held = None
        with redis_call(WHAT):
            self.store.drop()

    def age(self, caps: Capabilities) -> float:
        return max(self._clock() - caps.discovered_at, 0.0)

    def now(self) -> float:
        """The clock `discovered_at` is read on."""
        return self._clock()

    def replace(self, caps: Capabilities) -> None:
        """Keep capabilities read elsewhere (doctor reads them afresh anyway)."""
        with redis_call(WHAT):
            self.store.put(caps.to_json())
        with self._lock:
            self._held = (self._monotonic(), caps)

    def _discover(self, client: HubSpotClient, meter: Meter | None) -> Capabilities:
        caps = discover(client, meter=meter, clock=self._clock)
        with redis_call(WHAT):
            self.store.put(caps.to_json())
        with self._lock:
            self.discoveries += 1
        return caps


__all__ = [
    "OBJECTS",
    "Capabilities",
    "PortalCapabilities",
    "Requirement",
    "discover",
    "fix_for",
    "require_for_write",
    "requirements",
]
