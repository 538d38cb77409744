"""Rules S1-S6: choosing one opportunity among candidates, and saying why the others lost."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.core.model import Ambiguity, Opportunity, OwnerMode, Policy, Strategy
from worker.engine.trace import Trace

RUNNER_UP_LIMIT = 8
_DAY = 86400.0

_STRATEGY_RULE = {
    Strategy.TIMELINE: "S1",
    Strategy.MOST_RECENTLY_CREATED_OPEN: "S2",
    Strategy.MOST_RECENTLY_UPDATED_OPEN: "S3",
    Strategy.MOST_RECENTLY_UPDATED: "S4",
    Strategy.OLDEST_CREATED_OPEN: "S5",
}


@dataclass(frozen=True)
class Clock:
    """The call's instants as the rules see them: T in UTC and D, T's date in the policy time zone."""

    started_at: dt.datetime
    call_date: dt.date


@dataclass(frozen=True)
class Choice:
    """What S gave: one opportunity, a tie U1.2 abstained on (`tied`), or nothing (`eligible` tells why)."""

    opportunity: Opportunity | None
    tied: tuple[Opportunity, ...] = ()
    eligible: bool = True

    @property
    def decided(self) -> bool:
        """An opportunity or a tie: a C4 group that gives either wins."""
        return self.opportunity is not None or bool(self.tied)


@dataclass(frozen=True)
class Ranked:
    opportunity: Opportunity
    tier: int | None
    key: tuple[Any, ...]

    @property
    def eligible(self) -> bool:
        return self.tier is not None


def _days(seconds: float) -> int:
    return round(abs(seconds) / _DAY)


class Selector:
    """One strategy under one policy for one call; `choose` is pure and traces as it goes."""

    def __init__(self, policy: Policy, clock: Clock, organizer_user_id: str | None):
        self.policy = policy
        self.clock = clock
        self.organizer_user_id = organizer_user_id
        self.rule = _STRATEGY_RULE[policy.opportunity_strategy]

    def tier(self, opp: Opportunity) -> int | None:
        """S1 tiers 1-5; for S2-S5, 1 when eligible. None: not eligible at all."""
        strategy = self.policy.opportunity_strategy
        if strategy is Strategy.MOST_RECENTLY_UPDATED:
            return 1
        if strategy is not Strategy.TIMELINE:
            return None if opp.is_closed else 1
        windows = self.policy.windows
        t, d = self.clock.started_at, self.clock.call_date
        if not opp.is_closed and opp.created_at <= t:
            return 1
        if t < opp.created_at <= t + dt.timedelta(days=windows.created_after_days):
            return 2
        if opp.is_closed and opp.close_date is not None:
            close = opp.close_date
            if d - dt.timedelta(days=windows.closed_before_days) <= close < d:
                return 3
            if close >= d and opp.created_at <= t:
                return 4
            if (
                d - dt.timedelta(days=windows.closed_before_max_days)
                <= close
                < d - dt.timedelta(days=windows.closed_before_days)
            ):
                return 5
        return None

    def key(self, opp: Opportunity) -> tuple[Any, ...]:
        strategy = self.policy.opportunity_strategy
        created, updated = opp.created_at.timestamp(), opp.updated_at.timestamp()
        if strategy is Strategy.TIMELINE:
            return (abs(created - self.clock.started_at.timestamp()), -updated, opp.id)
        if strategy is Strategy.MOST_RECENTLY_CREATED_OPEN:
            return (-created, opp.id)
        if strategy is Strategy.OLDEST_CREATED_OPEN:
            return (created, opp.id)
        return (-updated, opp.id)

    def rank(self, opp: Opportunity) -> Ranked:
        return Ranked(opp, self.tier(opp), self.key(opp))

    def rule_of(self, ranked: Ranked) -> str:
        if self.rule == "S1" and ranked.tier is not None:
            return f"S1.{ranked.tier}"
        return self.rule

    def choose(
        self, candidates: Sequence[Opportunity], trace: Trace, *, context: str = ""
    ) -> Opportunity | None:
        """The best candidate under S (with S6), or None; runner-ups and tie-breaks go to the trace."""
        return self.select(candidates, trace, context=context).opportunity

    def select(self, candidates: Sequence[Opportunity], trace: Trace, *, context: str = "") -> Choice:
        """S (with S6): one opportunity, or with `on_ambiguity: abstain` maybe a tie (U1.2), or nothing."""
        unique = {opp.id: opp for opp in candidates}
        ranked = sorted(
            (self.rank(opp) for opp in unique.values()),
            key=lambda r: (r.tier if r.tier is not None else 99, r.key),
        )
        eligible = [r for r in ranked if r.eligible]
        set_aside: list[Ranked] = []
        if self.policy.owner is OwnerMode.PREFER and self.organizer_user_id is not None:
            owned = [r for r in eligible if r.opportunity.owner_id == self.organizer_user_id]
            if owned:
                set_aside = [r for r in eligible if r.opportunity.owner_id != self.organizer_user_id]
                if set_aside:
                    trace.add(
                        "S6",
                        f"the organizer's CRM user {self.organizer_user_id} owns {', '.join(r.opportunity.id for r in owned)}:"
                        f" only those are ranked{context}",
                    )
                eligible = owned
        if not eligible:
            if ranked:
                trace.add(self.rule, f"none of {len(ranked)} candidate opportunities is eligible{context}")
            for r in ranked[:RUNNER_UP_LIMIT]:
                trace.add(self.rule, f"{r.opportunity.id} not eligible: {self.describe(r)}")
            return Choice(None, eligible=False)
        if self.policy.on_ambiguity is Ambiguity.ABSTAIN:
            tied = self.tie(eligible)
            if tied:
                trace.add("U1.2", self.tie_message(tied, context))
                return Choice(None, tuple(r.opportunity for r in tied))
        winner = eligible[0]
        trace.add(self.rule_of(winner), f"{winner.opportunity.id} chosen{context}: {self.describe(winner)}")
        if len(eligible) > 1 and eligible[1].tier == winner.tier:
            trace.add(self.rule_of(winner), self.tie_break(winner, eligible[1]))
        others = [r for r in ranked if r is not winner]
        for r in others[:RUNNER_UP_LIMIT]:
            trace.add(self.rule_of(r), self.lost(r, winner, r in set_aside))
        if len(others) > RUNNER_UP_LIMIT:
            trace.add(self.rule, f"{len(others) - RUNNER_UP_LIMIT} more candidates lost as well")
        return Choice(winner.opportunity)

    def tie(self, eligible: Sequence[Ranked]) -> list[Ranked]:
        """U1.2: what S ranks last (S1: the first non-empty tier), tied across accounts or on its primary key."""
        last = [r for r in eligible if r.tier == eligible[0].tier] if self.rule == "S1" else list(eligible)
        if len(last) < 2:
            return []
        if len({r.opportunity.account_id for r in last}) > 1:
            return last
        if last[0].key[0] == last[1].key[0]:
            return [r for r in last if r.key[0] == last[0].key[0]]
        return []

    def tie_message(self, tied: Sequence[Ranked], context: str) -> str:
        ids = ", ".join(r.opportunity.id for r in tied)
        accounts = sorted({r.opportunity.account_id or "(none)" for r in tied})
        where = f" in tier {tied[0].tier}" if self.rule == "S1" else ""
        if len(accounts) > 1:
            why = f"they belong to different accounts ({', '.join(accounts)})"
        else:
            why = f"{self.rule} ranks them equal{where} ({self.primary_key(tied[0])})"
        return f"opportunities {ids} tie{context}: {why}; no opportunity is chosen (on_ambiguity: abstain)"

    def primary_key(self, ranked: Ranked) -> str:
        strategy = self.policy.opportunity_strategy
        opp = ranked.opportunity
        if strategy is Strategy.TIMELINE:
            return f"created {_days(ranked.key[0])} days from the call"
        if strategy in (Strategy.MOST_RECENTLY_CREATED_OPEN, Strategy.OLDEST_CREATED_OPEN):
            return f"created {opp.created_at.isoformat()}"
        return f"updated {opp.updated_at.isoformat()}"

    def describe(self, ranked: Ranked) -> str:
        opp = ranked.opportunity
        t, d = self.clock.started_at, self.clock.call_date
        windows = self.policy.windows
        gap = (opp.created_at - t).total_seconds()
        created = f"created {_days(gap)} days {'after' if gap > 0 else 'before'} the call"
        strategy = self.policy.opportunity_strategy
        if strategy is not Strategy.TIMELINE:
            if ranked.tier is None:
                return f"closed, and {self.rule} takes open opportunities only"
            state = "closed" if opp.is_closed else "open"
            return f"{state}, created {opp.created_at.date().isoformat()}, last updated {opp.updated_at.date().isoformat()}"
        close = None if opp.close_date is None else (d - opp.close_date).days
        match ranked.tier:
            case 1:
                return f"open at the call and {created}"
            case 2:
                return f"{created} (within {windows.created_after_days})"
            case 3:
                return f"closed {close} days before the call (within {windows.closed_before_days})"
            case 4:
                return f"closed {-(close or 0)} days after the call and {created}"
            case 5:
                return (
                    f"closed {close} days before the call"
                    f" (between {windows.closed_before_days + 1} and {windows.closed_before_max_days})"
                )
        if not opp.is_closed:
            return f"open but {created} (beyond {windows.created_after_days})"
        if opp.close_date is None:
            return f"closed with no close date and {created}"
        if close is not None and close < 0:
            return f"closed {-close} days after the call but {created}"
        return f"closed {close} days before the call (beyond {windows.closed_before_max_days})"

    def tie_break(self, winner: Ranked, second: Ranked) -> str:
        a, b = winner.opportunity, second.opportunity
        if self.policy.opportunity_strategy is Strategy.TIMELINE:
            if winner.key[0] != second.key[0]:
                return (
                    f"tie-break in tier {winner.tier}: {a.id} was created {_days(winner.key[0])} days from the call,"
                    f" {b.id} {_days(second.key[0])} days"
                )
            if winner.key[1] != second.key[1]:
                return (
                    f"tie-break in tier {winner.tier}: {a.id} and {b.id} were created as far from the call;"
                    f" {a.id} was updated later ({a.updated_at.isoformat()} vs {b.updated_at.isoformat()})"
                )
            return f"tie-break in tier {winner.tier}: {a.id} and {b.id} tie on creation and update; smallest id wins"
        if winner.key[0] != second.key[0]:
            return f"{a.id} ranks before {b.id} by {self.rule}"
        return f"tie-break: {a.id} and {b.id} tie under {self.rule}; smallest id wins"

    def lost(self, ranked: Ranked, winner: Ranked, set_aside: bool) -> str:
        opp = ranked.opportunity
        if not ranked.eligible:
            return f"{opp.id} not eligible: {self.describe(ranked)}"
        if set_aside:
            return f"{opp.id} set aside: owned by {opp.owner_id or 'nobody'}, not the organizer ({self.describe(ranked)})"
        if self.rule == "S1" and ranked.tier != winner.tier:
            return f"{opp.id} runner-up in tier {ranked.tier} ({self.describe(ranked)}); lost to tier {winner.tier}"
        return f"{opp.id} runner-up ({self.describe(ranked)}); lost the tie-break to {winner.opportunity.id}"
