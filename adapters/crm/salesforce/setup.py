"""`callmatch setup` for a Salesforce org: the W1 field, its field-level security, idempotently.

What callmatch cannot run without is one custom field on Activity (so on Task and
Event): the call id it upserts by (default `Callmatch_Call_Id__c`), Text(255),
External ID and Unique, readable and editable by the integration user. Setup:

1. creates it through the Tooling API (`POST tooling/sobjects/CustomField`), or makes
   an existing one External ID + Unique (`PATCH tooling/sobjects/CustomField/<id>`);
   a field created so is visible to nobody until field-level security grants it;
2. creates a permission set `Callmatch`;
3. grants it read + edit on `Task.<field>` and `Event.<field>` (FieldPermissions);
4. assigns it to the integration user (the OAuth userinfo's `user_id`).

Each step first reads what is there and says so (PRESENT); it creates or corrects only
what is missing (CREATED). With `dry_run` nothing is written: a missing piece is a
MANUAL step holding the exact clicks for an admin. A refusal for lack of rights
(the user lacks "Customize Application" / "Manage Users") is MANUAL too, with the API's
code; any other refusal is FAILED with the API's code. The tenant's cached
capabilities are dropped after a change, so workers see the field at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.crm.readiness import Outcome, Step
from adapters.crm.salesforce.capabilities import Capabilities
from adapters.crm.salesforce.client import SalesforceClient
from adapters.crm.salesforce.mapping import SalesforceSettings
from adapters.crm.salesforce.soql import quote
from adapters.errors import ExternalError, FatalError

PERMISSION_SET = "Callmatch"
FIELD_LABEL = "Callmatch Call Id"
FIELD_DESCRIPTION = "Set by callmatch: the id of the call this activity records (one activity per call)."
ACTIVITY_OBJECTS = ("Task", "Event")
# Refusals that mean "these credentials may not", not "this cannot be done": an admin can.
_NOT_ALLOWED = frozenset(
    {
        "INSUFFICIENT_ACCESS",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        "INSUFFICIENT_PRIVILEGES",
        "API_DISABLED_FOR_ORG",
        "FUNCTIONALITY_NOT_ENABLED",
        "NOT_FOUND",
    }
)


def field_metadata(label: str = FIELD_LABEL) -> dict[str, Any]:
    """The CustomField Metadata setup sends: Text(255), External ID, Unique (case-insensitive)."""
    return {
        "type": "Text",
        "length": 255,
        "externalId": True,
        "unique": True,
        "caseSensitive": False,
        "label": label,
        "description": FIELD_DESCRIPTION,
    }


def _not_allowed(error: ExternalError) -> bool:
    return error.status in (401, 403) or (error.code or "") in _NOT_ALLOWED


def find_activity_field(client: SalesforceClient, field: str) -> dict[str, Any] | None:
    """The Activity custom field's Tooling record with its Metadata (and `Id`); None when absent."""
    developer = field.removesuffix("__c")
    soql = (
        "SELECT Id, DeveloperName, TableEnumOrId FROM CustomField "
        f"WHERE DeveloperName = {quote(developer)} AND TableEnumOrId = 'Activity'"
    )
    result = client.rest("tooling query CustomField", "tooling/query", params={"q": soql})
    records = list((result or {}).get("records") or [])
    if not records:
        return None
    found = client.rest("tooling read CustomField", f"tooling/sobjects/CustomField/{records[0]['Id']}")
    return dict(found or {}) | {"Id": records[0]["Id"]}


@dataclass
class SalesforceSetup:
    """One run of `setup` against one org."""

    client: SalesforceClient
    settings: SalesforceSettings
    capabilities: Capabilities | None = None

    @property
    def field(self) -> str:
        return self.settings.external_id_field

    @property
    def tenant(self) -> str:
        return self.client.tenant

    # --- the exact manual steps -----------------------------------------------------------------

    def manual_field(self) -> str:
        developer = self.field.removesuffix("__c")
        return (
            "Setup > Object Manager > Activity > Fields & Relationships > New: Data Type 'Text'; "
            f"Field Label '{FIELD_LABEL}', Length 255, Field Name '{developer}'; tick 'Unique' "
            '(treat "ABC" and "abc" as duplicate values) and \'External ID\'; Next; field-level '
            "security: leave it unticked for every profile (the Callmatch permission set grants it); "
            "Next; untick the page layouts; Save"
        )

    def manual_unique(self) -> str:
        return (
            f"Setup > Object Manager > Activity > Fields & Relationships > {self.field} > Edit: "
            "tick 'Unique' and 'External ID'; Save (delete activities sharing a value first)"
        )

    def manual_permission_set(self) -> str:
        return (
            f"Setup > Permission Sets > New: Label '{PERMISSION_SET}', API Name '{PERMISSION_SET}', "
            "License '--None--'; Save"
        )

    def manual_field_permission(self, sobject: str) -> str:
        plural = {"Task": "Tasks", "Event": "Events"}[sobject]
        return (
            f"Setup > Permission Sets > {PERMISSION_SET} > Object Settings > {plural} > Edit: "
            f"'{FIELD_LABEL}' ({self.field}): tick Read Access and Edit Access; Save"
        )

    def manual_assignment(self, user: str) -> str:
        return (
            f"Setup > Permission Sets > {PERMISSION_SET} > Manage Assignments > Add Assignment: "
            f"tick the integration user ({user}); Next; Assign"
        )

    # --- steps ----------------------------------------------------------------------------------

    def run(self, *, dry_run: bool = False) -> list[Step]:
        steps: list[Step] = []
        changed = False
        field_step = self._field_step(dry_run)
        steps.append(field_step)
        changed |= field_step.outcome is Outcome.CREATED
        set_step, set_id = self._permission_set_step(dry_run)
        steps.append(set_step)
        changed |= set_step.outcome is Outcome.CREATED
        for sobject in ACTIVITY_OBJECTS:
            step = self._field_permission_step(sobject, set_id, dry_run)
            steps.append(step)
            changed |= step.outcome is Outcome.CREATED
        assignment = self._assignment_step(set_id, dry_run)
        steps.append(assignment)
        changed |= assignment.outcome is Outcome.CREATED
        if changed and self.capabilities is not None:
            self.capabilities.drop()
        return steps

    def _attempt(self, name: str, manual: str | Callable[[], str], action: Callable[[], Step]) -> Step:
        """A step's API work; refused for lack of rights: MANUAL with the admin's steps; else FAILED."""
        try:
            return action()
        except ExternalError as error:
            if isinstance(error, FatalError) and _not_allowed(error):
                text = manual() if callable(manual) else manual
                why = error.code or error.status
                return Step(name, Outcome.MANUAL, f"{text} (these credentials may not: {why})")
            return Step(name, Outcome.FAILED, str(error))

    def _field_name(self) -> str:
        return f"Activity.{self.field}"

    def _find_field(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = find_activity_field(self.client, self.field)
        return found

    def _field_step(self, dry_run: bool, *, again: bool = False) -> Step:
        name = self._field_name()
        if not self.field.endswith("__c"):
            return Step(
                name,
                Outcome.MANUAL,
                f"crm.external_id_field {self.field!r} is not a custom field: name one ending in __c "
                "(default Callmatch_Call_Id__c) and run setup again",
            )

        manual = [self.manual_field()]

        def action() -> Step:
            found = self._find_field()
            if found is None:
                if dry_run:
                    return Step(name, Outcome.MANUAL, self.manual_field())
                try:
                    self.client.rest(
                        "tooling create CustomField",
                        "tooling/sobjects/CustomField",
                        method="POST",
                        body={"FullName": name, "Metadata": field_metadata()},
                    )
                except FatalError as error:
                    if error.code == "DUPLICATE_DEVELOPER_NAME" and not again:
                        return self._field_step(dry_run, again=True)  # created meanwhile: look again
                    raise
                return Step(name, Outcome.CREATED, "Text(255), External ID, Unique (case-insensitive)")
            metadata = dict(found.get("Metadata") or {})
            if metadata.get("externalId") and metadata.get("unique"):
                kind = f"{metadata.get('type', 'Text')}({metadata.get('length', 255)})"
                return Step(name, Outcome.PRESENT, f"{kind}, External ID, Unique")
            manual[0] = self.manual_unique()
            if dry_run:
                return Step(name, Outcome.MANUAL, manual[0])
            metadata |= {"externalId": True, "unique": True, "caseSensitive": False}
            self.client.rest(
                "tooling update CustomField",
                f"tooling/sobjects/CustomField/{found['Id']}",
                method="PATCH",
                body={"FullName": name, "Metadata": metadata},
            )
            return Step(name, Outcome.CREATED, "made External ID + Unique (case-insensitive)")

        return self._attempt(name, lambda: manual[0], action)

    def _permission_set_step(self, dry_run: bool) -> tuple[Step, str | None]:
        name = f"permission set {PERMISSION_SET}"
        found: list[str] = []

        def action() -> Step:
            records = self.client.query(f"SELECT Id FROM PermissionSet WHERE Name = {quote(PERMISSION_SET)}")
            if records:
                found.append(str(records[0]["Id"]))
                return Step(name, Outcome.PRESENT, f"{PERMISSION_SET} ({found[0]})")
            if dry_run:
                return Step(name, Outcome.MANUAL, self.manual_permission_set())
            created = self.client.rest(
                "create PermissionSet",
                "sobjects/PermissionSet",
                method="POST",
                body={"Name": PERMISSION_SET, "Label": PERMISSION_SET},
            )
            found.append(str(created["id"]))
            return Step(name, Outcome.CREATED, f"{PERMISSION_SET} ({found[0]})")

        step = self._attempt(name, self.manual_permission_set(), action)
        return step, (found[0] if found else None)

    def _field_permission_step(self, sobject: str, set_id: str | None, dry_run: bool) -> Step:
        field = f"{sobject}.{self.field}"
        name = f"field permission {field}"
        manual = self.manual_field_permission(sobject)
        if set_id is None:
            return Step(name, Outcome.MANUAL, manual)

        def action() -> Step:
            records = self.client.query(
                "SELECT Id, PermissionsRead, PermissionsEdit FROM FieldPermissions "
                f"WHERE ParentId = {quote(set_id)} AND Field = {quote(field)}"
            )
            if records and records[0].get("PermissionsRead") and records[0].get("PermissionsEdit"):
                return Step(name, Outcome.PRESENT, f"read and edit through {PERMISSION_SET}")
            if dry_run:
                return Step(name, Outcome.MANUAL, manual)
            grant = {"PermissionsRead": True, "PermissionsEdit": True}
            if records:
                self.client.rest(
                    "update FieldPermissions",
                    f"sobjects/FieldPermissions/{records[0]['Id']}",
                    method="PATCH",
                    body=grant,
                )
            else:
                self.client.rest(
                    "create FieldPermissions",
                    "sobjects/FieldPermissions",
                    method="POST",
                    body={"ParentId": set_id, "SobjectType": sobject, "Field": field, **grant},
                )
            return Step(name, Outcome.CREATED, f"read and edit through {PERMISSION_SET}")

        return self._attempt(name, manual, action)

    def _assignment_step(self, set_id: str | None, dry_run: bool) -> Step:
        name = f"assignment {PERMISSION_SET}"
        try:
            user = str(self.client.userinfo().get("user_id") or "")
        except ExternalError as error:
            return Step(name, Outcome.FAILED, f"the integration user is unknown: {error}")
        manual = self.manual_assignment(user or "the integration user")
        if set_id is None or not user:
            return Step(name, Outcome.MANUAL, manual)

        def action() -> Step:
            records = self.client.query(
                "SELECT Id FROM PermissionSetAssignment "
                f"WHERE PermissionSetId = {quote(set_id)} AND AssigneeId = {quote(user)}"
            )
            if records:
                return Step(name, Outcome.PRESENT, f"assigned to the integration user {user}")
            if dry_run:
                return Step(name, Outcome.MANUAL, manual)
            self.client.rest(
                "create PermissionSetAssignment",
                "sobjects/PermissionSetAssignment",
                method="POST",
                body={"AssigneeId": user, "PermissionSetId": set_id},
            )
            return Step(name, Outcome.CREATED, f"assigned to the integration user {user}")

        return self._attempt(name, manual, action)


def run_setup(
    client: SalesforceClient,
    settings: SalesforceSettings,
    capabilities: Capabilities | None = None,
    *,
    dry_run: bool = False,
) -> list[Step]:
    return SalesforceSetup(client, settings, capabilities).run(dry_run=dry_run)
