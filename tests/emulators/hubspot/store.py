"""The emulated portal's data: HubSpot objects, associations, owners and properties.

A scenario's CRM slice is written the way a HubSpot user would hold it (HubSpot's default
objects and properties, plus the custom properties the portal profile has):
- users -> owners; accounts -> companies (`domain`, further domains in `hs_additional_domains`);
- contacts -> contacts in lifecycle stage `customer`, leads -> contacts in stage `lead`; the
  first email is `email`, the others `hs_additional_emails` (HubSpot keeps `email` unique, so an
  email another contact already holds goes there too); phones -> `phone`, `mobilephone`, then
  `callmatch_other_phones` where the portal has that property;
- opportunities -> deals in the default pipeline, associated to their company (primary) and
  their contacts (the user-defined label `Primary` on the primary contact role);
- activities -> calls (tasks) and meetings (events); callmatch's own values
  (`callmatch_call_id`, `callmatch_written`, `callmatch_attendee_emails`) only where the
  portal has those properties, otherwise they are not held anywhere.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import re
import threading
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.hubspot import catalog, search
from tests.emulators.hubspot.catalog import OBJECT_TYPES
from tests.emulators.hubspot.profile import CALLMATCH_GROUP, PortalProfile
from worker.core.model import ActivityType, Scenario

TYPE_IDS = {
    "0-1": "contacts",
    "0-2": "companies",
    "0-3": "deals",
    "0-48": "calls",
    "0-47": "meetings",
    "0-46": "notes",
}
SINGULAR = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
    "calls": "call",
    "meetings": "meeting",
    "notes": "note",
}

ENGAGEMENTS = frozenset({"calls", "meetings", "notes"})
"""Activities: HubSpot dates their creation in `hs_createdate`."""

PRIMARY_LABEL_TYPE_ID = 9
"""The user-defined deal->contact label `Primary` (ids of user labels are per portal and direction)."""

USER_LABELS: dict[tuple[str, str], dict[int, tuple[str, str]]] = {
    ("deals", "contacts"): {PRIMARY_LABEL_TYPE_ID: ("Primary", "primary")},
    ("contacts", "deals"): {PRIMARY_LABEL_TYPE_ID + 1: ("Primary", "primary")},
}
"""(from, to) -> type id -> (label, internal name) of the portal's user-defined association labels,
as the v4 labels API lists them; v3 object reads name a labelled link by the internal name."""

# (from, to) -> (unlabeled type id, primary type id or None); HUBSPOT_DEFINED ids.
HUBSPOT_DEFINED: dict[tuple[str, str], tuple[int, int | None]] = {
    ("contacts", "companies"): (279, 1),
    ("companies", "contacts"): (280, 2),
    ("deals", "contacts"): (3, None),
    ("contacts", "deals"): (4, None),
    ("deals", "companies"): (341, 5),
    ("companies", "deals"): (342, 6),
    ("calls", "contacts"): (194, None),
    ("contacts", "calls"): (193, None),
    ("calls", "companies"): (182, None),
    ("companies", "calls"): (181, None),
    ("calls", "deals"): (206, None),
    ("deals", "calls"): (205, None),
    ("meetings", "contacts"): (200, None),
    ("contacts", "meetings"): (199, None),
    ("meetings", "companies"): (188, None),
    ("companies", "meetings"): (187, None),
    ("meetings", "deals"): (212, None),
    ("deals", "meetings"): (211, None),
    ("notes", "contacts"): (202, None),
    ("contacts", "notes"): (201, None),
    ("notes", "companies"): (190, None),
    ("companies", "notes"): (189, None),
    ("notes", "deals"): (214, None),
    ("deals", "notes"): (213, None),
}

EPOCH = "1970-01-01T00:00:00Z"
"""HubSpot dates its default pipeline and stages at the epoch."""

PIPELINE: dict[str, Any] = {
    "id": "default",
    "label": "Sales Pipeline",
    "displayOrder": 0,
    "archived": False,
    "createdAt": EPOCH,
    "updatedAt": EPOCH,
    "stages": [
        {
            "id": stage_id,
            "label": label,
            "displayOrder": order,
            "archived": False,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            "createdAt": EPOCH,
            "updatedAt": EPOCH,
            "metadata": {"isClosed": closed, "probability": probability},
        }
        for order, (stage_id, label, closed, probability) in enumerate(
            [
                ("appointmentscheduled", "Appointment Scheduled", "false", "0.2"),
                ("qualifiedtobuy", "Qualified To Buy", "false", "0.4"),
                ("presentationscheduled", "Presentation Scheduled", "false", "0.6"),
                ("decisionmakerboughtin", "Decision Maker Bought-In", "false", "0.8"),
                ("contractsent", "Contract Sent", "false", "0.9"),
                ("closedwon", "Closed Won", "true", "1.0"),
                ("closedlost", "Closed Lost", "true", "0.0"),
            ]
        )
    ],
}
"""Every portal's default deal pipeline: HubSpot's seven default stages and their probabilities."""
STAGE_OF = {(False, False): "appointmentscheduled", (True, True): "closedwon", (True, False): "closedlost"}


def iso(value: dt.datetime) -> str:
    """HubSpot's datetime format: UTC with milliseconds and `Z`."""
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


PREVIEW_CHARS = 10_000
"""Where a note's `hs_body_preview` is cut. HubSpot documents no length: an assumption, far above
anything callmatch writes (the recording's short note is not truncated)."""


def note_preview(body: str) -> tuple[str, bool]:
    """A note body as HubSpot previews it: tags dropped, entities decoded, white space folded."""
    text = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", body)).split())
    return text[:PREVIEW_CHARS], len(text) > PREVIEW_CHARS


def company_domain(value: str) -> str:
    """How a scenario's account domain is held in `domain`: the bare host name, lower case.
    HubSpot's `domain` property is the company's domain name (not a URL); a website typed
    with a scheme, a path or `www.` is stored by HubSpot's company enrichment as its root
    domain, which is what a scenario's seed means by it."""
    host = value.strip().lower()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    host = host.split("/", 1)[0].split(":", 1)[0].strip(".")
    return host[4:] if host.startswith("www.") else host


def contact_email(value: str | None) -> str:
    """HubSpot stores a contact's email trimmed and in lower case (emails are case-insensitive
    there: `email` is the contacts' unique identifier)."""
    return (value or "").strip().lower()


@dataclass
class HsObject:
    id: str
    type: str
    properties: dict[str, str]
    created_at: str
    updated_at: str
    indexed_at: float = 0.0
    """When search starts to see it (HubSpot's search index lags writes)."""
    seq: int = 0
    """Creation order: search lists results oldest first unless sorted."""

    def to_json(self, names: list[str] | None, known: Collection[str]) -> dict[str, Any]:
        """The v3 object: the `names` asked for (null when unset; a name the portal has no property
        for is left out, as HubSpot does), or every value held when `names` is None."""
        props: dict[str, str | None]
        if names is None:
            props = {k: v for k, v in self.properties.items() if k in known}
        else:
            props = {name: self.properties.get(name) for name in names if name in known}
        props["hs_object_id"] = self.id
        return {
            "id": self.id,
            "properties": props,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": False,
        }


@dataclass
class Store:
    """Objects by type and id, associations both ways, owners, the portal's properties; one lock."""

    region: str = "US"
    profile: PortalProfile = field(default_factory=PortalProfile.plain)
    objects: dict[str, dict[str, HsObject]] = field(default_factory=lambda: {t: {} for t in OBJECT_TYPES})
    # (from_type, to_type) -> from_id -> to_id -> set of (category, type id, label)
    links: dict[tuple[str, str], dict[str, dict[str, set[tuple[str, int, str | None]]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )
    owners: list[dict[str, Any]] = field(default_factory=list)
    properties: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """objectType -> name -> v3 property definition: what the properties API lists."""
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(9_000_000_001))
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        if not self.properties:
            self.properties = {t: catalog.default_properties(t) for t in OBJECT_TYPES}
            self.groups = {t: catalog.default_groups(t) for t in OBJECT_TYPES}
        self.set_profile(self.profile)

    # -- the portal's properties -------------------------------------------------------------
    def set_profile(self, profile: PortalProfile) -> None:
        """Make the portal's custom properties those of `profile` (a test changing the portal at
        run time). Values of a removed property stay stored but are not served, as HubSpot keeps
        an archived property's values until it is restored."""
        with self.lock:
            for kind in OBJECT_TYPES:
                for name, spec in list(self.properties[kind].items()):
                    if not spec.get("hubspotDefined") and not profile.has(kind, name):
                        del self.properties[kind][name]
            for key in sorted(profile.custom_properties):
                kind, _, name = key.partition(".")
                if kind not in self.properties:
                    raise ValueError(f"unknown object type in profile property {key!r}")
                unique = key in profile.unique_properties
                current = self.properties[kind].get(name)
                if current is None:
                    self.groups[kind].setdefault(CALLMATCH_GROUP, catalog.group(CALLMATCH_GROUP, "callmatch"))
                    current = catalog.custom_definition(kind, name, unique=unique, group_name=CALLMATCH_GROUP)
                    self.properties[kind][name] = current
                current["hasUniqueValue"] = unique
            self.profile = profile

    def view(self, obj: HsObject, names: list[str] | None) -> dict[str, Any]:
        """`obj` as the API answers it on this portal (see `HsObject.to_json`)."""
        with self.lock:
            return obj.to_json(names, self.properties.get(obj.type, {}))

    def has_property(self, kind: str, name: str) -> bool:
        with self.lock:
            return name in self.properties.get(kind, {})

    def unknown_properties(self, kind: str, names: Iterable[str]) -> list[str]:
        """The names among `names` the portal has no property for (in order, once each)."""
        with self.lock:
            known = self.properties.get(kind, {})
            return [n for n in dict.fromkeys(names) if n not in known]

    def is_unique(self, kind: str, name: str) -> bool:
        with self.lock:
            spec = self.properties.get(kind, {}).get(name)
            return bool(spec and spec.get("hasUniqueValue"))

    def allow_option(self, kind: str, name: str, value: str) -> None:
        """An enumeration option the portal's admin added (a default property's options are editable,
        as companies' `type`'s are): `value` becomes valid for `kind.name`."""
        with self.lock:
            spec = self.properties.get(kind, {}).get(name)
            if spec is None or any(str(o.get("value")) == value for o in spec.get("options") or []):
                return
            options = list(spec.get("options") or [])
            options.append({"label": value, "value": value, "displayOrder": len(options), "hidden": False})
            spec["options"] = options

    def add_property(self, kind: str, spec: dict[str, Any]) -> None:
        """A property created through the properties API: the profile follows."""
        with self.lock:
            name = str(spec["name"])
            self.properties[kind][name] = spec
            self.profile = self.profile.with_property(kind, name, unique=bool(spec.get("hasUniqueValue")))

    def remove_property(self, kind: str, name: str) -> bool:
        """Archive a custom property (its values are no longer served); False when there is none."""
        with self.lock:
            spec = self.properties.get(kind, {}).get(name)
            if spec is None or spec.get("hubspotDefined"):
                return False
            del self.properties[kind][name]
            self.profile = self.profile.without_property(kind, name)
            return True

    # -- seeding -----------------------------------------------------------------------------
    @classmethod
    def from_scenario(
        cls, scenario: Scenario, *, profile: PortalProfile | None = None, calculated_closed: bool = True
    ) -> Store:
        """The portal a scenario describes, in HubSpot's terms, on a portal shaped by `profile`
        (plain by default): a value whose property the portal lacks is not stored anywhere."""
        store = cls(region=scenario.policy.default_region, profile=profile or PortalProfile.plain())
        now = iso(scenario.call.started_at)
        crm = scenario.crm
        for number, user in enumerate(crm.users):
            store.owners.append(
                {
                    "id": user.id,
                    "email": user.email,
                    "type": "PERSON",
                    "firstName": "Owner",
                    "lastName": str(number),
                    "userId": 1000 + number,
                    "userIdIncludingInactive": 1000 + number,
                    "createdAt": now,
                    "updatedAt": now,
                    "archived": False,
                }
            )
        for account in crm.accounts:
            domains = list(dict.fromkeys(d for d in (company_domain(x) for x in account.domains) if d))
            props = {"name": account.name or "", "domain": domains[0] if domains else ""}
            if domains[1:]:
                props["hs_additional_domains"] = ";".join(domains[1:])
            if account.type is not None:
                props["type"] = account.type
                store.allow_option("companies", "type", account.type)
            store.seed("companies", account.id, props, now)
        taken: set[str] = set()
        # HubSpot keeps one record per person and converts a lead by moving its lifecycle stage on:
        # a scenario's converted lead is the contact it became, so it has no record of its own.
        people = [(c.id, c.email, c.emails, c.phones, "customer") for c in crm.contacts] + [
            (lead.id, lead.email, lead.emails, lead.phones, "lead")
            for lead in crm.leads
            if not lead.is_converted
        ]
        for record_id, email, emails, phones, stage in people:
            all_emails = [e for e in dict.fromkeys(contact_email(x) for x in (email, *emails)) if e]
            primary = next((e for e in all_emails if e not in taken), None)
            if primary is not None:
                taken.add(primary)
            props = {"lifecyclestage": stage, "email": primary or ""}
            extra = [e for e in all_emails if e != primary]
            if extra:
                props["hs_additional_emails"] = ";".join(extra)
            if phones:
                props["phone"] = phones[0]
            if len(phones) > 1:
                props["mobilephone"] = phones[1]
            if len(phones) > 2:
                props["callmatch_other_phones"] = ";".join(phones[2:])
            store.seed("contacts", record_id, props, now)
        for contact in crm.contacts:
            for index, account_id in enumerate(contact.account_ids):
                store.link("contacts", contact.id, "companies", account_id, primary=index == 0)
        for opp in crm.opportunities:
            props = {
                "dealname": f"Deal {opp.id}",
                "createdate": iso(opp.created_at),
                "hs_lastmodifieddate": iso(opp.updated_at),
                "pipeline": "default",
                "dealstage": STAGE_OF[(opp.is_closed, opp.is_won and opp.is_closed)],
                "hubspot_owner_id": opp.owner_id or "",
            }
            if opp.close_date is not None:
                props["closedate"] = iso(dt.datetime.combine(opp.close_date, dt.time(), dt.UTC))
            if calculated_closed:
                props["hs_is_closed"] = "true" if opp.is_closed else "false"
                props["hs_is_closed_won"] = "true" if opp.is_closed and opp.is_won else "false"
            store.seed("deals", opp.id, props, iso(opp.created_at), iso(opp.updated_at))
            if opp.account_id is not None:
                store.link("deals", opp.id, "companies", opp.account_id, primary=True)
            for role in opp.contacts:
                store.link("deals", opp.id, "contacts", role.id, label="Primary" if role.is_primary else None)
        for activity in crm.activities:
            kind = "calls" if activity.type is ActivityType.TASK else "meetings"
            props = {"callmatch_written": "true" if activity.written_by_us else "false"}
            if activity.call_id is not None:
                props["callmatch_call_id"] = activity.call_id
            if activity.attendee_emails:
                props["callmatch_attendee_emails"] = ";".join(activity.attendee_emails)
            if activity.start is not None:
                props["hs_timestamp"] = iso(activity.start)
                if kind == "meetings":
                    props["hs_meeting_start_time"] = iso(activity.start)
            store.seed(kind, activity.id, props, now)
            for contact_id in activity.contact_ids:
                store.link(kind, activity.id, "contacts", contact_id)
            if activity.account_id is not None:
                store.link(kind, activity.id, "companies", activity.account_id)
            if activity.opportunity_id is not None:
                store.link(kind, activity.id, "deals", activity.opportunity_id)
        return store

    def seed(
        self, kind: str, object_id: str, props: dict[str, str], created: str, updated: str = ""
    ) -> HsObject:
        """Store a seeded record with only the values the portal has a property for."""
        kept = {k: v for k, v in props.items() if self.has_property(kind, k)}
        return self.put(kind, object_id, kept, created, updated or created)

    # -- writes ------------------------------------------------------------------------------
    def new_id(self) -> str:
        return str(next(self._ids))

    def put(self, kind: str, object_id: str, props: dict[str, str], created: str, updated: str) -> HsObject:
        with self.lock:
            obj = HsObject(object_id, kind, dict(props), created, updated, seq=next(self._seq))
            obj.properties.setdefault("createdate", created)
            if kind in ENGAGEMENTS:
                obj.properties.setdefault("hs_createdate", created)
            obj.properties.setdefault("hs_lastmodifieddate", updated)
            if obj.properties.get("hubspot_owner_id") and self.has_property(
                kind, "hubspot_owner_assigneddate"
            ):
                obj.properties.setdefault("hubspot_owner_assigneddate", created)
            self._calculate(obj)
            self.objects[kind][object_id] = obj
            return obj

    def update(self, kind: str, object_id: str, props: dict[str, str], now: str) -> HsObject | None:
        with self.lock:
            obj = self.objects[kind].get(object_id)
            if obj is None:
                return None
            owner = obj.properties.get("hubspot_owner_id", "")
            obj.properties.update({k: "" if v is None else str(v) for k, v in props.items()})
            obj.properties["hs_lastmodifieddate"] = now
            if obj.properties.get("hubspot_owner_id", "") != owner and self.has_property(
                kind, "hubspot_owner_assigneddate"
            ):
                obj.properties["hubspot_owner_assigneddate"] = now
            obj.updated_at = now
            self._calculate(obj)
            return obj

    def _calculate(self, obj: HsObject) -> None:
        """HubSpot's calculated properties that depend on others: the searchable phone digits
        (see `search.searchable_phone`); an activity's coordinates, owners and note preview."""
        if obj.type in ENGAGEMENTS:
            self._calculate_activity(obj)
            return
        if obj.type != "contacts":
            return
        for source, target in (
            ("phone", "hs_searchable_calculated_phone_number"),
            ("mobilephone", "hs_searchable_calculated_mobile_number"),
        ):
            digits = search.searchable_phone(obj.properties.get(source, ""), self.region)
            if digits:
                obj.properties[target] = digits
            else:
                obj.properties.pop(target, None)

    def _calculate_activity(self, obj: HsObject) -> None:
        """What HubSpot computes on a call, meeting or note (the recorded new note carries them):
        `hs_obj_coords` (portal-independent "type-id" form), the owner ids and their users' ids,
        and for a note the plain-text / HTML preview of its body."""
        props = obj.properties
        type_id = next(t for t, k in TYPE_IDS.items() if k == obj.type)
        props["hs_obj_coords"] = f"{type_id}-{obj.id}"
        owner_id = props.get("hubspot_owner_id", "")
        owner = next((o for o in self.owners if str(o.get("id")) == owner_id), None) if owner_id else None
        for name, value in (
            ("hs_all_owner_ids", owner_id),
            ("hs_user_ids_of_all_owners", str(owner.get("userId", "")) if owner else ""),
        ):
            if value:
                props[name] = value
            else:
                props.pop(name, None)  # unset, as HubSpot leaves it without an owner
        if obj.type == "notes":
            text, truncated = note_preview(props.get("hs_note_body", ""))
            props["hs_body_preview"] = text
            props["hs_body_preview_html"] = (
                f"<html>\n<head></head>\n<body>\n{props.get('hs_note_body', '')}\n</body>\n</html>"
            )
            props["hs_body_preview_is_truncated"] = "true" if truncated else "false"

    def link(
        self,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        *,
        primary: bool = False,
        label: str | None = None,
        type_id: int | None = None,
        category: str = "HUBSPOT_DEFINED",
    ) -> None:
        """Associate both ways, as HubSpot does for every pair of standard types."""
        with self.lock:
            for a_type, a_id, b_type, b_id in (
                (from_type, from_id, to_type, to_id),
                (to_type, to_id, from_type, from_id),
            ):
                unlabeled, primary_id = HUBSPOT_DEFINED[(a_type, b_type)]
                types = self.links[(a_type, b_type)][a_id].setdefault(b_id, set())
                if type_id is not None and (a_type, b_type) == (from_type, to_type):
                    types.add((category, type_id, label))
                types.add(("HUBSPOT_DEFINED", unlabeled, None))
                if primary and primary_id is not None:
                    types.add(("HUBSPOT_DEFINED", primary_id, "Primary"))
                if label is not None:
                    for label_id, (name, _) in USER_LABELS.get((a_type, b_type), {}).items():
                        if name == label:
                            types.add(("USER_DEFINED", label_id, label))

    def unlink(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        with self.lock:
            self.links[(from_type, to_type)][from_id].pop(to_id, None)
            self.links[(to_type, from_type)][to_id].pop(from_id, None)

    def associated(
        self, from_type: str, from_id: str, to_type: str
    ) -> dict[str, set[tuple[str, int, str | None]]]:
        with self.lock:
            found = self.links.get((from_type, to_type), {}).get(from_id, {})
            return {to_id: set(types) for to_id, types in found.items() if to_id in self.objects[to_type]}

    # -- reads -------------------------------------------------------------------------------
    def matches(self, obj: HsObject, group: list[dict[str, Any]]) -> bool:
        """Whether `obj` passes every filter of one filter group (HubSpot's AND within a group)."""
        with self.lock:
            specs = self.properties[obj.type]
            for flt in group:
                name = str(flt.get("propertyName", ""))
                value = obj.id if name == "hs_object_id" else obj.properties.get(name, "")
                type_ = str(specs.get(name, {}).get("type", "string"))
                if not search.matches(value, type_, flt):
                    return False
            return True

    def property_type(self, kind: str, name: str) -> str:
        with self.lock:
            return str(self.properties.get(kind, {}).get(name, {}).get("type", "string"))
