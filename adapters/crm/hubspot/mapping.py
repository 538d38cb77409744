"""HubSpot objects (raw v3/v4 JSON) <-> callmatch model records, and the property names we rely on.

Leads are contacts whose `lifecyclestage` is one of `lead_stages` (HubSpot's separate
leads object is not used: it has no email or phone of its own to match on).
Contact roles (rule C4) are the deal<->contact associations; one whose label is in
`primary_labels` marks the primary contact.

Rules v1.1 in HubSpot's terms:

- M9 (converted leads): a HubSpot "lead" is never converted the Salesforce way. It is
  a contact record whose `lifecyclestage` is a lead stage; HubSpot's lifecycle stages
  "track how contacts or companies move forward in your process" on the same record
  (Subscriber, Lead, Marketing Qualified Lead, Sales Qualified Lead, Opportunity,
  Customer, ...), and `hs_lead_status` (New, Open, In progress, Open deal, Unqualified,
  ...) holds the sales sub-stages of a lead, not a conversion (HubSpot Knowledge Base,
  "Use lifecycle stages", knowledge.hubspot.com/contacts/use-lifecycle-stages; HubSpot's
  default contact properties `lifecyclestage` and `hs_lead_status`). What Salesforce
  calls converting is, in HubSpot, the record's stage moving past `lead_stages`: from
  then on this mapping reads it as a contact (same id, its own companies and deals).
  So every lead read here has `is_converted` false and no `converted_contact_id`, M9
  skips and follows nothing, and `skip_converted_leads` reads no property.
- X1 (account types): a company's `type`, HubSpot's default company property "Type"
  (knowledge.hubspot.com/companies/hubspot-crm-default-company-properties), an
  enumeration whose options are the portal's own (`GET /crm/v3/properties/companies`
  lists them, each a label and an internal `value`; integrations write values such as
  `PARTNER`, `PROSPECT`, `RESELLER`, `VENDOR`, `OTHER`). The API returns the internal
  value, which X1 compares trimmed and case-insensitively: a tenant lists `partner`,
  not the label. Read (one more name in `properties` of the same searches, GETs and
  batch reads) only when `excluded_account_types` is set.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers

from worker.core.model import (
    Account,
    Activity,
    ActivityType,
    Contact,
    ContactRole,
    Lead,
    Opportunity,
    User,
)
from worker.core.normalize import norm_domain, norm_email, to_e164

JsonObject = dict[str, Any]

CONTACT_COMPANY_PRIMARY = 1
DEAL_COMPANY_PRIMARY = 5
COMPANY_TYPE_PROPERTY = "type"
"""X1: HubSpot's default company property holding the company's type (PROSPECT, PARTNER, ...)."""
COMPANY_DEAL_PRIMARY = 6
COMPANY_DEAL_UNLABELED = 342

# HUBSPOT_DEFINED association type ids for what we write (W3).
ACTIVITY_ASSOCIATION_TYPES: dict[str, dict[str, int]] = {
    "calls": {"contacts": 194, "companies": 182, "deals": 206},
    "meetings": {"contacts": 200, "companies": 188, "deals": 212},
}


@dataclass(frozen=True)
class HubSpotMapping:
    """The tenant's property names and choices; defaults match the emulator's portal."""

    default_region: str = "US"
    external_id_property: str = "callmatch_call_id"
    marker_property: str = "callmatch_written"
    attendee_emails_property: str = "callmatch_attendee_emails"
    extra_domains_property: str = "hs_additional_domains"
    extra_phones_property: str | None = "callmatch_other_phones"
    lead_stages: frozenset[str] = frozenset({"lead"})
    primary_labels: frozenset[str] = frozenset({"primary"})
    additional_emails: str = "always"
    """Search `hs_additional_emails`: `always` (exact even for duplicate emails, as scenario files
    may hold), `missing` (only emails no contact holds as primary: exact on a real portal, where
    HubSpot keeps every email on one contact) or `never`."""
    activity_kinds: str = "both"
    """Where A1 looks for the call id: `both` calls and meetings (exact), or `own` (calls for a
    call, meetings for a meeting: what integrations write)."""

    def __post_init__(self) -> None:
        if self.additional_emails not in ("always", "missing", "never"):
            raise ValueError(f"additional_emails: {self.additional_emails!r} is not always, missing or never")
        if self.activity_kinds not in ("both", "own"):
            raise ValueError(f"activity_kinds: {self.activity_kinds!r} is not both or own")

    @property
    def contact_properties(self) -> list[str]:
        names = ["email", "hs_additional_emails", "phone", "mobilephone", "lifecyclestage"]
        if self.extra_phones_property:
            names.append(self.extra_phones_property)
        return names

    @property
    def company_properties(self) -> list[str]:
        return ["name", "domain", self.extra_domains_property]

    @property
    def deal_properties(self) -> list[str]:
        return [
            "createdate",
            "closedate",
            "hs_lastmodifieddate",
            "hubspot_owner_id",
            "pipeline",
            "dealstage",
            "hs_is_closed",
            "hs_is_closed_won",
        ]

    def activity_properties(self, kind: str) -> list[str]:
        names = [
            "hs_timestamp",
            self.external_id_property,
            self.marker_property,
            self.attendee_emails_property,
        ]
        if kind == "meetings":
            names.append("hs_meeting_start_time")
        return names


def props(obj: JsonObject) -> dict[str, str]:
    raw = obj.get("properties") or {}
    return {str(k): str(v) for k, v in raw.items() if v is not None and str(v) != ""}


def multi(value: str | None) -> list[str]:
    """A HubSpot multi-value text (`a;b;c`)."""
    if not value:
        return []
    return [part.strip() for part in value.split(";") if part.strip()]


def parse_time(value: str | None) -> dt.datetime | None:
    """A HubSpot datetime: ISO-8601 (`...Z`, with or without milliseconds) or epoch milliseconds."""
    if not value:
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def millis(value: dt.datetime) -> str:
    return str(int(value.timestamp() * 1000))


def iso(value: dt.datetime) -> str:
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def emails_of(obj: JsonObject) -> list[str]:
    p = props(obj)
    out = [norm_email(p.get("email"))] + [norm_email(e) for e in multi(p.get("hs_additional_emails"))]
    return [e for e in dict.fromkeys(out) if e]


def phones_of(obj: JsonObject, mapping: HubSpotMapping) -> list[str]:
    p = props(obj)
    out = [p.get("phone"), p.get("mobilephone")]
    if mapping.extra_phones_property:
        out += multi(p.get(mapping.extra_phones_property))
    return [x for x in out if x]


def e164s_of(obj: JsonObject, mapping: HubSpotMapping) -> set[str]:
    return {e for e in (to_e164(p, mapping.default_region) for p in phones_of(obj, mapping)) if e}


def national_digits(e164: str) -> str | None:
    """The digits HubSpot's `hs_searchable_calculated_*` phone properties hold for this number."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return str(number.national_number) if number.national_number else None


def is_lead(obj: JsonObject, mapping: HubSpotMapping) -> bool:
    return props(obj).get("lifecyclestage", "").lower() in mapping.lead_stages


def contact_from(obj: JsonObject, company_ids: Sequence[str], mapping: HubSpotMapping) -> Contact:
    p = props(obj)
    primary = norm_email(p.get("email"))
    extra = tuple(e for e in emails_of(obj) if e != primary)
    return Contact(
        id=str(obj["id"]),
        email=primary,
        emails=extra,
        phones=tuple(phones_of(obj, mapping)),
        account_ids=tuple(company_ids),
    )


def lead_from(obj: JsonObject, mapping: HubSpotMapping) -> Lead:
    """A contact in a lead stage; never converted (HubSpot converts by moving the stage on, see above)."""
    p = props(obj)
    primary = norm_email(p.get("email"))
    return Lead(
        id=str(obj["id"]),
        email=primary,
        emails=tuple(e for e in emails_of(obj) if e != primary),
        phones=tuple(phones_of(obj, mapping)),
    )


def account_from(obj: JsonObject, mapping: HubSpotMapping) -> Account:
    p = props(obj)
    domains = [p.get("domain", ""), *multi(p.get(mapping.extra_domains_property))]
    return Account(
        id=str(obj["id"]),
        name=p.get("name"),
        domains=tuple(d for d in dict.fromkeys(norm_domain(x) for x in domains if x) if d),
        type=p.get(COMPANY_TYPE_PROPERTY),  # present only when X1 asked for it
    )


def domains_of(obj: JsonObject, mapping: HubSpotMapping) -> set[str]:
    return set(account_from(obj, mapping).domains)


def user_from(owner: JsonObject) -> User:
    return User(id=str(owner["id"]), email=norm_email(owner.get("email")))


def to_ids(entries: Iterable[JsonObject]) -> list[str]:
    return [str(e.get("toObjectId")) for e in entries]


def type_ids(entry: JsonObject) -> set[int]:
    return {int(t.get("typeId", -1)) for t in entry.get("associationTypes") or []}


def labels(entry: JsonObject) -> set[str]:
    return {str(t.get("label")).lower() for t in entry.get("associationTypes") or [] if t.get("label")}


def label_key(label: str) -> str:
    """A label and the internal name HubSpot derives from it compare equal (`Decision maker` ~ `decision_maker`)."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def has_label(entry: JsonObject, wanted: Iterable[str]) -> bool:
    return bool({label_key(x) for x in labels(entry)} & {label_key(x) for x in wanted})


V3_TYPES: dict[tuple[str, str], tuple[str, int, int | None]] = {
    ("contacts", "companies"): ("contact_to_company", 279, CONTACT_COMPANY_PRIMARY),
    ("contacts", "deals"): ("contact_to_deal", 4, None),
    ("companies", "deals"): ("company_to_deal", COMPANY_DEAL_UNLABELED, COMPANY_DEAL_PRIMARY),
    ("deals", "companies"): ("deal_to_company", 341, DEAL_COMPANY_PRIMARY),
}
"""v3 names of the HUBSPOT_DEFINED types we read, with their v4 ids (unlabeled, primary)."""


def entries_from_v3(from_kind: str, to_kind: str, obj: JsonObject) -> list[JsonObject] | None:
    """A v3 object's `associations.<to_kind>` block as v4 `to` entries; None when it is paged.

    v3 lists one entry per (id, type): `contact_to_company` is the primary link (type 1),
    `contact_to_company_unlabeled` any link (279); a pair without a primary type names its
    one type `contact_to_deal` (4); a custom label appears under its internal name. Over
    100 entries v3 pages the block, and the caller reads the pair through v4 instead.
    """
    block = (obj.get("associations") or {}).get(to_kind) or {}
    if block.get("paging"):
        return None
    base, unlabeled, primary = V3_TYPES[(from_kind, to_kind)]
    found: dict[str, list[JsonObject]] = {}
    for link in block.get("results") or []:
        kind = str(link.get("type", ""))
        types = found.setdefault(str(link["id"]), [])
        if kind == base:
            types.append({"category": "HUBSPOT_DEFINED", "typeId": primary or unlabeled})
        elif kind == base + "_unlabeled":
            types.append({"category": "HUBSPOT_DEFINED", "typeId": unlabeled})
        else:
            types.append({"category": "USER_DEFINED", "label": kind})
    return [{"toObjectId": to_id, "associationTypes": types} for to_id, types in sorted(found.items())]


def ordered_companies(entries: Iterable[JsonObject], primary_type: int) -> list[str]:
    """Associated company ids: the primary one first, then by id."""
    listed = list(entries)
    primary = sorted(str(e["toObjectId"]) for e in listed if primary_type in type_ids(e))
    rest = sorted(str(e["toObjectId"]) for e in listed if primary_type not in type_ids(e))
    return list(dict.fromkeys(primary + rest))


@dataclass(frozen=True)
class ClosedState:
    is_closed: bool
    is_won: bool


def closed_from_stage(stage: JsonObject) -> ClosedState:
    meta = stage.get("metadata") or {}
    closed = str(meta.get("isClosed", "false")).lower() == "true"
    try:
        probability = float(meta.get("probability", "0") or 0)
    except ValueError:
        probability = 0.0
    return ClosedState(closed, closed and probability >= 1.0)


def opportunity_from(
    obj: JsonObject,
    *,
    account_id: str | None,
    roles: Sequence[ContactRole],
    closed: ClosedState,
) -> Opportunity:
    p = props(obj)
    created = parse_time(p.get("createdate")) or parse_time(obj.get("createdAt"))
    updated = parse_time(p.get("hs_lastmodifieddate")) or parse_time(obj.get("updatedAt")) or created
    assert created is not None and updated is not None, "a deal always has createdate"
    close = parse_time(p.get("closedate"))
    return Opportunity(
        id=str(obj["id"]),
        created_at=created,
        updated_at=updated,
        account_id=account_id,
        owner_id=p.get("hubspot_owner_id"),
        is_closed=closed.is_closed,
        is_won=closed.is_won,
        close_date=close.astimezone(dt.UTC).date() if close is not None else None,
        contacts=tuple(sorted(roles, key=lambda r: r.id)),
    )


def closed_from_properties(obj: JsonObject) -> ClosedState | None:
    """HubSpot's calculated `hs_is_closed` / `hs_is_closed_won`, when the portal returns them."""
    p = props(obj)
    if "hs_is_closed" not in p:
        return None
    closed = p["hs_is_closed"].lower() == "true"
    return ClosedState(closed, closed and p.get("hs_is_closed_won", "false").lower() == "true")


def activity_from(
    kind: str,
    obj: JsonObject,
    *,
    contact_ids: Sequence[str],
    company_ids: Sequence[str],
    deal_ids: Sequence[str],
    mapping: HubSpotMapping,
) -> Activity:
    p = props(obj)
    start = parse_time(p.get("hs_meeting_start_time")) if kind == "meetings" else None
    start = start or parse_time(p.get("hs_timestamp"))
    return Activity(
        id=str(obj["id"]),
        type=ActivityType.TASK if kind == "calls" else ActivityType.EVENT,
        call_id=p.get(mapping.external_id_property),
        start=start,
        attendee_emails=tuple(
            e for e in (norm_email(x) for x in multi(p.get(mapping.attendee_emails_property))) if e
        ),
        contact_ids=tuple(sorted(contact_ids)),
        account_id=sorted(company_ids)[0] if company_ids else None,
        opportunity_id=sorted(deal_ids)[0] if deal_ids else None,
        written_by_us=p.get(mapping.marker_property, "").lower() == "true",
    )
