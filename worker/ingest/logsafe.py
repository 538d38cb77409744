"""Log lines about events that a person can read and that never hold an address or number in clear."""

from __future__ import annotations

from worker.core.normalize import mask_email, mask_phone
from worker.ingest.events import CallEvent


def describe(event: CallEvent) -> str:
    people = ", ".join(
        f"{mask_email(p.email) if p.email else ''}{'/' if p.email and p.phone else ''}"
        f"{mask_phone(p.phone) if p.phone else ''}"
        for p in event.participants
    )
    return (
        f"{event.call_id} {event.kind.value} organizer={mask_email(event.organizer.email)} "
        f"participants=[{people}]"
    )
