"""Ringover's `GET /v2/calls/{call_id}`: the call record with its direction, numbers and user."""

from __future__ import annotations

from adapters.providers.aircall.client import merge
from adapters.providers.ringover.webhook import direction, external_party, organizer
from worker.events import CallEvent
from worker.ingest.apiclient import FetchContext, reading
from worker.ingest.webhook import Fields

DEFAULT_BASE_URL = "https://public-api.ringover.com"


def fetch(event: CallEvent, ctx: FetchContext) -> CallEvent:
    key = ctx.config.credentials["api_key"]
    client = ctx.client(ctx.config.api_base_url or DEFAULT_BASE_URL, auth=lambda: {"Authorization": key})
    body = client.get(f"/v2/calls/{event.source_ref}")

    if body is None:
        return event.with_details(complete=True)
    with reading("ringover"):
        root = Fields(body)
        calls = root.objs("call_list")
        if not calls:
            return event.with_details(complete=True)
        call = calls[0]
        party = external_party(call)
        found = organizer(call)
        return event.with_details(
            started_at=call.unix_time("start_time") or event.started_at,
            ended_at=call.unix_time("end_time") or event.ended_at,
            direction=direction(call.opt_str("direction")) or event.direction,
            organizer=found if found.email else event.organizer,
            participants=merge(event.participants, [party] if party else []),
            complete=True,
        )
