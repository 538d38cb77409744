"""Aircall's `GET /v1/calls/{id}`: the call as Aircall stored it, with conference participants.

`check` is doctor's one harmless request: `GET /v1/ping` with the same Basic auth.
"""

from __future__ import annotations

import base64

from adapters.crm.readiness import Check, Status
from adapters.errors import ExternalError
from adapters.providers.aircall.payloads import CallAnswer
from adapters.providers.aircall.webhook import add_person, call_people
from adapters.providers.checks import probe_client, refused
from worker.core.model import Person
from worker.ingest.apiclient import FetchContext, reading
from worker.ingest.events import CallEvent
from worker.ingest.payloads import parse

DEFAULT_BASE_URL = "https://api.aircall.io"


def merge(*groups: tuple[Person, ...] | list[Person]) -> tuple[Person, ...]:
    """People in first-seen order; a later copy with more fields replaces nothing, a repeat is dropped."""
    out: list[Person] = []
    for group in groups:
        for person in group:
            if person not in out:
                out.append(person)
    return tuple(out)


def _basic(ctx: FetchContext) -> dict[str, str]:
    credentials = ctx.config.credentials
    basic = base64.b64encode(f"{credentials['api_id']}:{credentials['api_token']}".encode()).decode()
    return {"Authorization": f"Basic {basic}"}


def check(ctx: FetchContext) -> list[Check]:
    """The API key is accepted: `GET /v1/ping` answers."""
    headers = _basic(ctx)
    client = probe_client(ctx, ctx.config.api_base_url or DEFAULT_BASE_URL, auth=lambda: headers)
    try:
        client.get("/v1/ping")
    except ExternalError as exc:
        return [
            refused(
                "aircall.api",
                "GET /v1/ping",
                exc,
                "create an API key in the Aircall Dashboard (Integrations & API > API Keys) and set"
                " providers.aircall.credentials.api_id and api_token",
            )
        ]
    return [Check("aircall.api", Status.OK, "API key accepted (GET /v1/ping answered)")]


def fetch(event: CallEvent, ctx: FetchContext) -> CallEvent:
    headers = _basic(ctx)
    client = ctx.client(ctx.config.api_base_url or DEFAULT_BASE_URL, auth=lambda: headers)
    body = client.get(f"/v1/calls/{event.source_ref}")

    with reading("aircall"):
        call = parse(CallAnswer, body).call
        organizer, external, internal = call_people(call)
        participants = list(event.participants)
        for person in external:
            add_person(person, participants)
        return event.with_details(
            started_at=call.started_at or event.started_at,
            ended_at=call.ended_at or event.ended_at,
            organizer=organizer if organizer.email else event.organizer,
            participants=tuple(participants),
            internal=merge(event.internal, internal),
            complete=True,
        )
