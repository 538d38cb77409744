"""Hypothesis fuzz of every provider's parser, through the receiver: no payload ever yields a 5xx or junk.

Payloads are signed correctly, so the fuzz reaches the parsing behind verification:
arbitrary JSON, and the realistic payloads with fields deleted or replaced by junk.
Strings draw from all of Unicode including lone surrogates and control characters
(what `json.loads` makes of `\\ud800` and `\\u0000` escapes), and every event the
receiver enqueues must be usable by the worker (`tests.fuzz.junk_reason`).
`python -m tests.fuzz` is the long-running version of this.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import redis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adapters.providers import samples
from tests.fuzz import RecordingEnqueuer
from worker.config.tenants import parse_tenants
from worker.ingest.app import create_app
from worker.ingest.webhook import PayloadError, check_text

# All of Unicode, lone surrogates included (hypothesis leaves category Cs out by default), and a
# good share of the characters that must be refused or that sit right next to them.
hostile_text = st.text(
    st.characters(exclude_categories=())
    | st.sampled_from(["\ud800", "\udfff", "\x00", "\x1f", "\x7f", "\x85", "\x9f", "\u2028", "\ufeff"]),
    max_size=30,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | hostile_text
    | st.text(max_size=300).map(lambda text: text * 2),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


ENQUEUER = RecordingEnqueuer()


@pytest.fixture(scope="module")
def client(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The real receiver on the real Redis; the enqueuer checks every event it is given."""
    tmp = tmp_path_factory.mktemp("fuzz")
    tenants = parse_tenants(samples.tenant_document(str(tmp)), "fuzz.yaml", tmp, samples.ENVIRON)
    app = create_app(tenants, ENQUEUER, redis.Redis.from_url(redis_url), clock=lambda: samples.NOW)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _leaves(child, (*path, index))
    return out


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """The document with a few nodes replaced by junk or deleted."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = [p for p in _leaves(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc


def _documents(realistic: Any) -> st.SearchStrategy[Any]:
    return json_values | mutated(realistic)


def _post(client: TestClient, provider: str, body: bytes, headers: dict[str, str]) -> int:
    junk_before = len(ENQUEUER.junk)
    response = client.post(f"/webhooks/acme/{provider}", content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text)
    assert response.status_code in (200, 400, 401), response.status_code
    if response.status_code == 400:
        assert response.json()["error"] != "unreadable payload", "a parser failed without naming the field"
    assert ENQUEUER.junk[junk_before:] == [], "an event the worker cannot use was enqueued"
    return response.status_code


@FUZZ
@given(document=_documents(json.loads(samples.aircall().body)))
def test_aircall_parser_never_fails_with_a_5xx(client, document):
    if isinstance(document, dict):
        document["token"] = samples.AIRCALL_TOKEN
    _post(client, "aircall", json.dumps(document).encode(), {})


@FUZZ
@given(document=_documents(samples.ringover_event()))
def test_ringover_parser_never_fails_with_a_5xx(client, document):
    token = jwt.encode(
        {"payload": document, "iat": int(samples.NOW.timestamp())}, samples.RINGOVER_KEY, algorithm="HS512"
    )
    _post(client, "ringover", json.dumps(document).encode(), {"x-ringover-webhook-signature": token})


@FUZZ
@given(
    document=_documents(samples.zoom_document())
    | _documents({"event": "endpoint.url_validation", "payload": {"plainToken": "x"}})
)
def test_zoom_parser_never_fails_with_a_5xx(client, document):
    delivery = samples.zoom(body=json.dumps(document).encode())
    _post(client, "zoom", delivery.body, delivery.headers)


@FUZZ
@given(
    document=_documents(samples.google_document()),
    data=json_values | mutated({"conferenceRecord": {"name": "conferenceRecords/x"}}),
)
def test_google_meet_parser_never_fails_with_a_5xx(client, document, data):
    message = document.get("message") if isinstance(document, dict) else None
    if isinstance(message, dict) and isinstance(message.get("data"), str):
        message["data"] = base64.b64encode(json.dumps(data).encode()).decode()
    delivery = samples.google(body=json.dumps(document).encode())
    _post(client, "google_meet", delivery.body, delivery.headers)


@FUZZ
@given(document=_documents({"value": [samples.teams_notification("r1"), samples.teams_notification("r2")]}))
def test_teams_parser_never_fails_with_a_5xx(client, document):
    if isinstance(document, dict) and isinstance(document.get("value"), list):
        for item in document["value"]:
            if isinstance(item, dict):
                item["clientState"] = samples.TEAMS_STATE
    _post(client, "teams", json.dumps(document).encode(), {})


@given(text=hostile_text)
def test_check_text_passes_exactly_the_storable_strings(text):
    storable = not any(
        0xD800 <= ord(ch) <= 0xDFFF or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text
    )
    try:
        assert check_text(text, "x") == text and storable
        text.encode("utf-8")
    except PayloadError as exc:
        assert not storable and exc.field == "x"


@FUZZ
@given(body=st.binary(max_size=200))
def test_raw_bytes_never_fail_with_a_5xx(client, body):
    for provider in ("aircall", "teams"):
        _post(client, provider, body, {})
    zoom = samples.zoom(body=body)
    _post(client, "zoom", zoom.body, zoom.headers)
