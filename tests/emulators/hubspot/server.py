"""A stateful HubSpot API emulator on 127.0.0.1 that hubspot-api-client talks to over real HTTP.

It models the vendor from HubSpot's documentation and recorded traffic, on a portal shaped by a
`PortalProfile`: v3 objects (get, create, update, batch read / create / update / upsert,
search with HubSpot's filter semantics and its 10,000-result cap), v4 associations (batch read
paged per object, create, archive, labels), the properties API (properties and groups), deal
pipelines, owners, account details and daily API usage, OAuth refresh and token metadata.
A property the portal lacks is refused with HubSpot's 400 `PROPERTY_DOESNT_EXIST` body, a
missing scope with 403 `MISSING_SCOPES`. It enforces the
rolling 10-second, per-second search and daily limits with HubSpot's 429 bodies and
`X-HubSpot-RateLimit-*` headers (with `-Secondly` beside the ten-second window), puts an
`X-HubSpot-Correlation-Id` on every answer, computes what HubSpot computes on a created
activity, checks bearer tokens (with expiry), and lets tests inject latency, 5xx and 429
responses. Every request is counted by route.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hmac
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.emulators.hubspot import catalog
from tests.emulators.hubspot.profile import PortalProfile
from tests.emulators.hubspot.search import to_millis
from tests.emulators.hubspot.store import (
    HUBSPOT_DEFINED,
    PIPELINE,
    SINGULAR,
    TYPE_IDS,
    USER_LABELS,
    HsObject,
    Store,
    iso,
)
from tests.emulators.loopback import serve, shut

SEARCH_MAX_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 6
SEARCH_MAX_FILTERS = 18
SEARCH_MAX_LIMIT = 200
SEARCH_MAX_BODY = 3000
"""CRM search guide: "If the body of your request exceeds 3,000 characters, a 400 error will be returned."."""
BATCH_MAX_INPUTS = 100
V3_ASSOCIATION_PAGE = 100
ASSOCIATION_WRITE_MAX = 2000
"""v4 association batch create / archive: inputs per request (HubSpot's own pages give no figure;
2,000 is the limit integrations such as Workato's HubSpot connector document)."""
"""v3 object reads page an association block beyond 100 entries (HubSpot changelog, Jan 2021)."""


@dataclass
class Fault:
    """A canned answer for the next matching requests (`path` is a substring, '' matches all).

    Status 0 only delays the request, which is then served normally; with `expire`, every
    token issued so far expires first (so the request is answered 401 for real).
    """

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    path: str = ""
    remaining: int = 1
    delay: float = 0.0
    expire: bool = False


@dataclass
class Limits:
    """HubSpot's limits for one app in one portal (developers.hubspot.com, "API usage guidelines"
    and the changelog "Increasing our API limits"): per rolling 10 s, 100 on Free/Starter, 190 on
    Professional/Enterprise, 250 with the API limit increase pack; per day 250,000 / 650,000 /
    1,000,000 (+1,000,000 per pack); CRM search 5 requests per second per account. The default is
    a Professional portal."""

    burst: int = 190
    burst_window: float = 10.0
    search: int = 5
    search_window: float = 1.0
    daily: int = 500_000

    @classmethod
    def free(cls) -> Limits:
        """Free and Starter: 100 per 10 s, 250,000 a day."""
        return cls(burst=100, daily=250_000)

    @classmethod
    def professional(cls) -> Limits:
        return cls(burst=190, daily=650_000)

    @classmethod
    def enterprise(cls) -> Limits:
        return cls(burst=190, daily=1_000_000)

    @classmethod
    def capacity_pack(cls) -> Limits:
        """Enterprise with the API limit increase pack: 250 per 10 s, a million more a day."""
        return cls(burst=250, daily=2_000_000)


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
        **extra,
    }


class HubSpotEmulator:
    """Start with `start()` (or as a context manager); `url` is the host to give the client."""

    def __init__(
        self,
        store: Store,
        *,
        limits: Limits | None = None,
        access_token: str = "pat-emulator-token",
        refresh_token: str = "refresh-emulator",
        client_id: str = "client-id",
        client_secret: str = "client-secret",
        token_lifetime: int = 1800,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.refresh_token = refresh_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.tokens: dict[str, float] = {access_token: float("inf")}
        self.latency = 0.0
        self.search_lag = 0.0
        self.enforce_unique = False
        """HubSpot refuses (409) a create or update giving a unique property (`hasUniqueValue`) a
        value another record holds. Off by default: scenario seeds put a call id on activities not
        written by callmatch (rule A1), which a portal whose `callmatch_call_id` is unique cannot
        hold beside callmatch's own activity; tests of that constraint turn it on."""
        self.faults: list[Fault] = []
        self.requests: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.log: list[tuple[str, str, int]] = []
        self.properties_asked: list[tuple[str, str, tuple[str, ...]]] = []
        """The request log of reads: (method, path, the property names a read or search asked for),
        from the `properties` query parameter or the body's `properties` list, in order."""
        self._burst: collections.deque[float] = collections.deque()
        self._search: collections.deque[float] = collections.deque()
        self._daily_used = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, port: int = 0) -> HubSpotEmulator:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            wbufsize = 1 << 16

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                emulator._handle(self, "GET")

            def do_POST(self) -> None:
                emulator._handle(self, "POST")

            def do_PATCH(self) -> None:
                emulator._handle(self, "PATCH")

            def do_PUT(self) -> None:
                emulator._handle(self, "PUT")

            def do_DELETE(self) -> None:
                emulator._handle(self, "DELETE")

        self._server = serve(Handler, "hubspot-emulator", port=port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            shut(self._server)
            self._server = None

    def __enter__(self) -> HubSpotEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "emulator not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test controls -----------------------------------------------------------------------
    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def fail_next(
        self, status: int, count: int = 1, path: str = "", retry_after: float | None = None
    ) -> None:
        """`count` answers of `status` with HubSpot's body for it (429 as the 10-second limit)."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        if status == 429:
            body = rate_limit_body("TEN_SECONDLY_ROLLING")
        else:
            body = error_body("internal error" if status >= 500 else "bad request", "INTERNAL_ERROR")
        self.inject(Fault(status, body, headers, path, count))

    def slow_next(self, seconds: float, count: int = 1, path: str = "") -> None:
        """The next `count` matching requests are answered normally, `seconds` late (client timeouts)."""
        self.inject(Fault(0, {}, path=path, remaining=count, delay=seconds))

    def issue_token(self) -> str:
        """A new access token valid for `token_lifetime` (what the token endpoint hands out)."""
        token = "emu-" + secrets.token_hex(12)
        with self._lock:
            self.tokens[token] = self.clock() + self.token_lifetime
        return token

    def expire_next(self, count: int = 1, path: str = "/crm/") -> None:
        """The next `count` matching requests expire every token issued before them (a session
        rotated or revoked elsewhere); tokens issued afterwards are valid until the next one."""
        self.inject(Fault(0, {}, path=path, remaining=count, expire=True))

    def expire_tokens(self) -> None:
        """Every access token issued so far is now expired (401 EXPIRED_AUTHENTICATION)."""
        with self._lock:
            now = self.clock()
            self.tokens = {token: min(exp, now - 1) for token, exp in self.tokens.items()}

    def total(self, prefix: str = "") -> int:
        with self._lock:
            return sum(n for route, n in self.requests.items() if route.startswith(prefix))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()
            self.log.clear()
            self.properties_asked.clear()
            self._burst.clear()
            self._search.clear()

    # -- request handling --------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        route = f"{method} {_route_name(parts.path)}"
        status = 500
        headers: dict[str, str] = {}
        try:
            if self.latency:
                time.sleep(self.latency)
            payload, headers = self._dispatch(handler, method, parts.path, parse_qs(parts.query), raw, route)
            status = 201 if method == "POST" and _is_create(parts.path) else 200
            if isinstance(payload, tuple):
                status, payload = payload
        except ApiError as error:
            status, payload, headers = error.status, error.body, {**headers, **error.headers}
        asked = _properties_named(parse_qs(parts.query), raw)
        with self._lock:
            self.statuses[status] += 1
            self.log.append((method, parts.path, status))
            if asked is not None:
                self.properties_asked.append((method, parts.path, asked))
        body = b"" if status == 204 else json.dumps(payload).encode()
        # every answer names its request for HubSpot support; an error body's correlationId is the same one
        known = payload.get("correlationId") if isinstance(payload, dict) else None
        correlation = str(known) if known else correlation_id()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json;charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("X-HubSpot-Correlation-Id", correlation)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (its timeout): nothing to answer

    def _dispatch(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: dict[str, list[str]],
        raw: bytes,
        route: str,
    ) -> tuple[Any, dict[str, str]]:
        with self._lock:
            self.requests[route] += 1
        fault = self._take_fault(path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.expire:
                self.expire_tokens()
            if fault.status:
                raise ApiError(fault.status, fault.body, fault.headers)
        if path == "/oauth/v1/token":
            return self._token(raw), {}
        m = re.fullmatch(r"/oauth/v1/access-tokens/([^/]+)", path)
        if m and method == "GET":
            return self._token_info(unquote(m.group(1))), {}
        self._authenticate(handler.headers.get("Authorization", ""))
        is_search = path.endswith("/search")
        headers = self._charge(is_search)
        if is_search and len(raw) > SEARCH_MAX_BODY:
            raise ApiError(
                400,
                error_body(
                    f"Search request body has {len(raw)} characters, more than the {SEARCH_MAX_BODY} allowed.",
                    "VALIDATION_ERROR",
                ),
            )
        body: dict[str, Any] = json.loads(raw) if raw else {}
        return self._route(method, path, query, body), headers

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path in path and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _authenticate(self, header: str) -> None:
        token = header[7:] if header.startswith("Bearer ") else ""
        with self._lock:
            expiry = next(
                (exp for known, exp in self.tokens.items() if hmac.compare_digest(known, token)), None
            )
            now = self.clock()
        if expiry is None:
            raise ApiError(
                401,
                error_body(
                    "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
                    "INVALID_AUTHENTICATION",
                ),
            )
        if expiry <= now:
            ago = max(int(now - expiry), 1)
            raise ApiError(
                401,
                error_body(
                    f"The OAuth token used to make this call expired {ago} second(s) ago.",
                    "EXPIRED_AUTHENTICATION",
                    context={"expired at": [str(expiry)]},
                ),
            )

    def _charge(self, is_search: bool) -> dict[str, str]:
        """Apply the limits of one authenticated request; the headers a non-search answer carries."""
        limits = self.limits
        with self._lock:
            now = self.clock()
            if self._daily_used >= limits.daily:
                raise ApiError(429, rate_limit_body("DAILY"))
            window = self._search if is_search else self._burst
            period = limits.search_window if is_search else limits.burst_window
            cap = limits.search if is_search else limits.burst
            while window and window[0] <= now - period:
                window.popleft()
            if len(window) >= cap:
                policy = "SECONDLY" if is_search else "TEN_SECONDLY_ROLLING"
                raise ApiError(429, rate_limit_body(policy), {} if is_search else self._limit_headers(cap, 0))
            window.append(now)
            self._daily_used += 1
            if is_search:
                return {}
            return self._limit_headers(cap, cap - len(window))

    def _limit_headers(self, cap: int, remaining: int) -> dict[str, str]:
        """The headers of a non-search answer. `-Secondly` is the per-second share of the rolling
        window (110 a ten seconds comes with 11 a second in the recording) and `-Secondly-Remaining`
        what is left of it in the last second, this request counted; informational, as HubSpot's
        changelog describes them: the emulator enforces the ten-second window only."""
        limits = self.limits
        secondly = max(math.ceil(cap / limits.burst_window), 1)
        now = self.clock()
        this_second = sum(1 for moment in self._burst if moment > now - 1.0)
        return {
            "X-HubSpot-RateLimit-Daily": str(limits.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(limits.daily - self._daily_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limits.burst_window * 1000)),
            "X-HubSpot-RateLimit-Max": str(cap),
            "X-HubSpot-RateLimit-Remaining": str(max(remaining, 0)),
            "X-HubSpot-RateLimit-Secondly": str(secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(max(secondly - this_second, 0)),
        }

    def _token(self, raw: bytes) -> dict[str, Any]:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        valid = (
            form.get("grant_type") == "refresh_token"
            and hmac.compare_digest(form.get("refresh_token", ""), self.refresh_token)
            and hmac.compare_digest(form.get("client_id", ""), self.client_id)
            and hmac.compare_digest(form.get("client_secret", ""), self.client_secret)
        )
        if not valid:
            raise ApiError(
                400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}
            )
        return {
            "access_token": self.issue_token(),
            "refresh_token": self.refresh_token,
            "expires_in": self.token_lifetime,
            "token_type": "bearer",
            "hub_id": PORTAL_ID,
            "scopes": sorted(self.store.profile.scopes),
        }

    # -- API ---------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> Any:
        m = re.fullmatch(r"/crm/v3/objects/([^/]+)/batch/(read|create|update|upsert)", path)
        if m and method == "POST":
            kind = _kind(m.group(1))
            action = m.group(2)
            self._need(object_scope(kind, write=action != "read"))
            if action == "read":
                return self._batch_read(kind, body)
            return self._batch_write(kind, action, body)
        m = re.fullmatch(r"/crm/v3/objects/([^/]+)/search", path)
        if m and method == "POST":
            kind = _kind(m.group(1))
            self._need(object_scope(kind, write=False))
            return self._search_objects(kind, body)
        m = re.fullmatch(r"/crm/v3/objects/([^/]+)", path)
        if m and method == "POST":
            kind = _kind(m.group(1))
            self._need(object_scope(kind, write=True))
            return self._create(kind, body)
        m = re.fullmatch(r"/crm/v3/objects/([^/]+)/([^/]+)", path)
        if m and method in ("PATCH", "GET"):
            kind = _kind(m.group(1))
            self._need(object_scope(kind, write=method == "PATCH"))
            if method == "PATCH":
                return self._update(kind, m.group(2), body)
            return self._get(kind, m.group(2), query)
        m = re.fullmatch(
            r"/crm/v4/associations/([^/]+)/([^/]+)/(batch/read|batch/create|batch/archive|labels)", path
        )
        if m:
            from_kind, to_kind, action = _kind(m.group(1)), _kind(m.group(2)), m.group(3)
            if action == "labels" and method == "GET":
                self._need(object_scope(from_kind, write=False))
                return self._labels(from_kind, to_kind)
            if method == "POST" and action != "labels":
                self._need(object_scope(from_kind, write=action != "batch/read"))
                if action == "batch/read":
                    return self._assoc_read(from_kind, to_kind, body)
                if action == "batch/create":
                    return self._assoc_create(from_kind, to_kind, body)
                if len(body.get("inputs") or []) > ASSOCIATION_WRITE_MAX:
                    raise ApiError(
                        400, error_body(f"Batch size exceeds {ASSOCIATION_WRITE_MAX}", "VALIDATION_ERROR")
                    )
                for item in body.get("inputs") or []:
                    for to in item.get("to") or []:
                        self.store.unlink(from_kind, str(item["from"]["id"]), to_kind, str(to["id"]))
                return 204, {}
        m = re.fullmatch(r"/crm/v3/pipelines/deals(?:/([^/]+))?", path)
        if m and method == "GET":
            self._need(object_scope("deals", write=False))
            if m.group(1) is None:
                return {"results": [PIPELINE]}
            if m.group(1) != PIPELINE["id"]:
                raise ApiError(404, error_body(f"Unable to find pipeline {m.group(1)}", "OBJECT_NOT_FOUND"))
            return PIPELINE
        m = re.fullmatch(r"/crm/v3/owners(?:/([^/]*))?", path)
        if m and method == "GET":
            self._need("crm.objects.owners.read")
            if m.group(1):
                return self._owner(unquote(m.group(1)), query)
            return self._owners(query)
        m = re.fullmatch(r"/crm/v3/properties/([^/]+)(?:/([^/]+))?", path)
        if m:
            return self._properties(method, _kind(m.group(1)), m.group(2), body)
        if path == "/account-info/v3/details" and method == "GET":
            return self._account_details()
        if path == "/account-info/v3/api-usage/daily/private-apps" and method == "GET":
            return self._daily_usage()
        raise ApiError(404, error_body(f"No route for {method} {path}", "OBJECT_NOT_FOUND"))

    # -- scopes and property checks ----------------------------------------------------------
    def _need(self, scope: str) -> None:
        """HubSpot's 403 `MISSING_SCOPES` when the app was not granted `scope` (the body of the
        "Error handling" section of the CRM objects guide)."""
        if scope in self.store.profile.scopes:
            return
        raise ApiError(
            403,
            {
                "status": "error",
                "message": "This app hasn't been granted all required scopes to make this call. "
                "Read more about required scopes here: https://developers.hubspot.com/scopes.",
                "correlationId": correlation_id(),
                "errors": [
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [scope]},
                    }
                ],
                "links": {"scopes": "https://developers.hubspot.com/scopes"},
                "category": "MISSING_SCOPES",
            },
        )

    def _check_properties(self, kind: str, names: Iterable[str]) -> None:
        """A write or filter naming a property the portal lacks: 400 `PROPERTY_DOESNT_EXIST`."""
        unknown = self.store.unknown_properties(kind, names)
        if unknown:
            raise ApiError(400, property_doesnt_exist(unknown, PORTAL_ID))

    def _check_values(self, kind: str, values: dict[str, str]) -> None:
        """A write naming only existing properties: each value valid for its property's type and
        options (HubSpot's `INVALID_OPTION`, `INVALID_FLOAT` validation results), else 400."""
        self._check_properties(kind, values)
        with self.store.lock:
            specs = self.store.properties[kind]
            problems = [
                (name, *problem)
                for name, value in values.items()
                if (problem := catalog.invalid_value(specs[name], value)) is not None
            ]
        if problems:
            raise ApiError(400, validation_error(problems, PORTAL_ID))

    def _check_id_property(self, kind: str, id_property: str) -> None:
        """`idProperty` must name a property with unique values (`email` for contacts, a custom
        property created with `hasUniqueValue`, or `hs_object_id`)."""
        if not id_property or id_property == "hs_object_id":
            return
        self._check_properties(kind, [id_property])
        if not self.store.is_unique(kind, id_property):
            raise ApiError(
                400,
                error_body(
                    f"Property {id_property} is not a unique identifier property for {SINGULAR[kind]} objects.",
                    "VALIDATION_ERROR",
                ),
            )

    def _view(self, obj: HsObject, names: list[str] | None) -> dict[str, Any]:
        out = self.store.view(obj, names)
        out["url"] = record_url(obj.type, obj.id)
        return out

    # -- objects -----------------------------------------------------------------------------
    def _find_unique(self, kind: str, id_property: str, key: str) -> list[HsObject]:
        """Objects whose `id_property` holds `key` (emails and custom unique values ignore case)."""
        objects = self.store.objects[kind]
        if not id_property or id_property == "hs_object_id":
            return [objects[key]] if key in objects else []
        wanted = key.strip().lower()
        return [
            o
            for _, o in sorted(objects.items(), key=lambda item: item[1].seq)
            if wanted != "" and o.properties.get(id_property, "").strip().lower() == wanted
        ]

    def _batch_read(self, kind: str, body: dict[str, Any]) -> Any:
        inputs = [str(i.get("id", "")) for i in body.get("inputs", [])]
        if len(inputs) > BATCH_MAX_INPUTS:
            raise ApiError(
                400, error_body(f"Batch size {len(inputs)} exceeds {BATCH_MAX_INPUTS}", "VALIDATION_ERROR")
            )
        names = body.get("properties") or None
        id_property = str(body.get("idProperty") or "")
        self._check_id_property(kind, id_property)
        found: list[HsObject] = []
        missing: list[str] = []
        with self.store.lock:
            for key in inputs:
                hits = self._find_unique(kind, id_property, key)
                if hits:
                    found.extend(h for h in hits if h not in found)
                else:
                    missing.append(key)
            results = [self._view(o, names) for o in found]
        now = iso_now()
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if missing:
            out["numErrors"] = 1
            out["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {SINGULAR[kind].upper()} objects, they may be deleted or not exist.",
                    "context": {"ids": missing},
                }
            ]
            return 207, out
        return out

    def _search_objects(self, kind: str, body: dict[str, Any]) -> Any:
        """CRM search: at most 5 filter groups of 6 filters, 18 in all; pages of at most 200; oldest
        first unless sorted; 400 when `after` reaches the profile's total cap (10,000 on HubSpot:
        "Attempting to page beyond 10,000 will result in a 400 error")."""
        groups = body.get("filterGroups") or []
        if len(groups) > SEARCH_MAX_GROUPS:
            raise ApiError(
                400,
                error_body(
                    f"Too many filter groups ({len(groups)} > {SEARCH_MAX_GROUPS})", "VALIDATION_ERROR"
                ),
            )
        count = 0
        for group in groups:
            filters = group.get("filters") or []
            count += len(filters)
            if len(filters) > SEARCH_MAX_FILTERS_PER_GROUP:
                raise ApiError(400, error_body("Too many filters in a group", "VALIDATION_ERROR"))
        if count > SEARCH_MAX_FILTERS:
            raise ApiError(
                400, error_body(f"Too many filters ({count} > {SEARCH_MAX_FILTERS})", "VALIDATION_ERROR")
            )
        sorts = [_sort_rule(s) for s in body.get("sorts") or []]
        self._check_properties(
            kind,
            [str(f.get("propertyName", "")) for g in groups for f in g.get("filters") or []]
            + [name for name, _ in sorts],
        )
        limit = int(body.get("limit") or 10)
        if limit > SEARCH_MAX_LIMIT:
            raise ApiError(400, error_body(f"limit must be at most {SEARCH_MAX_LIMIT}", "VALIDATION_ERROR"))
        raw_after = str(body.get("after") or "0")
        if not raw_after.isdigit():
            raise ApiError(400, error_body(f"Invalid after value: {raw_after}", "VALIDATION_ERROR"))
        after = int(raw_after)
        cap = self.store.profile.search_total_cap
        if after >= cap:
            raise ApiError(
                400,
                error_body(
                    f"The search endpoints are limited to {cap} total results for any given query; "
                    f"after={after} pages beyond it.",
                    "VALIDATION_ERROR",
                ),
            )
        names = body.get("properties") or list(SEARCH_DEFAULT_PROPERTIES[kind])
        with self.store.lock:
            now = self.clock()
            hits = [
                o
                for o in self.store.objects[kind].values()
                if o.indexed_at <= now
                and (not groups or any(self.store.matches(o, g.get("filters") or []) for g in groups))
            ]
            hits.sort(key=lambda o: o.seq)
            for name, descending in reversed(sorts):
                hits.sort(key=lambda o: _sort_key(self.store, o, name), reverse=descending)
            page = [self._view(o, names) for o in hits[after : after + limit]]
        out: dict[str, Any] = {"total": len(hits), "results": page}
        if after + limit < len(hits):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return out

    def _create(self, kind: str, body: dict[str, Any]) -> Any:
        props = _values(body.get("properties"))
        self._check_values(kind, props)
        associations = body.get("associations") or []
        for assoc in associations:
            to_id = str(assoc.get("to", {}).get("id", ""))
            types = assoc.get("types") or []
            to_kind = self._kind_of_type_ids(kind, types)
            if to_kind is None or to_id not in self.store.objects[to_kind]:
                raise ApiError(400, error_body(f"Invalid association to {to_id}", "VALIDATION_ERROR"))
        obj = self._insert(kind, props)
        for assoc in associations:
            to_id = str(assoc["to"]["id"])
            for t in assoc["types"]:
                to_kind = self._kind_of_type_ids(kind, [t])
                assert to_kind is not None
                self.store.link(
                    kind,
                    obj.id,
                    to_kind,
                    to_id,
                    type_id=int(t["associationTypeId"]),
                    category=str(t["associationCategory"]),
                )
        return self._view(obj, None)

    def _insert(self, kind: str, props: dict[str, str]) -> HsObject:
        """A new object; a value already held by another object in a unique property is refused
        with 409 `CONFLICT` (HubSpot keeps unique values unique, as it does contacts' emails)."""
        with self.store.lock:
            self._check_unique(kind, props, None)
            now = iso_now()
            # created through the API by an app: HubSpot records the app as the source
            source = {
                name: value
                for name, value in (
                    ("hs_object_source", "INTEGRATION"),
                    ("hs_object_source_id", str(APP_ID)),
                    ("hs_object_source_label", "INTEGRATION"),
                )
                if self.store.has_property(kind, name)
            }
            obj = self.store.put(kind, self.store.new_id(), {**props, **source}, now, now)
            obj.indexed_at = self.clock() + self.search_lag
            return obj

    def _check_unique(self, kind: str, props: dict[str, str], own_id: str | None) -> None:
        if not self.enforce_unique:
            return
        for name, value in props.items():
            if value == "" or not self.store.is_unique(kind, name):
                continue
            for other in self._find_unique(kind, name, value):
                if other.id != own_id:
                    what = "Contact" if kind == "contacts" else SINGULAR[kind].capitalize()
                    raise ApiError(
                        409,
                        error_body(f"{what} already exists. Existing ID: {other.id}", "CONFLICT"),
                    )

    def _kind_of_type_ids(self, kind: str, types: list[dict[str, Any]]) -> str | None:
        for t in types:
            type_id = int(t.get("associationTypeId", -1))
            for (a, b), ids in HUBSPOT_DEFINED.items():
                if a == kind and type_id in ids:
                    return b
            for (a, b), labels in USER_LABELS.items():
                if a == kind and type_id in labels:
                    return b
        return None

    def _update(self, kind: str, object_id: str, body: dict[str, Any]) -> Any:
        props = _values(body.get("properties"))
        self._check_values(kind, props)
        with self.store.lock:
            if object_id in self.store.objects[kind]:
                self._check_unique(kind, props, object_id)
            obj = self.store.update(kind, object_id, props, iso_now())
        if obj is None:
            raise ApiError(404, error_body(f"Object {object_id} not found", "OBJECT_NOT_FOUND"))
        return self._view(obj, None)

    def _batch_write(self, kind: str, action: str, body: dict[str, Any]) -> Any:
        """Batch create / update / upsert (at most 100 inputs). Every input is checked first: one
        unknown property refuses the whole batch with the `PROPERTY_DOESNT_EXIST` body."""
        inputs = list(body.get("inputs") or [])
        if len(inputs) > BATCH_MAX_INPUTS:
            raise ApiError(
                400, error_body(f"Batch size {len(inputs)} exceeds {BATCH_MAX_INPUTS}", "VALIDATION_ERROR")
            )
        self._check_properties(kind, [n for item in inputs for n in _values(item.get("properties"))])
        for item in inputs:
            self._check_values(kind, _values(item.get("properties")))
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with self.store.lock:
            for item in inputs:
                props = _values(item.get("properties"))
                if action == "create":
                    created = self._create_input(kind, item, props, errors)
                    if created is not None:
                        results.append(created)
                    continue
                id_property = str(item.get("idProperty") or "")
                self._check_id_property(kind, id_property)
                key = str(item.get("id", ""))
                hits = self._find_unique(kind, id_property, key)
                if not hits and action == "update":
                    # one input naming no object is one entry of the 207 answer; the others are updated
                    errors.append(self._input_error(item, f"Object {key} not found", "OBJECT_NOT_FOUND", key))
                    continue
                if not hits:
                    if id_property and id_property != "hs_object_id":
                        props = {id_property: key, **props}
                    obj = self._insert(kind, props)
                    results.append({**self._view(obj, None), "new": True})
                    continue
                try:
                    self._check_unique(kind, props, hits[0].id)
                except ApiError as error:
                    if action != "update":
                        raise
                    errors.append(self._input_error(item, str(error.body.get("message")), "CONFLICT", key))
                    continue
                obj_updated = self.store.update(kind, hits[0].id, props, iso_now())
                assert obj_updated is not None
                view = self._view(obj_updated, None)
                if item.get("objectWriteTraceId") is not None:
                    view["objectWriteTraceId"] = str(item["objectWriteTraceId"])
                results.append({**view, "new": False} if action == "upsert" else view)
        now = iso_now()
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
            return 207, out
        return (201, out) if action == "create" else out

    @staticmethod
    def _input_error(item: dict[str, Any], message: str, category: str, key: str) -> dict[str, Any]:
        """One refused input of a batch update: its id (and `objectWriteTraceId`) in `context`."""
        context: dict[str, list[str]] = {"ids": [key]}
        if item.get("objectWriteTraceId") is not None:
            context["objectWriteTraceId"] = [str(item["objectWriteTraceId"])]
        return {"status": "error", "category": category, "message": message, "context": context}

    def _create_input(
        self, kind: str, item: dict[str, Any], props: dict[str, str], errors: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """One input of a batch create, with its inline `associations` (as a single create takes
        them). An input HubSpot refuses (an association to an unknown record, a unique value
        held elsewhere) is one entry of the 207 answer's `errors`, its `objectWriteTraceId` in
        `context`; the other inputs are created."""
        trace = item.get("objectWriteTraceId")
        try:
            for assoc in item.get("associations") or []:
                to_id = str(assoc.get("to", {}).get("id", ""))
                to_kind = self._kind_of_type_ids(kind, assoc.get("types") or [])
                if to_kind is None or to_id not in self.store.objects[to_kind]:
                    raise ApiError(400, error_body(f"Invalid association to {to_id}", "VALIDATION_ERROR"))
            obj = self._insert(kind, props)
        except ApiError as error:
            entry = {k: v for k, v in error.body.items() if k in ("status", "category", "message")}
            if trace is not None:
                entry["context"] = {"objectWriteTraceId": [str(trace)]}
            errors.append(entry)
            return None
        for assoc in item.get("associations") or []:
            for t in assoc["types"]:
                to_kind = self._kind_of_type_ids(kind, [t])
                assert to_kind is not None
                self.store.link(
                    kind,
                    obj.id,
                    to_kind,
                    str(assoc["to"]["id"]),
                    type_id=int(t["associationTypeId"]),
                    category=str(t["associationCategory"]),
                )
        view = self._view(obj, None)
        if trace is not None:
            view["objectWriteTraceId"] = str(trace)
        return view

    def _get(self, kind: str, object_id: str, query: dict[str, list[str]]) -> Any:
        """One object by id, or by a unique property (`idProperty=email`), with
        `associations=companies,deals` ids as v3 lists them (a block pages past 100)."""
        names = [n for v in query.get("properties", []) for n in v.split(",") if n] or None
        id_property = (query.get("idProperty") or [""])[0]
        self._check_id_property(kind, id_property)
        key = unquote(object_id)
        with self.store.lock:
            hits = self._find_unique(kind, id_property, key)
            if not hits:
                raise ApiError(404, error_body(f"Object {key} not found", "OBJECT_NOT_FOUND"))
            obj = hits[0]
            out = self._view(obj, names)
            wanted = [_kind(n) for v in query.get("associations", []) for n in v.split(",") if n]
            if wanted:
                out["associations"] = {}
                for to_kind in wanted:
                    links = self._v3_links(kind, obj.id, to_kind)
                    if not links:
                        continue
                    block: dict[str, Any] = {"results": links[:V3_ASSOCIATION_PAGE]}
                    if len(links) > V3_ASSOCIATION_PAGE:
                        after = str(V3_ASSOCIATION_PAGE)
                        block["paging"] = {
                            "next": {
                                "after": after,
                                "link": f"/crm/v3/objects/{kind}/{obj.id}/associations/{to_kind}?after={after}",
                            }
                        }
                    out["associations"][to_kind] = block
                if not out["associations"]:
                    del out["associations"]
        return out

    def _v3_links(self, kind: str, object_id: str, to_kind: str) -> list[dict[str, str]]:
        """v3's `?associations=` lists one entry per (id, association type): HubSpot names its own
        types `{from}_to_{to}` — for a pair that has a primary type that name is the primary link
        and every link also shows as `{from}_to_{to}_unlabeled` (e.g. `contact_to_company`,
        `contact_to_company_unlabeled`); a pair without one has only `contact_to_deal`. A
        user-defined label shows under the internal name it was created with (labels API `name`)."""
        unlabeled, primary = HUBSPOT_DEFINED[(kind, to_kind)]
        base = f"{SINGULAR[kind]}_to_{SINGULAR[to_kind]}"
        names = {type_id: name for type_id, (_, name) in USER_LABELS.get((kind, to_kind), {}).items()}
        out = []
        for to_id, types in sorted(self.store.associated(kind, object_id, to_kind).items()):
            ids = {type_id for category, type_id, _ in types if category == "HUBSPOT_DEFINED"}
            if primary is None:
                out.append({"id": to_id, "type": base})
            else:
                if primary in ids:
                    out.append({"id": to_id, "type": base})
                if unlabeled in ids:
                    out.append({"id": to_id, "type": base + "_unlabeled"})
            for type_id in sorted({t for c, t, _ in types if c == "USER_DEFINED" and t in names}):
                out.append({"id": to_id, "type": names[type_id]})
        return out

    # -- associations v4 ---------------------------------------------------------------------
    def _assoc_read(self, from_kind: str, to_kind: str, body: dict[str, Any]) -> Any:
        """v4 batch read: each input's associations in pages of the profile's
        `association_page_size`; a result with more carries `paging.next.after`, which the next
        request passes beside the id (`{"inputs": [{"id": ..., "after": ...}]}`)."""
        items = [(str(i.get("id", "")), i.get("after")) for i in body.get("inputs", [])]
        if len(items) > 1000:
            raise ApiError(400, error_body("Batch size exceeds 1000", "VALIDATION_ERROR"))
        size = max(1, self.store.profile.association_page_size)
        results = []
        missing = []
        for from_id, after in items:
            found = sorted(self.store.associated(from_kind, from_id, to_kind).items())
            if not found:
                missing.append(from_id)
                continue
            start = _offset(after) if after else 0
            page = found[start : start + size]
            result: dict[str, Any] = {
                "from": {"id": from_id},
                "to": [
                    {
                        "toObjectId": to_id,
                        "associationTypes": [
                            {"category": c, "typeId": t, "label": label}
                            for c, t, label in sorted(types, key=lambda x: x[1])
                        ],
                    }
                    for to_id, types in page
                ],
            }
            if start + size < len(found):
                result["paging"] = {"next": {"after": _cursor(start + size)}}
            results.append(result)
        now = iso_now()
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if missing:
            out["numErrors"] = len(missing)
            out["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {SINGULAR[to_kind]} is associated with {SINGULAR[from_kind]} {from_id}.",
                    "context": {"fromObjectId": [from_id]},
                }
                for from_id in missing
            ]
            return 207, out
        return out

    def _assoc_create(self, from_kind: str, to_kind: str, body: dict[str, Any]) -> Any:
        """v4 batch create (at most `ASSOCIATION_WRITE_MAX` inputs): a pair naming an unknown
        object is one entry of the 207 answer's `errors` (its ids in `context`); the others are linked."""
        inputs = list(body.get("inputs") or [])
        if len(inputs) > ASSOCIATION_WRITE_MAX:
            raise ApiError(400, error_body(f"Batch size exceeds {ASSOCIATION_WRITE_MAX}", "VALIDATION_ERROR"))
        results = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            from_id = str(item["from"]["id"])
            to_id = str(item["to"]["id"])
            if from_id not in self.store.objects[from_kind] or to_id not in self.store.objects[to_kind]:
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f"Unknown object in association {from_id}->{to_id}",
                        "context": {"fromObjectId": [from_id], "toObjectId": [to_id]},
                    }
                )
                continue
            for t in item.get("types") or []:
                self.store.link(
                    from_kind,
                    from_id,
                    to_kind,
                    to_id,
                    type_id=int(t["associationTypeId"]),
                    category=str(t["associationCategory"]),
                )
            results.append(
                {
                    "fromObjectTypeId": from_kind,
                    "fromObjectId": from_id,
                    "toObjectTypeId": to_kind,
                    "toObjectId": to_id,
                    "labels": [],
                }
            )
        now = iso_now()
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
            return 207, out
        return 201, out

    def _labels(self, from_kind: str, to_kind: str) -> Any:
        """The association types of a pair (`GET /crm/v4/associations/{from}/{to}/labels`)."""
        unlabeled, primary = HUBSPOT_DEFINED[(from_kind, to_kind)]
        results: list[dict[str, Any]] = [{"category": "HUBSPOT_DEFINED", "typeId": unlabeled, "label": None}]
        if primary is not None:
            results.append({"category": "HUBSPOT_DEFINED", "typeId": primary, "label": "Primary"})
        for type_id, (label, _) in sorted(USER_LABELS.get((from_kind, to_kind), {}).items()):
            results.append({"category": "USER_DEFINED", "typeId": type_id, "label": label})
        return {"results": results}

    # -- owners, account, tokens -------------------------------------------------------------
    def _owners(self, query: dict[str, list[str]]) -> Any:
        email = (query.get("email") or [""])[0].lower()
        limit = int((query.get("limit") or ["100"])[0])
        after = int((query.get("after") or ["0"])[0])
        with self.store.lock:
            owners = [o for o in self.store.owners if not email or (o.get("email") or "").lower() == email]
        page = owners[after : after + limit]
        out: dict[str, Any] = {"results": page}
        if after + limit < len(owners):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return out

    def _owner(self, key: str, query: dict[str, list[str]]) -> Any:
        """`GET /crm/v3/owners/{ownerId}` (`idProperty=userId` reads by user id)."""
        field_name = (query.get("idProperty") or ["id"])[0]
        with self.store.lock:
            for owner in self.store.owners:
                if str(owner.get(field_name, "")) == key:
                    return owner
        raise ApiError(404, error_body(f"Owner {key} not found", "OBJECT_NOT_FOUND"))

    def _account_details(self) -> Any:
        """`GET /account-info/v3/details` (account information API)."""
        return {
            "portalId": PORTAL_ID,
            "accountType": "STANDARD",
            "timeZone": "US/Eastern",
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "utcOffset": "-05:00",
            "utcOffsetMilliseconds": -18000000,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }

    def _daily_usage(self) -> Any:
        """`GET /account-info/v3/api-usage/daily/private-apps`: the day's calls against the limit."""
        now = dt.datetime.now(dt.UTC)
        reset = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        with self._lock:
            used = self._daily_used
        return {
            "results": [
                {
                    "name": "private-apps-api-calls-daily",
                    "usageLimit": self.limits.daily,
                    "currentUsage": used,
                    "collectedAt": iso(now),
                    "fetchStatus": "SUCCESS",
                    "resetsAt": iso(reset),
                }
            ]
        }

    def _token_info(self, token: str) -> Any:
        """`GET /oauth/v1/access-tokens/{token}`: an OAuth token's portal, scopes and lifetime.
        Private-app tokens and unknown or expired tokens are not OAuth access tokens: 404."""
        with self._lock:
            expiry = next(
                (exp for known, exp in self.tokens.items() if hmac.compare_digest(known, token)), None
            )
            now = self.clock()
        if expiry is None or expiry == float("inf") or expiry <= now:
            raise ApiError(404, error_body("Token not found", "OBJECT_NOT_FOUND"))
        return {
            "token": token,
            "user": "integration@example.com",
            "hub_domain": f"{PORTAL_ID}.hubspot.com",
            "scopes": sorted(self.store.profile.scopes),
            "hub_id": PORTAL_ID,
            "app_id": APP_ID,
            "expires_in": int(expiry - now),
            "user_id": 1001,
            "token_type": "access",
        }

    # -- properties API ----------------------------------------------------------------------
    def _properties(self, method: str, kind: str, name: str | None, body: dict[str, Any]) -> Any:
        """The properties API: list / read / create / archive properties, list / create groups.
        Reads need `crm.schemas.{object}.read`, changes `crm.schemas.{object}.write`."""
        self._need(schema_scope(kind, write=method not in ("GET",)))
        if name == "groups":
            if method == "GET":
                with self.store.lock:
                    return {"results": list(self.store.groups[kind].values())}
            if method == "POST":
                return self._create_group(kind, body)
        elif name is None:
            if method == "GET":
                with self.store.lock:
                    return {"results": [dict(p) for p in self.store.properties[kind].values()]}
            if method == "POST":
                return self._create_property(kind, body)
        else:
            if method == "GET":
                with self.store.lock:
                    spec = self.store.properties[kind].get(name)
                if spec is None:
                    raise ApiError(
                        404,
                        error_body(
                            f"Unable to find property {name} for object type {SINGULAR[kind]}",
                            "OBJECT_NOT_FOUND",
                        ),
                    )
                return dict(spec)
            if method == "DELETE":
                if not self.store.remove_property(kind, name):
                    raise ApiError(
                        404,
                        error_body(
                            f"Unable to find property {name} for object type {SINGULAR[kind]}",
                            "OBJECT_NOT_FOUND",
                        ),
                    )
                return 204, {}
        raise ApiError(405, error_body(f"{method} not allowed here", "VALIDATION_ERROR"))

    def _create_property(self, kind: str, body: dict[str, Any]) -> Any:
        """`POST /crm/v3/properties/{objectType}`: 201 with the definition; 409
        `OBJECT_ALREADY_EXISTS` when the name is taken; 400 when a required field is missing or
        the group does not exist."""
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise ApiError(
                400, error_body(f"Missing required fields: {', '.join(missing)}", "VALIDATION_ERROR")
            )
        name = str(body["name"])
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ApiError(400, error_body(f"Invalid property name {name}", "VALIDATION_ERROR"))
        with self.store.lock:
            if name in self.store.properties[kind]:
                raise ApiError(
                    409, error_body(f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
                )
            group_name = str(body["groupName"])
            if group_name not in self.store.groups[kind]:
                raise ApiError(
                    400, error_body(f"Property group {group_name} does not exist", "VALIDATION_ERROR")
                )
            spec = catalog.definition(
                name,
                str(body["label"]),
                str(body["type"]),
                str(body["fieldType"]),
                group_name,
                hubspot_defined=False,
                unique=bool(body.get("hasUniqueValue")),
                description=str(body.get("description") or ""),
                options=list(body.get("options") or []) or None,
                display_order=int(body.get("displayOrder", -1)),
                created_at=iso_now(),
            )
            self.store.add_property(kind, spec)
        return 201, dict(spec)

    def _create_group(self, kind: str, body: dict[str, Any]) -> Any:
        name = str(body.get("name") or "")
        if not name or not body.get("label"):
            raise ApiError(400, error_body("Missing required fields: name, label", "VALIDATION_ERROR"))
        with self.store.lock:
            if name in self.store.groups[kind]:
                raise ApiError(
                    409, error_body(f"Property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
                )
            group = catalog.group(name, str(body["label"]), int(body.get("displayOrder", -1)))
            self.store.groups[kind][name] = group
        return 201, dict(group)

    # -- test controls -----------------------------------------------------------------------
    def set_profile(self, profile: PortalProfile) -> None:
        """Change the running portal (its properties, paging, search cap and scopes)."""
        self.store.set_profile(profile)


PORTAL_ID = 146_000_001
"""The emulated portal's Hub ID."""
APP_ID = 4_000_001

OBJECT_SCOPE_NAMES = {
    "contacts": "contacts",
    "companies": "companies",
    "deals": "deals",
    "calls": "contacts",
    "meetings": "contacts",
    "notes": "contacts",
}
"""Calls, meetings and notes are engagements; HubSpot grants them with the contacts scopes."""

SEARCH_DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contacts": ("firstname", "lastname", "email", "lastmodifieddate", "hs_object_id", "createdate"),
    "companies": ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
    "deals": (
        "dealname",
        "amount",
        "closedate",
        "pipeline",
        "dealstage",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ),
    "calls": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "meetings": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "notes": ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}
"""What a search returns without `properties` (the CRM search guide's "default returned properties")."""


def object_scope(kind: str, *, write: bool) -> str:
    return f"crm.objects.{OBJECT_SCOPE_NAMES[kind]}.{'write' if write else 'read'}"


def schema_scope(kind: str, *, write: bool) -> str:
    return f"crm.schemas.{OBJECT_SCOPE_NAMES[kind]}.{'write' if write else 'read'}"


def property_doesnt_exist(names: list[str], portal_id: int) -> dict[str, Any]:
    """HubSpot's 400 for values of properties the portal lacks, as the CRM objects guide shows it:
    the legacy validation results JSON-encoded in `message`, and `errors[]` with the code."""
    return validation_error(
        [(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist') for name in names], portal_id
    )


def validation_error(problems: list[tuple[str, str, str]], portal_id: int) -> dict[str, Any]:
    """HubSpot's 400 `Property values were not valid` body for (property, code, message) triples."""
    results = [
        {
            "isValid": False,
            "message": message,
            "error": code,
            "name": name,
            "localizedErrorMessage": message,
            "portalId": portal_id,
        }
        for name, code, message in problems
    ]
    return {
        "status": "error",
        "message": "Property values were not valid: " + json.dumps(results, separators=(",", ":")),
        "correlationId": correlation_id(),
        "errors": [
            {"message": message, "code": code, "context": {"propertyName": [name]}}
            for name, code, message in problems
        ],
        "category": "VALIDATION_ERROR",
    }


def record_url(kind: str, object_id: str) -> str:
    """The record's page in HubSpot, which v3 answers carry as `url`."""
    type_id = next(t for t, k in TYPE_IDS.items() if k == kind)
    return f"https://app.hubspot.com/contacts/{PORTAL_ID}/record/{type_id}/{object_id}"


def rate_limit_body(policy: str) -> dict[str, Any]:
    """HubSpot's 429 body; `policyName` says which limit (TEN_SECONDLY_ROLLING, SECONDLY, DAILY)."""
    names = {"TEN_SECONDLY_ROLLING": "ten_secondly_rolling", "SECONDLY": "secondly", "DAILY": "daily"}
    return {
        "status": "error",
        "message": f"You have reached your {names.get(policy, policy.lower())} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
        "groupName": "publicapi:private-app",
    }


def correlation_id() -> str:
    """A time-ordered UUID (version 7) as HubSpot's correlation ids are ("019ce0f9-4f0b-7879-...")."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def iso_now() -> str:
    return iso(dt.datetime.now(dt.UTC))


def _values(raw: Any) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in (raw or {}).items()}


def _sort_rule(rule: Any) -> tuple[str, bool]:
    """A `sorts` entry: `{"propertyName": ..., "direction": "DESCENDING"}` or `"-createdate"`."""
    if isinstance(rule, dict):
        return str(rule.get("propertyName", "")), str(rule.get("direction", "ASCENDING")) == "DESCENDING"
    text = str(rule)
    return text.lstrip("-"), text.startswith("-")


def _sort_key(store: Store, obj: HsObject, name: str) -> tuple[int, Any]:
    value = obj.id if name == "hs_object_id" else obj.properties.get(name, "")
    type_ = store.property_type(obj.type, name)
    if type_ in ("datetime", "date"):
        millis = to_millis(value)
        return (0, millis) if millis is not None else (1, 0)
    if type_ == "number":
        try:
            return (0, float(value))
        except ValueError:
            return (1, value)
    return (0 if value else 1, value.lower())


def _cursor(offset: int) -> str:
    """An opaque paging cursor (clients pass it back, they do not compute it)."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: Any) -> int:
    text = str(cursor)
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        decoded = ""
    if not decoded.startswith("offset:") or not decoded[7:].isdigit():
        raise ApiError(400, error_body(f"Invalid after value: {text}", "VALIDATION_ERROR"))
    return int(decoded[7:])


def _kind(name: str) -> str:
    kind = TYPE_IDS.get(name, name.lower())
    if kind.endswith("y"):
        kind = kind[:-1] + "ies"
    elif not kind.endswith("s"):
        kind += "s"
    if kind not in SINGULAR:
        raise ApiError(400, error_body(f"Unable to infer object type from: {name}", "VALIDATION_ERROR"))
    return kind


def _properties_named(query: dict[str, list[str]], raw: bytes) -> tuple[str, ...] | None:
    """The property names a read asks for: `?properties=a,b` (or repeated), or a search's or batch
    read's body `properties` list; None when the request names none (a write's body is a dict)."""
    named = [name for value in query.get("properties", []) for name in value.split(",") if name]
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        listed = body.get("properties") if isinstance(body, dict) else None
        if isinstance(listed, list):
            named += [str(name) for name in listed]
    return tuple(named) if named or "properties" in query else None


def _route_name(path: str) -> str:
    """`/crm/v3/objects/contacts/batch/read` stays; object ids become `{id}` so counts group by route."""
    m = re.fullmatch(r"(/crm/v3/objects/[^/]+)/(?!batch|search)([^/]+)", path)
    if m:
        return m.group(1) + "/{id}"
    m = re.fullmatch(r"(/oauth/v1/access-tokens)/[^/]+", path)
    if m:
        return m.group(1) + "/{token}"
    return path


def _is_create(path: str) -> bool:
    return re.fullmatch(r"/crm/v3/objects/[^/]+", path) is not None
