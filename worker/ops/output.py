"""Exit codes and the text view of a decision, shared by `callmatch` and `callmatch ops`.

Kept apart from `cli.py` so that `opscli.py` need not import the CLI that dispatches to it.
"""

from __future__ import annotations

from worker.core.model import Decision

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_FAILED = 1  # setup: a step failed; doctor: the tenant cannot run
EXIT_INVALID = 2


def format_text(decision: Decision) -> str:
    """A person's view of a decision: the result first, then the trace rule by rule."""
    lines = [
        f"call {decision.call_id}: {decision.case.value}",
        f"  opportunity: {decision.opportunity_id or '-'}",
        f"  account:     {decision.account_id or '-'}",
        f"  contacts:    {', '.join(decision.contact_ids) or '-'}",
        f"  leads:       {', '.join(decision.lead_ids) or '-'}",
        "  why:",
    ]
    lines += [f"    [{entry.rule}] {entry.message}" for entry in decision.trace]
    return "\n".join(lines)
