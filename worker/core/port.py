"""The one CRM port that the scenario file, Salesforce and HubSpot all implement.

Every method is a batch: many keys in, one request (or one composite subrequest)
out. The association service asks for one `Lookup` per round; an adapter that can
pack a whole round into one API call overrides `lookup`, the others inherit the
default that calls the batch methods one after another.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from adapters.errors import CredentialsExpiredError, ExternalError, FatalError, RateLimitedError
from worker.core.model import (
    Account,
    Activity,
    Call,
    CallKind,
    Contact,
    CrmSlice,
    Decision,
    Lead,
    Opportunity,
    User,
)

_R = TypeVar("_R", User, Account, Contact, Lead, Opportunity, Activity)


@dataclass(frozen=True)
class ActivityQuery:
    """What identifies an existing activity for a call (rule A1).

    An adapter returns every task or event whose call id equals `call_id`, and for a
    meeting every event starting within `window_minutes` of `started_at`; it may
    return more, never less: the engine applies A1 itself.
    """

    call_id: str
    kind: CallKind
    started_at: dt.datetime
    window_minutes: int
    emails: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Lookup:
    """The keys of one round of reads. Empty sets mean nothing to ask."""

    user_emails: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    contact_ids: frozenset[str] = frozenset()
    account_ids: frozenset[str] = frozenset()
    opportunity_ids: frozenset[str] = frozenset()
    activities: tuple[ActivityQuery, ...] = ()
    """A1's queries: one per call (a batch of calls asks for several in one round), in call-id order."""

    def is_empty(self) -> bool:
        return not (
            self.user_emails
            or self.emails
            or self.phones
            or self.domains
            or self.contact_ids
            or self.account_ids
            or self.opportunity_ids
            or self.activities
        )

    def minus(self, done: Lookup) -> Lookup:
        return Lookup(
            user_emails=self.user_emails - done.user_emails,
            emails=self.emails - done.emails,
            phones=self.phones - done.phones,
            domains=self.domains - done.domains,
            contact_ids=self.contact_ids - done.contact_ids,
            account_ids=self.account_ids - done.account_ids,
            opportunity_ids=self.opportunity_ids - done.opportunity_ids,
            activities=tuple(q for q in self.activities if q not in done.activities),
        )

    def union(self, other: Lookup) -> Lookup:
        return Lookup(
            user_emails=self.user_emails | other.user_emails,
            emails=self.emails | other.emails,
            phones=self.phones | other.phones,
            domains=self.domains | other.domains,
            contact_ids=self.contact_ids | other.contact_ids,
            account_ids=self.account_ids | other.account_ids,
            opportunity_ids=self.opportunity_ids | other.opportunity_ids,
            activities=_queries(self.activities, other.activities),
        )


def _queries(
    first: tuple[ActivityQuery, ...], second: tuple[ActivityQuery, ...]
) -> tuple[ActivityQuery, ...]:
    """Both sets of A1 queries, one per call id (a later one for the same call replaces it), in call-id order."""
    by_call = {q.call_id: q for q in (*first, *second)}
    return tuple(by_call[c] for c in sorted(by_call))


@dataclass(frozen=True)
class WrittenActivity:
    """What a write-back left in the CRM (W1): one activity per call id."""

    id: str
    kind: str
    created: bool


@dataclass
class PortStats:
    """What one association cost: rounds asked by the service, requests sent by the adapter."""

    rounds: int = 0
    requests: int = 0
    by_method: dict[str, int] = field(default_factory=dict)

    def count(self, method: str, requests: int = 1) -> None:
        self.requests += requests
        self.by_method[method] = self.by_method.get(method, 0) + requests


class CrmPort(ABC):
    """Reads by batch; writes come with the write-back rules (W1-W3)."""

    stats: PortStats

    def __init__(self) -> None:
        self.stats = PortStats()

    @abstractmethod
    def users_by_emails(self, emails: Sequence[str]) -> list[User]: ...

    @abstractmethod
    def contacts_by_emails(self, emails: Sequence[str]) -> list[Contact]: ...

    @abstractmethod
    def contacts_by_phones(self, phones: Sequence[str]) -> list[Contact]:
        """`phones` are E.164; an adapter confirms every hit by E.164 equality."""

    @abstractmethod
    def contacts_by_ids(self, ids: Sequence[str]) -> list[Contact]: ...

    @abstractmethod
    def leads_by_emails(self, emails: Sequence[str]) -> list[Lead]: ...

    @abstractmethod
    def leads_by_phones(self, phones: Sequence[str]) -> list[Lead]: ...

    @abstractmethod
    def accounts_by_domains(self, domains: Sequence[str]) -> list[Account]: ...

    @abstractmethod
    def accounts_by_ids(self, ids: Sequence[str]) -> list[Account]: ...

    @abstractmethod
    def opportunities_of_contacts(self, contact_ids: Sequence[str]) -> list[Opportunity]:
        """Opportunities naming any of these contacts in their contact roles, roles included."""

    @abstractmethod
    def opportunities_of_accounts(self, account_ids: Sequence[str]) -> list[Opportunity]: ...

    @abstractmethod
    def opportunities_by_ids(self, ids: Sequence[str]) -> list[Opportunity]: ...

    @abstractmethod
    def activities_for_call(self, query: ActivityQuery) -> list[Activity]: ...

    def upsert_activity(self, call: Call, decision: Decision) -> WrittenActivity:
        """W1: create or update the one activity keyed by `call.id`, marked as ours.

        Salesforce follows W2, HubSpot W3. A read-only CRM refuses.
        """
        raise NotImplementedError(f"{type(self).__name__} does not write activities")

    def upsert_activities(
        self, writes: Sequence[tuple[Call, Decision]]
    ) -> list[WrittenActivity | ExternalError]:
        """W1 for a batch of calls, an outcome per call in the same order.

        A call's own failure (a refused record) is its outcome, so the others still
        land; an error that stops every write (credentials, the rate limit, the org
        down) is raised. Adapters that can write many records in one request (Salesforce
        sObject Collections, HubSpot batch create/update) override this one-by-one default.
        """
        out: list[WrittenActivity | ExternalError] = []
        for call, decision in writes:
            try:
                out.append(self.upsert_activity(call, decision))
            except (CredentialsExpiredError, RateLimitedError):
                raise
            except FatalError as exc:
                out.append(exc)
        return out

    def lookup(self, keys: Lookup) -> CrmSlice:
        """One round of reads. Adapters that can batch across objects override this."""
        self.stats.rounds += 1

        def sort(values: Iterable[str]) -> list[str]:
            return sorted(values)

        users = self.users_by_emails(sort(keys.user_emails)) if keys.user_emails else []
        contacts: list[Contact] = []
        leads: list[Lead] = []
        if keys.emails:
            contacts += self.contacts_by_emails(sort(keys.emails))
            leads += self.leads_by_emails(sort(keys.emails))
        if keys.phones:
            contacts += self.contacts_by_phones(sort(keys.phones))
            leads += self.leads_by_phones(sort(keys.phones))
        if keys.contact_ids:
            contacts += self.contacts_by_ids(sort(keys.contact_ids))
        accounts: list[Account] = []
        if keys.domains:
            accounts += self.accounts_by_domains(sort(keys.domains))
        if keys.account_ids:
            accounts += self.accounts_by_ids(sort(keys.account_ids))
        opportunities: list[Opportunity] = []
        if keys.contact_ids:
            opportunities += self.opportunities_of_contacts(sort(keys.contact_ids))
        if keys.account_ids:
            opportunities += self.opportunities_of_accounts(sort(keys.account_ids))
        if keys.opportunity_ids:
            opportunities += self.opportunities_by_ids(sort(keys.opportunity_ids))
        activities = [a for query in keys.activities for a in self.activities_for_call(query)]
        return CrmSlice(
            users=tuple(users),
            accounts=tuple(accounts),
            contacts=tuple(contacts),
            leads=tuple(leads),
            opportunities=tuple(opportunities),
            activities=tuple(activities),
        )


def merge_slices(first: CrmSlice, second: CrmSlice) -> CrmSlice:
    """Union by id; the first copy of a record wins (reads of one call see one CRM state)."""

    def merged(a: tuple[_R, ...], b: tuple[_R, ...]) -> tuple[_R, ...]:
        seen = {record.id for record in a}
        extra = []
        for record in b:
            if record.id not in seen:
                seen.add(record.id)
                extra.append(record)
        return a + tuple(extra)

    return CrmSlice(
        users=merged(first.users, second.users),
        accounts=merged(first.accounts, second.accounts),
        contacts=merged(first.contacts, second.contacts),
        leads=merged(first.leads, second.leads),
        opportunities=merged(first.opportunities, second.opportunities),
        activities=merged(first.activities, second.activities),
        preferences=first.preferences + second.preferences,
    )
