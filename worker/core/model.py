"""Plain data shared by the engine, the CRM port and every adapter.

Everything here is immutable and free of I/O so that the rules can be run, replayed
and property-tested on values alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Strategy(StrEnum):
    """`policy.opportunity_strategy` (rules S1-S5)."""

    TIMELINE = "timeline"
    MOST_RECENTLY_CREATED_OPEN = "most_recently_created_open"
    MOST_RECENTLY_UPDATED_OPEN = "most_recently_updated_open"
    MOST_RECENTLY_UPDATED = "most_recently_updated"
    OLDEST_CREATED_OPEN = "oldest_created_open"


class OwnerMode(StrEnum):
    """`policy.owner`: C3 filter, S6 preference, or neither."""

    OFF = "off"
    FILTER = "filter"
    PREFER = "prefer"


class CallKind(StrEnum):
    CALL = "call"
    MEETING = "meeting"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ActivityType(StrEnum):
    TASK = "task"
    EVENT = "event"


class Case(StrEnum):
    """The result's `case`: which branch of the rules decided the call."""

    ACTIVITY_OPPORTUNITY = "activity_opportunity"
    ACTIVITY_ACCOUNT = "activity_account"
    ACTIVITY_CONTACT = "activity_contact"
    CONTACTS = "contacts"
    DOMAIN = "domain"
    LEADS_ONLY = "leads_only"
    NONE = "none"
    AMBIGUOUS = "ambiguous"


class DomainMatch(StrEnum):
    """`policy.domain_match` (M10): how M6, V2 and M7 compare domains."""

    EXACT = "exact"
    CLEAN = "clean"
    REGISTRABLE = "registrable"


class Ambiguity(StrEnum):
    """`policy.on_ambiguity` (U1): pick as v1 does, or abstain and list the candidates."""

    PICK = "pick"
    ABSTAIN = "abstain"


DEFAULT_FREE_MAIL_DOMAINS: tuple[str, ...] = (
    "aol.com",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hotmail.co.uk",
    "hotmail.com",
    "hotmail.fr",
    "icloud.com",
    "laposte.net",
    "live.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "orange.fr",
    "outlook.com",
    "outlook.fr",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "web.de",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.fr",
    "yandex.ru",
    "zoho.com",
)


@dataclass(frozen=True)
class Windows:
    """Day windows of the timeline strategy (S1.2, S1.3, S1.5)."""

    created_after_days: int = 30
    closed_before_days: int = 30
    closed_before_max_days: int = 90


@dataclass(frozen=True)
class Policy:
    """Per-tenant switches of the rules; defaults are those of scenario-v1."""

    crm: str = "generic"
    default_region: str = "US"
    timezone: str = "UTC"
    use_existing_activity: bool = True
    match_by_domain: bool = False
    free_mail_domains: tuple[str, ...] = DEFAULT_FREE_MAIL_DOMAINS
    opportunity_strategy: Strategy = Strategy.TIMELINE
    owner: OwnerMode = OwnerMode.OFF
    use_contact_roles: bool = False
    activity_match_minutes: int = 15
    windows: Windows = field(default_factory=Windows)
    # rules v1.1: each default keeps v1's decisions (M10's `clean` aside, which cleans stored websites)
    internal_phones: tuple[str, ...] = ()
    internal_domains: tuple[str, ...] = ()
    shared_phone_max_accounts: int = 0
    skip_converted_leads: bool = False
    prefer_primary: bool = False
    refresh_drops_stale: bool = False
    domain_match: DomainMatch = DomainMatch.CLEAN
    excluded_account_types: tuple[str, ...] = ()
    on_ambiguity: Ambiguity = Ambiguity.PICK
    use_preferences: bool = True


@dataclass(frozen=True)
class Person:
    """A participant or the organizer, as the telephony or meeting provider saw them."""

    email: str | None = None
    phone: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Call:
    id: str
    started_at: dt.datetime
    kind: CallKind = CallKind.CALL
    ended_at: dt.datetime | None = None
    organizer: Person = field(default_factory=Person)
    participants: tuple[Person, ...] = ()
    direction: Direction | None = None
    title: str | None = None

    @property
    def duration_seconds(self) -> int | None:
        if self.ended_at is None:
            return None
        return max(0, int((self.ended_at - self.started_at).total_seconds()))


@dataclass(frozen=True)
class User:
    id: str
    email: str | None = None


@dataclass(frozen=True)
class Account:
    id: str
    name: str | None = None
    domains: tuple[str, ...] = ()
    type: str | None = None


@dataclass(frozen=True)
class Contact:
    id: str
    email: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    account_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lead:
    id: str
    email: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    is_converted: bool = False
    converted_contact_id: str | None = None


@dataclass(frozen=True)
class ContactRole:
    """A contact named on an opportunity (Salesforce contact role, HubSpot deal association)."""

    id: str
    is_primary: bool = False


@dataclass(frozen=True)
class Opportunity:
    id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    account_id: str | None = None
    owner_id: str | None = None
    is_closed: bool = False
    is_won: bool = False
    close_date: dt.date | None = None
    contacts: tuple[ContactRole, ...] = ()


@dataclass(frozen=True)
class Activity:
    """A task or event already in the CRM (rules A1-A6)."""

    id: str
    type: ActivityType = ActivityType.TASK
    call_id: str | None = None
    start: dt.datetime | None = None
    attendee_emails: tuple[str, ...] = ()
    contact_ids: tuple[str, ...] = ()
    account_id: str | None = None
    opportunity_id: str | None = None
    written_by_us: bool = False


@dataclass(frozen=True)
class CrmSlice:
    """The CRM records one decision may look at.

    It may hold more than the call needs (a whole scenario file does); the engine
    finds what matches by itself, so a superset never changes the result.
    """

    users: tuple[User, ...] = ()
    accounts: tuple[Account, ...] = ()
    contacts: tuple[Contact, ...] = ()
    leads: tuple[Lead, ...] = ()
    opportunities: tuple[Opportunity, ...] = ()
    activities: tuple[Activity, ...] = ()
    preferences: tuple[Preference, ...] = ()


@dataclass(frozen=True)
class Preference:
    """L1: what a person chose (override or review) for a call of this contact."""

    contact_id: str
    account_id: str | None = None
    opportunity_id: str | None = None
    set_at: dt.datetime | None = None


REMOVABLE_TYPES: tuple[str, ...] = ("contact", "account", "opportunity")


@dataclass(frozen=True)
class Removed:
    """R6: a record a person unlinked from the call; refreshes never link it again."""

    type: str
    id: str


LOCKABLE_FIELDS: tuple[str, ...] = ("contacts", "leads", "account", "opportunity")


@dataclass(frozen=True)
class Previous:
    """What a refresh starts from (rules R2-R4): the stored result and what a person locked."""

    contact_ids: tuple[str, ...] = ()
    lead_ids: tuple[str, ...] = ()
    account_id: str | None = None
    opportunity_id: str | None = None
    locked: frozenset[str] = frozenset()
    removed: tuple[Removed, ...] = ()

    def removed_ids(self, kind: str) -> frozenset[str]:
        return frozenset(r.id for r in self.removed if r.type == kind)


@dataclass(frozen=True)
class TraceEntry:
    rule: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class Candidate:
    """U1: a record the rules could not choose between (`ambiguous`), for a person to pick."""

    type: str
    id: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id, "reason": self.reason}


@dataclass(frozen=True)
class Decision:
    """The result of the rules for one call, with the trace a person reads to see why."""

    call_id: str
    case: Case
    contact_ids: tuple[str, ...] = ()
    lead_ids: tuple[str, ...] = ()
    account_id: str | None = None
    opportunity_id: str | None = None
    trace: tuple[TraceEntry, ...] = ()
    candidates: tuple[Candidate, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "case": self.case.value,
            "contact_ids": list(self.contact_ids),
            "lead_ids": list(self.lead_ids),
            "account_id": self.account_id,
            "opportunity_id": self.opportunity_id,
            "candidates": [candidate.to_json() for candidate in self.candidates],
            "trace": [entry.to_json() for entry in self.trace],
        }


@dataclass(frozen=True)
class Scenario:
    """One scenario-v1 document: a call, its policy, a CRM slice and maybe a previous result."""

    call: Call
    policy: Policy = field(default_factory=Policy)
    crm: CrmSlice = field(default_factory=CrmSlice)
    previous: Previous | None = None
