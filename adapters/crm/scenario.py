"""The scenario file as a CRM: the embedded default CRM and the reference adapter of the port.

It answers each batch read by index look-ups over the scenario's `crm` section and
counts one request per batch call, as a real API would be charged. Activities it
writes (W1) go to an `ActivityLog`: in memory for one process, or in Redis so that
every worker, the CLI and the demo see the same CRM.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import redis

from adapters.redis_errors import redis_call
from worker.core.model import (
    Account,
    Activity,
    ActivityType,
    Call,
    CallKind,
    Contact,
    CrmSlice,
    Decision,
    DomainMatch,
    Lead,
    Opportunity,
    User,
)
from worker.core.normalize import norm_domain, norm_email, to_e164
from worker.core.port import ActivityQuery, CrmPort, WrittenActivity
from worker.engine.domains import domain_key

_R = TypeVar("_R", User, Account, Contact, Lead, Opportunity, Activity)
_T = TypeVar("_T")


def _index(pairs: Iterable[tuple[str | None, _R]]) -> dict[str, list[_R]]:
    index: dict[str, list[_R]] = defaultdict(list)
    for key, record in pairs:
        if key is not None and record not in index[key]:
            index[key].append(record)
    return index


def _pick(index: dict[str, list[_R]], keys: Sequence[str]) -> list[_R]:
    out: dict[str, _R] = {}
    for key in keys:
        for record in index.get(key, ()):
            out.setdefault(record.id, record)
    return [out[record_id] for record_id in sorted(out)]


class ActivityLog(Protocol):
    """Where the scenario CRM keeps the activities it writes, keyed by call id (W1)."""

    def get(self, call_id: str) -> dict[str, Any] | None: ...

    def put(self, call_id: str, activity: dict[str, Any]) -> None: ...

    def all(self) -> list[dict[str, Any]]: ...


class MemoryActivityLog:
    def __init__(self) -> None:
        self.activities: dict[str, dict[str, Any]] = {}

    def get(self, call_id: str) -> dict[str, Any] | None:
        return self.activities.get(call_id)

    def put(self, call_id: str, activity: dict[str, Any]) -> None:
        self.activities[call_id] = activity

    def all(self) -> list[dict[str, Any]]:
        return [self.activities[k] for k in sorted(self.activities)]


class RedisActivityLog:
    """One Redis hash per tenant: call id -> the activity as JSON (Redis away: RetryableError)."""

    def __init__(self, client: redis.Redis, tenant: str):
        self.redis = client
        self.key = f"callmatch:scenario-crm:{tenant}:activities"

    def get(self, call_id: str) -> dict[str, Any] | None:
        with redis_call("scenario activity log"):
            raw = self.redis.hget(self.key, call_id)
        return None if raw is None else dict(json.loads(raw))

    def put(self, call_id: str, activity: dict[str, Any]) -> None:
        with redis_call("scenario activity log"):
            self.redis.hset(self.key, call_id, json.dumps(activity))

    def all(self) -> list[dict[str, Any]]:
        with redis_call("scenario activity log"):
            entries = self.redis.hgetall(self.key)
        return [dict(json.loads(entries[k])) for k in sorted(entries)]


class _built(Generic[_T]):
    """A lazily built attribute (functools.cached_property without its lock, which costs more than an index)."""

    def __init__(self, build: Callable[[Any], _T]):
        self.build = build
        self.name = build.__name__

    def __get__(self, instance: Any, owner: type | None = None) -> _T:
        value = self.build(instance)
        instance.__dict__[self.name] = value  # later reads find it there, never calling this again
        return value


def _domain_keys(domain: str, mode: DomainMatch) -> set[str]:
    """Every key a stored domain may be searched by: v1's cleaning, M10's `clean`, and the tenant's mode."""
    keys = {norm_domain(domain)}
    for each in {DomainMatch.CLEAN, mode}:
        key = domain_key(domain, each)
        if key:
            keys.add(key)
    return keys


class ScenarioCrm(CrmPort):
    """A CRM over a scenario's records; phones are read in `default_region`, domains as M10's `domain_match`."""

    def __init__(
        self,
        crm: CrmSlice,
        default_region: str = "US",
        log: ActivityLog | None = None,
        domain_match: DomainMatch = DomainMatch.CLEAN,
    ):
        super().__init__()
        self.crm = crm
        self.log = log
        self.domain_match = domain_match
        self.default_region = default_region

    # Indexes are built on first use: a call asks for a few of them, and decide builds one port per file.

    @_built
    def _users(self) -> dict[str, list[User]]:
        return _index((norm_email(u.email), u) for u in self.crm.users)

    @_built
    def _contacts_by_email(self) -> dict[str, list[Contact]]:
        return _index((norm_email(e), c) for c in self.crm.contacts for e in (c.email, *c.emails))

    @_built
    def _contacts_by_phone(self) -> dict[str, list[Contact]]:
        return _index((to_e164(p, self.default_region), c) for c in self.crm.contacts for p in c.phones)

    @_built
    def _contacts_by_id(self) -> dict[str, list[Contact]]:
        return _index((c.id, c) for c in self.crm.contacts)

    @_built
    def _leads_by_email(self) -> dict[str, list[Lead]]:
        return _index((norm_email(e), lead) for lead in self.crm.leads for e in (lead.email, *lead.emails))

    @_built
    def _leads_by_phone(self) -> dict[str, list[Lead]]:
        return _index((to_e164(p, self.default_region), lead) for lead in self.crm.leads for p in lead.phones)

    @_built
    def _accounts_by_domain(self) -> dict[str, list[Account]]:
        return _index(
            (key, a)
            for a in self.crm.accounts
            for d in a.domains
            for key in _domain_keys(d, self.domain_match)
        )

    @_built
    def _accounts_by_id(self) -> dict[str, list[Account]]:
        return _index((a.id, a) for a in self.crm.accounts)

    @_built
    def _opps_by_contact(self) -> dict[str, list[Opportunity]]:
        return _index((role.id, o) for o in self.crm.opportunities for role in o.contacts)

    @_built
    def _opps_by_account(self) -> dict[str, list[Opportunity]]:
        return _index((o.account_id, o) for o in self.crm.opportunities)

    @_built
    def _opps_by_id(self) -> dict[str, list[Opportunity]]:
        return _index((o.id, o) for o in self.crm.opportunities)

    def _read(self, method: str, index: dict[str, list[_R]], keys: Sequence[str]) -> list[_R]:
        self.stats.count(method)
        return _pick(index, keys)

    def users_by_emails(self, emails: Sequence[str]) -> list[User]:
        return self._read("users_by_emails", self._users, [e for e in map(norm_email, emails) if e])

    def contacts_by_emails(self, emails: Sequence[str]) -> list[Contact]:
        return self._read(
            "contacts_by_emails", self._contacts_by_email, [e for e in map(norm_email, emails) if e]
        )

    def contacts_by_phones(self, phones: Sequence[str]) -> list[Contact]:
        return self._read("contacts_by_phones", self._contacts_by_phone, phones)

    def contacts_by_ids(self, ids: Sequence[str]) -> list[Contact]:
        return self._read("contacts_by_ids", self._contacts_by_id, ids)

    def leads_by_emails(self, emails: Sequence[str]) -> list[Lead]:
        return self._read("leads_by_emails", self._leads_by_email, [e for e in map(norm_email, emails) if e])

    def leads_by_phones(self, phones: Sequence[str]) -> list[Lead]:
        return self._read("leads_by_phones", self._leads_by_phone, phones)

    def accounts_by_domains(self, domains: Sequence[str]) -> list[Account]:
        if self._accounts_by_domain is None:
            self._accounts_by_domain = _index(
                (key, a)
                for a in self.crm.accounts
                for d in a.domains
                for key in _domain_keys(d, self.domain_match)
            )
        return self._read("accounts_by_domains", self._accounts_by_domain, [norm_domain(d) for d in domains])

    def accounts_by_ids(self, ids: Sequence[str]) -> list[Account]:
        return self._read("accounts_by_ids", self._accounts_by_id, ids)

    def opportunities_of_contacts(self, contact_ids: Sequence[str]) -> list[Opportunity]:
        return self._read("opportunities_of_contacts", self._opps_by_contact, contact_ids)

    def opportunities_of_accounts(self, account_ids: Sequence[str]) -> list[Opportunity]:
        return self._read("opportunities_of_accounts", self._opps_by_account, account_ids)

    def opportunities_by_ids(self, ids: Sequence[str]) -> list[Opportunity]:
        return self._read("opportunities_by_ids", self._opps_by_id, ids)

    def _written(self) -> list[Activity]:
        if self.log is None:
            return []
        return [
            Activity(
                id=a["id"],
                type=ActivityType(a["type"]),
                call_id=a["call_id"],
                start=dt.datetime.fromisoformat(a["start"]),
                contact_ids=tuple(a["contact_ids"]),
                account_id=a["account_id"],
                opportunity_id=a["opportunity_id"],
                written_by_us=True,
            )
            for a in self.log.all()
        ]

    def upsert_activity(self, call: Call, decision: Decision) -> WrittenActivity:
        """W1 with the W2 shape: one activity per call id, marked as ours, linked like a Task/Event."""
        if self.log is None:
            raise NotImplementedError("this scenario CRM is read-only (callmatch decide never writes)")
        self.stats.count("upsert_activity")
        existing = self.log.get(call.id)
        kind = ActivityType.EVENT if call.kind is CallKind.MEETING else ActivityType.TASK
        activity = {
            "id": existing["id"] if existing else f"W-{call.id}",
            "type": kind.value,
            "call_id": call.id,
            "start": call.started_at.isoformat(),
            "duration_seconds": call.duration_seconds,
            "direction": call.direction.value if call.direction else None,
            "subject": call.title or ("Meeting" if kind is ActivityType.EVENT else "Call"),
            "who_id": decision.contact_ids[0]
            if decision.contact_ids
            else (decision.lead_ids[0] if decision.lead_ids else None),
            "what_id": None
            if not decision.contact_ids and decision.lead_ids
            else decision.opportunity_id or decision.account_id,
            "contact_ids": list(decision.contact_ids),
            "lead_ids": list(decision.lead_ids),
            "account_id": decision.account_id,
            "opportunity_id": decision.opportunity_id,
            "case": decision.case.value,
            "written_by_us": True,
            "writes": (existing["writes"] + 1) if existing else 1,
        }
        self.log.put(call.id, activity)
        return WrittenActivity(id=str(activity["id"]), kind=kind.value, created=existing is None)

    def activities_for_call(self, query: ActivityQuery) -> list[Activity]:
        self.stats.count("activities_for_call")
        window = query.window_minutes * 60
        out = []
        for activity in (*self.crm.activities, *self._written()):
            if activity.call_id == query.call_id or (
                query.kind is CallKind.MEETING
                and activity.start is not None
                and abs((activity.start - query.started_at).total_seconds()) <= window
            ):
                out.append(activity)
        return sorted(out, key=lambda a: a.id)
