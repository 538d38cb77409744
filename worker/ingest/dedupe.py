"""Seen-delivery marks in Redis, so a provider's redelivery is acknowledged but kept once.

The mark is written in the same Redis script as the call's record (see
`CallStore.accept`): either both exist or neither does, so no delivery is ever
acknowledged without its call being kept, and none is kept twice. When the broker is
that Redis, the same script pushes a new call's queue message too (`enqueue.prepare`):
one round trip per delivery, and a duplicate is never enqueued. A mark lives
`DEFAULT_TTL_SECONDS` (7 days, longer than any provider redelivers); a delivery
after that finds the record of its call already kept and is acknowledged without
starting the call again.
"""

from __future__ import annotations

import hashlib

DEFAULT_TTL_SECONDS = 7 * 24 * 3600
PREFIX = "callmatch:seen"


def seen_key(tenant: str, provider: str, event_id: str, prefix: str = PREFIX) -> str:
    """The mark's key; ids are hashed (any text, even a lone surrogate, gives a key)."""
    digest = hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{prefix}:{tenant}:{provider}:{digest}"
