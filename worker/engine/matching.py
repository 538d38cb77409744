"""Rules M1-M6: which CRM contacts, leads and (by domain) accounts the participants are."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from worker.core.model import Account, Call, Contact, CrmSlice, Lead, Person, Policy
from worker.core.normalize import email_domain, mask_email, mask_phone, norm_domain, norm_email, to_e164
from worker.engine.trace import Trace


@dataclass(frozen=True)
class ParticipantMatch:
    """One participant and what it matched; `number` is 1-based, as a person counts."""

    number: int
    person: Person
    email: str | None
    phone: str | None
    contact_ids: tuple[str, ...] = ()
    lead_ids: tuple[str, ...] = ()
    domain_account_ids: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        shown = (
            mask_email(self.email)
            if self.email
            else mask_phone(self.person.phone)
            if self.person.phone
            else "-"
        )
        return f"participant {self.number} ({shown})"


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


def match_participants(call: Call, policy: Policy, crm: CrmSlice, trace: Trace | None = None) -> Matching:
    """M1-M6 over the records of `crm`; extra records never change the outcome."""
    trace = trace if trace is not None else Trace()
    region = policy.default_region
    contacts_by_email = _by_email(crm.contacts)
    contacts_by_phone = _by_phone(crm.contacts, region)
    leads_by_email: dict[str, set[str]] | None = None
    leads_by_phone: dict[str, set[str]] | None = None

    matches: list[ParticipantMatch] = []
    for number, (person, (email, phone)) in enumerate(
        zip(call.participants, participant_keys(call, policy), strict=True), 1
    ):
        match = ParticipantMatch(number=number, person=person, email=email, phone=phone)
        has_phone = bool(person.phone and person.phone.strip())
        if email is None and not has_phone:
            trace.add("M3", f"{match.label} has neither email nor phone: skipped")
            matches.append(match)
            continue
        if has_phone and phone is None:
            trace.add(
                "M2",
                f"{match.label}: phone {mask_phone(person.phone)} is not a possible number in {region}; it matches nothing",
            )
        by_email = contacts_by_email.get(email, set()) if email else set()
        by_phone = contacts_by_phone.get(phone, set()) if phone else set()
        if by_email:
            trace.add("M1", f"{match.label} matched contact {', '.join(sorted(by_email))} by email")
        if by_phone:
            trace.add(
                "M2",
                f"{match.label} matched contact {', '.join(sorted(by_phone))} by phone {mask_phone(phone)}",
            )
        contact_ids = tuple(sorted(by_email | by_phone))
        if len(contact_ids) > 1:
            trace.add(
                "M5",
                f"{match.label} matched {len(contact_ids)} contacts ({', '.join(contact_ids)}): all are linked, in id order",
            )
        if contact_ids:
            matches.append(_with(match, contact_ids=contact_ids))
            continue
        if leads_by_email is None or leads_by_phone is None:
            leads_by_email, leads_by_phone = _by_email(crm.leads), _by_phone(crm.leads, region)
        lead_ids = tuple(
            sorted(
                (leads_by_email.get(email, set()) if email else set())
                | (leads_by_phone.get(phone, set()) if phone else set())
            )
        )
        if lead_ids:
            trace.add("M4", f"{match.label} matched no contact but lead {', '.join(lead_ids)}")
        else:
            trace.add("M4", f"{match.label} matched no contact and no lead")
        matches.append(_with(match, lead_ids=lead_ids))

    if policy.match_by_domain and not any(m.contact_ids for m in matches):
        matches = _match_domains(call, policy, crm.accounts, matches, trace)
    return Matching(tuple(matches))


def _with(match: ParticipantMatch, **changes: tuple[str, ...]) -> ParticipantMatch:
    return ParticipantMatch(
        number=match.number,
        person=match.person,
        email=match.email,
        phone=match.phone,
        contact_ids=changes.get("contact_ids", match.contact_ids),
        lead_ids=changes.get("lead_ids", match.lead_ids),
        domain_account_ids=changes.get("domain_account_ids", match.domain_account_ids),
    )


def searchable_domains(call: Call, policy: Policy) -> list[str]:
    """M6: participant email domains, less free-mail providers and the organizer's own domain."""
    excluded = set(policy.free_mail_domains)
    organizer_domain = email_domain(call.organizer.email)
    out: list[str] = []
    for person in call.participants:
        domain = email_domain(person.email)
        if domain and domain not in excluded and domain != organizer_domain and domain not in out:
            out.append(domain)
    return out


def _match_domains(
    call: Call, policy: Policy, accounts: Iterable[Account], matches: list[ParticipantMatch], trace: Trace
) -> list[ParticipantMatch]:
    by_domain: dict[str, set[str]] = defaultdict(set)
    for account in accounts:
        for domain in account.domains:
            by_domain[norm_domain(domain)].add(account.id)
    allowed = set(searchable_domains(call, policy))
    organizer_domain = email_domain(call.organizer.email)
    out = []
    for match in matches:
        participant_domain = email_domain(match.email)
        if participant_domain is None:
            out.append(match)
            continue
        domain = participant_domain
        if domain not in allowed:
            why = "the organizer's own domain" if domain == organizer_domain else "a free-mail domain"
            trace.add("M6", f"{match.label}: {domain} is {why}; not matched to accounts")
            out.append(match)
            continue
        account_ids = tuple(sorted(by_domain.get(domain, set())))
        if account_ids:
            trace.add(
                "M6",
                f"{match.label}: no contact matched; domain {domain} belongs to account {', '.join(account_ids)}",
            )
        else:
            trace.add("M6", f"{match.label}: no account lists the domain {domain}")
        out.append(_with(match, domain_account_ids=account_ids))
    return out
