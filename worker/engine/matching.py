"""Rules M1-M6: which CRM contacts, leads and (by domain) accounts the participants are."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from worker.core.model import Account, Call, Contact, CrmSlice, Lead, Person, Policy
from worker.core.normalize import mask_email, mask_phone, norm_email, to_e164
from worker.engine.domains import domain_keys, email_domain_key
from worker.engine.trace import Silent, Trace


class ParticipantMatch(NamedTuple):
    """One participant and what it matched; `number` is 1-based, as a person counts.

    A named tuple, not a frozen dataclass: matching builds several per participant and
    round, and a frozen dataclass's `__init__` cost a fifth of the gather (measured).
    """

    number: int
    person: Person
    email: str | None
    phone: str | None
    contact_ids: tuple[str, ...] = ()
    lead_ids: tuple[str, ...] = ()
    domain_account_ids: tuple[str, ...] = ()
    skipped: bool = False
    """M3 or M7: as if not on the call (no A1 email, no V2 domain)."""

    @property
    def label(self) -> str:
        """`participant 2 (j***@acme.com)`: how the trace names it (masked)."""
        return _label(self.number, self.email, self.person.phone)


@lru_cache(maxsize=4096)
def _label(number: int, email: str | None, phone: str | None) -> str:
    shown = mask_email(email) if email else mask_phone(phone) if phone else "-"
    return f"participant {number} ({shown})"


@dataclass(frozen=True)
class Matching:
    participants: tuple[ParticipantMatch, ...]

    @property
    def contact_ids(self) -> tuple[str, ...]:
        """Participant order, then id order within a participant (M5), without repeats."""
        return _ordered_unique(cid for p in self.participants for cid in p.contact_ids)

    @property
    def lead_ids(self) -> tuple[str, ...]:
        return _ordered_unique(lid for p in self.participants for lid in p.lead_ids)

    @property
    def domain_account_ids(self) -> tuple[str, ...]:
        return tuple(sorted({aid for p in self.participants for aid in p.domain_account_ids}))

    @property
    def present(self) -> tuple[ParticipantMatch, ...]:
        """The participants on the call as the rules see it (M7's own people and M3's blanks left out)."""
        return tuple(p for p in self.participants if not p.skipped)

    @property
    def emails(self) -> frozenset[str]:
        """A1: the present participants' emails."""
        return frozenset(p.email for p in self.present if p.email)


def _ordered_unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _by_email(records: Iterable[Contact | Lead]) -> dict[str, set[str]]:
    index: dict[str, set[str]] = defaultdict(set)
    for record in records:
        for email in (record.email, *record.emails):
            norm = norm_email(email)
            if norm:
                index[norm].add(record.id)
    return index


def _by_phone(records: Iterable[Contact | Lead], region: str) -> dict[str, set[str]]:
    index: dict[str, set[str]] = defaultdict(set)
    for record in records:
        for phone in record.phones:
            e164 = to_e164(phone, region)
            if e164:
                index[e164].add(record.id)
    return index


def participant_keys(call: Call, policy: Policy) -> list[tuple[str | None, str | None]]:
    """Each participant's normalised email and E.164 phone (None when absent or unusable)."""
    return [(norm_email(p.email), to_e164(p.phone, policy.default_region)) for p in call.participants]


@dataclass(frozen=True)
class Exclusions:
    """What the rules may not link: R6's removed contacts, X1's and R6's accounts (id -> rule)."""

    removed_contacts: frozenset[str] = frozenset()
    accounts: Mapping[str, str] = field(default_factory=dict)


def excluded_accounts(policy: Policy, crm: CrmSlice, removed: frozenset[str] = frozenset()) -> dict[str, str]:
    """X1: accounts whose `type` is excluded; R6: accounts a person removed. Id -> the rule that says so."""
    types = {t.strip().casefold() for t in policy.excluded_account_types if t.strip()}
    out: dict[str, str] = {}
    if types:
        for account in crm.accounts:
            if account.type is not None and account.type.strip().casefold() in types:
                out[account.id] = "X1"
    for account_id in sorted(removed):
        out.setdefault(account_id, "R6")
    return out


def internal_domain_keys(policy: Policy) -> frozenset[str]:
    return domain_keys(policy.internal_domains, policy.domain_match)


def internal_phone_keys(policy: Policy) -> frozenset[str]:
    """M7: the tenant's own numbers, read like M2 (unparseable entries ignored)."""
    return frozenset(p for p in (to_e164(raw, policy.default_region) for raw in policy.internal_phones) if p)


def _first_phones(records: Iterable[Contact], region: str) -> dict[str, str | None]:
    return {c.id: (to_e164(c.phones[0], region) if c.phones else None) for c in records}


def match_participants(
    call: Call,
    policy: Policy,
    crm: CrmSlice,
    trace: Trace | None = None,
    exclusions: Exclusions | None = None,
    keys: list[tuple[str | None, str | None]] | None = None,
) -> Matching:
    """M3, M7, M1/M2 (less R6), M8, M11, M5, M4 with M9, then M6; extra records never change the outcome.

    `keys` are `participant_keys(call, policy)` when the caller has them already.
    """
    trace = trace if trace is not None else Silent()
    skip = exclusions or Exclusions()
    region = policy.default_region
    removed = skip.removed_contacts
    needs_records = (
        policy.shared_phone_max_accounts > 0 or policy.prefer_primary or policy.skip_converted_leads
    )
    contacts = {c.id: c for c in crm.contacts} if needs_records else {}
    contacts_by_email = _by_email(crm.contacts)
    contacts_by_phone = _by_phone(crm.contacts, region)
    leads_by_email: dict[str, set[str]] | None = None
    leads_by_phone: dict[str, set[str]] | None = None
    internal_domains = internal_domain_keys(policy)
    internal_phones = internal_phone_keys(policy) if policy.internal_phones else frozenset()

    if not call.participants:
        trace.add("M3", "the call lists no external participant: nothing to match")
    matches: list[ParticipantMatch] = []
    for number, (person, (email, phone)) in enumerate(
        zip(call.participants, keys if keys is not None else participant_keys(call, policy), strict=True), 1
    ):
        match = ParticipantMatch(number, person, email, phone)
        has_phone = bool(person.phone and person.phone.strip())
        if email is None and not has_phone:
            trace.add("M3", f"{match.label} has neither email nor phone: skipped")
            matches.append(_with(match, skipped=True))
            continue
        domain = email_domain_key(email, policy.domain_match) if internal_domains else None
        if domain is not None and domain in internal_domains:
            trace.add("M7", f"{match.label}: {domain} is one of our domains: skipped as one of ours")
            matches.append(_with(match, skipped=True))
            continue
        if phone is not None and phone in internal_phones:
            if email is None:
                trace.add(
                    "M7",
                    f"{match.label}: {mask_phone(phone)} is one of our numbers and there is no email: skipped",
                )
                matches.append(_with(match, skipped=True))
                continue
            trace.add("M7", f"{match.label}: {mask_phone(phone)} is one of our numbers: ignored, email only")
            match = _with(match, drop_phone=True)
            phone, has_phone = None, False
        if has_phone and phone is None:
            trace.add(
                "M2",
                f"{match.label}: phone {mask_phone(person.phone)} is not a possible number in {region}; it matches nothing",
            )
        by_email = contacts_by_email.get(email, set()) if email else set()
        by_phone = contacts_by_phone.get(phone, set()) if phone else set()
        gone = (by_email | by_phone) & removed if removed else None
        if gone:
            trace.add(
                "R6", f"{match.label}: contact {', '.join(sorted(gone))} was removed by a person: not matched"
            )
            by_email, by_phone = by_email - removed, by_phone - removed
        if by_email and trace.recording:
            trace.add("M1", f"{match.label} matched contact {', '.join(sorted(by_email))} by email")
        if by_phone and trace.recording:
            trace.add(
                "M2",
                f"{match.label} matched contact {', '.join(sorted(by_phone))} by phone {mask_phone(phone)}",
            )
        shared = False
        if by_phone and policy.shared_phone_max_accounts > 0:
            accounts = {aid for cid in by_phone for aid in contacts[cid].account_ids}
            if len(accounts) > policy.shared_phone_max_accounts:
                shared = True
                trace.add(
                    "M8",
                    f"{match.label}: {mask_phone(phone)} is a shared number ({len(accounts)} accounts among"
                    f" its contacts, more than {policy.shared_phone_max_accounts}): it matches no contact and no lead",
                )
                by_phone = set()
        if policy.prefer_primary:
            by_email, by_phone = _primary_first(match, by_email, by_phone, contacts, region, trace)
        contact_ids = tuple(sorted(by_email | by_phone))
        if len(contact_ids) > 1 and trace.recording:
            trace.add(
                "M5",
                f"{match.label} matched {len(contact_ids)} contacts ({', '.join(contact_ids)}): all are linked, in id order",
            )
        if contact_ids:
            matches.append(_with(match, contact_ids=contact_ids))
            continue
        if leads_by_email is None or leads_by_phone is None:
            leads_by_email, leads_by_phone = _by_email(crm.leads), _by_phone(crm.leads, region)
        lead_phone = None if shared else phone
        lead_ids = tuple(
            sorted(
                (leads_by_email.get(email, set()) if email else set())
                | (leads_by_phone.get(lead_phone, set()) if lead_phone else set())
            )
        )
        if policy.skip_converted_leads and lead_ids:
            match = _follow_conversions(match, lead_ids, crm, contacts, removed, trace)
            if match.contact_ids:
                matches.append(match)
                continue
            lead_ids = match.lead_ids
        if not trace.recording:
            pass
        elif lead_ids:
            trace.add("M4", f"{match.label} matched no contact but lead {', '.join(lead_ids)}")
        else:
            trace.add("M4", f"{match.label} matched no contact and no lead")
        matches.append(_with(match, lead_ids=lead_ids))

    if policy.match_by_domain and not any(m.contact_ids for m in matches):
        matches = _match_domains(call, policy, crm.accounts, matches, trace, skip.accounts)
    return Matching(tuple(matches))


def _primary_first(
    match: ParticipantMatch,
    by_email: set[str],
    by_phone: set[str],
    contacts: Mapping[str, Contact],
    region: str,
    trace: Trace,
) -> tuple[set[str], set[str]]:
    """M11: contacts holding the email as their `email`, the phone as their first phone, before the others."""
    dropped: set[str] = set()
    primary = {cid for cid in by_email if norm_email(contacts[cid].email) == match.email}
    if primary and primary != by_email:
        dropped |= by_email - primary
        by_email = primary
    first = _first_phones((contacts[cid] for cid in by_phone), region)
    primary = {cid for cid in by_phone if first[cid] == match.phone}
    if primary and primary != by_phone:
        dropped |= by_phone - primary
        by_phone = primary
    dropped -= by_email | by_phone
    if dropped:
        trace.add(
            "M11",
            f"{match.label}: contact {', '.join(sorted(dropped))} matched only by a secondary email or phone:"
            " dropped for those matched by their primary one",
        )
    return by_email, by_phone


def _follow_conversions(
    match: ParticipantMatch,
    lead_ids: tuple[str, ...],
    crm: CrmSlice,
    contacts: Mapping[str, Contact],
    removed: frozenset[str],
    trace: Trace,
) -> ParticipantMatch:
    """M9: a converted lead never matches; its contact, when known and not removed, is matched instead."""
    leads = {lead.id: lead for lead in crm.leads}
    kept: list[str] = []
    followed: list[str] = []
    for lead_id in lead_ids:
        lead = leads[lead_id]
        if not lead.is_converted:
            kept.append(lead_id)
            continue
        target = lead.converted_contact_id
        if target is not None and target in contacts and target not in removed:
            trace.add(
                "M9",
                f"{match.label}: lead {lead_id} was converted to contact {target}: that contact is matched",
            )
            followed.append(target)
        else:
            why = (
                "with no known contact"
                if target is None or target not in contacts
                else f"to contact {target}, which a person removed"
            )
            trace.add("M9", f"{match.label}: lead {lead_id} was converted ({why}): skipped")
    if followed:
        contact_ids = tuple(sorted(set(followed)))
        if len(contact_ids) > 1:
            trace.add(
                "M5",
                f"{match.label} matched {len(contact_ids)} contacts ({', '.join(contact_ids)}): all are linked, in id order",
            )
        return _with(match, contact_ids=contact_ids)
    return _with(match, lead_ids=tuple(kept))


def _with(
    match: ParticipantMatch,
    *,
    drop_phone: bool = False,
    contact_ids: tuple[str, ...] | None = None,
    lead_ids: tuple[str, ...] | None = None,
    domain_account_ids: tuple[str, ...] | None = None,
    skipped: bool | None = None,
) -> ParticipantMatch:
    """`match` with some fields changed (built directly: `dataclasses.replace` costs a third of matching)."""
    return ParticipantMatch(
        match.number,
        match.person,
        match.email,
        None if drop_phone else match.phone,
        match.contact_ids if contact_ids is None else contact_ids,
        match.lead_ids if lead_ids is None else lead_ids,
        match.domain_account_ids if domain_account_ids is None else domain_account_ids,
        match.skipped if skipped is None else skipped,
    )


def searchable_domains(call: Call, policy: Policy) -> list[str]:
    """M6: participant email domains (M10 keys), less free-mail, our own (M7) and the organizer's domain."""
    mode = policy.domain_match
    excluded = domain_keys(policy.free_mail_domains, mode) | internal_domain_keys(policy)
    organizer_domain = email_domain_key(norm_email(call.organizer.email), mode)
    out: list[str] = []
    for person in call.participants:
        domain = email_domain_key(norm_email(person.email), mode)
        if domain and domain not in excluded and domain != organizer_domain and domain not in out:
            out.append(domain)
    return out


def _match_domains(
    call: Call,
    policy: Policy,
    accounts: Iterable[Account],
    matches: list[ParticipantMatch],
    trace: Trace,
    excluded: Mapping[str, str],
) -> list[ParticipantMatch]:
    mode = policy.domain_match
    by_domain: dict[str, set[str]] = defaultdict(set)
    for account in accounts:
        for held in domain_keys(account.domains, mode):
            by_domain[held].add(account.id)
    free_mail = domain_keys(policy.free_mail_domains, mode)
    organizer_domain = email_domain_key(norm_email(call.organizer.email), mode)
    out = []
    for match in matches:
        domain = None if match.skipped else email_domain_key(match.email, mode)
        if domain is None:
            out.append(match)
            continue
        if domain == organizer_domain or domain in free_mail:
            why = "the organizer's own domain" if domain == organizer_domain else "a free-mail domain"
            trace.add("M6", f"{match.label}: {domain} is {why}; not matched to accounts")
            out.append(match)
            continue
        found = sorted(by_domain.get(domain, set()))
        for account_id in found:
            if account_id in excluded:
                rule = excluded[account_id]
                why = "its type is excluded" if rule == "X1" else "a person removed it"
                trace.add(rule, f"{match.label}: account {account_id} lists {domain} but {why}: not matched")
        account_ids = tuple(a for a in found if a not in excluded)
        if account_ids:
            trace.add(
                "M6",
                f"{match.label}: no contact matched; domain {domain} belongs to account {', '.join(account_ids)}",
            )
        elif not found:
            trace.add("M6", f"{match.label}: no account lists the domain {domain}")
        out.append(_with(match, domain_account_ids=account_ids))
    return out
