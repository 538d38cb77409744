"""The association service: gather what the rules need through a CRM port, in batched rounds, then decide.

Rounds follow the rules' own dependencies: participants' emails and phones first
(with users, domains and the call's activities), then the records those point at
(contacts' opportunities and accounts, the activity's links). `needed_keys` is
pure; it uses the engine's own matching so that what is fetched is exactly what the
rules will look at.
"""

from __future__ import annotations

from worker.core.model import Call, CrmSlice, Decision, OwnerMode, Policy, Previous, Scenario
from worker.core.normalize import norm_email
from worker.core.port import ActivityQuery, CrmPort, Lookup, merge_slices
from worker.engine.matching import match_participants, participant_keys, searchable_domains
from worker.engine.rules import apply_rules, corresponding_activities

MAX_ROUNDS = 6


class GatherError(RuntimeError):
    """The reads did not settle; a bug in a port or in `needed_keys`, never bad input."""


def needed_keys(call: Call, policy: Policy, crm: CrmSlice) -> Lookup:
    """Everything the rules would read for `call`, given what is already known in `crm`."""
    keys = participant_keys(call, policy)
    organizer = norm_email(call.organizer.email)
    wants_user = policy.owner is not OwnerMode.OFF or policy.use_contact_roles
    contact_ids: set[str] = set()
    account_ids: set[str] = set()
    opportunity_ids: set[str] = set()

    matching = match_participants(call, policy, crm)
    contact_ids.update(matching.contact_ids)
    account_ids.update(matching.domain_account_ids)
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
            ActivityQuery(
                call_id=call.id,
                kind=call.kind,
                started_at=call.started_at,
                window_minutes=policy.activity_match_minutes,
                emails=frozenset(email for email, _ in keys if email),
            )
            if policy.use_existing_activity
            else None
        ),
    )


def gather(call: Call, policy: Policy, port: CrmPort) -> CrmSlice:
    """Read, round by round, until the rules need nothing more."""
    crm = CrmSlice()
    asked = Lookup()
    for _ in range(MAX_ROUNDS):
        wanted = needed_keys(call, policy, crm).minus(asked)
        if wanted.is_empty():
            return crm
        crm = merge_slices(crm, port.lookup(wanted))
        asked = asked.union(wanted)
    raise GatherError(f"reads for call {call.id} did not settle after {MAX_ROUNDS} rounds")


def associate(call: Call, policy: Policy, port: CrmPort, previous: Previous | None = None) -> Decision:
    """The rules for a live call: batched reads through the tenant's CRM port, then the pure engine."""
    return apply_rules(call, policy, gather(call, policy, port), previous)


def decide_scenario(scenario: Scenario) -> Decision:
    """A scenario decided exactly as a live call, through the file-backed CRM adapter."""
    from adapters.crm.scenario import ScenarioCrm

    port = ScenarioCrm(scenario.crm, scenario.policy.default_region)
    return associate(scenario.call, scenario.policy, port, scenario.previous)
