"""What a Salesforce org has: optional features, custom fields, field-level security, object permissions.

Real customer orgs differ: "Shared Activities" and "Contacts to Multiple Accounts" are
settings an admin turns on (most orgs have neither: a recorded global describe of an
Enterprise org lists no TaskRelation, TaskWhoRelation, EventWhoRelation nor
AccountContactRelation), custom fields exist only where someone created them, and a
field can exist yet be invisible to the API user (field-level security). The
emulator builds its schema, describes, and errors from one of these profiles.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVITY = "Activity"
"""Custom fields of Task and Event are defined once, on Activity, and appear on both."""

CALL_ID_FIELD = "Activity.Callmatch_Call_Id__c"

KNOWN_CUSTOM_FIELDS: frozenset[str] = frozenset(
    {
        "Contact.Secondary_Email__c",
        "Lead.Secondary_Email__c",
        "Contact.Other_Email__c",
        "Lead.Other_Email__c",
        "Account.Domains__c",
        "Event.Call_Id__c",
        "Event.Attendee_Emails__c",
        CALL_ID_FIELD,
    }
)
"""Every custom field the old emulator assumed: `full()` has them all."""

ACTIONS = ("read", "create", "edit", "delete")


def objects_of(name: str) -> tuple[str, ...]:
    """The objects a field name ("Object.Field") lives on: an Activity field is on Task and Event."""
    obj, _, _field = name.partition(".")
    return ("Task", "Event") if obj == ACTIVITY else (obj,)


@dataclass(frozen=True)
class OrgProfile:
    """One org's features, custom fields, field-level security and the API user's object permissions."""

    shared_activities: bool = False
    contacts_to_multiple_accounts: bool = False
    custom_fields: frozenset[str] = frozenset()
    hidden_fields: frozenset[str] = frozenset()
    external_id_unique: bool = True
    customize_application: bool = True
    denied: frozenset[str] = frozenset()
    daily_api_limit: int = 15000

    def __post_init__(self) -> None:
        for name in (*self.custom_fields, *self.hidden_fields):
            if name.count(".") != 1:
                raise ValueError(f"field {name!r} is not 'Object.Field'")
        for name in self.denied:
            obj, _, action = name.partition(".")
            if not obj or action not in ACTIONS:
                raise ValueError(f"denied {name!r} is not 'Object.{'|'.join(ACTIONS)}'")

    @classmethod
    def plain(cls) -> OrgProfile:
        """The plainest real Enterprise org: no optional feature, no custom field."""
        return cls()

    @classmethod
    def after_setup(cls) -> OrgProfile:
        """A plain org once `callmatch setup` ran: the call-id field, External ID + Unique, visible."""
        return cls(custom_fields=frozenset({CALL_ID_FIELD}))

    @classmethod
    def full(cls) -> OrgProfile:
        """Every optional feature on and every custom field present (what the old emulator assumed)."""
        return cls(
            shared_activities=True,
            contacts_to_multiple_accounts=True,
            custom_fields=KNOWN_CUSTOM_FIELDS,
        )

    def has_field(self, obj: str, name: str) -> bool:
        """Whether custom field `name` exists on `obj` (hidden or not): `Activity.X` counts for Task and Event."""
        lowered = name.lower()
        for entry in self.custom_fields:
            if entry.partition(".")[2].lower() == lowered and obj in objects_of(entry):
                return True
        return False

    def can(self, obj: str, action: str) -> bool:
        """Whether the API user holds object permission `action` (read, create, edit, delete) on `obj`."""
        return f"{obj}.{action}" not in self.denied
