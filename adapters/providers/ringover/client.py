"""Ringover's `GET /v2/calls/{call_id}`: the call record with its direction, numbers and user.

The hangup webhook already carries the call (times, numbers, user), so the
record only adds to it: when Ringover has no record yet (204, no body) the
event keeps what the webhook said and notes why.

`check` is doctor's one harmless request: `GET /v2/teams` (the key's own team).
"""

from __future__ import annotations

from adapters.crm.readiness import Check, Status
from adapters.errors import ExternalError
from adapters.providers.aircall.client import merge
from adapters.providers.checks import probe_client, refused
from adapters.providers.ringover.payloads import CallList
from adapters.providers.ringover.webhook import direction, external_party, organizer
from worker.ingest.apiclient import FetchContext, reading
from worker.ingest.events import CallEvent
from worker.ingest.payloads import parse

DEFAULT_BASE_URL = "https://public-api.ringover.com"


def check(ctx: FetchContext) -> list[Check]:
    """The API key is accepted: `GET /v2/teams` answers."""
    key = ctx.config.credentials["api_key"]
    client = probe_client(
        ctx, ctx.config.api_base_url or DEFAULT_BASE_URL, auth=lambda: {"Authorization": key}
    )
    try:
        client.get("/v2/teams")
    except ExternalError as exc:
        return [
            refused(
                "ringover.api",
                "GET /v2/teams",
                exc,
                "set providers.ringover.credentials.api_key to a Ringover API key allowed to read calls",
            )
        ]
    return [Check("ringover.api", Status.OK, "API key accepted (GET /v2/teams answered)")]


def fetch(event: CallEvent, ctx: FetchContext) -> CallEvent:
    key = ctx.config.credentials["api_key"]
    client = ctx.client(ctx.config.api_base_url or DEFAULT_BASE_URL, auth=lambda: {"Authorization": key})
    body = client.get(f"/v2/calls/{event.source_ref}")

    missing = f"ringover: GET /v2/calls/{event.source_ref} answered no call record; participants from the webhook only"
    if body is None:
        return event.noting(missing).with_details(complete=True)
    with reading("ringover"):
        calls = parse(CallList, body).call_list
        if not calls:
            return event.noting(missing).with_details(complete=True)
        call = calls[0]
        party = external_party(call)
        found = organizer(call.user)
        return event.with_details(
            started_at=call.start_time or event.started_at,
            ended_at=call.end_time or event.ended_at,
            direction=direction(call.direction) or event.direction,
            organizer=found if found.email else event.organizer,
            participants=merge(event.participants, [party] if party else []),
            complete=True,
        )
