"""Hostile strings in correctly signed deliveries: a 400 naming the field, and nothing enqueued or marked.

For each provider: a lone surrogate in an id, a lone surrogate in a person's
name or email (Google Meet and Graph carry no person, so the record name and
resource, the other strings they read), a control character in the call id,
and a call id over 255 characters. Then the boundaries (the longest id
accepted), what must still be accepted (unusual but valid Unicode), and the
last-guard `check_event` on its own.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
import redis
from fastapi.testclient import TestClient

from tests.adapters.providers import samples
from tests.fuzz import RecordingEnqueuer, junk_reason
from tests.worker.ingest.conftest import post
from worker.config.tenants import Tenants
from worker.core.model import CallKind, Person
from worker.ingest.app import create_app
from worker.ingest.events import CallEvent
from worker.ingest.payloads import IsoTime, OptIdent, Payload, RequiredText, Text, UnixTime, parse
from worker.ingest.webhook import MAX_ID_LENGTH, PayloadError, check_event, check_text

SURROGATE = "\ud800"
CONTROL = "\x00"

Mutate = Callable[[dict[str, Any]], None]


@pytest.fixture()
def enqueuer() -> RecordingEnqueuer:
    return RecordingEnqueuer()


@pytest.fixture()
def app_client(
    redis_url: str, redis_client: Any, tenants: Tenants, enqueuer: RecordingEnqueuer
) -> Iterator[TestClient]:
    """The real receiver on the real Redis, with an enqueuer that records what it is given."""
    app = create_app(tenants, enqueuer, redis.Redis.from_url(redis_url), clock=lambda: samples.NOW)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _set(document: Any, path: str, value: Any) -> None:
    """Sets `value` at a dotted path with [i] indices (`data.contact.emails[0].value`)."""
    keys: list[Any] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        keys.append(name)
        keys += [int(index) for index in rest.rstrip("]").split("][")] if rest else []
    target = document
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


def _get(document: Any, path: str) -> Any:
    target = document
    for part in path.split("."):
        name, _, rest = part.partition("[")
        target = target[name]
        for index in rest.rstrip("]").split("][") if rest else []:
            target = target[int(index)]
    return target


def signed(provider: str, mutate: Mutate) -> samples.Post:
    """The provider's valid sample with `mutate` applied, then signed the way the provider signs it."""
    if provider == "aircall":
        document = json.loads(samples.aircall().body)
        mutate(document)
        return samples.Post(samples.dumps(document), {"content-type": "application/json"})
    if provider == "ringover":
        event = samples.ringover_event()
        event["data"]["contact"] = {"name": "Jane Doe"}
        mutate(event)
        return samples.ringover(event=event)
    if provider == "zoom":
        document = samples.zoom_document()
        mutate(document)
        return samples.zoom(document)
    if provider == "google_meet":
        document = samples.google_document()
        data: dict[str, Any] = {"conferenceRecord": {"name": "conferenceRecords/abc-123"}}
        combined = {"message": document["message"], "data": data}
        mutate(combined)
        document["message"]["data"] = base64.b64encode(samples.dumps(combined["data"])).decode()
        return samples.google(document)
    document = {"value": [samples.teams_notification("e523d2ed-2966-4b6b-925b-754a88034cc5")]}
    mutate(document)
    return samples.Post(samples.dumps(document), {"content-type": "application/json"})


def at(path: str, value: Any) -> Mutate:
    return lambda document: _set(document, path, value)


def spliced(path: str, insert: str) -> Mutate:
    """Inserts `insert` in the middle of the string (or number) at `path`."""

    def mutate(document: dict[str, Any]) -> None:
        text = str(_get(document, path))
        _set(document, path, text[: len(text) // 2] + insert + text[len(text) // 2 :])

    return mutate


# (provider, where the test mutates, the field the 400 must name)
ID_FIELDS = [
    ("aircall", "data.id", "data.id"),
    ("ringover", "data.call_id", "data.call_id"),
    ("zoom", "payload.object.uuid", "payload.object.uuid"),
    ("google_meet", "data.conferenceRecord.name", "message.data.conferenceRecord.name"),
    ("teams", "value[0].resourceData.id", "value[0].resourceData.id"),
]
EVENT_ID_FIELDS = [
    ("aircall", "data.id", "data.id"),
    ("ringover", "data.call_id", "data.call_id"),
    ("zoom", "payload.object.uuid", "payload.object.uuid"),
    ("google_meet", "message.attributes.ce-id", "message.attributes.ce-id"),
    ("teams", "value[0].resourceData.id", "value[0].resourceData.id"),
]
PERSON_FIELDS = [
    ("aircall", "data.contact.first_name", "data.contact.first_name"),
    ("aircall", "data.contact.emails[0].value", "data.contact.emails[0].value"),
    ("aircall", "data.user.email", "data.user.email"),
    ("aircall", "data.participants[0].name", "data.participants[0].name"),
    ("ringover", "data.user.email", "data.user.email"),
    ("ringover", "data.contact.name", "data.contact.name"),
    ("zoom", "payload.object.host_email", "payload.object.host_email"),
    # Google Meet and Graph notifications name no person: the other strings they read.
    ("google_meet", "data.conferenceRecord.name", "message.data.conferenceRecord.name"),
    ("teams", "value[0].resource", "value[0].resource"),
]


def _key(case: tuple[str, str, str]) -> str:
    return f"{case[0]}:{case[1]}"


def assert_refused(
    client: TestClient, provider: str, delivery: samples.Post, field: str, enqueuer: Any
) -> None:
    response = post(client, provider, delivery)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field, response.json()
    assert SURROGATE not in response.text and "\\ud800" not in response.text
    assert enqueuer.count == 0


def assert_nothing_marked(redis_client: Any) -> None:
    assert list(redis_client.scan_iter("callmatch:seen*")) == []


def _without_resource_data(mutate: Mutate) -> Mutate:
    """Graph's record id read from `resource` (no resourceData), so the resource string is what is used."""

    def both(document: dict[str, Any]) -> None:
        del document["value"][0]["resourceData"]
        mutate(document)

    return both


@pytest.mark.parametrize("case", EVENT_ID_FIELDS, ids=_key)
def test_a_lone_surrogate_in_an_id_is_400_naming_it(app_client, redis_client, enqueuer, case):
    provider, path, field = case
    assert_refused(app_client, provider, signed(provider, spliced(path, SURROGATE)), field, enqueuer)
    assert_nothing_marked(redis_client)


@pytest.mark.parametrize("case", PERSON_FIELDS, ids=_key)
def test_a_lone_surrogate_in_a_person_is_400_naming_the_field(app_client, redis_client, enqueuer, case):
    provider, path, field = case
    mutate = spliced(path, "\udfff")
    if path == "value[0].resource":
        mutate = _without_resource_data(mutate)
    assert_refused(app_client, provider, signed(provider, mutate), field, enqueuer)
    assert_nothing_marked(redis_client)


@pytest.mark.parametrize("case", ID_FIELDS, ids=_key)
@pytest.mark.parametrize("control", [CONTROL, "\x1f", "\n", "\x7f", "\x85"], ids=repr)
def test_a_control_character_in_the_call_id_is_400_naming_it(
    app_client, redis_client, enqueuer, case, control
):
    provider, path, field = case
    assert_refused(app_client, provider, signed(provider, spliced(path, control)), field, enqueuer)
    assert_nothing_marked(redis_client)


@pytest.mark.parametrize("case", ID_FIELDS, ids=_key)
def test_a_call_id_of_256_characters_is_400_naming_it(app_client, redis_client, enqueuer, case):
    provider, path, field = case
    prefix = "conferenceRecords/" if provider == "google_meet" else ""
    value = prefix + "7" * (MAX_ID_LENGTH + 1 - len(prefix))
    response = post(app_client, provider, signed(provider, at(path, value)))
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "longer than 255 characters", "field": field}
    assert enqueuer.count == 0
    assert_nothing_marked(redis_client)


# The longest raw id whose call_id and event_id (with their prefixes) still fit in 255 characters.
LONGEST = {
    "aircall": MAX_ID_LENGTH - len("call.ended:"),
    "ringover": MAX_ID_LENGTH - len("ringover:"),
    "zoom": MAX_ID_LENGTH - len("meeting.ended:"),
    "google_meet": MAX_ID_LENGTH,  # the whole record name, conferenceRecords/{id}, is the limit
    "teams": MAX_ID_LENGTH - len("callRecords/"),
}


@pytest.mark.parametrize("case", ID_FIELDS, ids=_key)
def test_the_longest_id_is_accepted_and_one_more_character_is_refused(app_client, enqueuer, case):
    provider, path, field = case
    prefix = "conferenceRecords/" if provider == "google_meet" else ""
    longest = prefix + "7" * (LONGEST[provider] - len(prefix))
    response = post(app_client, provider, signed(provider, at(path, longest)))
    assert response.status_code == 200, response.text
    assert enqueuer.count == 1 and enqueuer.junk == []
    response = post(app_client, provider, signed(provider, at(path, longest + "8")))
    assert response.status_code == 400 and response.json()["field"] == field, response.text
    assert enqueuer.count == 1


@pytest.mark.parametrize("provider", ["aircall", "ringover", "zoom", "google_meet", "teams"])
def test_hostile_deliveries_never_reach_the_celery_queue(client, redis_client, provider):
    """The same refusals through the real Celery producer: the `callmatch` list stays empty."""
    from tests.worker.ingest.conftest import queued_events

    for _, path, field in [case for case in EVENT_ID_FIELDS if case[0] == provider]:
        for insert in (SURROGATE, CONTROL):
            response = post(client, provider, signed(provider, spliced(path, insert)))
            assert response.status_code == 400 and response.json()["field"] == field
    assert queued_events(redis_client) == []


@pytest.mark.parametrize(
    "provider, path",
    [
        ("aircall", "data.contact.first_name"),
        ("aircall", "data.user.name"),
        ("ringover", "data.contact.name"),
        ("zoom", "payload.object.topic"),
        ("zoom", "payload.object.host_email"),
    ],
)
@pytest.mark.parametrize("text", ["Zoë 😀", "\u2028", "\u200b\ufeff", "\u202e", "\U0010ffff"], ids=repr)
def test_unusual_but_valid_unicode_is_accepted(app_client, enqueuer, provider, path, text):
    response = post(app_client, provider, signed(provider, spliced(path, text)))
    assert response.status_code == 200, response.text
    assert enqueuer.count == 1 and enqueuer.junk == []


def test_the_google_message_id_is_checked_when_there_is_no_ce_id(app_client, enqueuer):
    def mutate(document: dict[str, Any]) -> None:
        del document["message"]["attributes"]["ce-id"]
        document["message"]["messageId"] = "1" * 256

    assert_refused(app_client, "google_meet", signed("google_meet", mutate), "message.messageId", enqueuer)


def test_a_hostile_graph_validation_token_is_not_echoed(app_client, enqueuer):
    response = app_client.post("/webhooks/acme/teams", params={"validationToken": "token\x00\x1b[2J"})
    assert response.status_code == 400
    assert response.json()["field"] == "validationToken"


def test_a_zoom_timestamp_of_non_ascii_digits_is_401_not_a_crash(app_client):
    delivery = samples.zoom()
    headers = {**delivery.headers, "x-zm-request-timestamp": b"\xb2\xb3"}  # "²³" in latin-1
    response = app_client.post("/webhooks/acme/zoom", content=delivery.body, headers=headers)
    assert response.status_code == 401
    assert response.json()["field"] == "x-zm-request-timestamp"


@pytest.mark.parametrize(
    "provider, path, value, field",
    [
        ("zoom", "payload.object.start_time", "0001-01-01T00:00:00+01:00", "payload.object.start_time"),
        ("zoom", "payload.object.end_time", "9999-12-31T23:59:59-01:00", "payload.object.end_time"),
        ("aircall", "data.started_at", "1773135000\x1f", "data.started_at"),
        ("ringover", "data.start_time", "\x1c1773135900", "data.start_time"),
        ("ringover", "data.hangup_time", "²", "data.hangup_time"),
        ("aircall", "data.started_at", 253402300799.9999999, "data.started_at"),
    ],
)
def test_times_outside_what_a_datetime_holds_are_400_naming_the_field(
    app_client, enqueuer, provider, path, value, field
):
    assert_refused(app_client, provider, signed(provider, at(path, value)), field, enqueuer)


def test_a_number_over_pythons_digit_limit_is_400_not_valid_json(app_client, enqueuer):
    body = samples.aircall().body.replace(b'"id":812731', b'"id":' + b"9" * 5000)
    response = post(app_client, "aircall", samples.Post(body))
    assert response.status_code == 400
    assert response.json() == {"error": "not valid JSON", "field": "(body)"}


def test_a_signed_ringover_payload_nested_too_deep_is_refused_not_a_crash(app_client, enqueuer):
    body = b'{"resource":"call","event":"hangup","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    token = jwt.encode({"payload": samples.ringover_event()}, samples.RINGOVER_KEY, algorithm="HS512")
    response = post(app_client, "ringover", samples.Post(body, {"x-ringover-webhook-signature": token}))
    assert response.status_code == 400 and response.json()["field"] == "(body)"


# --- the building blocks ----------------------------------------------------------------------


def test_check_text_names_the_path_and_never_the_value():
    for text, reason in ((f"a{SURROGATE}b", "not valid UTF-8"), ("a\x9fb", "control character")):
        with pytest.raises(PayloadError) as caught:
            check_text(text, "data.user.name")
        assert caught.value.field == "data.user.name" and reason in caught.value.reason
        assert text not in str(caught.value)
    assert check_text("Zoë\u2028😀", "x") == "Zoë\u2028😀"
    with pytest.raises(PayloadError, match="longer than 255"):
        check_text("x" * 256, "id", MAX_ID_LENGTH)


class _Body(Payload):
    """Every field type of worker.ingest.payloads, once."""

    s: Text = None
    r: RequiredText = "x"
    n: OptIdent = None
    t: IsoTime = None
    u: UnixTime = None


class _Root(Payload):
    data: _Body


def test_every_payload_field_type_checks_its_strings():
    bad = {
        "s": "a\x00",
        "r": "a\x00",
        "n": "a\x00",
        "t": f"2026-03-10T09:00:00Z{SURROGATE}",
        "u": f"1{SURROGATE}",
    }
    for name, value in bad.items():
        with pytest.raises(PayloadError) as caught:
            parse(_Root, {"data": {name: value}})
        assert caught.value.field == f"data.{name}"
        assert value not in str(caught.value)
    assert parse(_Root, {"data": {"n": 7}}).data.n == "7"
    assert parse(_Root, {"data": {"n": "7" * 255}}).data.n == "7" * 255
    with pytest.raises(PayloadError, match="longer than 255"):
        parse(_Root, {"data": {"n": 10**255}})


def _event(**changes: Any) -> CallEvent:
    event = CallEvent(
        tenant="acme",
        provider="aircall",
        call_id="aircall:1",
        event_id="call.ended:1",
        kind=CallKind.CALL,
        received_at=samples.NOW,
        started_at=samples.NOW - dt.timedelta(minutes=5),
        organizer=Person(email="rep@ourco.com"),
        participants=(Person(phone="+33612345678", name="Jane"),),
    )
    return event.with_details(**changes)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"call_id": "aircall:" + "1" * 248}, "call_id"),
        ({"event_id": "e\x07"}, "event_id"),
        ({"source_ref": SURROGATE}, "source_ref"),
        ({"organizer_ref": "r" * 256}, "organizer_ref"),
        ({"title": "t\x00"}, "title"),
        ({"organizer": Person(email=f"rep{SURROGATE}@ourco.com")}, "organizer.email"),
        ({"participants": (Person(), Person(name="J\udc00"))}, "participants[1].name"),
        ({"internal": (Person(phone="+33\x0a6"),)}, "internal[0].phone"),
        ({"call_id": ""}, "call_id"),
    ],
)
def test_check_event_refuses_what_the_worker_could_not_use(changes, field):
    event = _event(**changes)
    assert junk_reason(event) is not None  # the fuzz's own check agrees it is junk
    with pytest.raises(PayloadError) as caught:
        check_event(event)
    assert caught.value.field == field


def test_check_event_names_the_body_field_it_is_given_and_passes_good_events_unchanged():
    event = _event()
    assert check_event(event) is event
    with pytest.raises(PayloadError) as caught:
        check_event(_event(call_id="aircall:" + "1" * 250), {"call_id": "data.id"})
    assert caught.value.field == "data.id"
