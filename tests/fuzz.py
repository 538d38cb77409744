"""Hostile-input fuzz of the webhook receiver: `python -m tests.fuzz --bodies 100000 [--seed N]`.

Starts from the valid signed sample deliveries of all five providers and mutates
them: keys deleted, duplicated or retyped, values swapped between types, lone
surrogates, control characters, huge strings, deep nesting, truncated JSON,
random and non-UTF-8 bytes, odd headers and query strings. Each body is signed
again after mutation when its provider signs the body (Zoom's HMAC, Ringover's
JWT payload, Aircall's token, Graph's clientState), so what gets exercised is
the parser behind verification, not the signature check. The bodies go to the
real `create_app` in-process (httpx ASGITransport) with a real redis-server and
an enqueuer that checks every event it is given.

Exit status 1 on any 5xx, or on any "junk": an enqueued event the worker could
not use (it does not survive `CallEvent.from_json(event.to_json())`, a string
holds a lone surrogate or a control character, or an id is over 255 characters).
Bodies are split over `--workers` processes (default: up to 2 cores), each with
its own Redis database, so one process's ids never collide with another's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import importlib.util
import json
import logging
import multiprocessing
import os
import queue
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import redis

from tests.adapters.providers import samples
from tests.redis_server import redis_server
from worker.config.tenants import parse_tenants
from worker.ingest.app import create_app
from worker.ingest.events import CallEvent

PROVIDERS = ("aircall", "ringover", "zoom", "google_meet", "teams")
MAX_ID = 255
EVENT_IDS = ("call_id", "event_id", "source_ref", "organizer_ref")
PROGRESS_EVERY = 250
FLUSH_EVERY = 5000  # bound the Redis memory the accepted events take
EXAMPLES = 5

SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00")
CONTROLS = ("\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f")
# Unusual but valid text: must still be accepted (not Cc, not surrogates).
HARMLESS = ("\u2028", "\u200b", "\ufeff", "\u202e", "é", "😀", "\U0010ffff", " ", "\u00a0", "\ufffd")
BAD_BYTES = (
    b"\xff",
    b"\xfe",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xe9",
    b"\x80",
    b"\xf4\x90\x80\x80",
)
RAW_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e400", "-0", "1E+2", "9" * 5000, "-" + "1" * 400)
# Keys the provider modules read: mutations aim at them more often than at the others.
FOCUS = frozenset(
    {
        "id", "call_id", "uuid", "ce-id", "messageId", "name", "resource", "resourceData", "host_id",
        "email", "host_email", "first_name", "last_name", "firstname", "lastname", "value", "emails",
        "phone_number", "phone_numbers", "raw_digits", "from_number", "to_number", "topic", "type",
        "event", "changeType", "ce-type", "ce-time", "start_time", "end_time", "started_at", "ended_at",
        "hangup_time", "direction", "contact", "user", "participants", "data", "payload", "object",
        "message", "attributes", "conferenceRecord", "plainToken", "is_internal", "lifecycleEvent",
    }
)  # fmt: skip
# Weighted by repetition: the string injections and id lengths are what found the bugs.
MUTATIONS = (
    "delete", "duplicate", "retype", "retype", "swap", "surrogate", "surrogate", "control", "control",
    "harmless", "huge", "long_id", "long_id", "deep",
)  # fmt: skip
BYTE_MUTATIONS = (
    "truncate", "truncate", "random", "non-utf8", "non-utf8", "latin1", "utf16", "bom", "nul", "tail",
    "empty", "deep",
)  # fmt: skip
ODD_HEADERS = (
    (b"content-type", b"text/plain"),
    (b"content-type", b"application/json; charset=\xff"),
    (b"content-type", b""),
    (b"x-odd", b"\xe9\xff\x80"),
    (b"x-long", b"a" * 8000),
    (b"content-encoding", b"gzip"),
    (b"x-zm-signature", b"v0=" + b"\xff" * 8),
    (b"authorization", b"Bearer \xe9"),
    (b"x-ringover-webhook-signature", b"\xb2.\xb3.\xb9"),
)
QUERIES = (
    "validationToken=%00",
    "validationToken=%ff%fe",
    "validationToken=%ED%A0%80",
    "validationToken=%C2%85",
    "validationToken=" + "v" * 5000,
    "validationToken=",
    "validationToken",
    "%",
    "a=%zz&&==",
    "a=1&a=2&validationToken=x&validationToken=%1b",
    "token=" + samples.AIRCALL_TOKEN,
)
ODD_PATHS = ("/webhooks/nobody/zoom", "/webhooks/acme/webex", "/webhooks/acme/%ff", "/webhooks/ACME/aircall")

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


# --- what counts as junk ----------------------------------------------------------------


def _strings(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _strings(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _strings(child, f"{path}[{index}]")


def junk_reason(event: CallEvent) -> str | None:
    """Why the worker could not use `event` (None when it can): the fuzz's own check, not the receiver's."""
    try:
        data = event.to_json()
        CallEvent.from_json(json.loads(json.dumps(data)))
    except Exception as exc:
        return f"does not round-trip: {type(exc).__name__}: {exc}"[:200]
    for path, text in _strings(data):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path}: lone surrogate"
        if _CONTROL.search(text):
            return f"{path}: control character"
    for key in EVENT_IDS:
        if len(data.get(key) or "") > MAX_ID:
            return f"{key}: {len(data[key])} characters"
    return None


class RecordingEnqueuer:
    """Counts the events the receiver enqueues and keeps the junk ones, with why."""

    def __init__(self) -> None:
        self.count = 0
        self.junk: list[tuple[str, CallEvent]] = []

    def enqueue(self, event: CallEvent) -> None:
        self.count += 1
        reason = junk_reason(event)
        if reason is not None:
            self.junk.append((reason, event))


# --- bodies ---------------------------------------------------------------------------------


@dataclass
class Body:
    """One delivery to post, and the mutations that made it (printed with any failure)."""

    provider: str
    path: str
    body: bytes
    headers: list[tuple[bytes, bytes]]
    notes: list[str] = field(default_factory=list)


Slot = tuple[Any, Any, str]  # (container, key or index, JSON path)


def _slots(value: object, path: str = "") -> list[Slot]:
    out: list[Slot] = []
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else str(key)
            out.append((value, key, child_path))
            out += _slots(child, child_path)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            child_path = f"{path}[{index}]"
            out.append((value, index, child_path))
            out += _slots(child, child_path)
    return out


class Fuzzer:
    """Makes mutated, re-signed deliveries from a seeded random generator (same seed, same bodies)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.raw: dict[str, str] = {}
        self.google_bearer = b"Bearer " + samples.google_token().encode()
        self.templates = {
            "aircall": json.dumps(json.loads(samples.aircall().body)),
            "ringover": json.dumps(samples.ringover_event()),
            "zoom": json.dumps(samples.zoom_document()),
            "zoom_validation": json.dumps(
                {"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}}
            ),
            "google_meet": json.dumps(samples.google_document()),
            "teams": json.dumps(samples.teams_notification("x")),
        }

    # Random values

    def text(self, size: int | None = None) -> str:
        rng = self.rng
        length = size if size is not None else rng.choice((0, 1, 3, 8, 20))
        alphabet = "abcXYZ019 @.+-_/:="
        chars = [rng.choice(alphabet) for _ in range(length)]
        for _ in range(rng.randrange(3) if chars else 0):
            pool = rng.choice((SURROGATES, CONTROLS, HARMLESS))
            chars[rng.randrange(len(chars))] = rng.choice(pool)
        return "".join(chars)

    def placeholder(self, raw: str) -> str:
        """A string that serialisation swaps for raw JSON text (NaN, huge numbers, deep nesting, keys)."""
        name = f"@@raw{len(self.raw)}@@"
        self.raw[name] = raw
        return name

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        kind = rng.randrange(12)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice((True, False))
        if kind == 2:
            return rng.choice((0, -1, 1, 2**31, 2**63, 2**70, -(2**70), 1741600000, 253402300800))
        if kind == 3:
            return rng.choice((1.5, -0.0, 1e308, 1741600000.999, 253402300799.9999999, 5e-324))
        if kind == 4:
            return self.placeholder(rng.choice(RAW_NUMBERS))
        if kind == 5:
            return rng.choice(
                (
                    "",
                    " ",
                    "0",
                    "²",
                    "١٢٣",
                    "1741600000",
                    "1741600000.5",
                    "2026-03-10T09:00:00Z",
                    "0001-01-01T00:00:00+01:00",
                    "9999-12-31T23:59:59-01:00",
                    "not a date",
                    "conferenceRecords/",
                    "communications/callRecords/",
                    "communications/callRecords//x",
                    "inbound",
                    "user",
                    "call.ended",
                    "hangup",
                    "meeting.ended",
                    "endpoint.url_validation",
                    "created",
                    "google.workspace.meet.conference.v2.ended",
                )
            )
        if kind in (6, 7, 8):
            return self.text()
        if depth > 2:
            return None
        if kind == 9:
            return [self.value(depth + 1) for _ in range(rng.randrange(4))]
        if kind == 10:
            return {self.text(rng.randrange(1, 6)): self.value(depth + 1) for _ in range(rng.randrange(4))}
        return rng.choice(([], {}, [None], [{}], {"value": None}, {"a": []}))

    def swapped(self, value: Any) -> Any:
        """The same value in another JSON type: 42 -> "42", "42" -> 42, x -> [x] or {"value": x}."""
        rng = self.rng
        if isinstance(value, bool):
            return rng.choice((str(value).lower(), int(value), [value]))
        if isinstance(value, int | float):
            return rng.choice(
                (str(value), [value], bool(value), float(value) if abs(value) < 1e300 else -value)
            )
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.isascii() and stripped.lstrip("-").isdigit() and len(stripped) < 100:
                return int(stripped)
            return rng.choice(([value], {"value": value}, len(value), value == ""))
        if isinstance(value, list):
            return rng.choice((value[0] if value else None, {"0": value}, json.dumps(value)))
        if isinstance(value, dict):
            return rng.choice((list(value.values()), list(value), json.dumps(value)))
        return rng.choice(("null", 0, False, [], {}))

    def deep(self) -> str:
        depth = self.rng.choice((50, 500, 900, 990, 1000, 1100, 5000, 100_000))
        if self.rng.random() < 0.5:
            return "[" * depth + "1" + "]" * depth
        return '{"a":' * depth + "1" + "}" * depth

    # Mutations

    def mutate(self, doc: Any, notes: list[str], prefix: str = "") -> Any:
        """`doc` with one to three mutations; the root itself is replaced now and then."""
        rng = self.rng
        if rng.random() < 0.02:
            notes.append(f"{prefix}root=retyped")
            return self.value()
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            slots = _slots(doc)
            if not slots:
                break
            focus = [slot for slot in slots if slot[1] in FOCUS]
            container, key, path = rng.choice(focus if focus and rng.random() < 0.7 else slots)
            current = container[key]
            kind = rng.choice(MUTATIONS)
            notes.append(f"{prefix}{path}:{kind}")
            if kind == "delete":
                del container[key]
            elif kind == "duplicate" and isinstance(container, dict):
                other = self.placeholder(json.dumps(key))
                container[other] = self.value()
                if rng.random() < 0.5:  # duplicate first, original last: json.loads keeps the last
                    container[key] = container.pop(key)
            elif kind in ("retype", "duplicate"):
                container[key] = self.value()
            elif kind == "swap":
                container[key] = self.swapped(current)
            elif kind in ("surrogate", "control", "harmless"):
                pool = {"surrogate": SURROGATES, "control": CONTROLS, "harmless": HARMLESS}[kind]
                text = current if isinstance(current, str) else str(current) if current is not None else ""
                at = rng.randrange(len(text) + 1)
                container[key] = text[:at] + rng.choice(pool) + text[at:]
            elif kind == "huge":
                size = rng.choice((256, 1000, 10_000, 10_000, 100_000, 1_100_000))
                container[key] = "x" * size if rng.random() < 0.5 else (self.text(50) * (size // 50 + 1))
            elif kind == "long_id":
                size = rng.choice((240, 243, 244, 246, 247, 248, 249, 250, 255, 256, 300, 5000))
                container[key] = "i" * size if rng.random() < 0.8 else int("7" * min(size, 4000))
            else:
                container[key] = self.placeholder(self.deep())
        return doc

    def serialize(self, doc: Any, notes: list[str]) -> bytes:
        rng = self.rng
        ascii_only = rng.random() < 0.85
        separators = (",", ":") if rng.random() < 0.7 else (", ", ": ")
        text = json.dumps(doc, ensure_ascii=ascii_only, separators=separators)
        for name, raw in self.raw.items():
            text = text.replace(f'"{name}"', raw)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            notes.append("raw-surrogate-bytes")
            return text.encode("utf-8", "surrogatepass")

    def mutate_bytes(self, body: bytes, notes: list[str]) -> bytes:
        rng = self.rng
        kind = rng.choice(BYTE_MUTATIONS)
        notes.append(f"bytes:{kind}")
        if kind == "truncate":
            return body[: rng.randrange(len(body) + 1)]
        if kind == "random":
            return rng.randbytes(rng.randrange(400))
        if kind == "non-utf8":
            at = rng.randrange(len(body) + 1)
            return body[:at] + rng.choice(BAD_BYTES) + body[at:]
        if kind == "latin1":
            return body.replace(b"e", b"\xe9", rng.randrange(1, 4))
        if kind == "utf16":  # json.loads(bytes) detects UTF-16 and UTF-32: valid, oddly encoded
            text = body.decode("utf-8", "surrogatepass")
            return text.encode(rng.choice(("utf-16", "utf-32", "utf-16-be")), "surrogatepass")
        if kind == "bom":
            return b"\xef\xbb\xbf" + body
        if kind == "nul":
            return body + b"\x00"
        if kind == "tail":
            return body + rng.choice((b"}", b"]", b",", b" x", b"\n{}"))
        if kind == "empty":
            return b""
        return self.deep().encode()

    # Deliveries

    def fresh(self, provider: str, index: int) -> Any:
        """The provider's valid document with ids unique to this body, so de-duplication lets it through."""
        rng = self.rng
        if provider == "aircall":
            doc = json.loads(self.templates["aircall"])
            doc["data"]["id"] = 10_000_000 + index
            return doc
        if provider == "ringover":
            doc = json.loads(self.templates["ringover"])
            doc["data"]["call_id"] = f"{9_000_000_000 + index}"
            doc["data"]["contact"] = {"name": "Jane Doe"}
            return doc
        if provider == "zoom":
            if rng.random() < 0.1:
                return json.loads(self.templates["zoom_validation"])
            doc = json.loads(self.templates["zoom"])
            doc["payload"]["object"]["uuid"] = f"fz{index}AiAiiAii=="
            return doc
        if provider == "google_meet":
            doc = json.loads(self.templates["google_meet"])
            doc["message"]["attributes"]["ce-id"] = f"ended-{index}"
            return doc
        notifications = []
        for n in range(rng.choice((1, 1, 2, 3))):
            notification = json.loads(self.templates["teams"])
            record = f"rec-{index}-{n}"
            notification["resource"] = f"communications/callRecords/{record}"
            notification["resourceData"]["id"] = record
            notifications.append(notification)
        return {"value": notifications}

    def delivery(self, index: int) -> Body:
        rng = self.rng
        provider = rng.choice(PROVIDERS)
        self.raw = {}
        notes: list[str] = []
        doc = self.fresh(provider, index)
        if provider == "google_meet":
            inner: Any = {"conferenceRecord": {"name": f"conferenceRecords/rec-{index}"}}
            if rng.random() < 0.4:
                inner = self.mutate(inner, notes, "data:")
            inner_bytes = self.serialize(inner, notes)
            if rng.random() < 0.05:
                inner_bytes = self.mutate_bytes(inner_bytes, notes)
            doc["message"]["data"] = base64.b64encode(inner_bytes).decode()
            self.raw = {}
        roll = rng.random()
        if roll >= 0.08 and not (provider == "google_meet" and notes and rng.random() < 0.5):
            doc = self.mutate(doc, notes)
        if not notes:
            notes.append("valid")
        bad_signature = rng.random() < 0.03
        self.sign_document(provider, doc, bad_signature)
        body = self.serialize(doc, notes)
        if rng.random() < 0.12:
            body = self.mutate_bytes(body, notes)
        headers = self.sign(provider, body, doc, bad_signature, notes)
        if rng.random() < 0.08:
            header = rng.choice(ODD_HEADERS)
            headers.append(header)
            notes.append(f"header:{header[0].decode()}")
        path = f"/webhooks/acme/{provider}"
        if rng.random() < 0.01:
            path = rng.choice(ODD_PATHS)
            notes.append(f"path:{path}")
        if rng.random() < (0.2 if provider == "teams" else 0.05):
            query = rng.choice(QUERIES)
            path += "?" + query
            notes.append(f"query:{query[:40]}")
        return Body(provider, path, body, headers, notes)

    def sign_document(self, provider: str, doc: Any, bad: bool) -> None:
        """Put the token back where the provider carries it in the body (Aircall, Graph); a wrong one if `bad`."""
        if provider == "aircall" and isinstance(doc, dict):
            doc["token"] = self.rng.choice(("wrong", "", None, 1)) if bad else samples.AIRCALL_TOKEN
        if provider == "teams" and isinstance(doc, dict) and isinstance(doc.get("value"), list):
            for notification in doc["value"]:
                if isinstance(notification, dict):
                    notification["clientState"] = samples.TEAMS_STATE
            if bad and doc["value"] and isinstance(doc["value"][-1], dict):
                doc["value"][-1]["clientState"] = "forged"

    def sign(
        self, provider: str, body: bytes, doc: Any, bad: bool, notes: list[str]
    ) -> list[tuple[bytes, bytes]]:
        """Headers that verify `body` exactly as sent (or, when `bad`, that do not)."""
        rng = self.rng
        headers = [(b"content-type", b"application/json")]
        if bad:
            notes.append("bad-signature")
        if provider == "ringover":
            try:
                payload = json.loads(body)
            except (ValueError, RecursionError):
                payload = doc
            key = samples.RINGOVER_KEY_OLD if rng.random() < 0.2 else samples.RINGOVER_KEY
            claims: dict[str, Any] = {"payload": payload, "iat": int(samples.NOW.timestamp())}
            if bad:
                bad_kind = rng.choice(("key", "payload", "missing-payload", "expired", "junk"))
                if bad_kind == "key":
                    key = "not-the-key-" + "n" * 60
                elif bad_kind == "payload":
                    claims["payload"] = json.loads(self.templates["ringover"])
                elif bad_kind == "missing-payload":
                    del claims["payload"]
                elif bad_kind == "expired":
                    claims["exp"] = int(samples.NOW.timestamp()) - 3600
                else:
                    headers.append((b"x-ringover-webhook-signature", rng.choice((b"a.b.c", b"\xe9", b""))))
                    return headers
            try:
                token = jwt.encode(claims, key, algorithm="HS512")
            except (ValueError, RecursionError, TypeError):
                token = jwt.encode(
                    {"payload": doc, "iat": int(samples.NOW.timestamp())}, key, algorithm="HS512"
                )
            headers.append((b"x-ringover-webhook-signature", token.encode()))
        elif provider == "zoom":
            timestamp = str(int(samples.NOW.timestamp()) + rng.choice((0, 0, 0, -299, 299)))
            secret = samples.ZOOM_SECRET_OLD if rng.random() < 0.2 else samples.ZOOM_SECRET
            signature = samples.zoom_sign(secret, timestamp, body).encode()
            stamp = timestamp.encode()
            if bad:
                bad_kind = rng.choice(("secret", "stamp", "stale", "missing"))
                if bad_kind == "secret":
                    signature = samples.zoom_sign("wrong", timestamp, body).encode()
                elif bad_kind == "stamp":
                    stamp = rng.choice(
                        (b"\xb2\xb3", b"", b"-1", b" " + stamp, b"1" * 13, b"+" + stamp, b"1e9")
                    )
                elif bad_kind == "stale":
                    stamp = str(int(samples.NOW.timestamp()) - 301).encode()
                else:
                    signature = b""
            headers += [(b"x-zm-request-timestamp", stamp), (b"x-zm-signature", signature)]
        elif provider == "google_meet":
            bearer = self.google_bearer
            if bad:
                bearer = rng.choice(
                    (
                        b"Bearer",
                        b"Bearer \xff\xfe",
                        b"Basic abc",
                        b"Bearer a.b.c",
                        b"Bearer " + samples.google_token(key=samples.OTHER_KEY).encode(),
                    )
                )
            headers.append((b"authorization", bearer))
        return headers


# --- running --------------------------------------------------------------------------------


@dataclass
class Result:
    """One worker's counts, and a few examples of each failure to reproduce it."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_provider: dict[str, Counter[int]] = field(default_factory=dict)
    server_errors: int = 0
    junk: int = 0
    enqueued: int = 0
    unnamed_400: int = 0
    examples: list[str] = field(default_factory=list)

    def merge(self, other: Result) -> None:
        self.sent += other.sent
        self.statuses.update(other.statuses)
        for provider, counts in other.by_provider.items():
            self.by_provider.setdefault(provider, Counter()).update(counts)
        self.server_errors += other.server_errors
        self.junk += other.junk
        self.enqueued += other.enqueued
        self.unnamed_400 += other.unnamed_400
        self.examples += other.examples


def _describe(body: Body, detail: str) -> str:
    return f"{body.provider} {body.path} [{', '.join(body.notes)}]: {detail}; body {body.body[:240]!r}"


class _TraceApp:
    """Wraps the ASGI app to remember the last exception, so a 500 is printed with its cause."""

    def __init__(self, app: Any):
        self.app = app
        self.last: str | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            self.last = f"{type(exc).__name__}: {exc} at {frame.filename}:{frame.lineno}"[:400]
            raise


async def _run(
    worker: int, bodies: int, seed: int, redis_url: str, report: Callable[[Result], None]
) -> Result:
    logging.getLogger("callmatch").setLevel(logging.CRITICAL)  # the refusals are counted, not logged
    workdir = Path(tempfile.mkdtemp(prefix="callmatch-fuzz-"))
    try:
        tenants = parse_tenants(samples.tenant_document(str(workdir)), "fuzz.yaml", workdir, samples.ENVIRON)
        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        enqueuer = RecordingEnqueuer()
        app = create_app(tenants, enqueuer, client, clock=lambda: samples.NOW)
        traced = _TraceApp(app)
        fuzzer = Fuzzer(random.Random(f"{seed}:{worker}"))
        result = Result()
        transport = httpx.ASGITransport(app=traced, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://fuzz") as http,
        ):
            for index in range(bodies):
                body = fuzzer.delivery(index)
                junk_before = len(enqueuer.junk)
                traced.last = None
                response = await http.post(body.path, content=body.body, headers=body.headers)
                status = response.status_code
                result.sent += 1
                result.statuses[status] += 1
                result.by_provider.setdefault(body.provider, Counter())[status] += 1
                if status >= 500:
                    result.server_errors += 1
                    if len(result.examples) < EXAMPLES * 2:
                        result.examples.append(
                            _describe(body, f"{status} {response.text[:200]!r} {traced.last or ''}")
                        )
                elif status == 400 and response.json().get("error") == "unreadable payload":
                    result.unnamed_400 += 1
                    if len(result.examples) < EXAMPLES * 2:
                        result.examples.append(_describe(body, "400 unreadable payload (parser exception)"))
                for reason, event in enqueuer.junk[junk_before:]:
                    result.junk += 1
                    if len(result.examples) < EXAMPLES * 2:
                        result.examples.append(
                            _describe(body, f"junk enqueued ({reason}): {event.call_id[:80]!r}")
                        )
                if result.sent % PROGRESS_EVERY == 0:
                    result.enqueued = enqueuer.count
                    report(result)
                if result.sent % FLUSH_EVERY == 0:
                    client.flushdb()
        result.enqueued = enqueuer.count
        client.flushdb()
        client.close()
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _worker(worker: int, bodies: int, seed: int, redis_url: str, out: Any) -> None:
    """Process entry: runs its share and reports progress and its result on `out`."""

    def report(result: Result) -> None:
        out.put(("progress", worker, result.sent, result.server_errors, result.junk))

    try:
        result = asyncio.run(_run(worker, bodies, seed, redis_url, report))
    except BaseException as exc:  # reported to the parent, which prints it once
        out.put(("failed", worker, "".join(traceback.format_exception(exc))[-3000:]))
        sys.exit(1)
    out.put(("done", worker, result))


class _Progress:
    """A rich progress bar when rich is installed, else a plain line every few seconds."""

    def __init__(self, total: int):
        self.total = total
        self.started = time.perf_counter()
        self.last_line = 0.0
        self.printed = 0
        self.bar: Any = None
        self.task: Any = None
        if importlib.util.find_spec("rich") is not None:
            progress = importlib.import_module("rich.progress")
            self.bar = progress.Progress(
                progress.TextColumn("fuzz"),
                progress.BarColumn(),
                progress.MofNCompleteColumn(),
                progress.TextColumn("{task.fields[status]}"),
                progress.TimeRemainingColumn(),
            )
            self.task = self.bar.add_task("fuzz", total=total, status="")
            self.bar.start()

    def update(self, sent: int, server_errors: int, junk: int) -> None:
        elapsed = time.perf_counter() - self.started
        status = f"{sent / max(elapsed, 1e-9):,.0f}/s, {server_errors} x 5xx, {junk} junk"
        if self.bar is not None:
            self.bar.update(self.task, completed=sent, status=status)
        elif time.perf_counter() - self.last_line > 10 or (sent >= self.total > self.printed):
            self.last_line = time.perf_counter()
            self.printed = sent
            print(f"fuzz: {sent:,}/{self.total:,} bodies, {status}, {elapsed:.0f} s", flush=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run(bodies: int, seed: int, workers: int) -> tuple[Result, float]:
    """Posts `bodies` mutated deliveries over `workers` processes; the merged counts and the seconds taken."""
    # fork: the workers share the sample keys already generated; spawn where fork is unsafe (macOS).
    context = (
        multiprocessing.get_context("fork")
        if sys.platform == "linux"
        else multiprocessing.get_context("spawn")
    )
    shares = [bodies // workers + (1 if w < bodies % workers else 0) for w in range(workers)]
    with redis_server(use_preset=False) as url:
        base = url.rsplit("/", 1)[0]
        out = context.Queue()
        processes = [
            context.Process(target=_worker, args=(w, shares[w], seed, f"{base}/{w % 16}", out), daemon=True)
            for w in range(workers)
            if shares[w]
        ]
        started = time.perf_counter()
        for process in processes:
            process.start()
        progress = _Progress(bodies)
        sent = {w: (0, 0, 0) for w in range(workers)}
        total = Result()
        pending = {w for w in range(workers) if shares[w]}
        try:
            while pending:
                try:
                    message = out.get(timeout=1.0)
                except queue.Empty:
                    dead = [p for p in processes if not p.is_alive() and p.exitcode not in (0, None)]
                    if dead and out.empty():
                        raise RuntimeError(f"fuzz worker died (exit {dead[0].exitcode})") from None
                    continue
                if message[0] == "progress":
                    sent[message[1]] = message[2:]
                elif message[0] == "done":
                    total.merge(message[2])
                    sent[message[1]] = (message[2].sent, message[2].server_errors, message[2].junk)
                    pending.discard(message[1])
                else:
                    raise RuntimeError(f"fuzz worker {message[1]} failed:\n{message[2]}")
                progress.update(*(sum(column) for column in zip(*sent.values(), strict=True)))
        finally:
            progress.stop()
            for process in processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.terminate()
        return total, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=10_000, help="deliveries to post (default 10000)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time-based, printed)")
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default: up to 2)"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    workers = max(1, min(args.workers, 16, args.bodies or 1))
    print(f"fuzz: {args.bodies:,} bodies, seed {seed}, {workers} worker(s), providers {', '.join(PROVIDERS)}")
    result, seconds = run(args.bodies, seed, workers)
    for provider in PROVIDERS:
        counts = dict(sorted(result.by_provider.get(provider, Counter()).items()))
        print(f"  {provider:<12} {sum(counts.values()):>8,} bodies  statuses {counts}")
    print(
        f"  enqueued     {result.enqueued:>8,} events (each checked: round trip, UTF-8, no Cc, ids <= {MAX_ID})"
    )
    if result.unnamed_400:
        print(
            f"  400s without a named field (a parser exception caught by the receiver): {result.unnamed_400}"
        )
    for example in result.examples:
        print(f"  ! {example}")
    statuses = dict(sorted(result.statuses.items()))
    print(
        f"fuzz: {result.sent} bodies, {result.server_errors} x 5xx, {result.junk} junk enqueued, "
        f"statuses {statuses}, {seconds:.0f} s ({result.sent / seconds:,.0f} bodies/s, seed {seed})"
    )
    return 1 if result.server_errors or result.junk or result.sent != args.bodies else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
    sys.exit(130)
