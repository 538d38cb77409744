"""`callmatch setup` for HubSpot: the `callmatch` property group and the W1 properties on calls and meetings.

Through the properties API (`POST /crm/v3/properties/{objectType}/groups`, `POST
/crm/v3/properties/{objectType}`); idempotent: what is there is reported PRESENT and
left alone. The external id is created with `hasUniqueValue: true` (HubSpot then
refuses a second activity with the same call id, and it can be read by `idProperty`);
a portal that refuses a unique property there gets it without, and W1 still holds
through the ledger and the search. Without the scope to change properties (or with
`dry_run`) every missing piece is a MANUAL step that says where to click in HubSpot.
Optional properties are not created: they only help when something fills them.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.crm.hubspot.capabilities import PortalCapabilities
from adapters.crm.hubspot.client import HubSpotClient, JsonObject, ScopeMissingError
from adapters.crm.hubspot.mapping import HubSpotMapping
from adapters.crm.readiness import Outcome, Step
from adapters.errors import ExternalError

GROUP = "callmatch"
GROUP_LABEL = "callmatch"
KINDS = ("calls", "meetings")
SCHEMA_SCOPE = "crm.schemas.contacts.write"
"""Calls and meetings are engagements: HubSpot checks the contacts scopes for their properties."""
_UI_OBJECT = {
    "calls": "Call",
    "meetings": "Meeting",
    "contacts": "Contact",
    "companies": "Company",
    "deals": "Deal",
}


@dataclass(frozen=True)
class PropertySpec:
    """One property `callmatch setup` creates, in the properties API's terms."""

    kind: str
    name: str
    label: str
    type: str
    field_type: str
    description: str
    unique: bool = False

    @property
    def path(self) -> str:
        return f"{self.kind}.{self.name}"

    def body(self, *, unique: bool) -> JsonObject:
        body: JsonObject = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": GROUP,
            "description": self.description,
            "formField": False,
        }
        if unique:
            body["hasUniqueValue"] = True
        if self.type == "bool":
            body["options"] = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        return body

    @property
    def ui_type(self) -> str:
        """The field type as HubSpot's property editor names it."""
        return "single checkbox" if self.type == "bool" else "single-line text"

    def manual(self) -> str:
        """Where an admin creates it by hand (HubSpot derives the internal name from the label)."""
        rule = " Rules: tick 'Require unique values for this property'." if self.unique else ""
        return (
            f"In HubSpot: Settings > Data Management > Properties > select object '{_UI_OBJECT[self.kind]} "
            f"properties' > Create property: group '{GROUP_LABEL}', label '{self.label}' (internal name "
            f"{self.name}), field type '{self.ui_type.capitalize()}'.{rule}"
        )


def _label(name: str) -> str:
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def specs(mapping: HubSpotMapping) -> list[PropertySpec]:
    """The W1 external id (unique) and the marker, on calls and on meetings (named as the tenant maps them)."""
    out: list[PropertySpec] = []
    for kind in KINDS:
        out.append(
            PropertySpec(
                kind,
                mapping.external_id_property,
                _label(mapping.external_id_property),
                "string",
                "text",
                "The call this activity records (set by callmatch; W1 key).",
                unique=True,
            )
        )
        out.append(
            PropertySpec(
                kind,
                mapping.marker_property,
                _label(mapping.marker_property),
                "bool",
                "booleancheckbox",
                "Whether callmatch wrote this activity (callmatch ignores its own when matching).",
            )
        )
    return out


def _group_manual(kind: str) -> str:
    return (
        f"In HubSpot: Settings > Data Management > Properties > select object '{_UI_OBJECT[kind]} properties' "
        f"> Groups tab > Create group: name '{GROUP_LABEL}'."
    )


def _refused(error: ExternalError) -> str:
    return str(error).removeprefix("hubspot: ")


def _not_allowed(error: ExternalError) -> bool:
    """The token may not change properties: an admin does it instead."""
    return isinstance(error, ScopeMissingError) or error.status == 403


def _scope_note(error: ExternalError) -> str:
    scopes = getattr(error, "scopes", ()) or (SCHEMA_SCOPE,)
    return f"the app lacks {', '.join(scopes)}; "


def run_setup(
    client: HubSpotClient,
    mapping: HubSpotMapping,
    capabilities: PortalCapabilities,
    *,
    dry_run: bool = False,
) -> list[Step]:
    """Each group and property: PRESENT, CREATED, MANUAL (dry run or not allowed) or FAILED."""
    steps: list[Step] = []
    wanted = specs(mapping)
    created = False
    for kind in KINDS:
        kind_specs = [s for s in wanted if s.kind == kind]
        try:
            groups = {str(g.get("name")) for g in client.property_groups_of(kind)}
            existing = {str(p.get("name")): p for p in client.properties_of(kind)}
        except ExternalError as error:
            if not dry_run and not _not_allowed(error):
                steps.append(Step(f"{kind} group {GROUP}", Outcome.FAILED, f"cannot read: {_refused(error)}"))
                steps += [Step(s.path, Outcome.FAILED, f"cannot read: {_refused(error)}") for s in kind_specs]
                continue
            note = f"(could not read the portal: {_refused(error)}) "
            steps.append(Step(f"{kind} group {GROUP}", Outcome.MANUAL, note + _group_manual(kind)))
            steps += [Step(s.path, Outcome.MANUAL, note + s.manual()) for s in kind_specs]
            continue
        group_step = _ensure_group(client, kind, groups, dry_run)
        steps.append(group_step)
        created |= group_step.outcome is Outcome.CREATED
        group_ready = group_step.outcome in (Outcome.PRESENT, Outcome.CREATED)
        for spec in kind_specs:
            if spec.name in existing:
                steps.append(_present(spec, existing[spec.name]))
            elif dry_run:
                steps.append(Step(spec.path, Outcome.MANUAL, spec.manual()))
            elif not group_ready:
                outcome = Outcome.MANUAL if group_step.outcome is Outcome.MANUAL else Outcome.FAILED
                steps.append(Step(spec.path, outcome, f"needs the {GROUP} group first. " + spec.manual()))
            else:
                step = _create(client, spec)
                created |= step.outcome is Outcome.CREATED
                steps.append(step)
    if created:
        capabilities.drop()  # every worker sees the new properties at its next association
    return steps


def _ensure_group(client: HubSpotClient, kind: str, groups: set[str], dry_run: bool) -> Step:
    name = f"{kind} group {GROUP}"
    if GROUP in groups:
        return Step(name, Outcome.PRESENT, f"property group '{GROUP}' exists on {kind}")
    if dry_run:
        return Step(name, Outcome.MANUAL, _group_manual(kind))
    try:
        client.create_property_group(kind, {"name": GROUP, "label": GROUP_LABEL, "displayOrder": -1})
    except ExternalError as error:
        if error.status == 409:
            return Step(name, Outcome.PRESENT, f"property group '{GROUP}' exists on {kind}")
        if _not_allowed(error):
            return Step(name, Outcome.MANUAL, _scope_note(error) + _group_manual(kind))
        return Step(name, Outcome.FAILED, _refused(error))
    return Step(name, Outcome.CREATED, f"property group '{GROUP}' on {kind}")


def _present(spec: PropertySpec, found: JsonObject) -> Step:
    if spec.unique and not found.get("hasUniqueValue"):
        return Step(
            spec.path,
            Outcome.PRESENT,
            "exists without unique values (HubSpot cannot make an existing property unique; "
            "W1 holds through the ledger and the search)",
        )
    return Step(spec.path, Outcome.PRESENT, "exists" + (", unique values" if spec.unique else ""))


def _create(client: HubSpotClient, spec: PropertySpec) -> Step:
    """Create it (unique when wanted); a portal that refuses the unique flag gets it without."""
    try:
        client.create_property(spec.kind, spec.body(unique=spec.unique))
    except ExternalError as error:
        if error.status == 409:
            return Step(spec.path, Outcome.PRESENT, "exists")
        if _not_allowed(error):
            return Step(spec.path, Outcome.MANUAL, _scope_note(error) + spec.manual())
        if not (spec.unique and error.status == 400):
            return Step(spec.path, Outcome.FAILED, _refused(error))
        try:
            client.create_property(spec.kind, spec.body(unique=False))
        except ExternalError as second:
            return Step(spec.path, Outcome.FAILED, _refused(second))
        return Step(
            spec.path,
            Outcome.CREATED,
            f"without unique values (HubSpot refused them: {_refused(error)}); W1 holds through the ledger and the search",
        )
    detail = f"{spec.ui_type} '{spec.label}' in group {GROUP}" + (", unique values" if spec.unique else "")
    return Step(spec.path, Outcome.CREATED, detail)


__all__ = ["GROUP", "PropertySpec", "run_setup", "specs"]
