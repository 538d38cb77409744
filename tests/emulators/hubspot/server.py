"""A stateful HubSpot API emulator on 127.0.0.1 that hubspot-api-client talks to over real HTTP.

It serves what the adapter uses (v3 objects batch read / search / create / update / get,
v4 associations batch read and create, pipelines, owners, OAuth refresh), enforces the
rolling 10-second, per-second search and daily limits with HubSpot's 429 bodies and
`X-HubSpot-RateLimit-*` headers, checks bearer tokens (with expiry), and lets tests
inject latency, 5xx and 429 responses. Every request is counted by route.
"""

from __future__ import annotations

import collections
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.emulators.hubspot.store import (
    HUBSPOT_DEFINED,
    PIPELINE,
    SINGULAR,
    TYPE_IDS,
    HsObject,
    Store,
    iso,
)
from tests.emulators.loopback import serve, shut

SEARCH_MAX_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 6
SEARCH_MAX_FILTERS = 18
SEARCH_MAX_LIMIT = 200
BATCH_MAX_INPUTS = 100
V3_ASSOCIATION_PAGE = 100
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
    burst: int = 190
    burst_window: float = 10.0
    search: int = 5
    search_window: float = 1.0
    daily: int = 500_000


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
        "correlationId": str(uuid.uuid4()),
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
        self.faults: list[Fault] = []
        self.requests: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.log: list[tuple[str, str, int]] = []
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
        with self._lock:
            self.statuses[status] += 1
            self.log.append((method, parts.path, status))
        body = b"" if status == 204 else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json;charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
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
        self._authenticate(handler.headers.get("Authorization", ""))
        is_search = path.endswith("/search")
        headers = self._charge(is_search)
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
        limits = self.limits
        return {
            "X-HubSpot-RateLimit-Daily": str(limits.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(limits.daily - self._daily_used, 0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limits.burst_window * 1000)),
            "X-HubSpot-RateLimit-Max": str(cap),
            "X-HubSpot-RateLimit-Remaining": str(max(remaining, 0)),
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
        }

    # -- API ---------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> Any:
        m = re.fullmatch(r"/crm/v3/objects/([^/]+)/batch/read", path)
        if m and method == "POST":
            return self._batch_read(_kind(m.group(1)), body)
        m = re.fullmatch(r"/crm/v3/objects/([^/]+)/search", path)
        if m and method == "POST":
            return self._search_objects(_kind(m.group(1)), body)
        m = re.fullmatch(r"/crm/v3/objects/([^/]+)", path)
        if m and method == "POST":
            return self._create(_kind(m.group(1)), body)
        m = re.fullmatch(r"/crm/v3/objects/([^/]+)/([^/]+)", path)
        if m and method == "PATCH":
            return self._update(_kind(m.group(1)), m.group(2), body)
        if m and method == "GET":
            return self._get(_kind(m.group(1)), m.group(2), query)
        m = re.fullmatch(r"/crm/v4/associations/([^/]+)/([^/]+)/batch/read", path)
        if m and method == "POST":
            return self._assoc_read(_kind(m.group(1)), _kind(m.group(2)), body)
        m = re.fullmatch(r"/crm/v4/associations/([^/]+)/([^/]+)/batch/create", path)
        if m and method == "POST":
            return self._assoc_create(_kind(m.group(1)), _kind(m.group(2)), body)
        m = re.fullmatch(r"/crm/v4/associations/([^/]+)/([^/]+)/batch/archive", path)
        if m and method == "POST":
            from_kind, to_kind = _kind(m.group(1)), _kind(m.group(2))
            for item in body.get("inputs") or []:
                for to in item.get("to") or []:
                    self.store.unlink(from_kind, str(item["from"]["id"]), to_kind, str(to["id"]))
            return 204, {}
        m = re.fullmatch(r"/crm/v3/pipelines/deals(?:/([^/]+))?", path)
        if m and method == "GET":
            if m.group(1) is None:
                return {"results": [PIPELINE]}
            if m.group(1) != PIPELINE["id"]:
                raise ApiError(404, error_body("Pipeline not found", "OBJECT_NOT_FOUND"))
            return PIPELINE
        if re.fullmatch(r"/crm/v3/owners/?", path) and method == "GET":
            return self._owners(query)
        raise ApiError(404, error_body(f"No route for {method} {path}", "OBJECT_NOT_FOUND"))

    def _batch_read(self, kind: str, body: dict[str, Any]) -> Any:
        inputs = [str(i.get("id", "")) for i in body.get("inputs", [])]
        if len(inputs) > BATCH_MAX_INPUTS:
            raise ApiError(
                400, error_body(f"Batch size {len(inputs)} exceeds {BATCH_MAX_INPUTS}", "VALIDATION_ERROR")
            )
        names = body.get("properties") or None
        id_property = body.get("idProperty")
        found: list[HsObject] = []
        missing: list[str] = []
        with self.store.lock:
            objects = self.store.objects[kind]
            for key in inputs:
                if id_property:
                    hits = [
                        o
                        for o in objects.values()
                        if o.properties.get(id_property, "").lower() == key.lower() != ""
                    ]
                else:
                    hits = [objects[key]] if key in objects else []
                if hits:
                    found.extend(h for h in hits if h not in found)
                else:
                    missing.append(key)
            results = [self.store.view(o, names) for o in found]
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
        limit = int(body.get("limit") or 10)
        if limit > SEARCH_MAX_LIMIT:
            raise ApiError(400, error_body(f"limit must be at most {SEARCH_MAX_LIMIT}", "VALIDATION_ERROR"))
        after = int(body.get("after") or 0)
        names = body.get("properties") or ["createdate", "hs_lastmodifieddate", "hs_object_id"]
        with self.store.lock:
            now = self.clock()
            hits = [
                o
                for o in self.store.objects[kind].values()
                if o.indexed_at <= now
                and (not groups or any(self.store.matches(o, g.get("filters") or []) for g in groups))
            ]
            hits.sort(key=lambda o: o.id)
            page = [self.store.view(o, names) for o in hits[after : after + limit]]
        out: dict[str, Any] = {"total": len(hits), "results": page}
        if after + limit < len(hits):
            out["paging"] = {"next": {"after": str(after + limit), "link": "?after=" + str(after + limit)}}
        return out

    def _create(self, kind: str, body: dict[str, Any]) -> Any:
        props = {k: "" if v is None else str(v) for k, v in (body.get("properties") or {}).items()}
        now = iso_now()
        object_id = self.store.new_id()
        for assoc in body.get("associations") or []:
            to_id = str(assoc.get("to", {}).get("id", ""))
            types = assoc.get("types") or []
            to_kind = self._kind_of_type_ids(kind, types)
            if to_kind is None or to_id not in self.store.objects[to_kind]:
                raise ApiError(400, error_body(f"Invalid association to {to_id}", "VALIDATION_ERROR"))
        obj = self.store.put(kind, object_id, props, now, now)
        obj.indexed_at = self.clock() + self.search_lag
        for assoc in body.get("associations") or []:
            to_id = str(assoc["to"]["id"])
            for t in assoc["types"]:
                to_kind = self._kind_of_type_ids(kind, [t])
                assert to_kind is not None
                self.store.link(
                    kind,
                    object_id,
                    to_kind,
                    to_id,
                    type_id=int(t["associationTypeId"]),
                    category=str(t["associationCategory"]),
                )
        return self.store.view(obj, None)

    def _kind_of_type_ids(self, kind: str, types: list[dict[str, Any]]) -> str | None:
        for t in types:
            for (a, b), ids in HUBSPOT_DEFINED.items():
                if a == kind and int(t.get("associationTypeId", -1)) in ids:
                    return b
        return None

    def _update(self, kind: str, object_id: str, body: dict[str, Any]) -> Any:
        obj = self.store.update(kind, object_id, body.get("properties") or {}, iso_now())
        if obj is None:
            raise ApiError(404, error_body(f"Object {object_id} not found", "OBJECT_NOT_FOUND"))
        return self.store.view(obj, None)

    def _get(self, kind: str, object_id: str, query: dict[str, list[str]]) -> Any:
        """One object by id, or by a unique property (`idProperty=email`: the primary email,
        as the batch read matches it), with `associations=companies,deals` ids as v3 lists them."""
        names = [n for v in query.get("properties", []) for n in v.split(",") if n] or None
        id_property = (query.get("idProperty") or [""])[0]
        key = unquote(object_id)
        with self.store.lock:
            objects = self.store.objects[kind]
            if id_property and id_property != "hs_object_id":
                obj = next(
                    (
                        o
                        for _, o in sorted(objects.items())
                        if o.properties.get(id_property, "").lower() == key.lower() != ""
                    ),
                    None,
                )
            else:
                obj = objects.get(key)
            if obj is None:
                raise ApiError(404, error_body(f"Object {key} not found", "OBJECT_NOT_FOUND"))
            out = self.store.view(obj, names)
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
        """v3 names the HubSpot-defined types: `contact_to_company` (primary where the pair has one),
        `contact_to_company_unlabeled`; pairs without a primary type only have `contact_to_deal`.
        A user-defined label shows as its internal name (`Primary` -> `primary`), one entry more."""
        unlabeled, primary = HUBSPOT_DEFINED[(kind, to_kind)]
        base = f"{SINGULAR[kind]}_to_{SINGULAR[to_kind]}"
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
            for name in sorted({internal_name(lb) for c, _, lb in types if c != "HUBSPOT_DEFINED" and lb}):
                out.append({"id": to_id, "type": name})
        return out

    def _assoc_read(self, from_kind: str, to_kind: str, body: dict[str, Any]) -> Any:
        inputs = [str(i.get("id", "")) for i in body.get("inputs", [])]
        if len(inputs) > 1000:
            raise ApiError(400, error_body("Batch size exceeds 1000", "VALIDATION_ERROR"))
        results = []
        missing = []
        for from_id in inputs:
            found = self.store.associated(from_kind, from_id, to_kind)
            if not found:
                missing.append(from_id)
                continue
            results.append(
                {
                    "from": {"id": from_id},
                    "to": [
                        {
                            "toObjectId": to_id,
                            "associationTypes": [
                                {"category": c, "typeId": t, "label": label}
                                for c, t, label in sorted(types, key=lambda x: x[1])
                            ],
                        }
                        for to_id, types in sorted(found.items())
                    ],
                }
            )
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
        results = []
        for item in body.get("inputs") or []:
            from_id = str(item["from"]["id"])
            to_id = str(item["to"]["id"])
            if from_id not in self.store.objects[from_kind] or to_id not in self.store.objects[to_kind]:
                raise ApiError(
                    400, error_body(f"Unknown object in association {from_id}->{to_id}", "VALIDATION_ERROR")
                )
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
        return 201, {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}

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


def rate_limit_body(policy: str) -> dict[str, Any]:
    """HubSpot's 429 body; `policyName` says which limit (TEN_SECONDLY_ROLLING, SECONDLY, DAILY)."""
    names = {"TEN_SECONDLY_ROLLING": "ten_secondly_rolling", "SECONDLY": "secondly", "DAILY": "daily"}
    return {
        "status": "error",
        "message": f"You have reached your {names.get(policy, policy.lower())} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
        "groupName": "publicapi:private-app",
    }


def internal_name(label: str) -> str:
    """The internal name HubSpot derives from a label made in the UI (`Decision maker` -> `decision_maker`)."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def iso_now() -> str:
    import datetime as dt

    return iso(dt.datetime.now(dt.UTC))


def _kind(name: str) -> str:
    kind = TYPE_IDS.get(name, name.lower())
    if kind.endswith("y"):
        kind = kind[:-1] + "ies"
    elif not kind.endswith("s"):
        kind += "s"
    if kind not in SINGULAR:
        raise ApiError(400, error_body(f"Unable to infer object type from: {name}", "VALIDATION_ERROR"))
    return kind


def _route_name(path: str) -> str:
    """`/crm/v3/objects/contacts/batch/read` stays; object ids become `{id}` so counts group by route."""
    m = re.fullmatch(r"(/crm/v3/objects/[^/]+)/(?!batch|search)([^/]+)", path)
    if m:
        return m.group(1) + "/{id}"
    return path


def _is_create(path: str) -> bool:
    return re.fullmatch(r"/crm/v3/objects/[^/]+", path) is not None
