"""The scenario file as a CRM: the embedded default CRM and the reference adapter of the port.

It answers each batch read by index look-ups over the scenario's `crm` section and
counts one request per batch call, as a real API would be charged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TypeVar

from worker.model import Account, Activity, CallKind, Contact, CrmSlice, Lead, Opportunity, User
from worker.normalize import norm_domain, norm_email, to_e164
from worker.port import ActivityQuery, CrmPort

_R = TypeVar("_R", User, Account, Contact, Lead, Opportunity, Activity)


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


class ScenarioCrm(CrmPort):
    """A read-only CRM over a scenario's records; phones are read in `default_region`."""

    def __init__(self, crm: CrmSlice, default_region: str = "US"):
        super().__init__()
        self.crm = crm
        self._users = _index((norm_email(u.email), u) for u in crm.users)
        self._contacts_by_email = _index(
            (norm_email(e), c) for c in crm.contacts for e in (c.email, *c.emails)
        )
        self._contacts_by_phone = _index(
            (to_e164(p, default_region), c) for c in crm.contacts for p in c.phones
        )
        self._contacts_by_id = _index((c.id, c) for c in crm.contacts)
        self._leads_by_email = _index(
            (norm_email(e), lead) for lead in crm.leads for e in (lead.email, *lead.emails)
        )
        self._leads_by_phone = _index(
            (to_e164(p, default_region), lead) for lead in crm.leads for p in lead.phones
        )
        self._accounts_by_domain = _index((norm_domain(d), a) for a in crm.accounts for d in a.domains)
        self._accounts_by_id = _index((a.id, a) for a in crm.accounts)
        self._opps_by_contact = _index((role.id, o) for o in crm.opportunities for role in o.contacts)
        self._opps_by_account = _index((o.account_id, o) for o in crm.opportunities)
        self._opps_by_id = _index((o.id, o) for o in crm.opportunities)

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
        return self._read("accounts_by_domains", self._accounts_by_domain, [norm_domain(d) for d in domains])

    def accounts_by_ids(self, ids: Sequence[str]) -> list[Account]:
        return self._read("accounts_by_ids", self._accounts_by_id, ids)

    def opportunities_of_contacts(self, contact_ids: Sequence[str]) -> list[Opportunity]:
        return self._read("opportunities_of_contacts", self._opps_by_contact, contact_ids)

    def opportunities_of_accounts(self, account_ids: Sequence[str]) -> list[Opportunity]:
        return self._read("opportunities_of_accounts", self._opps_by_account, account_ids)

    def opportunities_by_ids(self, ids: Sequence[str]) -> list[Opportunity]:
        return self._read("opportunities_by_ids", self._opps_by_id, ids)

    def activities_for_call(self, query: ActivityQuery) -> list[Activity]:
        self.stats.count("activities_for_call")
        window = query.window_minutes * 60
        out = []
        for activity in self.crm.activities:
            if activity.call_id == query.call_id or (
                query.kind is CallKind.MEETING
                and activity.start is not None
                and abs((activity.start - query.started_at).total_seconds()) <= window
            ):
                out.append(activity)
        return sorted(out, key=lambda a: a.id)
