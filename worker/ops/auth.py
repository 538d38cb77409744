"""Who is calling the operations API and console, and what they may do there.

A caller is a `Principal`: the global admin (CALLMATCH_ADMIN_TOKEN, every tenant) or a
tenant's viewer or admin (the `access:` section of the tenants file). A viewer reads, an
admin also changes; a tenant's token never reaches another tenant. The caller shows a
token as `Authorization: Bearer ...`, or a console session cookie made by signing in.

Console sessions: `POST /console/session` (form field `token`) checks the token once and
sets `callmatch_session`, an itsdangerous-signed session id (HTTP-only, SameSite=Strict,
Secure unless the request is plain http to a loopback host such as `localhost`, where
browsers would drop a Secure cookie and the token never left the machine). The session
itself (principal, CSRF token) lives in Redis for CALLMATCH_CONSOLE_SESSION_SECONDS, so
signing out (`POST /console/session/delete`) ends it everywhere and all the receivers
share it. A changing request made with the cookie must carry the session's CSRF token in
the `X-CSRF-Token` header or the `csrf_token` form field; a bearer request needs none (a
browser never adds that header on its own).

Every comparison is `hmac.compare_digest` on digests (worker.config.tokens).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from worker.config.tenants import Tenants
from worker.config.tokens import Credential, Role, digest

log = logging.getLogger("callmatch.access")

SESSION_COOKIE = "callmatch_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SIGN_IN_PAGE = "/console/sign-in"
HOME_PAGE = "/console/"
GLOBAL_ADMIN = "admin"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_KEY = "callmatch:console:signing-key"
_SESSION = "callmatch:console:session:"

BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="A token: CALLMATCH_ADMIN_TOKEN (every tenant), or a tenant's viewer or admin token "
    "(`access:` in the tenants file). Viewers read; admins also change.",
)
SESSION = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="consoleSession",
    description="The console's session after `POST /console/session`. A changing request made with it "
    f"must send the session's CSRF token in the `{CSRF_HEADER}` header or the `{CSRF_FIELD}` form field.",
)


class ErrorBody(BaseModel):
    """Every refusal of the API: what went wrong and what to do, and the field at fault when there is one."""

    error: str
    field: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no token, an unknown token, or an expired session"},
    403: {
        "model": ErrorBody,
        "description": "the token may not do this: another tenant's, a viewer's on a change, "
        "or a missing or wrong CSRF token with the session cookie",
    },
}


class ApiError(Exception):
    """A refusal answered as JSON `{"error": ..., "field": ...}` with a 4xx (or 503) status."""

    def __init__(self, status: int, error: str, field: str | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.error}
        if self.field is not None:
            body["field"] = self.field
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        if self.status == 503:
            headers = {"Retry-After": "30"}
        return JSONResponse(body, status_code=self.status, headers=headers)


@dataclass(frozen=True)
class Principal:
    """The caller: `tenant` None is the global admin; `name` is kept as `by` with every change it makes."""

    tenant: str | None
    role: Role
    name: str
    via: Literal["bearer", "session"] = "bearer"
    fingerprint: str = ""
    csrf: str | None = None
    session_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_json(self) -> dict[str, Any]:
        """What the caller may know about itself (the CSRF token of its own session included)."""
        shown: dict[str, Any] = {"tenant": self.tenant, "role": self.role, "name": self.name, "via": self.via}
        if self.csrf is not None:
            shown["csrf_token"] = self.csrf
        return shown


def can_see(principal: Principal, tenant: str) -> bool:
    """The global admin sees every tenant; a tenant's token its own only."""
    return principal.tenant is None or principal.tenant == tenant


def check(principal: Principal, tenant: str | None, role: Role) -> None:
    """ApiError 403 unless `principal` may act on `tenant` (None: no tenant in question) with `role`."""
    if tenant is not None and not can_see(principal, tenant):
        raise ApiError(
            403,
            f"this token belongs to tenant {principal.tenant!r}; it cannot reach tenant {tenant!r}",
            "tenant",
        )
    if role == "admin" and not principal.is_admin:
        where = f"tenant {tenant!r}" if tenant is not None else "this"
        raise ApiError(403, f"a viewer token only reads: changing {where} needs an admin token")


class Authenticator:
    """Checks tokens against the current tenants and the global token; keeps the console's sessions in Redis."""

    CACHE_SIZE = 512

    def __init__(
        self,
        tenants: Callable[[], Tenants],
        redis_client: redis.Redis,
        global_token: str | None,
        session_seconds: int,
    ):
        self.tenants = tenants
        self.redis = redis_client
        self.session_seconds = session_seconds
        self._global = digest(global_token) if global_token else None
        self._global_fingerprint = digest(self._global.hex())[:8].hex() if self._global else ""
        self._cache: OrderedDict[bytes, tuple[Tenants, Principal | None]] = OrderedDict()
        self._lock = threading.Lock()

    # --- tokens ------------------------------------------------------------------------------

    def configured(self, tenants: Tenants | None = None) -> bool:
        """Whether any token at all may use the API (else it is off, and says how to turn it on)."""
        current = tenants if tenants is not None else self.tenants()
        return self._global is not None or any(t.access for t in current.tenants.values())

    def identify(self, token: str, hint: str | None = None) -> Principal | None:
        """The principal of a token, or None. Tenant `hint`'s tokens are tried first (a route's own tenant).

        A token's scrypt check costs ~0.1 s, so what a token turned out to be is remembered
        (by its SHA-256, in memory) until the tenants change.
        """
        if self._global is not None and hmac.compare_digest(digest(token), self._global):
            return Principal(None, "admin", GLOBAL_ADMIN, fingerprint=self._global_fingerprint)
        tenants = self.tenants()
        key = digest(token)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] is tenants:
                self._cache.move_to_end(key)
                return cached[1]
        names = sorted(tenants.tenants, key=lambda name: (name != hint, name))
        found: Principal | None = None
        for name in names:
            credential = next((c for c in tenants.tenants[name].access.credentials if c.matches(token)), None)
            if credential is not None:
                found = Principal(name, credential.role, credential.name, fingerprint=credential.fingerprint)
                break
        with self._lock:
            self._cache[key] = (tenants, found)
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return found

    def still_valid(self, principal: Principal) -> bool:
        """A session's credential is still in the configuration, with the same role."""
        if principal.tenant is None:
            return bool(self._global) and hmac.compare_digest(principal.fingerprint, self._global_fingerprint)
        tenant = self.tenants().get(principal.tenant)
        credentials: tuple[Credential, ...] = tenant.access.credentials if tenant is not None else ()
        return any(
            c.role == principal.role and hmac.compare_digest(c.fingerprint, principal.fingerprint)
            for c in credentials
        )

    # --- sessions ----------------------------------------------------------------------------

    def _signing_key(self) -> str:
        """One random key in Redis, made by the first receiver that needs it: every receiver signs alike.

        Read on every use, so deleting it signs every session out at once, on every receiver.
        """
        value = self.redis.get(_KEY)
        if value is None:
            self.redis.set(_KEY, secrets.token_hex(32), nx=True)
            value = self.redis.get(_KEY)
        return value.decode() if isinstance(value, bytes) else str(value)

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._signing_key(), salt="callmatch-console-session")

    def open_session(self, principal: Principal) -> tuple[str, Principal]:
        """A new session for `principal`: the cookie's value and the principal as the session holds it."""
        session_id = secrets.token_urlsafe(24)
        held = Principal(
            principal.tenant,
            principal.role,
            principal.name,
            via="session",
            fingerprint=principal.fingerprint,
            csrf=secrets.token_urlsafe(32),
            session_id=session_id,
        )
        self.redis.set(_SESSION + session_id, json.dumps(asdict(held)), ex=self.session_seconds)
        return self._serializer().dumps(session_id), held

    def session(self, cookie: str) -> Principal | None:
        """The principal of a session cookie; None when forged, expired, signed out or its token removed."""
        try:
            session_id = self._serializer().loads(cookie, max_age=self.session_seconds)
        except BadSignature:
            return None
        if not isinstance(session_id, str):
            return None
        raw = self.redis.get(_SESSION + session_id)
        if raw is None:
            return None
        try:
            principal = Principal(**json.loads(raw))
        except (TypeError, ValueError):  # a session another version wrote: signing in again is the fix
            return None
        if not self.still_valid(principal):
            self.redis.delete(_SESSION + session_id)
            return None
        return principal

    def close_session(self, principal: Principal) -> None:
        if principal.session_id:
            self.redis.delete(_SESSION + principal.session_id)


def authenticator(request: Request) -> Authenticator:
    """The authenticator `worker.ops.admin.mount` put on the app."""
    found = getattr(request.app.state, "callmatch_auth", None)
    if not isinstance(found, Authenticator):
        raise ApiError(403, "the operations API is not mounted on this app")
    return found


def _off() -> ApiError:
    return ApiError(
        403,
        "the operations API is off: set CALLMATCH_ADMIN_TOKEN, or give tenants tokens in `access:`"
        " of the tenants file",
    )


async def _csrf_given(request: Request) -> str:
    """The CSRF token the request carries: the header, else the form field of a form post."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    kind = request.headers.get("content-type", "")
    if kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def check_csrf(request: Request, who: Principal) -> None:
    """A changing request made with the session cookie carries the session's CSRF token (constant time)."""
    if who.via != "session" or request.method in SAFE_METHODS:
        return
    given = await _csrf_given(request)
    if not given:
        raise ApiError(
            403, f"missing CSRF token: send the session's token in {CSRF_HEADER} or {CSRF_FIELD}", CSRF_FIELD
        )
    if not hmac.compare_digest(given.encode(), (who.csrf or "").encode()):
        raise ApiError(403, "wrong CSRF token: reload the page and try again", CSRF_FIELD)


async def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    cookie: Annotated[str | None, Depends(SESSION)],
) -> Principal:
    """The caller, from `Authorization: Bearer` or the console's session cookie (then CSRF-checked)."""
    auth = authenticator(request)
    hint = request.path_params.get("tenant")
    if bearer is not None:
        found = await run_in_threadpool(
            auth.identify, bearer.credentials, hint if isinstance(hint, str) else None
        )
        if found is None:
            if not await run_in_threadpool(auth.configured):
                raise _off()
            raise ApiError(
                401, "unknown token: send a tenant's token or CALLMATCH_ADMIN_TOKEN", "Authorization"
            )
    elif cookie:
        found = await run_in_threadpool(auth.session, cookie)
        if found is None:
            raise ApiError(
                401, "the console session has expired or was signed out: sign in again", SESSION_COOKIE
            )
        await check_csrf(request, found)
    else:
        if not await run_in_threadpool(auth.configured):
            raise _off()
        raise ApiError(401, "sign in: send Authorization: Bearer <token> or the console's session cookie")
    request.state.callmatch_principal = found
    return found


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, allowed `role` on the route's `{tenant}` (when the route has one)."""

    async def allowed(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
        tenant = request.path_params.get("tenant")
        check(who, tenant if isinstance(tenant, str) else None, role)
        return who

    allowed.__name__ = f"require_{role}"
    return allowed


def csrf_token(request: Request) -> str:
    """The CSRF token of the request's session, for a form's hidden `csrf_token` field ('' for a bearer call)."""
    who = getattr(request.state, "callmatch_principal", None)
    if isinstance(who, Principal):
        return who.csrf or ""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return ""
    found = authenticator(request).session(cookie)
    return found.csrf or "" if found is not None else ""


def secure_cookie(request: Request) -> bool:
    """Secure, except over plain http to a loopback host (`make run` on a laptop)."""
    return request.url.scheme == "https" or (request.url.hostname or "") not in LOOPBACK_HOSTS


def local_path(target: str | None, default: str) -> str:
    """`target` when it is a path of this site (never `//host` nor a URL: no open redirect), else `default`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def _same_origin(request: Request) -> bool:
    """A browser's `Origin`, when it sends one, names this site (a sign-in form posted from elsewhere is refused)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


class SessionInfo(BaseModel):
    """The signed-in caller."""

    tenant: str | None = Field(description="null: the global admin (every tenant)")
    role: Role
    name: str
    via: Literal["bearer", "session"]
    csrf_token: str | None = Field(default=None, description="the session's CSRF token (session only)")


def session_router() -> APIRouter:
    """`POST /console/session` (sign in) and `POST /console/session/delete` (sign out)."""
    router = APIRouter(prefix="/console/session", tags=["console session"])

    @router.post(
        "",
        status_code=303,
        summary="Sign in to the console with a token; sets the session cookie",
        description=f"Form fields `token` and optional `next` (a path of this site, default `{HOME_PAGE}`). "
        f"303 to `next` with the cookie. An unknown token: 401 JSON, or for a browser (Accept: text/html) "
        f"303 to `{SIGN_IN_PAGE}?error=...`.",
        responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}},
        response_class=Response,
    )
    async def sign_in(
        request: Request,
        token: Annotated[str, Form(description="a tenant's token or CALLMATCH_ADMIN_TOKEN")],
        next: Annotated[str | None, Form(description="where to go once signed in")] = None,
    ) -> Response:
        auth = authenticator(request)
        if not _same_origin(request):
            raise ApiError(403, "sign-in posted from another site", "Origin")
        target = local_path(next, HOME_PAGE)
        found = await run_in_threadpool(auth.identify, token.strip())
        if found is None:
            configured = await run_in_threadpool(auth.configured)
            problem = _off() if not configured else ApiError(401, "unknown token", "token")
            if _wants_html(request):
                from urllib.parse import urlencode

                query = urlencode({"error": problem.error, "next": target})
                return RedirectResponse(f"{SIGN_IN_PAGE}?{query}", status_code=303)
            raise problem
        cookie, held = await run_in_threadpool(auth.open_session, found)
        log.info("console sign-in: %s (%s) of %s", held.name, held.role, held.tenant or "every tenant")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=auth.session_seconds,
            path="/",
            secure=secure_cookie(request),
            httponly=True,
            samesite="strict",
        )
        return response

    @router.post(
        "/delete",
        status_code=303,
        summary="Sign out: ends the session everywhere and clears the cookie",
        description=f"Needs the session's CSRF token (`{CSRF_FIELD}` form field or `{CSRF_HEADER}`). "
        f"303 to `{SIGN_IN_PAGE}`.",
        responses={403: {"model": ErrorBody}},
        response_class=Response,
    )
    async def sign_out(request: Request) -> Response:
        auth = authenticator(request)
        cookie = request.cookies.get(SESSION_COOKIE)
        held = await run_in_threadpool(auth.session, cookie) if cookie else None
        if held is not None:
            await check_csrf(request, held)
            await run_in_threadpool(auth.close_session, held)
            log.info("console sign-out: %s of %s", held.name, held.tenant or "every tenant")
        response = RedirectResponse(SIGN_IN_PAGE, status_code=303)
        response.delete_cookie(
            SESSION_COOKIE, path="/", secure=secure_cookie(request), httponly=True, samesite="strict"
        )
        return response

    return router


def install(app: FastAPI, auth: Authenticator) -> None:
    """Put the authenticator on the app and answer every ApiError as JSON."""
    app.state.callmatch_auth = auth

    async def refused(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    app.add_exception_handler(ApiError, refused)
