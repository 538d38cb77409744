"""The association service: gather what the rules need through a CRM port, in batched rounds, then decide.

Rounds follow the rules' own dependencies: participants' emails and phones first
(with users, domains and the call's activities), then the records those point at
(contacts' opportunities and accounts, the activity's links). `needed_keys` is
pure; it uses the engine's own matching so that what is fetched is exactly what the
rules will look at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from worker.core.model import (
    Call,
    CrmSlice,
    Decision,
    Opportunity,
    OwnerMode,
    Policy,
    Preference,
    Previous,
    Scenario,
)
from worker.core.normalize import norm_email
from worker.core.port import ActivityQuery, CrmPort, Lookup, merge_slices
from worker.engine.matching import Exclusions, match_participants, participant_keys, searchable_domains
from worker.engine.rules import apply_rules, corresponding_activities

MAX_ROUNDS = 6


class GatherError(RuntimeError):
    """The reads did not settle; a bug in a port or in `needed_keys`, never bad input."""


def needed_keys(
    call: Call,
    policy: Policy,
    crm: CrmSlice,
    previous: Previous | None = None,
    preferences: tuple[Preference, ...] = (),
) -> Lookup:
    """Everything the rules would read for `call`, given what is already known in `crm`.

    Rules v1.1 read a little more, only when their policy asks: M9 the contact a
    matched lead was converted to, X1 the accounts of candidate opportunities (their
    type), L1 the accounts the matched contacts' preferences name, R6's
    `refresh_drops_stale` the previous contacts (to see which are gone).
    """
    keys = participant_keys(call, policy)
    organizer = norm_email(call.organizer.email)
    wants_user = policy.owner is not OwnerMode.OFF or policy.use_contact_roles
    contact_ids: set[str] = set()
    account_ids: set[str] = set()
    opportunity_ids: set[str] = set()

    removed = previous.removed_ids("contact") if previous is not None else frozenset()
    matching = match_participants(
        call, policy, crm, exclusions=Exclusions(removed_contacts=removed), keys=keys
    )
    contact_ids.update(matching.contact_ids)
    account_ids.update(matching.domain_account_ids)
    if policy.skip_converted_leads:
        # M9 drops a converted lead whose contact is not (yet) known: match with M9 off to see
        # every lead M4 would give, so that the contacts they were converted to are read.
        as_leads = match_participants(
            call,
            replace(policy, skip_converted_leads=False),
            crm,
            exclusions=Exclusions(removed_contacts=removed),
            keys=keys,
        )
        matched_leads = {lid for p in as_leads.participants for lid in p.lead_ids}
        contact_ids.update(
            lead.converted_contact_id
            for lead in crm.leads
            if lead.id in matched_leads and lead.is_converted and lead.converted_contact_id
        )
    if policy.excluded_account_types:
        account_ids.update(o.account_id for o in crm.opportunities if o.account_id)
    if policy.use_preferences and preferences:
        matched = set(matching.contact_ids)
        account_ids.update(p.account_id for p in preferences if p.contact_id in matched and p.account_id)
    if policy.refresh_drops_stale and previous is not None:
        contact_ids.update(previous.contact_ids)
    if policy.use_existing_activity:
        for activity in corresponding_activities(call, policy, crm):
            contact_ids.update(activity.contact_ids)
            if activity.account_id:
                account_ids.add(activity.account_id)
            if activity.opportunity_id:
                opportunity_ids.add(activity.opportunity_id)
    known = {c.id: c for c in crm.contacts}
    for contact_id in contact_ids:
        if contact_id in known:
            account_ids.update(known[contact_id].account_ids)

    return Lookup(
        user_emails=frozenset({organizer} if organizer and wants_user else ()),
        emails=frozenset(email for email, _ in keys if email),
        phones=frozenset(phone for _, phone in keys if phone),
        domains=frozenset(searchable_domains(call, policy) if policy.match_by_domain else ()),
        contact_ids=frozenset(contact_ids),
        account_ids=frozenset(account_ids),
        opportunity_ids=frozenset(opportunity_ids),
        activities=(
            (
                ActivityQuery(
                    call_id=call.id,
                    kind=call.kind,
                    started_at=call.started_at,
                    window_minutes=policy.activity_match_minutes,
                    emails=frozenset(email for email, _ in keys if email),
                ),
            )
            if policy.use_existing_activity
            else ()
        ),
    )


PreferencesFor = Callable[[Sequence[str], Sequence[Opportunity]], tuple[Preference, ...]]
"""L1's source: the live preferences of these contacts, given the opportunities read (a closed one expires its)."""


def _rounds(
    call: Call,
    policy: Policy,
    port: CrmPort,
    previous: Previous | None,
    crm: CrmSlice,
    asked: Lookup,
) -> tuple[CrmSlice, Lookup]:
    for _ in range(MAX_ROUNDS):
        wanted = needed_keys(call, policy, crm, previous, crm.preferences).minus(asked)
        if wanted.is_empty():
            return crm, asked
        crm = merge_slices(crm, port.lookup(wanted))
        asked = asked.union(wanted)
    raise GatherError(f"reads for call {call.id} did not settle after {MAX_ROUNDS} rounds")


def gather(
    call: Call,
    policy: Policy,
    port: CrmPort,
    previous: Previous | None = None,
    preferences: tuple[Preference, ...] | PreferencesFor = (),
) -> CrmSlice:
    """Read, round by round, until the rules need nothing more; L1's preferences travel with the slice.

    Given a source of preferences, the reads settle first, the contacts read then
    bring their preferences, and a last round reads the accounts those name.
    """
    if not callable(preferences):
        return _rounds(call, policy, port, previous, CrmSlice(preferences=preferences), Lookup())[0]
    crm, asked = _rounds(call, policy, port, previous, CrmSlice(), Lookup())
    if not policy.use_preferences or not crm.contacts:
        return crm
    found = preferences([c.id for c in crm.contacts], crm.opportunities)
    if not found:
        return crm
    return _rounds(call, policy, port, previous, replace(crm, preferences=found), asked)[0]


def associate(
    call: Call,
    policy: Policy,
    port: CrmPort,
    previous: Previous | None = None,
    preferences: tuple[Preference, ...] | PreferencesFor = (),
) -> Decision:
    """The rules for a live call: batched reads through the tenant's CRM port, then the pure engine.

    `preferences` are L1's (kept by callmatch, not read from the CRM): a list, or
    a source asked for those of the contacts read; the engine keeps the ones of
    contacts it matched.
    """
    return apply_rules(call, policy, gather(call, policy, port, previous, preferences), previous)


def decide_scenario(scenario: Scenario) -> Decision:
    """A scenario decided exactly as a live call, through the file-backed CRM adapter."""
    from adapters.crm.scenario import ScenarioCrm

    port = ScenarioCrm(
        scenario.crm, scenario.policy.default_region, domain_match=scenario.policy.domain_match
    )
    return associate(scenario.call, scenario.policy, port, scenario.previous, scenario.crm.preferences)
