"""What an emulated HubSpot portal has: its custom properties, its paging and search limits, the scopes granted.

A real portal starts with HubSpot's default properties only (`plain`); `callmatch setup`
adds a `callmatch` property group and the properties callmatch needs (`after_setup`);
`full` also has every optional property the adapter can use (what the emulator assumed
before portals had profiles). Property names are `objectType.name`, e.g.
`calls.callmatch_call_id`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

CALLMATCH_GROUP = "callmatch"
"""The property group `callmatch setup` creates on every object type it adds a property to."""

SETUP_PROPERTIES = frozenset(
    {
        "calls.callmatch_call_id",
        "meetings.callmatch_call_id",
        "calls.callmatch_written",
        "meetings.callmatch_written",
    }
)
"""What `callmatch setup` creates: the W1 external id (unique) and the marker on calls and meetings."""

UNIQUE_SETUP_PROPERTIES = frozenset({"calls.callmatch_call_id", "meetings.callmatch_call_id"})
"""Created with `hasUniqueValue: true`, so the adapter can read and write by `idProperty`."""

OPTIONAL_PROPERTIES = frozenset(
    {
        "calls.callmatch_attendee_emails",
        "meetings.callmatch_attendee_emails",
        "contacts.callmatch_other_phones",
    }
)
"""Optional custom properties: the adapter reads them where the portal has them."""

ALL_SCOPES = frozenset(
    {
        "oauth",
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.objects.companies.read",
        "crm.objects.companies.write",
        "crm.objects.deals.read",
        "crm.objects.deals.write",
        "crm.objects.owners.read",
        "crm.schemas.contacts.read",
        "crm.schemas.contacts.write",
        "crm.schemas.companies.read",
        "crm.schemas.companies.write",
        "crm.schemas.deals.read",
        "crm.schemas.deals.write",
    }
)
"""HubSpot's scopes for what the emulator serves (developers.hubspot.com, "Scopes"). Calls,
meetings and notes are engagements: HubSpot checks the contacts scopes for them."""

READ_ONLY_SCOPES = frozenset(s for s in ALL_SCOPES if not s.endswith(".write"))
"""A token that can read everything and change nothing (doctor and setup tests)."""


@dataclass(frozen=True)
class PortalProfile:
    """A portal's switches. Frozen: change a running emulator's with `Store.set_profile`."""

    custom_properties: frozenset[str] = frozenset()
    """`objectType.name` of the properties that exist beyond HubSpot's defaults."""
    unique_properties: frozenset[str] = frozenset()
    """The custom properties created with `hasUniqueValue: true` (usable as `idProperty`)."""
    association_page_size: int = 3
    """v4 batch association reads page each object's list at this size (`results[].paging.next.after`)."""
    search_total_cap: int = 10_000
    """Search cannot page past this many results (HubSpot answers 400 past 10,000)."""
    scopes: frozenset[str] = ALL_SCOPES
    """Scopes granted to the app; a request needing another answers 403 `MISSING_SCOPES`."""

    @classmethod
    def plain(cls) -> PortalProfile:
        """A real portal as a customer has it: HubSpot's default properties only."""
        return cls()

    @classmethod
    def after_setup(cls) -> PortalProfile:
        """A plain portal after `callmatch setup`: the `callmatch` group and its properties."""
        return cls(custom_properties=SETUP_PROPERTIES, unique_properties=UNIQUE_SETUP_PROPERTIES)

    @classmethod
    def full(cls) -> PortalProfile:
        """`after_setup` plus every optional property the adapter can use. Its association page is
        large (500): the suites that ran before portals had profiles keep their behaviour."""
        return cls(
            custom_properties=SETUP_PROPERTIES | OPTIONAL_PROPERTIES,
            unique_properties=UNIQUE_SETUP_PROPERTIES,
            association_page_size=500,
        )

    def has(self, object_type: str, name: str) -> bool:
        """Whether `name` is one of this profile's custom properties of `object_type`."""
        return f"{object_type}.{name}" in self.custom_properties

    def with_property(self, object_type: str, name: str, *, unique: bool = False) -> PortalProfile:
        """This profile with one more custom property (what the properties API does)."""
        key = f"{object_type}.{name}"
        return dataclasses.replace(
            self,
            custom_properties=self.custom_properties | {key},
            unique_properties=self.unique_properties | {key} if unique else self.unique_properties,
        )

    def without_property(self, object_type: str, name: str) -> PortalProfile:
        """This profile with one custom property deleted (archived in HubSpot's terms)."""
        key = f"{object_type}.{name}"
        return dataclasses.replace(
            self,
            custom_properties=self.custom_properties - {key},
            unique_properties=self.unique_properties - {key},
        )
