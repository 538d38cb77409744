"""Recorded real CRM traffic, read in place, and a replay server that answers with it.

`../shared/recorded/crm-traffic.json.gz` (beside the checkout) holds request/response
pairs recorded against real Salesforce orgs and HubSpot portals. It is never copied into
the repository: tests read it where it is and skip when it is absent (a clone without
`../shared`). `Replay` serves those answers over loopback HTTP or HTTPS so the real
simple-salesforce / hubspot-api-client based clients parse what a real org sent, byte
for byte as far as JSON goes: status, headers and body as recorded.
"""

from __future__ import annotations

import functools
import gzip
import json
import ssl
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.emulators.loopback import certificate, serve, shut

RECORDED_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "recorded" / "crm-traffic.json.gz"


@functools.cache
def _load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data = json.load(handle)
    assert isinstance(data, dict), f"{path}: expected a JSON object of recordings"
    return data


def recording() -> dict[str, Any]:
    """The whole recording (read once per process); skips the test when `../shared` is absent."""
    data = _load(RECORDED_PATH)
    if data is None:
        pytest.skip(f"recorded traffic not found at {RECORDED_PATH} (no ../shared beside the checkout)")
    return data


def entry(name: str) -> dict[str, Any]:
    """One recording by name (`sf_query_pages`, `hs_owners`, ...)."""
    value = recording()[name]
    assert isinstance(value, dict)
    return value


@dataclass(frozen=True)
class Exchange:
    """One recorded request and the answer the vendor gave to it."""

    name: str
    method: str
    path: str
    params: dict[str, str]
    data: Any
    status: int
    headers: dict[str, str]
    response: Any

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def service(self) -> str:
        return "salesforce" if self.name.startswith("sf_") else "hubspot"


def _version_of(url: str) -> str:
    parts = urlsplit(url).path.split("/")
    return next(p for p in parts if p.startswith("v") and p[1:2].isdigit())


def exchanges(name: str) -> list[Exchange]:
    """The exchanges of one recording, in the order they were made.

    Most recordings are `calls: [{method, path, request, status, headers, response}]`.
    `sf_composite` is one POST to the composite resource (its version is the one of the
    subrequests); `sf_describe_global` keeps only each object's name and three flags
    (`createable`, `queryable`, `searchable`), served as the real `sobjects` list of them.
    """
    value = entry(name)
    if name == "sf_composite":
        request = value["request"]["data"]
        version = _version_of(str(request["compositeRequest"][0]["url"]))
        return [
            Exchange(
                name,
                "POST",
                f"/services/data/{version}/composite",
                {},
                request,
                int(value["status"]),
                dict(value["headers"]),
                value["response"],
            )
        ]
    if name == "sf_describe_global":
        sobjects = [{"name": n, **flags} for n, flags in sorted(value["sobjects"].items())]
        return [Exchange(name, "GET", str(value["path"]), {}, None, 200, {}, {"sobjects": sobjects})]
    out = []
    for call in value["calls"]:
        request = call.get("request") or {}
        out.append(
            Exchange(
                name,
                str(call["method"]).upper(),
                str(call["path"]),
                {str(k): str(v) for k, v in (request.get("params") or {}).items()},
                request.get("data"),
                int(call["status"]),
                {str(k): str(v) for k, v in (call.get("headers") or {}).items()},
                call["response"],
            )
        )
    return out


def all_exchanges() -> list[Exchange]:
    return [x for name in sorted(recording()) for x in exchanges(name)]


def normal_path(path: str) -> str:
    """A path compared by meaning: percent-escapes decoded, no trailing slash."""
    decoded = unquote(urlsplit(path).path)
    return decoded.rstrip("/") or "/"


def shape(value: Any) -> Any:
    """The key structure of a JSON value: dicts keep their keys, lists merge their items' shapes,
    scalars become their JSON type name (`null` stays apart: see `shape_differences`)."""
    if isinstance(value, dict):
        return {key: shape(v) for key, v in sorted(value.items())}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = _merge(merged, shape(item))
        return [merged] if value else []
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def _merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _merge(out.get(key), value)
        return out
    if isinstance(a, list) and isinstance(b, list):
        return [_merge(a[0] if a else None, b[0] if b else None)] if a or b else []
    if a == "null":
        return b
    return a


def shape_differences(recorded: Any, ours: Any, path: str = "$") -> list[str]:
    """Where `ours` does not have the key structure of `recorded`, as readable lines.

    A null on either side matches any type (a field that happens to be empty); an empty
    list matches any list (nothing to compare its items with).
    """
    a, b = shape(recorded), shape(ours)
    out: list[str] = []
    _compare(a, b, path, out)
    return out


def _compare(a: Any, b: Any, path: str, out: list[str]) -> None:
    if a == "null" or b == "null":
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) - set(b)):
            out.append(f"{path}.{key}: missing (recorded has it)")
        for key in sorted(set(b) - set(a)):
            out.append(f"{path}.{key}: extra (not in the recording)")
        for key in sorted(set(a) & set(b)):
            _compare(a[key], b[key], f"{path}.{key}", out)
        return
    if isinstance(a, list) and isinstance(b, list):
        if a and b:
            _compare(a[0], b[0], f"{path}[]", out)
        return
    kind_a = "object" if isinstance(a, dict) else "array" if isinstance(a, list) else a
    kind_b = "object" if isinstance(b, dict) else "array" if isinstance(b, list) else b
    if kind_a != kind_b:
        out.append(f"{path}: {kind_b}, recorded {kind_a}")


# --- the replay server ------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A request the replay server got."""

    method: str
    path: str
    params: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class Replay:
    """Answers each request with the recorded exchange of the same method and path.

    Paths compare with escapes decoded and without a trailing slash (simple-salesforce
    asks for `query/`, a recording may say `query`). When several exchanges share a path,
    the one whose recorded params the request carries wins; a paging cursor (`after`)
    must be the recorded one, so the next page is never answered with this one. A request nothing was
    recorded for gets a 404 and lands in `unmatched`, so a test fails loudly rather than
    passing on an invented answer. `tls` serves HTTPS (simple-salesforce only speaks it).
    """

    recorded: Sequence[Exchange]
    tls: bool = False
    received: list[Received] = field(default_factory=list)
    unmatched: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Replay:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                replay._answer(self, "GET")

            def do_POST(self) -> None:
                replay._answer(self, "POST")

            def do_PATCH(self) -> None:
                replay._answer(self, "PATCH")

            def do_PUT(self) -> None:
                replay._answer(self, "PUT")

            def do_DELETE(self) -> None:
                replay._answer(self, "DELETE")

        context = None
        if self.tls:
            cert, key = certificate()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
        self._server = serve(Handler, "recorded-replay", tls=context)
        return self

    def stop(self) -> None:
        if self._server is not None:
            shut(self._server)
            self._server = None

    def __enter__(self) -> Replay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "replay not started"
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ca_file(self) -> str:
        return str(certificate()[0])

    def match(
        self, method: str, path: str, params: dict[str, list[str]], body: Any = None
    ) -> Exchange | None:
        wanted = normal_path(path)
        cursor = _cursor(params, body)
        candidates = [
            x
            for x in self.recorded
            if x.method == method
            and normal_path(x.path) == wanted
            and _cursor({k: [v] for k, v in x.params.items()}, x.data) == cursor
        ]
        for exchange in candidates:
            if all(params.get(k) == [v] for k, v in exchange.params.items()):
                return exchange
        return candidates[0] if candidates else None

    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        params = parse_qs(url.query, keep_blank_values=True)
        received = Received(method, url.path, params, body, {k: v for k, v in handler.headers.items()})
        exchange = self.match(method, url.path, params, body)
        with self._lock:
            self.received.append(received)
            if exchange is None:
                self.unmatched.append(received)
        if exchange is None:
            status = 404
            headers = {"Content-Type": "application/json"}
            payload = json.dumps({"replay": f"nothing recorded for {method} {url.path}"}).encode()
        else:
            status = exchange.status
            headers = {k: v for k, v in exchange.headers.items() if k.lower() != "content-length"}
            payload = b"" if exchange.response is None else json.dumps(exchange.response).encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if payload:
            handler.wfile.write(payload)


def _cursor(params: dict[str, list[str]], body: Any) -> str | None:
    """The paging cursor a request names (HubSpot's `after`): another page is another request."""
    if isinstance(body, dict) and body.get("after") is not None:
        return str(body["after"])
    values = params.get("after")
    return values[0] if values else None


def replay(names: Iterable[str], *, tls: bool = False) -> Replay:
    """A replay of the named recordings; `with replay(...) as server:` starts and stops it."""
    return Replay([x for name in names for x in exchanges(name)], tls=tls)
