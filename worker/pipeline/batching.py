"""Cross-call batching: the reads of many calls of one tenant in shared rounds, each call decided as alone.

Every round, each call not yet settled says what it still needs (`needed_keys`
on its own view, minus what it already asked, exactly as `gather` does); the union
of those keys, minus what the batch already read, is ONE `port.lookup`. The records
read join a slice shared by the batch. Each call then sees only the records its
own keys answer: its view is read back from the shared slice through the reference
adapter (`ScenarioCrm`), so a call's slice, and so its decision with its trace, is
the one it would get alone (for the scenario CRM exactly; for a live CRM as far as
the adapter's matching is the reference one). A call's L1 preferences are asked
from its own view, after its reads settle, as `gather` does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from adapters.crm.scenario import ScenarioCrm
from worker.core.model import Call, CrmSlice, Decision, DomainMatch, Policy, Preference, Previous
from worker.core.port import CrmPort, Lookup, merge_slices
from worker.engine.rules import apply_rules
from worker.pipeline.association import MAX_ROUNDS, GatherError, PreferencesFor, needed_keys


class BatchItem(NamedTuple):
    """One call of a batch, with what `associate` takes besides the port."""

    call: Call
    policy: Policy
    previous: Previous | None = None
    preferences: tuple[Preference, ...] | PreferencesFor = ()


@dataclass
class _Gathering:
    """One call's progress: its own view, what it asked, rounds in this phase, and whether L1 is still to ask."""

    item: BatchItem
    view: CrmSlice
    asked: Lookup
    rounds: int = 0
    preferences_due: bool = False
    settled: bool = False

    def wants(self) -> Lookup | None:
        """What this call still needs this round; None once settled (its preferences asked when due)."""
        call, policy, previous, source = self.item
        while not self.settled:
            wanted = needed_keys(call, policy, self.view, previous, self.view.preferences).minus(self.asked)
            if not wanted.is_empty():
                if self.rounds >= MAX_ROUNDS:
                    raise GatherError(f"reads for call {call.id} did not settle after {MAX_ROUNDS} rounds")
                return wanted
            if self.preferences_due and callable(source):
                self.preferences_due = False
                if policy.use_preferences and self.view.contacts:
                    found = source([c.id for c in self.view.contacts], self.view.opportunities)
                    if found:  # `gather`: a second series of rounds, from what is already asked
                        self.view = replace(self.view, preferences=found)
                        self.rounds = 0
                        continue
            self.settled = True
        return None


def gather_many(items: list[BatchItem], port: CrmPort) -> list[CrmSlice]:
    """Each call's slice, as `gather` would read it alone, from shared rounds of reads (one lookup per round)."""
    states = [
        _Gathering(
            item,
            CrmSlice() if callable(item.preferences) else CrmSlice(preferences=item.preferences),
            Lookup(),
            preferences_due=callable(item.preferences),
        )
        for item in items
    ]
    shared = CrmSlice()
    read = Lookup()
    while True:
        wanted = {i: w for i, state in enumerate(states) if (w := state.wants()) is not None}
        if not wanted:
            return [state.view for state in states]
        union = Lookup()
        for keys in wanted.values():
            union = union.union(keys)
        missing = union.minus(read)
        if not missing.is_empty():
            shared = merge_slices(shared, port.lookup(missing))
            read = read.union(missing)
        views: dict[tuple[str, DomainMatch], ScenarioCrm] = {}
        for i, keys in wanted.items():
            state = states[i]
            policy = state.item.policy
            reference = (policy.default_region, policy.domain_match)
            if reference not in views:
                views[reference] = ScenarioCrm(
                    shared, policy.default_region, domain_match=policy.domain_match
                )
            state.view = merge_slices(state.view, views[reference].lookup(keys))
            state.asked = state.asked.union(keys)
            state.rounds += 1


def associate_many(items: list[BatchItem], port: CrmPort) -> list[Decision]:
    """The rules for a batch of calls of one tenant: shared reads, then each call's decision as alone."""
    slices = gather_many(items, port)
    return [
        apply_rules(item.call, item.policy, crm, item.previous)
        for item, crm in zip(items, slices, strict=True)
    ]
