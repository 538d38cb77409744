"""The processes' notion of now: the system clock, or a frozen instant for tests and replays of history.

`CALLMATCH_NOW` (an ISO-8601 time with an offset) freezes it, so that a run over
recorded calls (R5's windows, decided_at) gives the same result whatever today is.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def _system() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def process_clock() -> Clock:
    frozen = os.environ.get("CALLMATCH_NOW")
    if not frozen:
        return _system
    try:
        instant = dt.datetime.fromisoformat(frozen.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"CALLMATCH_NOW: not an ISO-8601 time: {frozen!r}") from None
    if instant.tzinfo is None:
        raise ValueError("CALLMATCH_NOW: give an offset (Z or +hh:mm)")
    return lambda: instant
