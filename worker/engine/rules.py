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
    Ambiguity,
    Call,
    CallKind,
    Candidate,
    Case,
    CrmSlice,
    Decision,
    Opportunity,
    OwnerMode,
    Policy,
    Preference,
    Previous,
)
from worker.core.normalize import norm_email
from worker.engine.domains import domain_keys, email_domain_key
from worker.engine.matching import (
    Exclusions,
    Matching,
    excluded_accounts,
    internal_domain_keys,
    match_participants,
)
from worker.engine.selection import Choice, Clock, Selector
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


def present_emails(call: Call, policy: Policy) -> frozenset[str]:
    """A1's emails: the participants' own, less those of our domains (M7)."""
    internal = internal_domain_keys(policy)
    emails = (norm_email(p.email) for p in call.participants)
    return frozenset(
        e for e in emails if e and (not internal or email_domain_key(e, policy.domain_match) not in internal)
    )


def corresponding_activities(
    call: Call,
    policy: Policy,
    crm: CrmSlice,
    trace: Trace | None = None,
    emails: frozenset[str] | None = None,
) -> list[Activity]:
    """A1: activities that are this call, ours excluded."""
    emails = present_emails(call, policy) if emails is None else emails
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


_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Outcome:
    """What a case decided before refresh; `reselect` re-runs its opportunity procedure (R3)."""

    case: Case
    contact_ids: tuple[str, ...]
    account_id: str | None
    opportunity_id: str | None
    candidates: tuple[Opportunity, ...]
    reselect: Callable[[Sequence[Opportunity], Trace], Choice]
    tied_opportunities: tuple[Opportunity, ...] = ()
    tied_accounts: tuple[str, ...] = ()


class Engine:
    """Applies the rules for one call; build one per decision."""

    def __init__(self, call: Call, policy: Policy, crm: CrmSlice, previous: Previous | None = None):
        self.call = call
        self.policy = policy
        self.crm = _Crm(crm)
        self.clock = clock_for(call, policy)
        self.user_id = organizer_user_id(call, crm)
        self.selector = Selector(policy, self.clock, self.user_id)
        self.trace = Trace()
        self.previous = previous
        removed = previous if previous is not None and previous.removed else None
        self.removed_contacts = removed.removed_ids("contact") if removed else _NONE
        self.removed_opportunities = removed.removed_ids("opportunity") if removed else _NONE
        self.removed_accounts = removed.removed_ids("account") if removed else _NONE
        self.excluded = (
            excluded_accounts(policy, crm, self.removed_accounts)
            if removed or policy.excluded_account_types
            else {}
        )
        """X1 and R6: account id -> the rule that keeps it out of votes, M6 and candidates."""

    def decide(self, previous: Previous | None = None) -> Decision:
        if previous is not None and self.previous is None:
            return Engine(self.call, self.policy, self.crm.slice, previous).decide()
        previous = self.previous
        matching = match_participants(
            self.call,
            self.policy,
            self.crm.slice,
            self.trace,
            Exclusions(self.removed_contacts, self.excluded),
        )
        outcome = None
        if self.policy.use_existing_activity:
            outcome = self._case1(matching)
        else:
            self.trace.add("A1", "rules A are off (policy.use_existing_activity is false): Case 2")
        if outcome is None:
            outcome = self._case2(matching)
        decision = Decision(
            call_id=self.call.id,
            case=outcome.case,
            contact_ids=outcome.contact_ids,
            lead_ids=matching.lead_ids,
            account_id=outcome.account_id,
            opportunity_id=outcome.opportunity_id,
            candidates=self._candidates(outcome.tied_opportunities, outcome.tied_accounts),
        )
        if previous is not None:
            decision = self._refresh(decision, outcome, previous)
        if not self.trace.entries:
            self.trace.add("V1", "nothing matched: no contact, lead, account or opportunity")
        return replace(
            decision,
            case=Case.AMBIGUOUS if decision.candidates else decision.case,
            trace=self.trace.freeze(),
        )

    def _candidates(
        self, opportunities: Sequence[Opportunity], accounts: Sequence[str]
    ) -> tuple[Candidate, ...]:
        """U1: tied opportunities, then tied accounts, for a person to choose from."""
        out = [
            Candidate(
                "opportunity",
                o.id,
                f"tied under {self.selector.rule}"
                + (f" (account {o.account_id})" if o.account_id else " (no account)"),
            )
            for o in opportunities
        ]
        out += [
            Candidate("account", aid, "tied on votes (V1) and participants' domains (V2)") for aid in accounts
        ]
        return tuple(out)

    # candidates (X1, R6) ---------------------------------------------------------------------

    def _allowed(self, candidates: Iterable[Opportunity], trace: Trace) -> list[Opportunity]:
        """Candidates less R6's removed opportunities and those of X1's or R6's accounts."""
        if not self.excluded and not self.removed_opportunities:
            return list(candidates)
        kept: list[Opportunity] = []
        by_rule: dict[str, list[str]] = {}
        for opp in sorted(candidates, key=lambda o: o.id):  # id order: the trace never depends on read order
            if opp.id in self.removed_opportunities:
                by_rule.setdefault("R6", []).append(f"{opp.id} (removed by a person)")
            elif opp.account_id is not None and opp.account_id in self.excluded:
                rule = self.excluded[opp.account_id]
                why = "type excluded" if rule == "X1" else "removed by a person"
                by_rule.setdefault(rule, []).append(f"{opp.id} (account {opp.account_id}: {why})")
            else:
                kept.append(opp)
        for rule, dropped in sorted(by_rule.items()):
            trace.add(rule, f"not a candidate opportunity: {', '.join(dropped)}")
        return kept

    # Case 1 ---------------------------------------------------------------------------------

    def _links(self, activity: Activity) -> tuple[Opportunity | None, Account | None, tuple[str, ...]]:
        """A2's links of an activity: a link to a record R6 removed (or an opportunity of one) does not count."""
        opp = self.crm.opportunities.get(activity.opportunity_id) if activity.opportunity_id else None
        if opp is not None and (
            opp.id in self.removed_opportunities
            or (opp.account_id is not None and opp.account_id in self.removed_accounts)
        ):
            opp = None
        account = self.crm.accounts.get(activity.account_id) if activity.account_id else None
        if account is not None and account.id in self.removed_accounts:
            account = None
        contacts = tuple(
            sorted(
                {
                    cid
                    for cid in activity.contact_ids
                    if cid in self.crm.contacts and cid not in self.removed_contacts
                }
            )
        )
        return opp, account, contacts

    def _removed_links(self, activity: Activity) -> list[str]:
        """What of an activity's links R6 discounts, for the trace."""
        out = []
        opp = self.crm.opportunities.get(activity.opportunity_id) if activity.opportunity_id else None
        if opp is not None and opp.id in self.removed_opportunities:
            out.append(f"opportunity {opp.id}")
        elif opp is not None and opp.account_id is not None and opp.account_id in self.removed_accounts:
            out.append(f"opportunity {opp.id} (of removed account {opp.account_id})")
        if activity.account_id and activity.account_id in self.removed_accounts:
            out.append(f"account {activity.account_id}")
        out += [f"contact {cid}" for cid in sorted(set(activity.contact_ids) & self.removed_contacts)]
        return out

    def _case1(self, matching: Matching) -> _Outcome | None:
        found = corresponding_activities(
            self.call, self.policy, self.crm.slice, self.trace, emails=matching.emails
        )
        linked = []
        for activity in found:
            gone = self._removed_links(activity)
            if gone:
                self.trace.add(
                    "R6",
                    f"{_activity_label(activity)}: links a person removed do not count: {', '.join(gone)}",
                )
            opp, account, contacts = self._links(activity)
            if opp or account or contacts:
                linked.append(activity)
            else:
                self.trace.add(
                    "A2",
                    f"{_activity_label(activity)} is this call but links no existing opportunity, account or contact",
                )
        if not linked:
            if not found:
                self.trace.add("A1", "no CRM activity corresponds to this call: Case 2")
            else:
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
                lambda cands, _trace: Choice(cands[0] if cands else None),
            )
        if account is not None:
            self.trace.add("A4", f"{label} is linked to account {account.id} (no opportunity)")
            if self.excluded.get(account.id) == "X1":
                self.trace.add(
                    "X1",
                    f"account {account.id}'s type is excluded: it stays, but none of its opportunities is ranked",
                )
            candidates = self._allowed(self.crm.opportunities_of_accounts([account.id]), self.trace)
            choice = self.selector.select(
                candidates, self.trace, context=f" among account {account.id}'s opportunities"
            )
            return _Outcome(
                Case.ACTIVITY_ACCOUNT,
                contact_ids,
                account.id,
                choice.opportunity.id if choice.opportunity else None,
                tuple(candidates),
                self.selector.select,
                tied_opportunities=choice.tied,
            )
        self.trace.add("A5", f"{label} names contact {', '.join(activity_contacts)}")
        candidates = self._allowed(self.crm.opportunities_of_contacts(activity_contacts), self.trace)
        choice = self.selector.select(candidates, self.trace, context=" among those contacts' opportunities")
        chosen_opp = choice.opportunity
        tied_accounts: tuple[str, ...] = ()
        shared = _shared_account(choice.tied)
        if chosen_opp is not None and chosen_opp.account_id:
            self.trace.add("V3", f"account {chosen_opp.account_id} is {chosen_opp.id}'s account")
            account_id: str | None = chosen_opp.account_id
        elif shared is not None:
            self.trace.add("U1.2", f"account {shared} is shared by every tied opportunity")
            account_id = shared
        else:
            votes = [set(self.crm.contacts[cid].account_ids) for cid in activity_contacts]
            labels = [f"contact {cid}" for cid in activity_contacts]
            account_id, tied_accounts = self._vote(votes, labels, matching)
        return _Outcome(
            Case.ACTIVITY_CONTACT,
            contact_ids,
            account_id,
            chosen_opp.id if chosen_opp else None,
            tuple(candidates),
            self.selector.select,
            tied_opportunities=choice.tied,
            tied_accounts=tied_accounts,
        )

    # Case 2 ---------------------------------------------------------------------------------

    def _case2(self, matching: Matching) -> _Outcome:
        contact_ids = matching.contact_ids
        domain_accounts = matching.domain_account_ids
        candidates = self.crm.opportunities_of_contacts(contact_ids)
        if domain_accounts:
            candidates += self.crm.opportunities_of_accounts(domain_accounts)
        candidates = sorted({o.id: o for o in candidates}.values(), key=lambda o: o.id)
        candidates = self._allowed(candidates, self.trace)
        if candidates:
            self.trace.add("C2", f"candidates from the participants: {', '.join(o.id for o in candidates)}")
        preferences = self._preferences(contact_ids)
        choice = self._select_case2(candidates, self.trace, contact_ids, preferences)
        chosen = choice.opportunity
        tied_accounts: tuple[str, ...] = ()
        shared = _shared_account(choice.tied)
        if chosen is not None and chosen.account_id:
            self.trace.add("V3", f"account {chosen.account_id} is {chosen.id}'s account")
            account_id: str | None = chosen.account_id
        elif shared is not None:
            self.trace.add("U1.2", f"account {shared} is shared by every tied opportunity")
            account_id = shared
        else:
            account_id = self._preferred_account(preferences)
            if account_id is None:
                votes = [
                    {aid for cid in p.contact_ids for aid in self.crm.contacts[cid].account_ids}
                    | set(p.domain_account_ids)
                    for p in matching.participants
                ]
                account_id, tied_accounts = self._vote(
                    votes, [p.label for p in matching.participants], matching
                )
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
            lambda cands, trace: self._select_case2(cands, trace, contact_ids, preferences),
            tied_opportunities=choice.tied,
            tied_accounts=tied_accounts,
        )

    def _preferences(self, contact_ids: Sequence[str]) -> list[Preference]:
        """L1: the preferences of the matched contacts (M1/M2/M9), when the policy uses them."""
        if not self.policy.use_preferences or not self.crm.slice.preferences:
            return []
        matched = set(contact_ids)
        return [p for p in self.crm.slice.preferences if p.contact_id in matched]

    def _preferred_opportunity(
        self, candidates: Sequence[Opportunity], preferences: Sequence[Preference], trace: Trace
    ) -> Opportunity | None:
        """L1.1: the latest preference for an eligible candidate, then the smallest opportunity id."""
        by_id = {o.id: o for o in candidates}
        usable = [
            p
            for p in preferences
            if p.opportunity_id in by_id and self.selector.tier(by_id[p.opportunity_id]) is not None
        ]
        if not usable:
            return None
        # the same opportunity preferred at the same time through two contacts: the trace names the smallest id
        best = min(usable, key=lambda p: (-_instant(p), p.opportunity_id or "", p.contact_id))
        assert best.opportunity_id is not None
        trace.add(
            "L1",
            f"contact {best.contact_id}'s calls went to opportunity {best.opportunity_id} by a person's choice"
            f"{_when(best)}: it is chosen before C4 and S",
        )
        return by_id[best.opportunity_id]

    def _preferred_account(self, preferences: Sequence[Preference]) -> str | None:
        """L1.2: where V would run, the latest preference for a known, allowed account."""
        usable = [
            p
            for p in preferences
            if p.account_id is not None
            and p.account_id in self.crm.accounts
            and p.account_id not in self.excluded
        ]
        if not usable:
            return None
        best = min(usable, key=lambda p: (-_instant(p), p.account_id or "", p.contact_id))
        self.trace.add(
            "L1",
            f"contact {best.contact_id}'s calls went to account {best.account_id} by a person's choice"
            f"{_when(best)}: it is chosen before V1 votes",
        )
        return best.account_id

    def _select_case2(
        self,
        candidates: Sequence[Opportunity],
        trace: Trace,
        contact_ids: Sequence[str],
        preferences: Sequence[Preference] = (),
    ) -> Choice:
        if self.policy.owner is OwnerMode.FILTER:
            if self.user_id is None:
                if candidates:
                    trace.add("C3", "owner filter: the organizer has no CRM user, so no candidate is kept")
                return Choice(None)
            kept = [o for o in candidates if o.owner_id == self.user_id]
            dropped = [o for o in candidates if o.owner_id != self.user_id]
            if dropped:
                trace.add(
                    "C3",
                    f"owner filter keeps the organizer's ({self.user_id}) opportunities"
                    f" {', '.join(o.id for o in kept) or '(none)'}; drops {', '.join(o.id for o in dropped)}",
                )
            candidates = kept
        preferred = self._preferred_opportunity(candidates, preferences, trace) if preferences else None
        if preferred is not None:
            return Choice(preferred)
        if not self.policy.use_contact_roles:
            return self.selector.select(candidates, trace)
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
            choice = self.selector.select(
                group, group_trace, context=f" (contact-role group {number}: {what})"
            )
            if choice.decided:
                trace.add(
                    "C4", f"contact-role group {number} ({what}) decides: {', '.join(o.id for o in group)}"
                )
                trace.extend(group_trace)
                return choice
            trace.add("C4", f"contact-role group {number} ({what}) has no eligible opportunity")
        return Choice(None)

    # V ----------------------------------------------------------------------------------------

    def _vote(
        self, votes: Sequence[set[str]], voters: Sequence[str], matching: Matching
    ) -> tuple[str | None, tuple[str, ...]]:
        """V1/V2 (with X1, R6, M10, U1.1): the account, or with `abstain` the accounts left tied."""
        tally: Counter[str] = Counter()
        lost: dict[str, set[str]] = {}
        for accounts in votes:
            for aid in accounts:
                if aid in self.excluded:
                    lost.setdefault(self.excluded[aid], set()).add(aid)
                else:
                    tally[aid] += 1
        for rule, ids in sorted(lost.items()):
            why = "type excluded" if rule == "X1" else "removed by a person"
            self.trace.add(rule, f"account {', '.join(sorted(ids))} gets no vote ({why})")
        if not tally:
            return None, ()
        best = max(tally.values())
        leaders = sorted(aid for aid, count in tally.items() if count == best)
        summary = ", ".join(f"{aid}: {tally[aid]}" for aid in sorted(tally, key=lambda a: (-tally[a], a)))
        if len(leaders) == 1:
            self.trace.add("V1", f"account {leaders[0]} has the most votes ({summary})")
            return leaders[0], ()
        mode = self.policy.domain_match
        domains = [d for d in (email_domain_key(p.email, mode) for p in matching.present) if d]

        def domain_score(account_id: str) -> int:
            account = self.crm.accounts.get(account_id)
            held = domain_keys(account.domains, mode) if account else frozenset()
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
            return winner, ()
        if self.policy.on_ambiguity is Ambiguity.ABSTAIN:
            self.trace.add(
                "U1.1",
                f"accounts {', '.join(finalists)} tie at {best} votes ({summary}) and on participants' domains"
                f" ({detail}): no account is chosen (on_ambiguity: abstain)",
            )
            return None, tuple(finalists)
        self.trace.add(
            "V2",
            f"tie at {best} votes ({summary}) and on participants' domains ({detail}): smallest id {winner}"
            " (the reference picks at random; we stay deterministic)",
        )
        return winner, ()

    # R ----------------------------------------------------------------------------------------

    def _previous_contacts(self, previous: Previous, locked: frozenset[str]) -> tuple[str, ...]:
        """previous.contact_ids less R6's removed ones and, with refresh_drops_stale, those gone from the CRM."""
        kept = tuple(cid for cid in previous.contact_ids if cid not in self.removed_contacts)
        if len(kept) != len(previous.contact_ids):
            gone = sorted(set(previous.contact_ids) - set(kept))
            self.trace.add("R6", f"contact {', '.join(gone)} was removed by a person: not kept from before")
        if self.policy.refresh_drops_stale and "contacts" not in locked:
            fresh = tuple(cid for cid in kept if cid in self.crm.contacts)
            if len(fresh) != len(kept):
                stale = [cid for cid in kept if cid not in self.crm.contacts]
                self.trace.add(
                    "R6", f"contact {', '.join(stale)} is no longer in the CRM: dropped from before"
                )
            kept = fresh
        return kept

    def _refresh(self, decision: Decision, outcome: _Outcome, previous: Previous) -> Decision:
        self.trace.add("R1", "refresh: the rules ran again on today's CRM data")
        locked = previous.locked
        previous_contacts = self._previous_contacts(previous, locked)
        previous_account = previous.account_id
        if previous_account is not None and previous_account in self.removed_accounts:
            self.trace.add("R6", f"account {previous_account} was removed by a person: not kept from before")
            previous_account = None
        previous_opportunity = previous.opportunity_id
        if previous_opportunity is not None and previous_opportunity in self.removed_opportunities:
            self.trace.add(
                "R6", f"opportunity {previous_opportunity} was removed by a person: not kept from before"
            )
            previous_opportunity = None
        if previous_contacts or "contacts" in locked:
            if previous_contacts != decision.contact_ids:
                self.trace.add("R2", f"contacts kept from before: {', '.join(previous_contacts) or '(none)'}")
            decision = replace(decision, contact_ids=previous_contacts)
        if previous.lead_ids or "leads" in locked:
            if tuple(previous.lead_ids) != decision.lead_ids:
                self.trace.add("R2", f"leads kept from before: {', '.join(previous.lead_ids) or '(none)'}")
            decision = replace(decision, lead_ids=tuple(previous.lead_ids))
        tied_accounts = [c for c in decision.candidates if c.type == "account"]
        if "opportunity" in locked:
            if previous_account is not None or "account" in locked:
                decision = replace(decision, account_id=previous_account)
                tied_accounts = []
            self.trace.add(
                "R4", f"opportunity {previous_opportunity or '(none)'} was locked by a person and stays"
            )
            return replace(decision, opportunity_id=previous_opportunity, candidates=tuple(tied_accounts))
        replaces_account = previous_account is not None or "account" in locked
        stray_ties = "account" in locked and any(
            o.account_id != previous_account
            for o in (
                self.crm.opportunities.get(c.id) for c in decision.candidates if c.type == "opportunity"
            )
            if o is not None
        )
        # U1: R2 replacing the account (even by the none a person locked) drops tied accounts; an account
        # a person locked while opportunities of other accounts tie settles them: R3 chooses again
        if replaces_account and (previous_account != decision.account_id or tied_accounts or stray_ties):
            account_id = previous_account
            why = "locked by a person" if "account" in locked else "set before"
            new = decision.account_id or (
                f"the tied accounts {', '.join(c.id for c in tied_accounts)}" if tied_accounts else "(none)"
            )
            self.trace.add(
                "R2", f"account {account_id or '(none)'} kept from before ({why}) instead of {new}"
            )
            belonging = [
                o for o in outcome.candidates if account_id is not None and o.account_id == account_id
            ]
            choice = outcome.reselect(belonging, self.trace) if belonging else Choice(None)
            if choice.opportunity is not None:
                self.trace.add(
                    "R3",
                    f"opportunity chosen again among account {account_id}'s candidates: {choice.opportunity.id}",
                )
            elif choice.tied:
                self.trace.add(
                    "R3",
                    f"opportunities of account {account_id} tie again: {', '.join(o.id for o in choice.tied)}",
                )
            else:
                self.trace.add(
                    "R3",
                    f"no candidate opportunity belongs to account {account_id or '(none)'}: no opportunity",
                )
            return replace(
                decision,
                account_id=account_id,
                opportunity_id=choice.opportunity.id if choice.opportunity else None,
                candidates=self._candidates(choice.tied, ()),
            )
        return decision


def _shared_account(tied: Sequence[Opportunity]) -> str | None:
    """U1.2: the account every tied opportunity belongs to, if they share one."""
    accounts = {o.account_id for o in tied}
    if len(accounts) == 1:
        return next(iter(accounts))
    return None


def _instant(preference: Preference) -> float:
    """L1: a preference's time (missing counts as oldest)."""
    return preference.set_at.timestamp() if preference.set_at is not None else float("-inf")


def _when(preference: Preference) -> str:
    return f" on {preference.set_at.date().isoformat()}" if preference.set_at is not None else ""


def apply_rules(call: Call, policy: Policy, crm: CrmSlice, previous: Previous | None = None) -> Decision:
    """The whole rule book for one call. Pure: same arguments, same decision and trace."""
    return Engine(call, policy, crm, previous).decide()
