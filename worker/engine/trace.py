"""The decision trace: what a support engineer reads to see why a call got its records."""

from __future__ import annotations

from worker.core.model import TraceEntry


class Trace:
    """An append-only list of entries, each citing the rule id that decided something."""

    recording = True
    """False for a trace that keeps nothing: callers on hot paths skip formatting its messages."""

    def __init__(self) -> None:
        self.entries: list[TraceEntry] = []

    def add(self, rule: str, message: str) -> None:
        self.entries.append(TraceEntry(rule=rule, message=message))

    def extend(self, other: Trace) -> None:
        self.entries.extend(other.entries)

    def freeze(self) -> tuple[TraceEntry, ...]:
        return tuple(self.entries)


class Silent(Trace):
    """A trace that keeps nothing: for reads planned ahead (`needed_keys`), whose trace nobody reads."""

    recording = False

    def add(self, rule: str, message: str) -> None:
        return None
