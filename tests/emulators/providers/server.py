"""One HTTP emulator of the five providers' APIs on 127.0.0.1, with the auth each one uses.

- Aircall `GET /v1/calls/{id}` and `GET /v1/ping` (Basic api_id:api_token)
- Ringover `GET /v2/calls/{id}` and `GET /v2/teams` (Authorization: the API key)
- Zoom `POST /oauth/token` (account_credentials; the response's `scope` lists the app's scopes),
  `GET /v2/past_meetings/{uuid}/participants` (the UUID double-encoded; paged by next_page_token)
  and `GET /v2/users/{id}` (`me`: the account owner); past meeting details, meetings (with
  `settings.meeting_invitees`) and their registrants (paged by next_page_token); a token without
  the scope a route needs gets Zoom's 400 code 4711 "does not contain scopes"
- Google `POST /token` (JWT bearer grant, the assertion checked against the service account key;
  a subject whose requested scopes domain-wide delegation does not cover gets 401
  `unauthorized_client`), Meet `conferenceRecords` (list and get), `participants`, `spaces`,
  Admin directory users, Calendar events
- Graph `POST /{tenant}/oauth2/v2.0/token` (a JWT whose `roles` claim lists the application
  permissions granted, absent when none is), `callRecords` (list and get), `participants_v2`
  (paged by @odata.nextLink), `users/{id}`; a route the token's roles do not allow answers 403

- Graph `POST/GET/PATCH/DELETE /v1.0/subscriptions[/{id}]` (callRecords only, at most 4230 minutes,
  https notification URLs, clientState at most 128 characters, the URLs validated through
  `state.graph_validate` when a test sets it; the list is the app's own, paged, clientState null) and
  `graph_lifecycle` to build a lifecycle notification;
  the callRecords list filters on startDateTime (lt/le/gt/ge) and pages by @odata.nextLink
- Workspace Events `POST/GET/PATCH/DELETE /v1/subscriptions[/{id}]` and `:reactivate` (long-running
  Operations, ttl at most 7 days, ALREADY_EXISTS for a second one on the same target), the list
  (`filter` on event_types / target_resource as documented, pageSize/pageToken), and
  `workspace_lifecycle` to build a lifecycle event's Pub/Sub message; subscriptions use `state.clock`

Tests seed `state`, queue faults with `fail_next` (a status and headers served once per
matching request) and `revoke_tokens` to make every issued bearer token expire.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt


@dataclass
class Fault:
    path: str
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    times: int


@dataclass
class State:
    aircall_auth: tuple[str, str] = ("api-id", "api-token")
    aircall_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    ringover_key: str = "ringover-api-key"
    ringover_calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    ringover_team: dict[str, Any] = field(default_factory=lambda: {"team_id": 4211, "name": "Our Co"})
    zoom_client: tuple[str, str, str] = ("zoom-account", "zoom-client", "zoom-secret")
    zoom_participants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    zoom_users: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The Server-to-Server OAuth app's scopes (granular names), as its token response lists them.
    zoom_scopes: tuple[str, ...] = ("meeting:read:list_past_participants:admin", "user:read:user:admin")
    zoom_owner: dict[str, Any] = field(
        default_factory=lambda: {"id": "KDcuGIm1QgePTO8WbOqwIQ", "email": "owner@ourco.com", "type": 2}
    )
    # Past meeting details by UUID (`id` is the numeric meeting id), meetings by id (with
    # `settings.meeting_invitees`) and their registrants by meeting id.
    zoom_past_meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    zoom_meetings: dict[str, dict[str, Any]] = field(default_factory=dict)
    zoom_registrants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    google_public_key: str = ""
    google_jwks: dict[str, Any] = field(default_factory=dict)
    google_client_email: str = ""
    # Scopes the Admin console's domain-wide delegation grants the service account; None: any.
    google_delegated_scopes: frozenset[str] | None = None
    meet_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    meet_participants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    meet_spaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    directory_users: dict[str, dict[str, Any]] = field(default_factory=dict)
    calendar_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    graph_client: tuple[str, str] = ("graph-client", "graph-secret")
    graph_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    graph_participants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    graph_users: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Application permissions an admin consented to for the app registration.
    graph_roles: tuple[str, ...] = ("CallRecords.Read.All", "User.Read.All")
    # Subscriptions: their own clock (tests move it), Graph's and Workspace Events' stores.
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    graph_subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (url, validationToken) -> whether the endpoint echoed it; None: Graph's validation is skipped.
    graph_validate: Callable[[str, str], bool] | None = None
    workspace_subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A suspension's cause still present (e.g. ENDPOINT_PERMISSION_DENIED): reactivate is refused.
    workspace_blocked: str | None = None
    # Domain-wide delegation without the Admin directory scope: users.get answers 403.
    directory_denied: bool = False


class _Reply(Exception):
    def __init__(self, status: int, body: object, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


Route = Callable[["ProviderEmulator", "Request", re.Match[str]], object]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]
    body: bytes = b""


class ProviderEmulator:
    def __init__(self) -> None:
        self.state = State()
        self.log: list[tuple[str, str]] = []
        self._faults: list[Fault] = []
        self._tokens: dict[str, str] = {}
        self._grants: dict[str, frozenset[str]] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> ProviderEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(
        self, path: str, status: int, headers: dict[str, str] | None = None, times: int = 1, body: Any = None
    ) -> None:
        with self._lock:
            self._faults.append(Fault(path, status, headers or {}, body or {"error": "injected"}, times))

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._grants.clear()

    def calls(self, prefix: str = "") -> list[str]:
        with self._lock:
            return [f"{m} {p}" for m, p in self.log if p.startswith(prefix)]

    # -- plumbing -----------------------------------------------------------------------

    def _issue(self, who: str, grants: tuple[str, ...] = (), token: str | None = None) -> dict[str, Any]:
        token = token or f"tok-{next(self._counter)}"
        with self._lock:
            self._tokens[token] = who
            self._grants[token] = frozenset(grants)
        return {"access_token": token, "token_type": "bearer", "expires_in": 3600}

    def _granted(self, request: Request) -> frozenset[str]:
        """The scopes or roles of the request's bearer token (401 when it has none we issued)."""
        self._bearer(request)
        with self._lock:
            return self._grants.get(request.headers["authorization"][7:], frozenset())

    def _bearer(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        with self._lock:
            who = self._tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if who is None:
            raise _Reply(401, {"code": 124, "message": "Invalid access token."})
        return who

    def _fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path) and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def dispatch(self, request: Request) -> tuple[int, object, dict[str, str]]:
        with self._lock:
            self.log.append((request.method, request.path))
        fault = self._fault(request.path)
        if fault is not None:
            return fault.status, fault.body, fault.headers
        for method, pattern, route in ROUTES:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                try:
                    return 200, route(self, request, match), {}
                except _Reply as reply:
                    return reply.status, reply.body, reply.headers
        return 404, {"error": "no such route"}, {}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()} if raw else {}
                request = Request(
                    method=self.command,
                    path=split.path,
                    query={k: v[0] for k, v in parse_qs(split.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    form=form,
                    body=raw,
                )
                status, body, headers = emulator.dispatch(request)
                payload = b"" if status == 204 else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _serve
            do_POST = _serve
            do_PATCH = _serve
            do_DELETE = _serve

        return Handler


def _page(
    rows: list[dict[str, Any]], request: Request, size_key: str, token_key: str
) -> tuple[list[Any], str]:
    size = int(request.query.get(size_key, "30"))
    start = int(request.query.get(token_key) or 0)
    chunk = rows[start : start + size]
    following = start + size
    return chunk, str(following) if following < len(rows) else ""


# -- Aircall ----------------------------------------------------------------------------


def aircall_call(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    expected = base64.b64encode(":".join(emu.state.aircall_auth).encode()).decode()
    if request.headers.get("authorization") != f"Basic {expected}":
        raise _Reply(401, {"error": "Unauthorized", "troubleshoot": "Check your API key"})
    call = emu.state.aircall_calls.get(match["id"])
    if call is None:
        raise _Reply(404, {"error": "Not found", "troubleshoot": "Call not found"})
    return {"call": call}


def aircall_ping(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    expected = base64.b64encode(":".join(emu.state.aircall_auth).encode()).decode()
    if request.headers.get("authorization") != f"Basic {expected}":
        raise _Reply(401, {"error": "Unauthorized", "troubleshoot": "Check your API key"})
    return {"ping": "pong"}


# -- Ringover ---------------------------------------------------------------------------


def ringover_call(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    if request.headers.get("authorization") != emu.state.ringover_key:
        raise _Reply(401, {"message": "Unauthorized"})
    call = emu.state.ringover_calls.get(match["id"])
    if call is None:
        raise _Reply(204, None)
    return {"call_list_count": 1, "call_list": [call]}


def ringover_teams(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    if request.headers.get("authorization") != emu.state.ringover_key:
        raise _Reply(401, {"message": "Unauthorized"})
    return emu.state.ringover_team


# -- Zoom -------------------------------------------------------------------------------

ZOOM_PAST_PARTICIPANTS = ("meeting:read:list_past_participants:admin", "meeting:read:admin")
ZOOM_READ_USER = ("user:read:user:admin", "user:read:admin")


def _zoom_scopes(emu: ProviderEmulator, request: Request, any_of: tuple[str, ...]) -> None:
    """Zoom answers a token lacking the route's scope with 400 and code 4711."""
    if not emu._granted(request).intersection(any_of):
        message = f"Invalid access token, does not contain scopes:[{', '.join(any_of)}]."
        raise _Reply(400, {"code": 4711, "message": message})


def zoom_token(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    account, client, secret = emu.state.zoom_client
    expected = base64.b64encode(f"{client}:{secret}".encode()).decode()
    if request.headers.get("authorization") != f"Basic {expected}":
        raise _Reply(401, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
    if request.form.get("grant_type") != "account_credentials" or request.form.get("account_id") != account:
        raise _Reply(400, {"reason": "Invalid request", "error": "invalid_request"})
    body = emu._issue("zoom", emu.state.zoom_scopes)
    return {**body, "scope": " ".join(emu.state.zoom_scopes), "api_url": emu.base_url}


def zoom_participants(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    _zoom_scopes(emu, request, ZOOM_PAST_PARTICIPANTS)
    uuid = unquote(unquote(match["uuid"]))
    rows = emu.state.zoom_participants.get(uuid)
    if rows is None:
        raise _Reply(404, {"code": 3001, "message": "Meeting does not exist."})
    chunk, following = _page(rows, request, "page_size", "next_page_token")
    return {
        "page_count": 1,
        "page_size": int(request.query.get("page_size", "30")),
        "total_records": len(rows),
        "next_page_token": following,
        "participants": chunk,
    }


def zoom_user(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    _zoom_scopes(emu, request, ZOOM_READ_USER)
    user_id = unquote(match["id"])
    user = emu.state.zoom_owner if user_id == "me" else emu.state.zoom_users.get(user_id)
    if user is None:
        raise _Reply(404, {"code": 1001, "message": "User does not exist."})
    return user


ZOOM_PAST_MEETING = ("meeting:read:past_meeting:admin", "meeting:read:admin")
ZOOM_MEETING = ("meeting:read:meeting:admin", "meeting:read:admin")
ZOOM_REGISTRANTS = ("meeting:read:list_registrants:admin", "meeting:read:admin")


def zoom_past_meeting(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    """`GET /past_meetings/{meetingUUID}` (UUID double-encoded): the meeting's details, numeric `id` included."""
    _zoom_scopes(emu, request, ZOOM_PAST_MEETING)
    meeting = emu.state.zoom_past_meetings.get(unquote(unquote(match["uuid"])))
    if meeting is None:
        raise _Reply(404, {"code": 3001, "message": "Meeting does not exist."})
    return meeting


def zoom_meeting(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    """`GET /meetings/{meetingId}`: the meeting with its settings (`meeting_invitees`)."""
    _zoom_scopes(emu, request, ZOOM_MEETING)
    meeting = emu.state.zoom_meetings.get(match["id"])
    if meeting is None:
        raise _Reply(404, {"code": 3001, "message": "Meeting does not exist."})
    return meeting


def zoom_registrants(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    """`GET /meetings/{meetingId}/registrants`: paged by `next_page_token`, filtered by `status`."""
    _zoom_scopes(emu, request, ZOOM_REGISTRANTS)
    if match["id"] not in emu.state.zoom_meetings:
        raise _Reply(404, {"code": 3001, "message": "Meeting does not exist."})
    status = request.query.get("status", "approved")
    rows = [
        r for r in emu.state.zoom_registrants.get(match["id"], []) if r.get("status", "approved") == status
    ]
    chunk, following = _page(rows, request, "page_size", "next_page_token")
    return {
        "page_count": -(-len(rows) // int(request.query.get("page_size", "30"))),
        "page_size": int(request.query.get("page_size", "30")),
        "total_records": len(rows),
        "next_page_token": following,
        "registrants": chunk,
    }


# -- Google -----------------------------------------------------------------------------


def google_token(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    if request.form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        raise _Reply(400, {"error": "unsupported_grant_type"})
    try:
        claims = jwt.decode(
            request.form.get("assertion", ""),
            emu.state.google_public_key,
            algorithms=["RS256"],
            audience=f"{emu.base_url}/token",
        )
    except jwt.InvalidTokenError:
        raise _Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}) from None
    if claims.get("iss") != emu.state.google_client_email or not claims.get("sub"):
        raise _Reply(400, {"error": "invalid_grant"})
    delegated = emu.state.google_delegated_scopes
    impersonates = claims["sub"] != claims["iss"]
    if impersonates and delegated is not None and not set(str(claims.get("scope", "")).split()) <= delegated:
        raise _Reply(
            401,
            {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using this method,"
                " or client not authorized for any of the scopes requested.",
            },
        )
    return emu._issue(str(claims["sub"]))


def google_certs(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    return emu.state.google_jwks


def meet_records(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    emu._bearer(request)
    rows = list(emu.state.meet_records.values())
    chunk, following = _page(rows, request, "pageSize", "pageToken")
    return {"conferenceRecords": chunk, "nextPageToken": following}


def meet_record(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    emu._bearer(request)
    record = emu.state.meet_records.get(match["id"])
    if record is None:
        raise _Reply(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
    return record


def meet_participants(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    emu._bearer(request)
    rows = emu.state.meet_participants.get(match["id"], [])
    chunk, following = _page(rows, request, "pageSize", "pageToken")
    return {"participants": chunk, "nextPageToken": following, "totalSize": len(rows)}


def meet_space(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    emu._bearer(request)
    space = emu.state.meet_spaces.get(match["id"])
    if space is None:
        raise _Reply(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
    return space


def directory_user(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    emu._bearer(request)
    if emu.state.directory_denied:
        raise _Reply(
            403,
            {
                "error": {
                    "code": 403,
                    "message": "Not Authorized to access this resource/api",
                    "status": "PERMISSION_DENIED",
                }
            },
        )
    user = emu.state.directory_users.get(match["id"])
    if user is None:
        raise _Reply(404, {"error": {"code": 404, "message": "Resource Not Found: userKey"}})
    return user


def calendar_events(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    subject = emu._bearer(request)
    owner = unquote(match["owner"])
    if subject != owner:
        raise _Reply(403, {"error": {"code": 403, "message": "Not allowed"}})
    rows = emu.state.calendar_events.get(owner, [])
    size = int(request.query.get("maxResults", "250"))
    start = int(request.query.get("pageToken") or 0)
    body: dict[str, Any] = {"kind": "calendar#events", "items": rows[start : start + size]}
    if start + size < len(rows):  # Calendar leaves nextPageToken out on the last page
        body["nextPageToken"] = str(start + size)
    return body


# -- Microsoft Graph --------------------------------------------------------------------

GRAPH_SIGNING_KEY = (
    "provider-emulator-graph-signing-key-0123456789"  # Entra signs RS256; no one verifies here
)
GRAPH_CALL_RECORDS = ("CallRecords.Read.All",)
GRAPH_READ_USERS = (
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)


def graph_token(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    client, secret = emu.state.graph_client
    if request.form.get("client_id") != client or request.form.get("client_secret") != secret:
        raise _Reply(401, {"error": "invalid_client"})
    if request.form.get("scope") != "https://graph.microsoft.com/.default":
        raise _Reply(400, {"error": "invalid_scope"})
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": "https://graph.microsoft.com",
        "iss": f"https://sts.windows.net/{match['tenant']}/",
        "tid": match["tenant"],
        "appid": client,
        "idtyp": "app",
        "iat": now,
        "exp": now + 3600,
    }
    if emu.state.graph_roles:  # Entra leaves the claim out when nothing is granted
        claims["roles"] = list(emu.state.graph_roles)
    token = jwt.encode({**claims, "uti": str(next(emu._counter))}, GRAPH_SIGNING_KEY, algorithm="HS256")
    body = emu._issue("graph", emu.state.graph_roles, token)
    return {**body, "token_type": "Bearer", "ext_expires_in": 3600}


def _graph_roles(emu: ProviderEmulator, request: Request, any_of: tuple[str, ...], code: str) -> None:
    """Graph answers 403 when none of the roles a route accepts is in the token."""
    granted = emu._granted(request)
    if not granted.intersection(any_of):
        message = (
            f"Missing role permissions on the request. API requires one of '{', '.join(any_of)}'."
            f" Roles on the request '{', '.join(sorted(granted))}'."
        )
        raise _Reply(403, {"error": {"code": code, "message": message}})


def graph_records(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    _graph_roles(emu, request, GRAPH_CALL_RECORDS, "Forbidden")
    size = int((request.headers.get("prefer") or "odata.maxpagesize=60").rsplit("=", 1)[-1])
    rows = _graph_filtered(emu, request)
    start = int(request.query.get("$skiptoken") or 0)
    body: dict[str, Any] = {
        "@odata.context": f"{emu.base_url}/v1.0/$metadata#communications/callRecords",
        "value": rows[start : start + size],
    }
    if start + size < len(rows):
        query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
        query["$skiptoken"] = str(start + size)
        body["@odata.nextLink"] = f"{emu.base_url}/v1.0/communications/callRecords?{urlencode(query)}"
    return body


def graph_record(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    _graph_roles(emu, request, GRAPH_CALL_RECORDS, "Forbidden")
    record = emu.state.graph_records.get(match["id"])
    if record is None:
        raise _Reply(404, {"error": {"code": "NotFound", "message": "Resource not found"}})
    return record


def graph_participants(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    _graph_roles(emu, request, GRAPH_CALL_RECORDS, "Forbidden")
    rows = emu.state.graph_participants.get(match["id"], [])
    prefer = request.headers.get("prefer") or ""
    size = int(prefer.rsplit("=", 1)[-1]) if prefer.startswith("odata.maxpagesize=") else 2
    size = min(size, 130)  # Graph's maximum page for participants
    start = int(request.query.get("$skiptoken") or 0)
    chunk = rows[start : start + size]
    body: dict[str, Any] = {"value": chunk}
    if start + size < len(rows):
        body["@odata.nextLink"] = (
            f"{emu.base_url}/v1.0/communications/callRecords/{match['id']}/participants_v2?$skiptoken={start + size}"
        )
    return body


def graph_user(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    if not emu._granted(request).intersection(GRAPH_READ_USERS):  # Graph's documented /users 403
        raise _Reply(
            403,
            {
                "error": {
                    "code": "Authorization_RequestDenied",
                    "message": "Insufficient privileges to complete the operation.",
                    "innerError": {"request-id": "00000000-0000-0000-0000-000000000000"},
                }
            },
        )
    user = emu.state.graph_users.get(match["id"])
    if user is None:
        raise _Reply(404, {"error": {"code": "Request_ResourceNotFound"}})
    return user


# -- Subscriptions: Microsoft Graph -----------------------------------------------------

GRAPH_SUBSCRIPTION_MINUTES = 4230  # callRecord's maximum (Graph's subscription lifetime table)
_GRAPH_FILTER = re.compile(r"startDateTime (lt|le|gt|ge) (\S+)")


def _instant(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _graph_iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _graph_error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, {"error": {"code": code, "message": message, "innerError": {}}})


def _graph_filtered(emu: ProviderEmulator, request: Request) -> list[dict[str, Any]]:
    """The list's rows, filtered on startDateTime as Graph documents it (lt, le, gt, ge; `and`)."""
    clauses = [c.strip() for c in request.query.get("$filter", "").split(" and ") if c.strip()]
    tests = []
    for clause in clauses:
        found = _GRAPH_FILTER.fullmatch(clause)
        if found is None:
            raise _graph_error(400, "BadRequest", f"Invalid filter clause: {clause}")
        tests.append((found[1], _instant(found[2])))
    compare = {
        "lt": lambda a, b: a < b,
        "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b,
    }
    rows = []
    for record in emu.state.graph_records.values():
        started = record.get("startDateTime")
        if tests and not started:
            continue
        if all(compare[op](_instant(str(started)), when) for op, when in tests):
            keys = ("id", "type", "startDateTime", "endDateTime", "lastModifiedDateTime", "version")
            rows.append({k: record[k] for k in keys if k in record})
    return rows


def _graph_expiry(emu: ProviderEmulator, value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise _graph_error(400, "InvalidRequest", "expirationDateTime is required.")
    expires = _instant(value)
    now = emu.state.clock()
    if expires <= now:
        raise _graph_error(400, "InvalidRequest", "Subscription expiration date time is in the past.")
    if expires > now + dt.timedelta(minutes=GRAPH_SUBSCRIPTION_MINUTES):
        raise _graph_error(
            400,
            "InvalidRequest",
            f"Subscription expiration can only be {GRAPH_SUBSCRIPTION_MINUTES} minutes in the future.",
        )
    return expires


def graph_subscription_create(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    _graph_roles(emu, request, GRAPH_CALL_RECORDS, "ExtensionError")
    body = json.loads(request.body or b"{}")
    if str(body.get("resource", "")).strip("/") != "communications/callRecords":
        raise _graph_error(400, "InvalidRequest", "Resource not supported by this emulator.")
    changes = str(body.get("changeType", "")).split(",")
    if not changes or not set(changes) <= {"created", "updated"}:
        raise _graph_error(400, "InvalidRequest", "changeType is not supported for this resource.")
    for key in ("notificationUrl", "lifecycleNotificationUrl"):
        url = body.get(key)
        if (key == "notificationUrl" or url is not None) and (
            not isinstance(url, str) or not url.startswith("https://")
        ):
            raise _graph_error(400, "InvalidRequest", f"The {key} must be an HTTPS URL.")
    state = body.get("clientState")
    if state is not None and (not isinstance(state, str) or len(state) > 128):
        raise _graph_error(400, "InvalidRequest", "clientState is longer than 128 characters.")
    expires = _graph_expiry(emu, body.get("expirationDateTime"))
    validate = emu.state.graph_validate
    if validate is not None:
        for url in {body["notificationUrl"], body.get("lifecycleNotificationUrl") or body["notificationUrl"]}:
            token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
            if not validate(url, token):
                raise _graph_error(
                    400,
                    "ValidationError",
                    "Subscription validation request failed. Notification endpoint must respond with"
                    " 200 OK to validation request.",
                )
    subscription = {
        "id": str(uuid.uuid4()),
        "resource": body["resource"],
        "applicationId": emu.state.graph_client[0],
        "changeType": body["changeType"],
        "clientState": state,
        "notificationUrl": body["notificationUrl"],
        "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
        "expirationDateTime": _graph_iso(expires),
        "creatorId": "8f1e4a2c-0000-4000-8000-00000000c0de",
        "latestSupportedTlsVersion": body.get("latestSupportedTlsVersion", "v1_2"),
        "includeResourceData": False,
    }
    with emu._lock:
        emu.state.graph_subscriptions[subscription["id"]] = subscription
    raise _Reply(
        201, {"@odata.context": f"{emu.base_url}/v1.0/$metadata#subscriptions/$entity", **subscription}
    )


def _graph_subscription(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> dict[str, Any]:
    emu._bearer(request)
    subscription = emu.state.graph_subscriptions.get(match["id"])
    if subscription is None:
        raise _graph_error(404, "ResourceNotFound", "The object was not found.")
    return subscription


GRAPH_SUBSCRIPTION_PAGE = 100


def graph_subscription_list(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    """The app's own subscriptions (app-only token), paged by @odata.nextLink.

    Graph takes no OData option here (`$select`, `$filter`: 400) and gives `clientState` back as null.
    """
    _graph_roles(emu, request, GRAPH_CALL_RECORDS, "ExtensionError")
    options = sorted(k for k in request.query if k.startswith("$") and k != "$skiptoken")
    if options:
        raise _graph_error(400, "BadRequest", f"Query option '{options[0][1:].title()}' is not allowed.")
    start = int(request.query.get("$skiptoken") or 0)
    rows = [
        {**sub, "clientState": None}
        for sub in emu.state.graph_subscriptions.values()
        if sub.get("applicationId") == emu.state.graph_client[0]
    ]
    body: dict[str, Any] = {
        "@odata.context": f"{emu.base_url}/v1.0/$metadata#subscriptions",
        "value": rows[start : start + GRAPH_SUBSCRIPTION_PAGE],
    }
    if start + GRAPH_SUBSCRIPTION_PAGE < len(rows):
        skip = urlencode({"$skiptoken": start + GRAPH_SUBSCRIPTION_PAGE})
        body["@odata.nextLink"] = f"{emu.base_url}/v1.0/subscriptions?{skip}"
    return body


def graph_subscription_get(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    return _graph_subscription(emu, request, match)


def graph_subscription_update(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    """Renewal: a new expirationDateTime (also what reauthorizes after reauthorizationRequired)."""
    subscription = _graph_subscription(emu, request, match)
    body = json.loads(request.body or b"{}")
    unknown = set(body) - {"expirationDateTime", "notificationUrl"}
    if unknown:
        raise _graph_error(
            400,
            "InvalidRequest",
            f"Only expirationDateTime and notificationUrl can be updated: {sorted(unknown)}",
        )
    subscription["expirationDateTime"] = _graph_iso(_graph_expiry(emu, body.get("expirationDateTime")))
    subscription.pop("needsReauthorization", None)
    return subscription


def graph_subscription_delete(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    _graph_subscription(emu, request, match)
    with emu._lock:
        emu.state.graph_subscriptions.pop(match["id"], None)
    raise _Reply(204, None)


def graph_lifecycle(
    emu: ProviderEmulator, subscription_id: str, event: str, remove: bool = False
) -> dict[str, Any]:
    """The body Graph POSTs to lifecycleNotificationUrl; `remove` drops the subscription first (subscriptionRemoved)."""
    subscription = emu.state.graph_subscriptions[subscription_id]
    if remove:
        emu.state.graph_subscriptions.pop(subscription_id, None)
    return {
        "value": [
            {
                "subscriptionId": subscription_id,
                "subscriptionExpirationDateTime": subscription["expirationDateTime"],
                "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
                "clientState": subscription["clientState"],
                "lifecycleEvent": event,
            }
        ]
    }


# -- Subscriptions: Google Workspace Events --------------------------------------------

WORKSPACE_MAX_TTL = dt.timedelta(days=7)  # Meet, without the resource in the payload
WORKSPACE_MEET_EVENTS = (
    "google.workspace.meet.conference.v2.started",
    "google.workspace.meet.conference.v2.ended",
    "google.workspace.meet.participant.v2.joined",
    "google.workspace.meet.participant.v2.left",
    "google.workspace.meet.recording.v2.fileGenerated",
    "google.workspace.meet.transcript.v2.fileGenerated",
)
_TOPIC = re.compile(r"projects/[^/]+/topics/[^/]+")


def _google_error(status: int, state: str, message: str) -> _Reply:
    return _Reply(status, {"error": {"code": status, "message": message, "status": state}})


def _google_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ttl(value: object) -> dt.timedelta:
    if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d+)?s", value):
        raise _google_error(400, "INVALID_ARGUMENT", "Invalid value at 'subscription.ttl'")
    seconds = float(value[:-1])
    if seconds == 0:
        return WORKSPACE_MAX_TTL
    if dt.timedelta(seconds=seconds) > WORKSPACE_MAX_TTL:
        raise _google_error(
            400, "INVALID_ARGUMENT", "The requested ttl exceeds the maximum allowed for the target resource."
        )
    return dt.timedelta(seconds=seconds)


def _operation(subscription: dict[str, Any] | None) -> dict[str, Any]:
    operation: dict[str, Any] = {"name": f"operations/{uuid.uuid4().hex}", "done": True}
    if subscription is None:
        operation["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
    else:
        operation["response"] = {
            "@type": "type.googleapis.com/google.apps.events.subscriptions.v1.Subscription",
            **subscription,
        }
    return operation


def workspace_create(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    emu._bearer(request)
    body = json.loads(request.body or b"{}")
    target = body.get("targetResource")
    if not isinstance(target, str) or not target.startswith(
        ("//meet.googleapis.com/spaces/", "//cloudidentity.googleapis.com/users/")
    ):
        raise _google_error(400, "INVALID_ARGUMENT", "Invalid target resource.")
    types = body.get("eventTypes")
    if not isinstance(types, list) or not types or not set(types) <= set(WORKSPACE_MEET_EVENTS):
        raise _google_error(400, "INVALID_ARGUMENT", "Invalid event types for the target resource.")
    topic = (body.get("notificationEndpoint") or {}).get("pubsubTopic")
    if not isinstance(topic, str) or not _TOPIC.fullmatch(topic):
        raise _google_error(
            400, "INVALID_ARGUMENT", "notificationEndpoint.pubsubTopic must be projects/*/topics/*."
        )
    if (body.get("payloadOptions") or {}).get("includeResource"):
        raise _google_error(
            400, "INVALID_ARGUMENT", "This emulator keeps Meet subscriptions without resource data."
        )
    ttl = _ttl(body.get("ttl", "0s"))
    for existing in emu.state.workspace_subscriptions.values():
        # One per user, app and target, whatever the event types (Subscription.targetResource's doc).
        if existing["targetResource"] == target:
            raise _google_error(409, "ALREADY_EXISTS", f"A subscription already exists: {existing['name']}")
    now = emu.state.clock()
    sub_id = uuid.uuid4().hex[:24]
    subscription = {
        "name": f"subscriptions/{sub_id}",
        "uid": str(uuid.uuid4()),
        "targetResource": target,
        "eventTypes": types,
        "payloadOptions": body.get("payloadOptions") or {},
        "notificationEndpoint": {"pubsubTopic": topic},
        "state": "ACTIVE",
        "authority": "users/110000000000000000001",
        "createTime": _google_time(now),
        "updateTime": _google_time(now),
        "reconciling": False,
        "expireTime": _google_time(now + ttl),
        "etag": uuid.uuid4().hex,
    }
    with emu._lock:
        emu.state.workspace_subscriptions[sub_id] = subscription
    return _operation(subscription)


def _workspace(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> dict[str, Any]:
    emu._bearer(request)
    subscription = emu.state.workspace_subscriptions.get(match["id"])
    if subscription is None:
        raise _google_error(404, "NOT_FOUND", f"Subscription subscriptions/{match['id']} not found.")
    return subscription


def workspace_get(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    return _workspace(emu, request, match)


def workspace_update(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    """`updateMask=ttl` (or expireTime): a new expiry, at most 7 days from now."""
    subscription = _workspace(emu, request, match)
    body = json.loads(request.body or b"{}")
    mask = request.query.get("updateMask", "")
    now = emu.state.clock()
    if mask == "ttl":
        subscription["expireTime"] = _google_time(now + _ttl(body.get("ttl")))
    elif mask == "expireTime":
        expires = _instant(str(body.get("expireTime")))
        if expires - now > WORKSPACE_MAX_TTL:
            raise _google_error(400, "INVALID_ARGUMENT", "expireTime exceeds the maximum allowed.")
        subscription["expireTime"] = _google_time(expires)
    else:
        raise _google_error(400, "INVALID_ARGUMENT", "updateMask must name ttl or expireTime.")
    subscription["updateTime"] = _google_time(now)
    return _operation(subscription)


def workspace_reactivate(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    subscription = _workspace(emu, request, match)
    if emu.state.workspace_blocked:
        raise _google_error(
            400,
            "FAILED_PRECONDITION",
            f"The subscription cannot be reactivated: {emu.state.workspace_blocked}.",
        )
    subscription["state"] = "ACTIVE"
    subscription.pop("suspensionReason", None)
    subscription["updateTime"] = _google_time(emu.state.clock())
    return _operation(subscription)


def workspace_delete(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    _workspace(emu, request, match)
    with emu._lock:
        emu.state.workspace_subscriptions.pop(match["id"], None)
    return _operation(None)


_WORKSPACE_TYPES = re.compile(
    r"\(\s*({0})\s*\)|({0})".format(r'event_types:"[^"]+"(?:\s+OR\s+event_types:"[^"]+")*')
)
_WORKSPACE_TARGET = re.compile(r'target_resource="([^"]+)"')


def _workspace_filter(text: str) -> tuple[set[str], str | None]:
    """The documented filter: event_types:"T" (several joined by OR, in parentheses when ANDed), at least
    one, optionally AND target_resource="//..."; anything else is INVALID_ARGUMENT."""
    types: set[str] = set()
    target = None
    for part in re.split(r"\s+AND\s+", text.strip()):
        found = _WORKSPACE_TARGET.fullmatch(part.strip())
        if found and target is None:
            target = found[1]
            continue
        group = _WORKSPACE_TYPES.fullmatch(part.strip())
        if group is None or types:
            raise _google_error(400, "INVALID_ARGUMENT", f"Invalid filter: {text}")
        types = set(re.findall(r'event_types:"([^"]+)"', group[1] or group[2]))
    if not types:
        raise _google_error(400, "INVALID_ARGUMENT", "The filter must name at least one event type.")
    return types, target


def workspace_list(emu: ProviderEmulator, request: Request, match: re.Match[str]) -> object:
    """`filter` required (event types, optionally the target); pageSize 50 by default, at most 100."""
    emu._bearer(request)
    if not request.query.get("filter"):
        raise _google_error(400, "INVALID_ARGUMENT", "filter is required.")
    types, target = _workspace_filter(request.query["filter"])
    size = min(int(request.query.get("pageSize") or 0) or 50, 100)
    start = int(request.query.get("pageToken") or 0)
    rows = [
        sub
        for sub in emu.state.workspace_subscriptions.values()
        if set(sub["eventTypes"]) & types and (target is None or sub["targetResource"] == target)
    ]
    body: dict[str, Any] = {}
    if rows[start : start + size]:  # Google leaves empty fields out
        body["subscriptions"] = rows[start : start + size]
    if start + size < len(rows):
        body["nextPageToken"] = str(start + size)
    return body


def workspace_lifecycle(
    emu: ProviderEmulator, name: str, kind: str, reason: str | None = None
) -> dict[str, Any]:
    """The Pub/Sub message of a lifecycle CloudEvent (`kind`: expirationReminder, suspended, expired).

    `suspended` marks the subscription SUSPENDED with `reason` (and keeps reactivate refused while
    `state.workspace_blocked` is set); `expired` deletes it, as Google does.
    """
    sub_id = name.split("/", 1)[-1]
    subscription = dict(emu.state.workspace_subscriptions[sub_id])
    if kind == "suspended":
        emu.state.workspace_subscriptions[sub_id].update(state="SUSPENDED", suspensionReason=reason)
        subscription.update(state="SUSPENDED", suspensionReason=reason)
    elif kind == "expired":
        emu.state.workspace_subscriptions.pop(sub_id, None)
    source = f"//workspaceevents.googleapis.com/{name}"
    data = base64.b64encode(json.dumps({"subscription": subscription}).encode()).decode()
    return {
        "attributes": {
            "ce-datacontenttype": "application/json",
            "ce-id": str(uuid.uuid4()),
            "ce-source": source,
            "ce-specversion": "1.0",
            "ce-subject": source,
            "ce-time": _google_time(emu.state.clock()),
            "ce-type": f"google.workspace.events.subscription.v1.{kind}",
        },
        "data": data,
        "messageId": str(next(emu._counter)),
        "publishTime": _google_time(emu.state.clock()),
    }


ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("GET", re.compile(r"/v1/calls/(?P<id>[^/]+)"), aircall_call),
    ("GET", re.compile(r"/v1/ping"), aircall_ping),
    ("GET", re.compile(r"/v2/calls/(?P<id>[^/]+)"), ringover_call),
    ("GET", re.compile(r"/v2/teams"), ringover_teams),
    ("POST", re.compile(r"/oauth/token"), zoom_token),
    ("GET", re.compile(r"/v2/past_meetings/(?P<uuid>[^/]+)/participants"), zoom_participants),
    ("GET", re.compile(r"/v2/users/(?P<id>[^/]+)"), zoom_user),
    ("POST", re.compile(r"/token"), google_token),
    ("GET", re.compile(r"/oauth2/v3/certs"), google_certs),
    ("GET", re.compile(r"/v2/conferenceRecords"), meet_records),
    ("GET", re.compile(r"/v2/conferenceRecords/(?P<id>[^/]+)"), meet_record),
    ("GET", re.compile(r"/v2/conferenceRecords/(?P<id>[^/]+)/participants"), meet_participants),
    ("GET", re.compile(r"/v2/spaces/(?P<id>[^/]+)"), meet_space),
    ("GET", re.compile(r"/admin/directory/v1/users/(?P<id>[^/]+)"), directory_user),
    ("GET", re.compile(r"/calendar/v3/calendars/(?P<owner>[^/]+)/events"), calendar_events),
    ("POST", re.compile(r"/(?P<tenant>[^/]+)/oauth2/v2\.0/token"), graph_token),
    ("GET", re.compile(r"/v1\.0/communications/callRecords"), graph_records),
    ("GET", re.compile(r"/v1\.0/communications/callRecords/(?P<id>[^/]+)"), graph_record),
    (
        "GET",
        re.compile(r"/v1\.0/communications/callRecords/(?P<id>[^/]+)/participants_v2"),
        graph_participants,
    ),
    ("GET", re.compile(r"/v1\.0/users/(?P<id>[^/]+)"), graph_user),
    ("GET", re.compile(r"/v2/past_meetings/(?P<uuid>[^/]+)"), zoom_past_meeting),
    ("GET", re.compile(r"/v2/meetings/(?P<id>[^/]+)"), zoom_meeting),
    ("GET", re.compile(r"/v2/meetings/(?P<id>[^/]+)/registrants"), zoom_registrants),
    ("POST", re.compile(r"/v1\.0/subscriptions"), graph_subscription_create),
    ("GET", re.compile(r"/v1\.0/subscriptions"), graph_subscription_list),
    ("GET", re.compile(r"/v1\.0/subscriptions/(?P<id>[^/]+)"), graph_subscription_get),
    ("PATCH", re.compile(r"/v1\.0/subscriptions/(?P<id>[^/]+)"), graph_subscription_update),
    ("DELETE", re.compile(r"/v1\.0/subscriptions/(?P<id>[^/]+)"), graph_subscription_delete),
    ("POST", re.compile(r"/v1/subscriptions"), workspace_create),
    ("GET", re.compile(r"/v1/subscriptions/(?P<id>[^/:]+)"), workspace_get),
    ("PATCH", re.compile(r"/v1/subscriptions/(?P<id>[^/:]+)"), workspace_update),
    ("DELETE", re.compile(r"/v1/subscriptions/(?P<id>[^/:]+)"), workspace_delete),
    ("POST", re.compile(r"/v1/subscriptions/(?P<id>[^/:]+):reactivate"), workspace_reactivate),
    ("GET", re.compile(r"/v1/subscriptions"), workspace_list),
]
