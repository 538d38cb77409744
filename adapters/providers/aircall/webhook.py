"""Aircall `call.ended`: the body's `token` equals the webhook's token (compared in constant time).

Aircall signs no time, so there is no replay window: a replayed delivery carries
the same call id and de-duplication acknowledges it without a second event.
Captured `call.ended` bodies often carry neither `participants` nor `contact`:
the external party is then `raw_digits` alone ("+33 6 12 34 56 78", or
"anonymous", which is no number). The public API's call object may also list
people under `conference_participants`; both lists are read the same way.

The body is read as the models of `payloads.py` (lone surrogates, control
characters and over-long ids are refused naming the field); `check_event`
guards the event built from them.
"""

from __future__ import annotations

import hmac

from adapters.providers.aircall.payloads import Call, Contact, Ended, Envelope, Event, Participant
from worker.core.model import CallKind, Direction, Person
from worker.ingest.events import CallEvent
from worker.ingest.payloads import parse
from worker.ingest.webhook import Delivery, SignatureError, WebhookRequest, check_event, load_json

PROVIDER = "aircall"
ENDED = "call.ended"


def verify_token(token: str | None, secrets: tuple[str, ...]) -> None:
    if not token:
        raise SignatureError("missing webhook token", "token")
    supplied = token.encode()
    if not any(hmac.compare_digest(supplied, secret.encode()) for secret in secrets):
        raise SignatureError("webhook token does not match", "token")


def _direction(value: str | None) -> Direction | None:
    if value == "inbound":
        return Direction.INBOUND
    if value == "outbound":
        return Direction.OUTBOUND
    return None


def _external_phone(raw: str | None) -> str | None:
    if raw is None or not any(ch.isdigit() for ch in raw):
        return None
    return raw.strip()


def contact_people(contact: Contact | None, phone: str | None) -> list[Person]:
    """An Aircall contact: one person per email, the call's number on the first."""
    if contact is None:
        return [Person(phone=phone)] if phone else []
    first = contact.first_name or ""
    last = contact.last_name or ""
    name = " ".join(part for part in (first.strip(), last.strip()) if part) or None
    emails = [e.value for e in contact.emails]
    phones = [p.value for p in contact.phone_numbers]
    people = [Person(email=emails[0] if emails else None, phone=phone, name=name)]
    people += [Person(email=email, name=name) for email in emails[1:] if email]
    people += [Person(phone=p, name=name) for p in phones if p and p != phone]
    return people


def _participant(participant: Participant) -> Person:
    """The person of one entry of `participants` or `conference_participants`."""
    return Person(
        email=participant.email,
        phone=_external_phone(participant.phone_number),
        name=participant.name,
    )


def call_people(data: Call) -> tuple[Person, list[Person], list[Person]]:
    """(organizer, external, internal) from an Aircall call object, webhook or API.

    `user` is the organizer; `contact` (or `raw_digits` alone) the external party;
    `participants` and `conference_participants` add the others, Aircall users
    (type `user`) to internal, anyone with a number or an email to external.
    """
    user = data.user
    organizer = Person(email=user.email, name=user.name) if user is not None else Person()
    external = contact_people(data.contact, _external_phone(data.raw_digits))
    internal: list[Person] = []
    for entry in (*data.participants, *data.conference_participants):
        person = _participant(entry)
        if entry.type == "user":
            if person not in internal:
                internal.append(person)
        elif person.phone or person.email:
            add_person(person, external)
    for other in (data.transferred_by, data.transferred_to, data.assigned_to):
        if other is not None and other.email:
            internal.append(Person(email=other.email, name=other.name))
    return organizer, external, internal


def add_person(person: Person, people: list[Person]) -> None:
    """`person` once: an entry with the same number (the contact's own line) takes what it lacked."""
    for index, other in enumerate(people):
        if person == other:
            return
        same_line = person.phone is not None and person.phone == other.phone
        if same_line and (not person.email or not other.email or person.email == other.email):
            people[index] = Person(
                email=other.email or person.email, phone=other.phone, name=other.name or person.name
            )
            return
    people.append(person)


def handle(request: WebhookRequest) -> Delivery:
    body = load_json(request.body)
    verify_token(parse(Envelope, body).token, request.config.webhook_secrets)
    if parse(Event, body).event != ENDED:
        return Delivery(ignored=f"not a {ENDED} event")
    data = parse(Ended, body).data
    call_id = data.id
    organizer, external, internal = call_people(data)
    id_path = "data.id"
    return Delivery(
        events=(
            check_event(
                CallEvent(
                    tenant=request.tenant.name,
                    provider=PROVIDER,
                    call_id=f"{PROVIDER}:{call_id}",
                    event_id=f"{ENDED}:{call_id}",
                    kind=CallKind.CALL,
                    received_at=request.now,
                    started_at=data.started_at,
                    ended_at=data.ended_at,
                    direction=_direction(data.direction),
                    organizer=organizer,
                    participants=tuple(external),
                    internal=tuple(internal),
                    source_ref=call_id,
                ),
                {"call_id": id_path, "event_id": id_path, "source_ref": id_path},
            ),
        )
    )
