"""What the console's pages show, made from stored records: pure functions, no I/O.

A trace is a list of `{rule, message}`; here it becomes a timeline grouped by the rules'
families, and the runner-up opportunities with why each lost (the S rules' own words).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# The rules' families, by the letter of their ids (docs/association-rules.md).
FAMILIES = {
    "M": "matching",
    "A": "existing activity",
    "C": "candidates",
    "S": "choosing the opportunity",
    "V": "account",
    "R": "refresh",
    "W": "write-back",
    "U": "ambiguity",
    "L": "a person's earlier choice",
    "X": "exclusion",
}
STAGES = ("fetch", "associate", "write")
# Words of worker/engine/selection.py's `lost`: "<id> runner-up ...", "<id> not eligible: ...", "<id> set aside: ...".
_LOST = re.compile(r"^(?P<id>\S+) (?P<what>runner-up|not eligible|set aside)\b:? ?(?P<why>.*)$")
_CHOSEN = re.compile(r"^(?P<id>\S+) chosen\b")
_NOT_CANDIDATES = re.compile(r"^not a candidate opportunity: (?P<list>.+)$")
_DROPPED = re.compile(r"(?P<id>[^\s,()]+) \((?P<why>[^)]*)\)")


def path_part(value: str) -> str:
    """A call id or tenant inside a console URL (`aircall:812731` stays readable, `/` and `?` are quoted)."""
    return quote(value, safe=":@-._~")


@dataclass(frozen=True)
class Step:
    """One line of the trace as the timeline shows it."""

    rule: str
    family: str
    message: str
    lost: bool


def timeline(trace: list[dict[str, Any]]) -> list[Step]:
    """The trace in its own order, each step with its rule's family; runner-up lines flagged."""
    steps = []
    for entry in trace:
        rule, message = str(entry.get("rule", "")), str(entry.get("message", ""))
        family = FAMILIES.get(rule[:1], "other")
        lost = bool(_LOST.match(message) or _NOT_CANDIDATES.match(message))
        steps.append(Step(rule, family, message, lost))
    return steps


@dataclass(frozen=True)
class RunnerUp:
    """An opportunity that was a candidate and was not chosen, with the rule and the reason."""

    opportunity_id: str
    rule: str
    outcome: str
    why: str


def runner_ups(trace: list[dict[str, Any]], current: str | None = None) -> list[RunnerUp]:
    """The opportunities that lost, as the trace says (first mention of each), in trace order.

    `current` is the call's opportunity: never a runner-up. When a person's lock (R4) kept it
    over the rules' own pick, that pick is listed as having lost to the lock.
    """
    seen: set[str] = {current} if current else set()
    out: list[RunnerUp] = []
    for entry in trace:
        rule, message = str(entry.get("rule", "")), str(entry.get("message", ""))
        chosen = _CHOSEN.match(message) if rule.startswith("S") else None
        if chosen is not None and current and chosen["id"] not in seen:
            seen.add(chosen["id"])
            out.append(RunnerUp(chosen["id"], "R4", "the rules' pick", f"a person locked {current}"))
            continue
        lost = _LOST.match(message)
        if lost is not None:
            found = [(lost["id"], lost["what"], lost["why"].strip().removeprefix("(").strip())]
        else:
            dropped = _NOT_CANDIDATES.match(message)
            if dropped is None:
                continue
            found = [(m["id"], "not a candidate", m["why"]) for m in _DROPPED.finditer(dropped["list"])]
        for opp_id, what, why in found:
            if opp_id in seen:
                continue
            seen.add(opp_id)
            out.append(RunnerUp(opp_id, rule, what, _tidy(why)))
    return out


def _tidy(why: str) -> str:
    """`closed 21 days before the call (within 30)); lost to tier 1` -> without the unbalanced parenthesis."""
    if why.count(")") > why.count("("):
        head, _, tail = why.rpartition(")")
        why = head + tail
    return why.strip()


@dataclass(frozen=True)
class Change:
    """A person's change to the call, as the change log shows it."""

    at: str
    by: str
    how: str
    what: str


def _describe_change(change: dict[str, Any]) -> str:
    parts = []
    if change.get("opportunity_id"):
        parts.append(f"opportunity → {change['opportunity_id']}")
    if change.get("account_id"):
        parts.append(f"account → {change['account_id']}")
    if change.get("contact_ids") is not None:
        parts.append(f"contacts → {', '.join(change['contact_ids']) or 'none'}")
    for removed in change.get("removed") or ():
        parts.append(f"removed {removed.get('type')} {removed.get('id')}")
    fields = change.get("fields") or change.get("unlocked")
    if fields:
        parts.append(f"unlocked {', '.join(str(f) for f in fields)}")
    known = {
        "how",
        "by",
        "at",
        "opportunity_id",
        "account_id",
        "contact_ids",
        "removed",
        "fields",
        "unlocked",
    }
    for key, value in sorted(change.items()):
        if key not in known and value not in (None, "", [], {}):
            parts.append(f"{key}: {value}")
    return "; ".join(parts) or "-"


def changes(record_changes: list[dict[str, Any]]) -> list[Change]:
    """The change log, newest first."""
    rows = [
        Change(str(c.get("at", "")), str(c.get("by", "")), str(c.get("how", "")), _describe_change(c))
        for c in record_changes
    ]
    return sorted(rows, key=lambda row: row.at, reverse=True)


def attempts(record_attempts: dict[str, int]) -> list[tuple[str, int]]:
    """Attempts per stage in pipeline order, each stage shown (0 when it never ran or has not yet)."""
    named = [(stage, int(record_attempts.get(stage, 0))) for stage in STAGES]
    return named + sorted((s, int(n)) for s, n in record_attempts.items() if s not in STAGES)


def short_time(value: str | None) -> str:
    """An ISO-8601 time as `2026-03-10 09:30 UTC` (what a person reads); '' for none, as is if unparseable."""
    if not value:
        return ""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_ids(text: str) -> list[str]:
    """Ids a person typed, separated by commas, spaces or new lines; each once, in their order."""
    seen: list[str] = []
    for part in re.split(r"[\s,;]+", text):
        if part and part not in seen:
            seen.append(part)
    return seen
