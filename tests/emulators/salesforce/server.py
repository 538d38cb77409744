"""A Salesforce REST emulator over HTTPS on loopback, for the real simple-salesforce client.

It serves what a client of a real org uses: query / queryAll with paging
(`nextRecordsUrl`), search (SOSL), sObject CRUD and upsert by external id (300 with
the matching records' URLs when the value is not unique), composite (one API call for
up to 25 subrequests, at most 5 of them queries), the global and per-object describes,
/limits, the Tooling API's CustomField (tooling.py), the OAuth token endpoint (refresh
token and password grants), userinfo and the identity URL. What exists and what the
API user may see or do comes from the org's profile (profile.py): an absent object is
INVALID_TYPE in SOQL and 404 as a resource, an absent or hidden field INVALID_FIELD,
a denied object permission the real refusal. A request URI past 16,384 bytes is 414.
Every response carries `Sforce-Limit-Info`; API calls
are counted as Salesforce does. Faults are queued by tests (`inject`): 5xx, 403
REQUEST_LIMIT_EXCEEDED (daily or concurrent), expired sessions, latency, resets; or
drawn at random per request (`fault_rate`, `fault_mix`, a seedable `fault_rng`) for
chaos runs. Every fault is decided before the request touches the org, so a faulted
write never happened; `lost_reply` (a 500 for a write that did happen) is opt-in.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json
import random
import re
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.emulators.loopback import certificate, serve, shut
from tests.emulators.salesforce.org import (
    API_USER_ID,
    API_USERNAME,
    ORG_ID,
    PICKLIST_VALUES,
    Org,
    OrgError,
    RecordData,
    SObjectType,
)
from tests.emulators.salesforce.tooling import limits, tooling, userinfo

API_VERSION = "59.0"
MAX_COMPOSITE = 25
MAX_URI_BYTES = 16_384  # the REST API's limit on a request URI (GET /query?q=...)
MAX_COMPOSITE_QUERIES = 5


@dataclass
class Fault:
    """One injected failure, consumed by the next API request that reaches it."""

    kind: str  # status, limit_daily, limit_concurrent, expire, expire_token, reset, delay, lost_reply
    status: int = 503
    seconds: float = 0.0


RATE_KINDS: dict[str, Fault] = {
    "server_unavailable": Fault("status", 503),
    "unknown_exception": Fault("status", 500),
    "limit_concurrent": Fault("limit_concurrent"),
    "expired_session": Fault("expire_token"),
    "lost_reply": Fault("lost_reply", 500),
    "limit_daily": Fault("limit_daily"),
    "reset": Fault("reset"),
    "delay": Fault("delay", seconds=1.0),
}
"""What each kind a `fault_mix` may name does; `limit_daily`, `reset`, `delay` and `lost_reply`
are there for tests that want them, never in the default mix."""

DEFAULT_FAULT_MIX: dict[str, float] = {
    "server_unavailable": 3.0,
    "unknown_exception": 1.0,
    "limit_concurrent": 3.0,
    "expired_session": 2.0,
}
"""Transient faults only: a client that retries (and refreshes its session) always gets through."""


@dataclass
class _Session:
    """An access token's life: when it was issued and how many requests it has served."""

    issued: float
    uses: int = 0


@dataclass
class Stats:
    api_calls: int = 0
    requests: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    logins: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    """Faults applied, by kind: the `fault_mix` name for drawn ones, the `inject` kind for queued ones."""
    queries: list[str] = field(default_factory=list)
    """The request log of SOQL: every query's text as received (top level or in a composite), in order."""
    searches: list[str] = field(default_factory=list)
    """The request log of SOSL: every search's text as received, in order."""


@dataclass(frozen=True)
class RecordRule:
    """A validation rule whose formula is `field = value` on one object (Salesforce evaluates
    validation rules per record, so one record of a collection can fail while the others save)."""

    sobject: str
    field: str
    value: str
    message: str

    def matches(self, sobject: str, parts: list[str], payload: Any) -> bool:
        if sobject != self.sobject:
            return False
        values = payload if isinstance(payload, dict) else {}
        by_url = (
            len(parts) == 3 and parts[1] == self.field and parts[2] == self.value
        )  # upsert by external id
        return by_url or values.get(self.field) == self.value


class SalesforceEmulator:
    """Start with `start()`; `instance_url`, `ca_file` and `issue_token()` are what a client needs."""

    def __init__(
        self,
        org: Org,
        *,
        daily_limit: int | None = None,
        page_size: int = 2000,
        child_page_size: int | None = None,
        client_id: str = "callmatch-client",
        client_secret: str = "callmatch-secret",
        refresh_token: str = "refresh-token",
        username: str = API_USERNAME,
        password: str = "password+token",
    ):
        self.org = org
        self._daily_limit = daily_limit
        self.page_size = page_size
        self.child_page_size = child_page_size
        self.stats = Stats()
        self.faults: deque[Fault] = deque()
        self.fault_rate = 0.0
        self.fault_mix: dict[str, float] = dict(DEFAULT_FAULT_MIX)
        self.fault_rng = random.Random()
        self.token_fault_rate = 0.0
        self.session_min_age = 2.0
        self.latency = 0.0
        self.validation_rules: dict[str, str] = {}
        """An org's validation rule refusing every create/update of an object: sObject name -> its message."""
        self.record_rules: list[RecordRule] = []
        """Validation rules of the form `field = value`: only the records they match are refused."""
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.username = username
        self.password = password
        self._tokens: dict[str, _Session] = {}
        self._cursors: dict[str, tuple[list[RecordData], int]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.cert_file, self.key_file = certificate()

    @property
    def daily_limit(self) -> int:
        """The org's daily API request limit: the profile's unless a test set one."""
        return self._daily_limit if self._daily_limit is not None else self.org.profile.daily_api_limit

    @daily_limit.setter
    def daily_limit(self, value: int) -> None:
        self._daily_limit = value

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> SalesforceEmulator:
        emulator = self

        class Handler(_Handler):
            owner = emulator

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        self._server = serve(Handler, "sf-emulator", tls=context)
        return self

    def stop(self) -> None:
        if self._server is not None:
            shut(self._server)
            self._server = None

    def __enter__(self) -> SalesforceEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return int(self._server.server_address[1])

    @property
    def instance_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> str:
        return str(self.cert_file)

    # --- sessions and faults -----------------------------------------------------------------------

    def issue_token(self) -> str:
        token = "00D" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = _Session(time.monotonic())
        return token

    def expire_sessions(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _known(self, token: str) -> str | None:
        return next((k for k in self._tokens if hmac.compare_digest(token, k)), None)

    def token_valid(self, token: str) -> bool:
        """Whether the session is live; counts the request as one of its uses."""
        with self._lock:
            known = self._known(token)
            if known is not None:
                self._tokens[known].uses += 1
            return known is not None

    def revoke_if_old(self, token: str) -> bool:
        """End one session, as Salesforce does when it times out; never one just issued.

        A client retries at once with the session it just fetched: expiring that one too
        would be a fault no retry passes (and not what Salesforce does), so a session is
        spared until it has served a request and is `session_min_age` seconds old.
        """
        with self._lock:
            known = self._known(token)
            if known is None:
                return False
            session = self._tokens[known]
            if session.uses < 1 or time.monotonic() - session.issued < self.session_min_age:
                return False
            del self._tokens[known]
            return True

    def inject(self, kind: str, times: int = 1, *, status: int = 503, seconds: float = 0.0) -> None:
        for _ in range(times):
            self.faults.append(Fault(kind, status, seconds))

    def seed_faults(self, seed: int | None) -> None:
        """Make the drawn faults repeatable (for one request order: threads still interleave)."""
        self.fault_rng = random.Random(seed)

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1

    def next_fault(self) -> tuple[str, Fault] | None:
        """The queued fault if any, else one drawn at `fault_rate` from `fault_mix`: (name, fault)."""
        with self._lock:
            if self.faults:
                fault = self.faults.popleft()
                return fault.kind, fault
            if self.fault_rate <= 0 or self.fault_rng.random() >= self.fault_rate:
                return None
            kinds = [k for k, w in self.fault_mix.items() if w > 0]
            if not kinds:
                return None
            name = self.fault_rng.choices(kinds, [self.fault_mix[k] for k in kinds])[0]
        if name not in RATE_KINDS:
            raise ValueError(f"unknown fault kind {name!r} in fault_mix (known: {', '.join(RATE_KINDS)})")
        return name, RATE_KINDS[name]

    def token_fault(self) -> bool:
        """Whether this token request gets a 503 (only 5xx there: a refresh always passes in the end)."""
        with self._lock:
            return self.token_fault_rate > 0 and self.fault_rng.random() < self.token_fault_rate

    def limit_info(self) -> str:
        return f"api-usage={self.stats.api_calls}/{self.daily_limit}"


class _Handler(BaseHTTPRequestHandler):
    owner: SalesforceEmulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def handle(self) -> None:
        """A client that went away mid-request (a SIGKILLed worker) is no error of the emulator's."""
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _handle(self, method: str) -> None:
        emulator = self.owner
        with emulator._lock:
            emulator.stats.requests += 1
        url = urlsplit(self.path)
        body = self._body()
        if url.path == "/services/oauth2/token":
            self._token(body)
            return
        if url.path == "/services/oauth2/userinfo" or url.path.startswith("/id/"):
            self._identity(url.path)
            return
        if not url.path.startswith("/services/data/"):
            self._send(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
            return
        if len(self.path.encode()) > MAX_URI_BYTES:
            # Salesforce: "the URI for a GET request is limited to 16,384 bytes"; longer ones get 414.
            self._send(414, [{"errorCode": "URI_TOO_LONG", "message": "The request URI is too long"}])
            return
        if emulator.latency:
            time.sleep(emulator.latency)
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        drawn = emulator.next_fault()
        fault: Fault | None = None
        if drawn is not None:
            name, fault = drawn
            if fault.kind == "expire_token" and not emulator.revoke_if_old(token):
                fault = None  # a session fetched moments ago: spared (see revoke_if_old)
            else:
                emulator.count_fault(name)
        if fault is not None:
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            elif fault.kind == "reset":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            elif fault.kind == "expire":
                emulator.expire_sessions()
            elif fault.kind == "status":
                self._send(fault.status, _server_error(fault.status))
                return
            elif fault.kind == "limit_daily":
                self._send(
                    403,
                    [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
                    {"Sforce-Limit-Info": emulator.limit_info()},
                )
                return
            elif fault.kind == "limit_concurrent":
                self._send(
                    403,
                    [
                        {
                            "errorCode": "REQUEST_LIMIT_EXCEEDED",
                            "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                        }
                    ],
                    {"Sforce-Limit-Info": emulator.limit_info()},
                )
                return
        if not token or not emulator.token_valid(token):
            self._send(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
            return
        rest = url.path[len("/services/data/") :]
        _version, _, resource = rest.partition("/")
        key = resource.split("/", 1)[0] or "root"
        with emulator._lock:
            over = emulator.stats.api_calls >= emulator.daily_limit
            if not over:
                emulator.stats.api_calls += 1
                emulator.stats.by_path[key] = emulator.stats.by_path.get(key, 0) + 1
        if over:
            self._send(
                403,
                [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
                {"Sforce-Limit-Info": emulator.limit_info()},
            )
            return
        payload = json.loads(body) if body else None
        try:
            status, result = dispatch(
                emulator, method, resource, parse_qs(url.query), payload, top_level=True
            )
        except OrgError as error:
            status, result = error.status, error.body()
        if fault is not None and fault.kind == "lost_reply":
            # The request was carried out (a write is in the org); only its answer is lost.
            self._send(fault.status, _server_error(fault.status))
            return
        self._send(status, result, {"Sforce-Limit-Info": emulator.limit_info()})

    def _identity(self, path: str) -> None:
        """The OpenID Connect UserInfo endpoint and the identity URL: who the access token belongs to."""
        emulator = self.owner
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if not token or not emulator.token_valid(token):
            self._send(403, "Bad_OAuth_Token")
            return
        if path.startswith("/id/") and path.rstrip("/") != f"/id/{ORG_ID}/{API_USER_ID}":
            self._send(404, "Bad_Id")
            return
        self._send(200, userinfo(emulator, identity=path.startswith("/id/")))

    def _token(self, body: bytes) -> None:
        emulator = self.owner
        if emulator.token_fault():
            emulator.count_fault("token_unavailable")
            self._send(
                503,
                {"error": "temporarily_unavailable", "error_description": "service temporarily unavailable"},
            )
            return
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        client_ok = hmac.compare_digest(
            form.get("client_id", ""), emulator.client_id
        ) and hmac.compare_digest(form.get("client_secret", ""), emulator.client_secret)
        grant = form.get("grant_type")
        ok = False
        if grant == "refresh_token":
            ok = client_ok and hmac.compare_digest(form.get("refresh_token", ""), emulator.refresh_token)
        elif grant == "password":
            ok = (
                client_ok
                and hmac.compare_digest(form.get("username", ""), emulator.username)
                and hmac.compare_digest(form.get("password", ""), emulator.password)
            )
        if not ok:
            self._send(400, {"error": "invalid_grant", "error_description": "authentication failure"})
            return
        with emulator._lock:
            emulator.stats.logins += 1
        token = emulator.issue_token()
        self._send(
            200,
            {
                "access_token": token,
                "instance_url": emulator.instance_url,
                "id": f"{emulator.instance_url}/id/{ORG_ID}/{API_USER_ID}",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "signature": "emulated",
            },
        )


def _server_error(status: int) -> list[dict[str, str]]:
    """The bodies Salesforce sends with a 503 (SERVER_UNAVAILABLE) and a 500 (UNKNOWN_EXCEPTION)."""
    if status == 503:
        return [
            {
                "errorCode": "SERVER_UNAVAILABLE",
                "message": "Server temporarily unavailable, please try again later.",
            }
        ]
    return [
        {
            "errorCode": "UNKNOWN_EXCEPTION",
            "message": "An unexpected error occurred. Please include this ErrorId if you contact support: "
            f"{secrets.randbelow(10**9)}-{secrets.randbelow(10**5)} ({-secrets.randbelow(10**9)})",
        }
    ]


def _records_page(
    emulator: SalesforceEmulator, rows: list[RecordData], start: int, version: str
) -> dict[str, Any]:
    end = start + emulator.page_size
    page = [_page_children(emulator, row, version) for row in rows[start:end]]
    result: dict[str, Any] = {"totalSize": len(rows), "done": end >= len(rows), "records": page}
    if end < len(rows):
        locator = "01g" + secrets.token_hex(6)
        with emulator._lock:
            emulator._cursors[locator] = (rows, end)
        result["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{end}"
    return result


def _page_children(emulator: SalesforceEmulator, record: RecordData, version: str) -> RecordData:
    """Subquery results page like query results (`done` false, a `nextRecordsUrl` for query_more)
    once a record has more children than `child_page_size`."""
    size = emulator.child_page_size
    if size is None:
        return record
    out = dict(record)
    for key, value in record.items():
        if (
            isinstance(value, dict)
            and isinstance(value.get("records"), list)
            and len(value["records"]) > size
        ):
            children = list(value["records"])
            locator = "01g" + secrets.token_hex(6)
            with emulator._lock:
                emulator._cursors[locator] = (children, size)
            out[key] = {
                "totalSize": len(children),
                "done": False,
                "records": children[:size],
                "nextRecordsUrl": f"/services/data/v{version}/query/{locator}-{size}",
            }
    return out


def dispatch(
    emulator: SalesforceEmulator,
    method: str,
    resource: str,
    params: dict[str, list[str]],
    payload: Any,
    *,
    top_level: bool,
    version: str = API_VERSION,
) -> tuple[int, Any]:
    """One REST request against the org: (status, JSON body). Raises OrgError for API errors."""
    org = emulator.org
    parts = [unquote(p) for p in resource.strip("/").split("/")] if resource.strip("/") else []
    if not parts:
        return 200, {"sobjects": f"/services/data/v{version}/sobjects"}
    head = parts[0]
    if head in ("query", "queryAll") and method == "GET":
        if len(parts) == 2:
            locator, _, _offset = parts[1].rpartition("-")
            with emulator._lock:
                cursor = emulator._cursors.pop(locator, None)
            if cursor is None:
                raise OrgError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            rows, start = cursor
            return 200, _records_page(emulator, rows, start, version)
        text = (params.get("q") or [""])[0]
        if not text:
            raise OrgError(400, "MALFORMED_QUERY", "q parameter is required")
        with emulator._lock:
            emulator.stats.queries.append(text)
        rows = org.query(text, include_deleted=head == "queryAll")
        return 200, _records_page(emulator, rows, 0, version)
    if head == "search" and method == "GET":
        text = (params.get("q") or [""])[0]
        with emulator._lock:
            emulator.stats.searches.append(text)
        return 200, {"searchRecords": org.search(text)}
    if head == "composite" and len(parts) >= 2 and parts[1] == "sobjects":
        return _collections(emulator, method, parts[2:], params, payload, version)
    if head == "composite" and method == "POST" and len(parts) == 1:
        if not top_level:
            raise OrgError(400, "INVALID_API_INPUT", "composite cannot be nested")
        return 200, _composite(emulator, payload)
    if head == "sobjects" and len(parts) == 1 and method == "GET":
        return 200, describe_global(emulator, version)
    if head == "sobjects" and len(parts) >= 2:
        return _sobjects(emulator, method, parts[1:], payload)
    if head == "limits" and method == "GET":
        return 200, limits(emulator)
    if head == "tooling" and len(parts) >= 2:
        if not top_level:
            raise OrgError(400, "INVALID_API_INPUT", "the Tooling API is not a composite subrequest")
        return tooling(emulator, method, parts[1:], params, payload)
    raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")


def _sobjects(emulator: SalesforceEmulator, method: str, parts: list[str], payload: Any) -> tuple[int, Any]:
    org = emulator.org
    try:
        sobject = org.sobject(parts[0])
    except OrgError as error:
        # The REST resource of an object the org lacks (or the user may not read) does not exist.
        raise OrgError(404, "NOT_FOUND", "The requested resource does not exist") from error
    if len(parts) >= 2 and parts[1] == "describe" and method == "GET":
        return 200, describe(emulator, sobject.name)
    rule = emulator.validation_rules.get(sobject.name)
    if rule is not None and method in ("POST", "PATCH"):
        raise OrgError(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", rule)
    if method in ("POST", "PATCH"):
        for record_rule in emulator.record_rules:
            if record_rule.matches(sobject.name, parts, payload):
                raise OrgError(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", record_rule.message)
    if len(parts) == 1:
        if method != "POST":
            raise OrgError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,POST"
            )
        _allowed(emulator, sobject.name, "create")
        values = _values(sobject.name, payload)
        _refuse_read_only(org, sobject.name, values, "create")
        if sobject.name in _RELATIONS:
            parent = _RELATIONS[sobject.name]
            with org.lock:
                for row in org.live(sobject.name):
                    if row.get(parent) == values.get(parent) and row.get("RelationId") == values.get(
                        "RelationId"
                    ):
                        raise OrgError(
                            400,
                            "DUPLICATE_VALUE",
                            f"duplicate value found: RelationId duplicates value on record with id: {row['Id']}",
                        )
                _check_references(org, sobject, values)
                if sobject.name == "EventRelation" and not org.profile.shared_activities:
                    values.setdefault("IsInvitee", True)  # without Shared Activities a relation is an invitee
                record_id = org.insert(sobject.name, values, api=True)
            return 201, {"id": record_id, "success": True, "errors": []}
        if sobject.name == "FieldPermissions":
            _check_field_permission(org, values)
        _check_references(org, sobject, values)
        record_id = org.insert(sobject.name, values, api=True)
        return 201, {"id": record_id, "success": True, "errors": []}
    if len(parts) == 2:
        record_id = parts[1]
        if method == "GET":
            record = org.records[sobject.name].get(record_id)
            if record is None or record["IsDeleted"]:
                raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
            return 200, _full(org, sobject.name, record)
        if method == "PATCH":
            _allowed(emulator, sobject.name, "edit")
            values = _values(sobject.name, payload)
            _refuse_create_only(sobject.name, values)
            _refuse_read_only(org, sobject.name, values, "update")
            _check_references(org, sobject, values)
            org.update(sobject.name, record_id, values, api=True)
            return 204, None
        if method == "DELETE":
            _allowed(emulator, sobject.name, "delete")
            org.delete(sobject.name, record_id, api=True)
            return 204, None
    if len(parts) == 3:
        field_name = sobject.canonical(parts[1])
        if field_name is None:
            raise OrgError(
                400,
                "INVALID_FIELD",
                f"No such column '{parts[1]}' on sobject of type {sobject.name}",
                [parts[1]],
            )
        info = sobject.field_info(field_name)
        if not (info.external_id or info.id_lookup):
            raise OrgError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {parts[1]}",
            )
        value = parts[2]
        with org.lock:
            matches = org.find_by(sobject.name, field_name, value)
            if len(matches) > 1:
                # The real 300 body: the matching records' URLs, nothing created or updated.
                urls = [f"/services/data/v{API_VERSION}/sobjects/{sobject.name}/{m['Id']}" for m in matches]
                return 300, urls
            if method == "GET":
                if not matches:
                    raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
                return 200, _full(org, sobject.name, matches[0])
            if method == "PATCH":
                values = _values(sobject.name, payload)
                if any(k.lower() == field_name.lower() for k in values):
                    raise OrgError(
                        400, "INVALID_FIELD", f"The external ID field {field_name} must not be in the body"
                    )
                if matches:
                    _allowed(emulator, sobject.name, "edit")
                    _refuse_create_only(sobject.name, values)
                    _refuse_read_only(org, sobject.name, values, "update")
                    _check_references(org, sobject, values)
                    org.update(sobject.name, str(matches[0]["Id"]), values, api=True)
                    return 200, {"id": matches[0]["Id"], "success": True, "errors": [], "created": False}
                _allowed(emulator, sobject.name, "create")
                _refuse_read_only(org, sobject.name, {**values, field_name: value}, "create")
                _check_references(org, sobject, values)
                record_id = org.insert(sobject.name, {**values, field_name: value}, api=True)
                return 201, {"id": record_id, "success": True, "errors": [], "created": True}
    raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")


MAX_COLLECTION = 200  # sObject Collections: "The list can contain up to 200 objects."
COLLECTION_UPSERT_VERSION = 46.0  # "This request is available in API version 46 and later."


def _collection_error(error: OrgError) -> dict[str, Any]:
    """A record's failure as sObject Collections reports it (`statusCode`, not `errorCode`)."""
    return {
        "id": None,
        "success": False,
        "errors": [{"statusCode": error.code, "message": error.message, "fields": error.fields}],
    }


def _collection_records(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        raise OrgError(400, "JSON_PARSER_ERROR", "records is required")
    records = payload["records"]
    if len(records) > MAX_COLLECTION:
        raise OrgError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call",
        )
    if payload.get("allOrNone"):
        # The adapter sends allOrNone false; a rollback of the org is not modelled.
        raise OrgError(
            400, "INVALID_API_INPUT", "the emulator models sObject Collections with allOrNone false only"
        )
    for record in records:
        attributes = record.get("attributes") if isinstance(record, dict) else None
        if not isinstance(attributes, dict) or not attributes.get("type"):
            raise OrgError(400, "INVALID_TYPE", "Must send a concrete entity type.")
    return [dict(r) for r in records]


def _collections(
    emulator: SalesforceEmulator,
    method: str,
    parts: list[str],
    params: dict[str, list[str]],
    payload: Any,
    version: str,
) -> tuple[int, Any]:
    """sObject Collections: create (POST), delete (DELETE ?ids=) and upsert by external id (PATCH).

    With allOrNone false every record is its own outcome; results come in the request's
    order; a malformed request is a 400 for the whole call.
    """
    if method == "POST" and not parts:
        out: list[dict[str, Any]] = []
        for record in _collection_records(payload):
            kind = str(record.pop("attributes")["type"])
            try:
                _, body = _sobjects(emulator, "POST", [kind], record)
                out.append({"id": body["id"], "success": True, "errors": []})
            except OrgError as error:
                out.append(_collection_error(error))
        return 200, out
    if method == "DELETE" and not parts:
        ids = [i for i in ",".join(params.get("ids") or []).split(",") if i]
        if len(ids) > MAX_COLLECTION:
            raise OrgError(400, "EXCEEDED_ID_LIMIT", f"cannot delete more than {MAX_COLLECTION} records")
        if (params.get("allOrNone") or ["false"])[0].lower() == "true":
            raise OrgError(
                400, "INVALID_API_INPUT", "the emulator models sObject Collections with allOrNone false only"
            )
        out = []
        for record_id in ids:
            stored = emulator.org.object_of.get(record_id)
            try:
                if stored is None:
                    raise OrgError(404, "ENTITY_IS_DELETED", "entity is deleted")
                _sobjects(emulator, "DELETE", [stored, record_id], None)
                out.append({"id": record_id, "success": True, "errors": []})
            except OrgError as error:
                out.append(_collection_error(error) | {"id": record_id})
        return 200, out
    if method == "PATCH" and len(parts) == 2:
        if float(version) < COLLECTION_UPSERT_VERSION:
            raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
        kind, field_name = parts
        out = []
        records = _collection_records(payload)
        values = [next((v for k, v in r.items() if k.lower() == field_name.lower()), None) for r in records]
        for record, value in zip(records, values, strict=True):
            if str(record.pop("attributes")["type"]) != kind:
                out.append(
                    _collection_error(OrgError(400, "INVALID_TYPE", f"records must be of type {kind}"))
                )
                continue
            if value is None or value == "":
                out.append(
                    _collection_error(
                        OrgError(400, "MISSING_ARGUMENT", f"{field_name} not specified", [field_name])
                    )
                )
                continue
            if values.count(value) > 1:
                out.append(
                    _collection_error(
                        OrgError(
                            400,
                            "DUPLICATE_EXTERNAL_ID",
                            f"Duplicate external id specified: {value}",
                            [field_name],
                        )
                    )
                )
                continue
            body_values = {k: v for k, v in record.items() if k.lower() != field_name.lower()}
            try:
                status, body = _sobjects(emulator, "PATCH", [kind, field_name, str(value)], body_values)
            except OrgError as error:
                out.append(_collection_error(error))
                continue
            if status == 300:
                found = ", ".join(str(u).rsplit("/", 1)[-1] for u in body)
                out.append(
                    _collection_error(
                        OrgError(
                            400,
                            "DUPLICATE_EXTERNAL_ID",
                            f"{field_name}: more than one record found for external id field: [{found}]",
                            [field_name],
                        )
                    )
                )
                continue
            out.append({"id": body["id"], "success": True, "errors": [], "created": bool(body["created"])})
        return 200, out
    raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")


def _allowed(emulator: SalesforceEmulator, object_name: str, action: str) -> None:
    """Object permissions of the API user: what Salesforce answers a create, edit or delete it lacks."""
    org = emulator.org
    if org.stored_type(object_name).setup and not org.profile.customize_application:
        raise OrgError(
            400,
            "INSUFFICIENT_ACCESS_OR_READONLY",
            "insufficient access rights on object id",
        )
    if org.profile.can(object_name, action):
        return
    verb = {"create": "inserted", "edit": "updated", "delete": "deleted"}[action]
    raise OrgError(
        400,
        "INSUFFICIENT_ACCESS_OR_READONLY" if action != "create" else "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
        f"entity type cannot be {verb}: {object_name}",
    )


def _refuse_read_only(org: Org, object_name: str, values: dict[str, Any], action: str) -> None:
    """A field the user may read but not edit (field-level security, or a system field) is refused."""
    sobject = org.sobject(object_name)
    for key in values:
        name = sobject.canonical(key)
        if name is None or name == "Id":
            continue
        info = sobject.field_info(name)
        if (action == "create" and not info.createable) or (action == "update" and not info.updateable):
            if (object_name, name) not in org.read_only:
                continue  # system fields: the emulator's own seeding and old clients set them
            raise OrgError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {name}. Please check the security settings of this field "
                "and verify that it is read/write for your profile or permission set.",
                [name],
            )


def _check_references(org: Org, sobject: SObjectType, values: dict[str, Any]) -> None:
    """A lookup names a record of an object it may point to (WhoId a Contact or Lead, an
    invitee a person): a known record of another object is FIELD_INTEGRITY_EXCEPTION."""
    for key, value in values.items():
        name = sobject.canonical(key)
        ref = sobject.references.get(name) if name else None
        if ref is None or not isinstance(value, str):
            continue
        kind = org.object_of.get(value)
        if kind is not None and kind not in ref.targets:
            label = sobject.field_info(str(name)).label or str(name)
            raise OrgError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"{label}: id value of incorrect type: {value}",
                [str(name)],
            )


def _check_field_permission(org: Org, values: dict[str, Any]) -> None:
    """FieldPermissions name an existing field as "Object.Field" (a restricted picklist)."""
    field_path = str(values.get("Field") or "")
    obj, _, name = field_path.partition(".")
    stored = org.stored.get("Task" if obj == "Activity" else obj)
    if stored is None or stored.canonical(name) is None or str(values.get("SobjectType") or obj) != obj:
        raise OrgError(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            f"Field Name: bad value for restricted picklist field: {field_path}",
            ["Field"],
        )
    with org.lock:
        for row in org.live("FieldPermissions"):
            if (
                row.get("ParentId") == values.get("ParentId")
                and str(row.get("Field")).lower() == field_path.lower()
            ):
                raise OrgError(
                    400,
                    "DUPLICATE_VALUE",
                    f"duplicate value found: Field duplicates value on record with id: {row['Id']}",
                )


_RELATIONS = {"TaskRelation": "TaskId", "EventRelation": "EventId"}
CREATE_ONLY = {"Task": ("TaskSubtype",)}


def _refuse_create_only(object_name: str, values: dict[str, Any]) -> None:
    """Fields Salesforce sets on create only (Task.TaskSubtype) are refused in an update."""
    for name in CREATE_ONLY.get(object_name, ()):
        if any(key.lower() == name.lower() for key in values):
            raise OrgError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {name}. Please check the security settings of this field "
                "and verify that it is read/write for your profile or permission set.",
                [name],
            )


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def _values(object_name: str, payload: Any) -> dict[str, Any]:
    """JSON field values typed as the org stores them (dates and date-times parsed)."""
    if not isinstance(payload, dict):
        raise OrgError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
    out: dict[str, Any] = {}
    for key, value in payload.items():
        if key == "attributes":
            continue
        if isinstance(value, str) and _DATETIME.match(value):
            out[key] = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("+0000", "+00:00"))
        elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            out[key] = dt.date.fromisoformat(value)
        else:
            out[key] = value
    return out


def _full(org: Org, object_name: str, record: RecordData) -> dict[str, Any]:
    from tests.emulators.salesforce.org import _attributes, _json_value

    out: dict[str, Any] = {"attributes": _attributes(object_name, str(record["Id"]))}
    out |= {k: _json_value(v) for k, v in record.items()}
    return out


_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)\.([A-Za-z0-9_\[\].]+)\}")


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            body = results.get(match.group(1))
            if body is None:
                raise OrgError(400, "INVALID_REFERENCE", f"reference {match.group(1)} has no result")
            current: Any = body
            for part in re.findall(r"[A-Za-z0-9_]+|\[\d+\]", match.group(2)):
                current = current[int(part[1:-1])] if part.startswith("[") else current.get(part)
            return str(current)

        return _REFERENCE.sub(lookup, value)
    if isinstance(value, dict):
        return {k: _resolve(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, results) for v in value]
    return value


def _composite(emulator: SalesforceEmulator, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("compositeRequest"), list):
        raise OrgError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
    subrequests = payload["compositeRequest"]
    if len(subrequests) > MAX_COMPOSITE:
        raise OrgError(400, "LIMIT_EXCEEDED", f"Maximum number of subrequests is {MAX_COMPOSITE}")
    # "Up to 5 of these subrequests can be sObject Collections or query operations."
    queries = sum(
        1
        for s in subrequests
        if re.search(r"/(query|queryAll|composite/sobjects)(/|\?|$)", str(s.get("url", "")))
    )
    if queries > MAX_COMPOSITE_QUERIES:
        raise OrgError(
            400, "LIMIT_EXCEEDED", f"Maximum number of query subrequests is {MAX_COMPOSITE_QUERIES}"
        )
    all_or_none = bool(payload.get("allOrNone"))
    results: dict[str, Any] = {}
    responses: list[dict[str, Any]] = []
    failed = False
    for sub in subrequests:
        reference = str(sub.get("referenceId", ""))
        if failed and all_or_none:
            responses.append(
                {
                    "body": [
                        {
                            "errorCode": "PROCESSING_HALTED",
                            "message": "The transaction was rolled back since another operation in the same transaction failed.",
                        }
                    ],
                    "httpHeaders": {},
                    "httpStatusCode": 400,
                    "referenceId": reference,
                }
            )
            continue
        try:
            url = urlsplit(_resolve(str(sub["url"]), results))
            match = re.match(r"^/services/data/v([0-9.]+)/(.*)$", url.path)
            if match is None:
                raise OrgError(404, "NOT_FOUND", "The requested resource does not exist")
            status, body = dispatch(
                emulator,
                str(sub.get("method", "GET")).upper(),
                match.group(2),
                parse_qs(url.query),
                _resolve(sub.get("body"), results),
                top_level=False,
                version=match.group(1),
            )
        except OrgError as error:
            status, body = error.status, error.body()
        except (KeyError, TypeError, IndexError, AttributeError) as error:
            status, body = 400, [{"errorCode": "INVALID_REFERENCE", "message": f"bad reference: {error}"}]
        if status < 300:
            results[reference] = body
        else:
            failed = True
        headers: dict[str, str] = {}
        if status == 200 and str(sub.get("url", "")).rstrip("/").endswith("/describe"):
            headers = _describe_headers(body)
        responses.append(
            {"body": body, "httpHeaders": headers, "httpStatusCode": status, "referenceId": reference}
        )
    return {"compositeResponse": responses}


def _describe_headers(body: Any) -> dict[str, str]:
    """A describe answers with an ETag and Last-Modified (a client may send If-None-Match)."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    return {"ETag": f'"{digest}"', "Last-Modified": "Thu, 1 Jan 2026 00:00:00 GMT"}


# --- describe -----------------------------------------------------------------------------------------


def _object_flags(org: Org, sobject: SObjectType) -> dict[str, bool]:
    """What the API user may do with an object, as describe reports it."""
    can = org.profile.can
    setup_ok = not sobject.setup or org.profile.customize_application
    derived = sobject.name in ("TaskWhoRelation", "EventWhoRelation")
    return {
        "queryable": can(sobject.name, "read"),
        "retrieveable": can(sobject.name, "read"),
        "createable": can(sobject.name, "create") and setup_ok and not derived,
        "updateable": can(sobject.name, "edit") and setup_ok and not derived,
        "deletable": can(sobject.name, "delete") and setup_ok and not derived,
        "searchable": sobject.searchable and can(sobject.name, "read"),
    }


def _urls(name: str, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{name}"
    return {
        "rowTemplate": f"{base}/{{ID}}",
        "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
        "describe": f"{base}/describe",
        "sobject": base,
    }


def _object_summary(org: Org, sobject: SObjectType, version: str) -> dict[str, Any]:
    return {
        "activateable": False,
        "custom": sobject.name.endswith("__c"),
        "customSetting": False,
        "feedEnabled": sobject.searchable,
        "keyPrefix": sobject.key_prefix,
        "label": sobject.label or sobject.name,
        "labelPlural": (sobject.label or sobject.name) + "s",
        "layoutable": sobject.searchable,
        "mergeable": sobject.name in ("Account", "Contact", "Lead"),
        "mruEnabled": sobject.searchable,
        "name": sobject.name,
        "replicateable": True,
        "triggerable": True,
        "undeletable": sobject.searchable,
        **_object_flags(org, sobject),
        "urls": _urls(sobject.name, version),
    }


def describe_global(emulator: SalesforceEmulator, version: str = API_VERSION) -> dict[str, Any]:
    """GET /sobjects: every object the org has (an object the user may not read is listed, queryable false)."""
    org = emulator.org
    with org.lock:
        objects = [_object_summary(org, sobject, version) for sobject in org.stored.values()]
    return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sorted(objects, key=lambda o: o["name"])}


def describe(emulator: SalesforceEmulator, object_name: str, version: str = API_VERSION) -> dict[str, Any]:
    """GET /sobjects/{Object}/describe: the fields the API user sees, its child relationships and rights."""
    org = emulator.org
    with org.lock:
        sobject = org.sobject(object_name)
        fields = []
        for name, kind in sobject.fields.items():
            info = sobject.field_info(name)
            ref = sobject.references.get(name)
            fields.append(
                {
                    "name": name,
                    "label": info.label or name,
                    "type": kind,
                    "soapType": _SOAP_TYPES.get(kind, "xsd:string"),
                    "custom": info.custom,
                    "externalId": info.external_id,
                    "unique": info.unique,
                    "caseSensitive": info.case_sensitive,
                    "idLookup": info.id_lookup,
                    "createable": info.createable,
                    "updateable": info.updateable,
                    "filterable": info.filterable,
                    "sortable": info.filterable,
                    "groupable": info.filterable and kind not in ("datetime", "double", "currency"),
                    "nillable": info.nillable,
                    "defaultedOnCreate": kind == "boolean"
                    or name in ("Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"),
                    "length": info.length,
                    "picklistValues": [
                        {
                            "active": True,
                            "defaultValue": False,
                            "label": value,
                            "validFor": None,
                            "value": value,
                        }
                        for value in PICKLIST_VALUES.get((sobject.name, name), ())
                    ],
                    "referenceTo": list(ref.targets) if ref else [],
                    "relationshipName": ref.relationship if ref else None,
                    "polymorphicForeignKey": bool(ref and len(ref.targets) > 1),
                }
            )
        children = [
            {
                "cascadeDelete": False,
                "childSObject": child,
                "deprecatedAndHidden": False,
                "field": child_field,
                "relationshipName": relationship,
                "restrictedDelete": False,
            }
            for relationship, (child, child_field) in sobject.children.items()
        ]
        return {
            **_object_summary(org, sobject, version),
            "fields": fields,
            "childRelationships": children,
        }


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}
