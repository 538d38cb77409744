"""The association rules as one pure function: call + policy + CRM slice -> Decision.

No network, no Redis, no clock: everything the rules look at is an argument, so the
same inputs always give the same decision, whatever the order of records.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from worker.core.model import (
    Account,
    Activity,
    ActivityType,
    Call,
    CallKind,
    Case,
    CrmSlice,
    Decision,
    Opportunity,
    OwnerMode,
    Policy,
    Previous,
)
from worker.core.normalize import email_domain, norm_domain, norm_email
from worker.engine.matching import Matching, match_participants
from worker.engine.selection import Clock, Selector
from worker.engine.trace import Trace


@lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def clock_for(call: Call, policy: Policy) -> Clock:
    started = call.started_at.astimezone(dt.UTC)
    return Clock(started_at=started, call_date=started.astimezone(_zone(policy.timezone)).date())


class _Crm:
    """Indexes over the slice, built once per decision."""

    def __init__(self, crm: CrmSlice):
        self.slice = crm
        self.contacts = {c.id: c for c in crm.contacts}
        self.accounts = {a.id: a for a in crm.accounts}
        self.opportunities = {o.id: o for o in crm.opportunities}

    def opportunities_of_contacts(self, contact_ids: Iterable[str]) -> list[Opportunity]:
        """C1: opportunities naming a contact in their roles, plus those of the contacts' accounts."""
        wanted = set(contact_ids)
        accounts = {aid for cid in wanted if cid in self.contacts for aid in self.contacts[cid].account_ids}
        return [
            o
            for o in self.opportunities.values()
            if (o.account_id is not None and o.account_id in accounts)
            or any(r.id in wanted for r in o.contacts)
        ]

    def opportunities_of_accounts(self, account_ids: Iterable[str]) -> list[Opportunity]:
        wanted = set(account_ids)
        return [o for o in self.opportunities.values() if o.account_id is not None and o.account_id in wanted]


def organizer_user_id(call: Call, crm: CrmSlice) -> str | None:
    email = norm_email(call.organizer.email)
    if email is None:
        return None
    ids = sorted(u.id for u in crm.users if norm_email(u.email) == email)
    return ids[0] if ids else None


def _activity_label(activity: Activity) -> str:
    return f"{activity.type.value} {activity.id}"


def corresponding_activities(
    call: Call, policy: Policy, crm: CrmSlice, trace: Trace | None = None
) -> list[Activity]:
    """A1: activities that are this call, ours excluded."""
    emails = {e for e in (norm_email(p.email) for p in call.participants) if e}
    window = policy.activity_match_minutes * 60
    out = []
    for activity in crm.activities:
        by_call_id = activity.call_id is not None and activity.call_id == call.id
        by_meeting = (
            call.kind is CallKind.MEETING
            and activity.type is ActivityType.EVENT
            and activity.start is not None
            and abs((activity.start - call.started_at).total_seconds()) <= window
            and any(norm_email(e) in emails for e in activity.attendee_emails)
        )
        if not (by_call_id or by_meeting):
            continue
        if activity.written_by_us:
            if trace is not None:
                trace.add("A1", f"{_activity_label(activity)} was written by callmatch: ignored")
            continue
        out.append(activity)
    return out


@dataclass(frozen=True)
class _Outcome:
    """What a case decided before refresh; `reselect` re-runs its opportunity procedure (R3)."""

    case: Case
    contact_ids: tuple[str, ...]
    account_id: str | None
    opportunity_id: str | None
    candidates: tuple[Opportunity, ...]
    reselect: Callable[[Sequence[Opportunity], Trace], Opportunity | None]


class Engine:
    """Applies the rules for one call; build one per decision."""

    def __init__(self, call: Call, policy: Policy, crm: CrmSlice):
        self.call = call
        self.policy = policy
        self.crm = _Crm(crm)
        self.clock = clock_for(call, policy)
        self.user_id = organizer_user_id(call, crm)
        self.selector = Selector(policy, self.clock, self.user_id)
        self.trace = Trace()

    def decide(self, previous: Previous | None = None) -> Decision:
        matching = match_participants(self.call, self.policy, self.crm.slice, self.trace)
        outcome = self._case1(matching) if self.policy.use_existing_activity else None
        if outcome is None:
            outcome = self._case2(matching)
        decision = Decision(
            call_id=self.call.id,
            case=outcome.case,
            contact_ids=outcome.contact_ids,
            lead_ids=matching.lead_ids,
            account_id=outcome.account_id,
            opportunity_id=outcome.opportunity_id,
        )
        if previous is not None:
            decision = self._refresh(decision, outcome, previous)
        return replace(decision, trace=self.trace.freeze())

    # Case 1 ---------------------------------------------------------------------------------

    def _links(self, activity: Activity) -> tuple[Opportunity | None, Account | None, tuple[str, ...]]:
        opp = self.crm.opportunities.get(activity.opportunity_id) if activity.opportunity_id else None
        account = self.crm.accounts.get(activity.account_id) if activity.account_id else None
        contacts = tuple(sorted({cid for cid in activity.contact_ids if cid in self.crm.contacts}))
        return opp, account, contacts

    def _case1(self, matching: Matching) -> _Outcome | None:
        found = corresponding_activities(self.call, self.policy, self.crm.slice, self.trace)
        linked = []
        for activity in found:
            opp, account, contacts = self._links(activity)
            if opp or account or contacts:
                linked.append(activity)
            else:
                self.trace.add(
                    "A2",
                    f"{_activity_label(activity)} is this call but links no existing opportunity, account or contact",
                )
        if not linked:
            if self.policy.use_existing_activity and not found:
                self.trace.add("A1", "no CRM activity corresponds to this call: Case 2")
            elif found:
                self.trace.add("A2", "no corresponding activity has links: Case 2")
            return None

        def order(activity: Activity) -> tuple[int, float, str]:
            gap = (
                float("inf")
                if activity.start is None
                else abs((activity.start - self.call.started_at).total_seconds())
            )
            return (0 if activity.call_id == self.call.id else 1, gap, activity.id)

        linked.sort(key=order)
        chosen = linked[0]
        how = (
            "logged for this call"
            if chosen.call_id == self.call.id
            else "an event at the same time with a shared attendee"
        )
        if len(linked) > 1:
            others = ", ".join(a.id for a in linked[1:])
            self.trace.add(
                "A2", f"{len(linked)} activities correspond; {chosen.id} chosen ({how}) before {others}"
            )
        opp, account, activity_contacts = self._links(chosen)
        label = f"{_activity_label(chosen)} {how}"
        contact_ids = tuple(dict.fromkeys((*matching.contact_ids, *activity_contacts)))
        extra = [cid for cid in activity_contacts if cid not in matching.contact_ids]
        if extra:
            self.trace.add(
                "A6", f"contacts of {chosen.id} added after the participants' own: {', '.join(extra)}"
            )

        if opp is not None:
            self.trace.add("A3", f"{label} is linked to opportunity {opp.id}")
            opp_account_id = opp.account_id or (account.id if account else None)
            if opp.account_id:
                self.trace.add("V3", f"account {opp.account_id} is {opp.id}'s account")
            return _Outcome(
                Case.ACTIVITY_OPPORTUNITY,
                contact_ids,
                opp_account_id,
                opp.id,
                (opp,),
                lambda cands, _trace: cands[0] if cands else None,
            )
        if account is not None:
            self.trace.add("A4", f"{label} is linked to account {account.id} (no opportunity)")
            candidates = self.crm.opportunities_of_accounts([account.id])
            chosen_opp = self.selector.choose(
                candidates, self.trace, context=f" among account {account.id}'s opportunities"
            )
            return _Outcome(
                Case.ACTIVITY_ACCOUNT,
                contact_ids,
                account.id,
                chosen_opp.id if chosen_opp else None,
                tuple(candidates),
                self.selector.choose,
            )
        self.trace.add("A5", f"{label} names contact {', '.join(activity_contacts)}")
        candidates = self.crm.opportunities_of_contacts(activity_contacts)
        chosen_opp = self.selector.choose(
            candidates, self.trace, context=" among those contacts' opportunities"
        )
        if chosen_opp is not None and chosen_opp.account_id:
            self.trace.add("V3", f"account {chosen_opp.account_id} is {chosen_opp.id}'s account")
            account_id: str | None = chosen_opp.account_id
        else:
            votes = [set(self.crm.contacts[cid].account_ids) for cid in activity_contacts]
            labels = [f"contact {cid}" for cid in activity_contacts]
            account_id = self._vote(votes, labels, matching)
        return _Outcome(
            Case.ACTIVITY_CONTACT,
            contact_ids,
            account_id,
            chosen_opp.id if chosen_opp else None,
            tuple(candidates),
            self.selector.choose,
        )

    # Case 2 ---------------------------------------------------------------------------------

    def _case2(self, matching: Matching) -> _Outcome:
        contact_ids = matching.contact_ids
        domain_accounts = matching.domain_account_ids
        candidates = self.crm.opportunities_of_contacts(contact_ids)
        if domain_accounts:
            candidates += self.crm.opportunities_of_accounts(domain_accounts)
        candidates = sorted({o.id: o for o in candidates}.values(), key=lambda o: o.id)
        if candidates:
            self.trace.add("C2", f"candidates from the participants: {', '.join(o.id for o in candidates)}")
        chosen = self._select_case2(candidates, self.trace, contact_ids)
        if chosen is not None and chosen.account_id:
            self.trace.add("V3", f"account {chosen.account_id} is {chosen.id}'s account")
            account_id: str | None = chosen.account_id
        else:
            votes = [
                {aid for cid in p.contact_ids for aid in self.crm.contacts[cid].account_ids}
                | set(p.domain_account_ids)
                for p in matching.participants
            ]
            account_id = self._vote(votes, [p.label for p in matching.participants], matching)
        if contact_ids:
            case = Case.CONTACTS
        elif domain_accounts:
            case = Case.DOMAIN
        elif matching.lead_ids:
            case = Case.LEADS_ONLY
            self.trace.add("M4", "only leads matched: leads never bring an account or an opportunity")
        else:
            case = Case.NONE
        return _Outcome(
            case,
            contact_ids,
            account_id,
            chosen.id if chosen else None,
            tuple(candidates),
            lambda cands, trace: self._select_case2(cands, trace, contact_ids),
        )

    def _select_case2(
        self, candidates: Sequence[Opportunity], trace: Trace, contact_ids: Sequence[str]
    ) -> Opportunity | None:
        if self.policy.owner is OwnerMode.FILTER:
            if self.user_id is None:
                if candidates:
                    trace.add("C3", "owner filter: the organizer has no CRM user, so no candidate is kept")
                return None
            kept = [o for o in candidates if o.owner_id == self.user_id]
            dropped = [o for o in candidates if o.owner_id != self.user_id]
            if dropped:
                trace.add(
                    "C3",
                    f"owner filter keeps the organizer's ({self.user_id}) opportunities"
                    f" {', '.join(o.id for o in kept) or '(none)'}; drops {', '.join(o.id for o in dropped)}",
                )
            candidates = kept
        if not self.policy.use_contact_roles:
            return self.selector.choose(candidates, trace)
        matched = set(contact_ids)
        accounts = {
            aid for cid in matched if cid in self.crm.contacts for aid in self.crm.contacts[cid].account_ids
        }
        groups = [
            (
                "with a matched contact as primary contact role",
                [o for o in candidates if any(r.id in matched and r.is_primary for r in o.contacts)],
            ),
            (
                "with a matched contact in their contact roles",
                [o for o in candidates if any(r.id in matched for r in o.contacts)],
            ),
            (
                "of the matched contacts' accounts owned by the organizer's CRM user",
                [
                    o
                    for o in candidates
                    if o.account_id in accounts and self.user_id is not None and o.owner_id == self.user_id
                ],
            ),
            ("all candidates", list(candidates)),
        ]
        for number, (what, group) in enumerate(groups, 1):
            if not group:
                continue
            group_trace = Trace()
            chosen = self.selector.choose(
                group, group_trace, context=f" (contact-role group {number}: {what})"
            )
            if chosen is not None:
                trace.add(
                    "C4", f"contact-role group {number} ({what}) decides: {', '.join(o.id for o in group)}"
                )
                trace.extend(group_trace)
                return chosen
            trace.add("C4", f"contact-role group {number} ({what}) has no eligible opportunity")
        return None

    # V ----------------------------------------------------------------------------------------

    def _vote(self, votes: Sequence[set[str]], voters: Sequence[str], matching: Matching) -> str | None:
        """V1/V2: each voter votes once per distinct account; ties by participants' domains, then id."""
        tally: Counter[str] = Counter()
        for accounts in votes:
            tally.update(accounts)
        if not tally:
            return None
        best = max(tally.values())
        leaders = sorted(aid for aid, count in tally.items() if count == best)
        summary = ", ".join(f"{aid}: {tally[aid]}" for aid in sorted(tally, key=lambda a: (-tally[a], a)))
        if len(leaders) == 1:
            self.trace.add("V1", f"account {leaders[0]} has the most votes ({summary})")
            return leaders[0]
        domains = [d for d in (email_domain(p.email) for p in matching.participants) if d]

        def domain_score(account_id: str) -> int:
            account = self.crm.accounts.get(account_id)
            held = {norm_domain(d) for d in account.domains} if account else set()
            return sum(1 for d in domains if d in held)

        scores = {aid: domain_score(aid) for aid in leaders}
        top = max(scores.values())
        finalists = [aid for aid in leaders if scores[aid] == top]
        winner = finalists[0]
        detail = ", ".join(f"{aid}: {scores[aid]}" for aid in leaders)
        if len(finalists) == 1:
            self.trace.add(
                "V2",
                f"tie at {best} votes ({summary}); {winner} holds the email domain of the most participants ({detail})",
            )
        else:
            self.trace.add(
                "V2",
                f"tie at {best} votes ({summary}) and on participants' domains ({detail}): smallest id {winner}"
                " (the reference picks at random; we stay deterministic)",
            )
        return winner

    # R ----------------------------------------------------------------------------------------

    def _refresh(self, decision: Decision, outcome: _Outcome, previous: Previous) -> Decision:
        self.trace.add("R1", "refresh: the rules ran again on today's CRM data")
        locked = previous.locked
        if previous.contact_ids or "contacts" in locked:
            if tuple(previous.contact_ids) != decision.contact_ids:
                self.trace.add(
                    "R2", f"contacts kept from before: {', '.join(previous.contact_ids) or '(none)'}"
                )
            decision = replace(decision, contact_ids=tuple(previous.contact_ids))
        if previous.lead_ids or "leads" in locked:
            if tuple(previous.lead_ids) != decision.lead_ids:
                self.trace.add("R2", f"leads kept from before: {', '.join(previous.lead_ids) or '(none)'}")
            decision = replace(decision, lead_ids=tuple(previous.lead_ids))
        if "opportunity" in locked:
            if previous.account_id is not None or "account" in locked:
                decision = replace(decision, account_id=previous.account_id)
            self.trace.add(
                "R4", f"opportunity {previous.opportunity_id or '(none)'} was locked by a person and stays"
            )
            return replace(decision, opportunity_id=previous.opportunity_id)
        if (
            previous.account_id is not None or "account" in locked
        ) and previous.account_id != decision.account_id:
            account_id = previous.account_id
            why = "locked by a person" if "account" in locked else "set before"
            self.trace.add(
                "R2",
                f"account {account_id or '(none)'} kept from before ({why}) instead of {decision.account_id or '(none)'}",
            )
            belonging = [
                o for o in outcome.candidates if account_id is not None and o.account_id == account_id
            ]
            chosen = outcome.reselect(belonging, self.trace) if belonging else None
            if chosen is None:
                self.trace.add(
                    "R3",
                    f"no candidate opportunity belongs to account {account_id or '(none)'}: no opportunity",
                )
            else:
                self.trace.add(
                    "R3", f"opportunity chosen again among account {account_id}'s candidates: {chosen.id}"
                )
            return replace(decision, account_id=account_id, opportunity_id=chosen.id if chosen else None)
        return decision


def apply_rules(call: Call, policy: Policy, crm: CrmSlice, previous: Previous | None = None) -> Decision:
    """The whole rule book for one call. Pure: same arguments, same decision and trace."""
    return Engine(call, policy, crm).decide(previous)
