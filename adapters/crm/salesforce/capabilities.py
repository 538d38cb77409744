"""What one Salesforce org offers the API user: objects, visible fields, object permissions, features.

Real orgs differ: "Shared Activities" (TaskRelation, EventRelation.IsParent) and
"Contacts to Multiple Accounts" (AccountContactRelation) are optional features a
recorded Enterprise org lacks; custom fields exist only where an admin made them;
field-level security hides a field from the API user's describe (and answers
INVALID_FIELD in SOQL). So the adapter builds its queries and writes from a
discovery: the global describe plus the describes of the objects callmatch reads,
all GET subrequests of ONE composite call (describes are not queries, so the
five-query limit does not apply). The result is cached per tenant in Redis
(`CapabilityCache`, key `salesforce:<tenant>:capabilities`) for `ttl` seconds and
dropped at once when the API answers INVALID_FIELD / INVALID_TYPE, so an
association normally costs nothing for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.crm.readiness import CapabilityCache
from adapters.crm.salesforce.client import SalesforceClient, classify_response
from adapters.redis_errors import redis_call

log = logging.getLogger(__name__)

# The objects whose fields and child relationships callmatch reads or writes. The two
# relation objects ride in the same composite (a describe of an absent one answers 404):
# EventRelation exists in every org, but has IsParent / IsWhat only with Shared Activities.
DESCRIBED: tuple[str, ...] = (
    "Task",
    "Event",
    "Contact",
    "Lead",
    "Account",
    "Opportunity",
    "OpportunityContactRole",
    "TaskRelation",
    "EventRelation",
)
# Objects whose presence (and the API user's permissions on them) the global describe tells.
GLOBAL: tuple[str, ...] = (
    *DESCRIBED,
    "User",
    "TaskWhoRelation",
    "EventWhoRelation",
    "AccountContactRelation",
)
# The errors that say the request names something the org (or the user) does not have.
SCHEMA_ERRORS = frozenset({"INVALID_FIELD", "INVALID_TYPE"})
_CACHE_VERSION = 1


@dataclass(frozen=True)
class FieldCaps:
    """One field as the API user's describe shows it (a field hidden by FLS is not described)."""

    name: str
    type: str = "string"
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    createable: bool = False
    updateable: bool = False
    filterable: bool = True


@dataclass(frozen=True)
class ObjectCaps:
    """An object the API user can see, with what it may do on it (its profile and permission sets)."""

    name: str
    queryable: bool = False
    createable: bool = False
    updateable: bool = False
    deletable: bool = False
    described: bool = False  # False: only the global describe entry was read
    fields: Mapping[str, FieldCaps] = field(default_factory=dict)  # by lower-case name
    children: frozenset[str] = frozenset()  # child relationship names, lower-case

    def field(self, name: str) -> FieldCaps | None:
        return self.fields.get(name.lower())

    def has_child(self, relationship: str) -> bool:
        return relationship.lower() in self.children


@dataclass(frozen=True)
class OrgCapabilities:
    """The discovered org; `objects` by lower-case name, absent objects simply missing."""

    objects: Mapping[str, ObjectCaps]
    discovered_at: float = 0.0

    def object(self, name: str) -> ObjectCaps | None:
        return self.objects.get(name.lower())

    def has_object(self, name: str) -> bool:
        return name.lower() in self.objects

    def field(self, sobject: str, name: str) -> FieldCaps | None:
        caps = self.object(sobject)
        return None if caps is None else caps.field(name)

    def has_field(self, sobject: str, name: str | None) -> bool:
        return bool(name) and self.field(sobject, str(name)) is not None

    def present(self, sobject: str, names: Iterable[str | None]) -> tuple[str, ...]:
        """The fields of `names` the API user can read on `sobject`, in order, each once."""
        return tuple(dict.fromkeys(n for n in names if n and self.has_field(sobject, n)))

    def has_child(self, sobject: str, relationship: str) -> bool:
        caps = self.object(sobject)
        return caps is not None and caps.has_child(relationship)

    def can(self, sobject: str, permission: str) -> bool:
        """`read`, `create`, `edit` or `delete` on an object, for the API user."""
        caps = self.object(sobject)
        if caps is None:
            return False
        return bool(
            {
                "read": caps.queryable,
                "create": caps.createable,
                "edit": caps.updateable,
                "delete": caps.deletable,
            }[permission]
        )

    @property
    def shared_activities(self) -> bool:
        """ "Shared Activities": TaskRelation exists (and EventRelation rows may be IsParent)."""
        return self.has_object("TaskRelation")

    @property
    def contacts_to_multiple_accounts(self) -> bool:
        """ "Contacts to Multiple Accounts": AccountContactRelation exists."""
        return self.has_object("AccountContactRelation")

    # --- JSON for the cache ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _CACHE_VERSION,
            "discovered_at": self.discovered_at,
            "objects": {
                caps.name: {
                    "flags": _flags(caps.queryable, caps.createable, caps.updateable, caps.deletable),
                    "described": caps.described,
                    "children": sorted(caps.children),
                    "fields": {
                        f.name: [
                            f.type,
                            _flags(
                                f.custom, f.external_id, f.unique, f.createable, f.updateable, f.filterable
                            ),
                        ]
                        for f in caps.fields.values()
                    },
                }
                for caps in self.objects.values()
            },
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> OrgCapabilities | None:
        """None when the cached value is of another version or shape (it is discovered again)."""
        if value.get("version") != _CACHE_VERSION or not isinstance(value.get("objects"), dict):
            return None
        objects: dict[str, ObjectCaps] = {}
        for name, raw in value["objects"].items():
            q, c, u, d = _unflag(raw["flags"], 4)
            fields = {}
            for field_name, (kind, flags) in raw["fields"].items():
                custom, ext, unique, fc, fu, ff = _unflag(flags, 6)
                fields[field_name.lower()] = FieldCaps(field_name, kind, custom, ext, unique, fc, fu, ff)
            objects[name.lower()] = ObjectCaps(
                name, q, c, u, d, bool(raw["described"]), fields, frozenset(raw["children"])
            )
        return cls(objects, float(value.get("discovered_at") or 0.0))

    # --- from the API's answers --------------------------------------------------------------------

    @classmethod
    def from_describes(
        cls,
        global_describe: Mapping[str, Any],
        describes: Mapping[str, Mapping[str, Any] | None],
        discovered_at: float = 0.0,
    ) -> OrgCapabilities:
        """From `GET sobjects` and `GET sobjects/X/describe` bodies (None: that describe answered 404).

        `sobjects` is the API's list of entries; a mapping of name -> entry (a reduced
        recording) is read the same way. Objects not in the global describe do not
        exist for the API user, whatever a describe said.
        """
        listed = _global_entries(global_describe)
        objects: dict[str, ObjectCaps] = {}
        for name, entry in listed.items():
            if name.lower() not in {n.lower() for n in GLOBAL}:
                continue
            body = describes.get(name)
            fields: dict[str, FieldCaps] = {}
            children: frozenset[str] = frozenset()
            if body:
                fields = {
                    str(f["name"]).lower(): _field(f) for f in body.get("fields") or [] if f.get("name")
                }
                children = frozenset(
                    str(r["relationshipName"]).lower()
                    for r in body.get("childRelationships") or []
                    if r.get("relationshipName")
                )
            source: Mapping[str, Any] = body if body else entry
            objects[name.lower()] = ObjectCaps(
                name=name,
                queryable=bool(source.get("queryable", entry.get("queryable", False))),
                createable=bool(source.get("createable", entry.get("createable", False))),
                updateable=bool(source.get("updateable", entry.get("updateable", False))),
                deletable=bool(source.get("deletable", entry.get("deletable", False))),
                described=bool(body),
                fields=fields,
                children=children,
            )
        return cls(objects, discovered_at)


def _flags(*values: bool) -> str:
    return "".join("1" if v else "0" for v in values)


def _unflag(text: str, count: int) -> list[bool]:
    return [c == "1" for c in str(text).ljust(count, "0")[:count]]


def _field(raw: Mapping[str, Any]) -> FieldCaps:
    return FieldCaps(
        name=str(raw["name"]),
        type=str(raw.get("type") or "string"),
        custom=bool(raw.get("custom", str(raw["name"]).endswith("__c"))),
        external_id=bool(raw.get("externalId")),
        unique=bool(raw.get("unique")),
        createable=bool(raw.get("createable")),
        updateable=bool(raw.get("updateable")),
        filterable=bool(raw.get("filterable", True)),
    )


def _global_entries(global_describe: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    raw = global_describe.get("sobjects")
    if isinstance(raw, Mapping):
        return {str(name): (entry if isinstance(entry, Mapping) else {}) for name, entry in raw.items()}
    entries: dict[str, Mapping[str, Any]] = {}
    for entry in raw or []:
        if isinstance(entry, Mapping) and entry.get("name"):
            entries[str(entry["name"])] = entry
    return entries


def discover(client: SalesforceClient) -> OrgCapabilities:
    """The global describe and the describes of DESCRIBED, in one composite call.

    A describe answering 404 NOT_FOUND means the object is not there for the API user;
    any other failure is classified (a 5xx retryable, a refused session refreshed ...).
    """
    subrequests: list[dict[str, Any]] = [
        {"method": "GET", "url": client.data_path("sobjects"), "referenceId": "global"},
        *(
            {"method": "GET", "url": client.data_path(f"sobjects/{name}/describe"), "referenceId": name}
            for name in DESCRIBED
        ),
    ]
    responses = {sub.reference: sub for sub in client.composite(subrequests)}
    head = responses["global"]
    if head.status >= 300:
        raise classify_response(head.status, head.body, "describe global")
    describes: dict[str, Mapping[str, Any] | None] = {}
    for name in DESCRIBED:
        sub = responses[name]
        if sub.status == 404:
            describes[name] = None
        elif sub.status >= 300:
            raise classify_response(sub.status, sub.body, f"describe {name}")
        else:
            describes[name] = sub.body if isinstance(sub.body, Mapping) else None
    return OrgCapabilities.from_describes(head.body, describes, discovered_at=time.time())


class Capabilities:
    """One tenant's capabilities: from its cache, else discovered (one API call) and cached."""

    def __init__(self, client: SalesforceClient, cache: CapabilityCache):
        self.client = client
        self.cache = cache
        self.discoveries = 0

    def get(self) -> OrgCapabilities:
        with redis_call(f"capabilities {self.cache.key}"):
            cached = self.cache.get()
        found = OrgCapabilities.from_json(cached) if cached else None
        return found if found is not None else self.refresh()

    def refresh(self) -> OrgCapabilities:
        """Describe the org again and cache the answer (after INVALID_FIELD, or `setup`)."""
        self.drop()
        caps = discover(self.client)
        self.discoveries += 1
        with redis_call(f"capabilities {self.cache.key}"):
            self.cache.put(caps.to_json())
        log.info(
            "salesforce tenant %s: capabilities discovered (shared activities %s, contacts to multiple accounts %s)",
            self.client.tenant,
            caps.shared_activities,
            caps.contacts_to_multiple_accounts,
        )
        return caps

    def drop(self) -> None:
        with redis_call(f"capabilities {self.cache.key}"):
            self.cache.drop()


def local_capabilities(client: SalesforceClient) -> Capabilities:
    """The in-process capabilities of a client built without a tenant (tests, benches, scripts)."""
    found = client.local_capabilities
    if isinstance(found, Capabilities):
        return found
    caps = Capabilities(client, CapabilityCache(None, f"salesforce:{client.tenant}:capabilities"))
    client.local_capabilities = caps
    return caps
