"""The processes' notion of now: the system clock, or a frozen instant for tests and replays of history.

`CALLMATCH_NOW` (an ISO-8601 time with an offset) freezes it, so that a run over
recorded calls (R5's windows, decided_at) gives the same result whatever today is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from worker.config.settings import settings

Clock = Callable[[], dt.datetime]


def _system() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def process_clock() -> Clock:
    """The clock `CALLMATCH_NOW` says now (a bad value is a SettingsError, a ValueError, naming it)."""
    instant = settings().now
    if instant is None:
        return _system
    return lambda: instant
