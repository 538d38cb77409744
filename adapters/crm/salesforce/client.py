"""The Salesforce HTTP layer: simple-salesforce with timeouts, limits, refresh and one classification.

simple-salesforce sets no timeout and raises its own exceptions; here every request
gets an explicit timeout, waits for the tenant's Redis-shared limiter, reports
`Sforce-Limit-Info` to the tenant's API budget, and every failure is classified once
into adapters.errors (retry / rate-limited / refresh credentials / fatal) before the
shared retry policy (tenacity, jittered waits) decides what to do. Sessions come from
a SessionStore: with Redis, one refresh per tenant across all workers, and a worker
whose session was rejected adopts a newer one another worker already fetched.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

from adapters.errors import (
    BudgetExhaustedError,
    CredentialsExpiredError,
    ExternalError,
    FatalError,
    RateLimitedError,
    RetryableError,
)
from adapters.ratelimit import parse_sforce_limit_info
from adapters.retry import DEFAULT_POST_REFRESH_REJECTIONS, Attempts, call_with_retries
from adapters.sessions import LocalSessions, Session, SessionStore

SERVICE = "salesforce"
MAX_SUBREQUESTS = 25
MAX_QUERY_SUBREQUESTS = 5
MAX_COLLECTION_RECORDS = 200  # sObject Collections: up to 200 records per request

T = TypeVar("T")
log = logging.getLogger(__name__)


class Limiter(Protocol):
    def acquire(self, timeout: float) -> None: ...


class Budget(Protocol):
    def record(self, used: int, limit: int) -> None: ...

    def check(self, reserve_fraction: float = 0.1) -> None: ...


@dataclass(frozen=True)
class Credentials:
    """How a tenant gets a session: OAuth refresh token, else the username-password flow.

    `repr` never shows the secrets.
    """

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass
class Usage:
    """The latest `Sforce-Limit-Info` seen: API calls used today and the org's daily limit."""

    used: int | None = None
    limit: int | None = None

    @property
    def remaining(self) -> int | None:
        return None if self.used is None or self.limit is None else max(self.limit - self.used, 0)


class SalesforceSession(requests.Session):
    """A requests session with explicit timeouts, the tenant limiter and the usage header read on every response."""

    def __init__(
        self,
        *,
        timeout: tuple[float, float] = (3.05, 30.0),
        verify: str | bool = True,
        limiter: Limiter | None = None,
        limiter_timeout: float = 30.0,
        on_usage: Callable[[int, int], None] | None = None,
    ):
        super().__init__()
        self.timeout = timeout
        self.verify_with = verify
        self.limiter = limiter
        self.limiter_timeout = limiter_timeout
        self.on_usage = on_usage

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("verify", self.verify_with)
        if self.limiter is not None:
            self.limiter.acquire(self.limiter_timeout)
        response = super().request(method, url, *args, **kwargs)
        usage = parse_sforce_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None and self.on_usage is not None:
            self.on_usage(*usage)
        return response


def _error_entries(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [e for e in content if isinstance(e, dict)]
    if isinstance(content, dict):
        return [content]
    return []


def classify_response(status: int, content: Any, what: str) -> ExternalError:
    """The one mapping of a Salesforce error response to what to do about it."""
    entries = _error_entries(content)
    code = str(entries[0].get("errorCode") or entries[0].get("error") or "") if entries else ""
    message = str(entries[0].get("message") or "") if entries else ""
    text = f"{what}: HTTP {status} {code}".strip()
    if status == 401 or code == "INVALID_SESSION_ID":
        return CredentialsExpiredError(SERVICE, text, status=status, code=code or "INVALID_SESSION_ID")
    if code == "REQUEST_LIMIT_EXCEEDED":
        daily = "TotalRequests" in message
        kind = "daily API limit" if daily else "concurrent request limit"
        return RateLimitedError(SERVICE, f"{text} ({kind})", status=status, code=code, daily=daily)
    if status == 429:
        return RateLimitedError(SERVICE, text, status=status, code=code)
    if status >= 500 or code in ("SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"):
        return RetryableError(SERVICE, text, status=status, code=code)
    fields = entries[0].get("fields") if entries else None
    named = f" fields={','.join(map(str, fields))}" if isinstance(fields, list) and fields else ""
    # Salesforce echoes query text (emails, phones) in its messages: only code and field names leave here.
    return FatalError(SERVICE, f"{text}{named}", status=status, code=code)


def classify(error: BaseException, what: str) -> ExternalError:
    """Exceptions of requests and simple-salesforce, classified once."""
    if isinstance(error, ExternalError):
        return error
    if isinstance(error, requests.Timeout):
        return RetryableError(SERVICE, f"{what}: timed out ({type(error).__name__})")
    if isinstance(error, requests.ConnectionError):
        return RetryableError(SERVICE, f"{what}: connection failed ({type(error).__name__})")
    if isinstance(error, SalesforceAuthenticationFailed):
        return FatalError(SERVICE, f"{what}: login refused ({error.code})", status=401, code=str(error.code))
    if isinstance(error, SalesforceError):
        return classify_response(error.status, error.content, what)
    return FatalError(SERVICE, f"{what}: {type(error).__name__}")


@dataclass(frozen=True)
class RetrySettings:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_rate_limit_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    max_post_refresh_rejections: int = DEFAULT_POST_REFRESH_REJECTIONS


@dataclass
class SubResponse:
    reference: str
    status: int
    body: Any


class SalesforceClient:
    """One tenant's connection: classified calls, composite batching, paging, refresh and budget."""

    def __init__(
        self,
        *,
        tenant: str,
        instance_url: str | None = None,
        access_token: str | None = None,
        credentials: Credentials | None = None,
        api_version: str = "59.0",
        timeout: tuple[float, float] = (3.05, 30.0),
        verify: str | bool = True,
        limiter: Limiter | None = None,
        limiter_timeout: float = 30.0,
        budget: Budget | None = None,
        reserve_fraction: float = 0.1,
        retry: RetrySettings | None = None,
        sessions: SessionStore | None = None,
    ):
        self.tenant = tenant
        self.api_version = api_version
        self.credentials = credentials
        self.budget = budget
        self.reserve_fraction = reserve_fraction
        self.retry = retry or RetrySettings()
        self.usage = Usage()
        self.api_calls = 0
        self.refreshes = 0
        self.adoptions = 0
        self.last_attempts = Attempts()
        self.sessions: SessionStore = sessions if sessions is not None else LocalSessions()
        self.session = SalesforceSession(
            timeout=timeout,
            verify=verify,
            limiter=limiter,
            limiter_timeout=limiter_timeout,
            on_usage=self._on_usage,
        )
        self._renew_lock = threading.Lock()
        # The adapter's in-process capabilities when no tenant provides cached ones (tests, benches).
        self.local_capabilities: object | None = None
        # The connection and the session it carries, replaced together (one attribute: never torn).
        self._active: tuple[Salesforce, Session] | None = None
        if instance_url and access_token:
            self._install(Session(token=access_token, instance_url=instance_url))

    # --- sessions -------------------------------------------------------------------------------

    def _connect(self, instance_url: str, access_token: str) -> Salesforce:
        return Salesforce(
            instance_url=instance_url, session_id=access_token, session=self.session, version=self.api_version
        )

    def _install(self, session: Session) -> None:
        self._active = (self._connect(session.instance_url, session.token), session)

    def _connection(self) -> tuple[Salesforce, Session]:
        """The connection to use and the session it carries (the one to name if it is rejected)."""
        active = self._active
        if active is None:
            self._renew(None)
            active = self._active
        assert active is not None
        return active

    @property
    def sf(self) -> Salesforce:
        return self._connection()[0]

    def refresh(self) -> None:
        """Replace the current session: a newer one another worker fetched, else a token request."""
        active = self._active
        self._renew(None if active is None else active[1])

    def _renew(self, rejected: Session | None) -> None:
        """A session newer than `rejected` (None: none held yet), from the store or a token request.

        In this process, a session another thread installed since `rejected` is used as is;
        the store does the same across workers, and lets only one of them ask Salesforce.
        """
        creds = self.credentials
        if creds is None:
            raise CredentialsExpiredError(
                SERVICE, f"tenant {self.tenant}: session expired and no credentials"
            )
        form = self._token_form(creds)
        with self._renew_lock:
            active = self._active
            if active is not None and active[1] is not rejected:
                return
            fetched: list[Session] = []

            def fetch() -> Session:
                fetched.append(self._request_token(creds.token_url, form))
                return fetched[0]

            session = self.sessions.renew(rejected, fetch)
            self._install(session)
            if fetched:
                log.info("salesforce tenant %s: new session (%d refreshes)", self.tenant, self.refreshes)
            else:
                self.adoptions += 1
                log.info("salesforce tenant %s: adopted the session another worker refreshed", self.tenant)

    def _token_form(self, creds: Credentials) -> dict[str, str]:
        """The grant to ask for: OAuth refresh token when configured, else the password flow."""
        if creds.refresh_token:
            form = {
                "grant_type": "refresh_token",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "refresh_token": creds.refresh_token,
            }
        elif creds.username and creds.password:
            form = {
                "grant_type": "password",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "username": creds.username,
                "password": creds.password,
            }
        else:
            raise FatalError(SERVICE, f"tenant {self.tenant}: neither refresh token nor login configured")
        return form

    def _request_token(self, token_url: str, form: dict[str, str]) -> Session:
        """One token request; a refused grant is fatal, a 5xx or network failure retryable."""
        try:
            response = self.session.post(token_url, data=form)
        except requests.RequestException as error:
            raise classify(error, "token") from error
        if response.status_code != 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            code = str(body.get("error", "")) if isinstance(body, dict) else ""
            if response.status_code >= 500:
                raise RetryableError(
                    SERVICE, f"token: HTTP {response.status_code}", status=response.status_code
                )
            raise FatalError(
                SERVICE,
                f"tenant {self.tenant}: token refused ({code})",
                status=response.status_code,
                code=code,
            )
        body = response.json()
        self.refreshes += 1
        return Session(token=str(body["access_token"]), instance_url=str(body["instance_url"]))

    # --- usage and budget ------------------------------------------------------------------------

    def _on_usage(self, used: int, limit: int) -> None:
        """Bookkeeping after Salesforce answered: Redis being away must not turn a delivered
        response (perhaps a write) into a failure that is retried; the next response reports again."""
        self.usage.used, self.usage.limit = used, limit
        if self.budget is not None:
            try:
                self.budget.record(used, limit)
            except RetryableError as error:
                log.warning("salesforce tenant %s: API usage not recorded: %s", self.tenant, error)

    @property
    def remaining(self) -> int | None:
        """Daily API calls left for the org, as Salesforce last reported."""
        return self.usage.remaining

    def _check_budget(self) -> None:
        if self.budget is not None:
            self.budget.check(self.reserve_fraction)
            return
        remaining, limit = self.usage.remaining, self.usage.limit
        if (
            remaining is not None
            and limit is not None
            and remaining < max(1, int(limit * self.reserve_fraction))
        ):
            raise BudgetExhaustedError(
                SERVICE,
                f"tenant {self.tenant}: {remaining}/{limit} API calls left, under the reserve",
                daily=True,
            )

    # --- calls ------------------------------------------------------------------------------------

    def call(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        """One API call with the budget check, classification and the shared retry policy."""

        used: list[Session | None] = [None]

        def attempt() -> T:
            self._check_budget()
            try:
                sf, used[0] = self._connection()
                result = fn(sf)
            except ExternalError:
                raise  # classified where it happened (limiter, budget, token request): keep its cause
            except Exception as error:
                raise classify(error, what) from error
            self.api_calls += 1
            return result

        def refresh() -> None:
            self._renew(used[0])

        self.last_attempts = Attempts()
        return call_with_retries(
            attempt,
            service=SERVICE,
            max_attempts=self.retry.max_attempts,
            refresh=refresh if self.credentials is not None else None,
            base_delay=self.retry.base_delay,
            max_delay=self.retry.max_delay,
            max_rate_limit_wait=self.retry.max_rate_limit_wait,
            sleep=self.retry.sleep,
            attempts=self.last_attempts,
            max_post_refresh_rejections=self.retry.max_post_refresh_rejections,
        )

    def data_path(self, resource: str) -> str:
        return f"/services/data/v{self.api_version}/{resource}"

    def query_url(self, soql: str) -> str:
        return self.data_path("query?q=" + quote(soql, safe=""))

    def query(self, soql: str) -> list[dict[str, Any]]:
        """All records of a query, following `nextRecordsUrl` (one API call per page)."""
        first: dict[str, Any] = self.call("query", lambda sf: sf.query(soql))
        return self.more(first)

    def more(self, result: dict[str, Any]) -> list[dict[str, Any]]:
        records = list(result.get("records") or [])
        while not result.get("done", True) and result.get("nextRecordsUrl"):
            url = str(result["nextRecordsUrl"])

            def page(sf: Salesforce, u: str = url) -> dict[str, Any]:
                return dict(sf.query_more(u, identifier_is_url=True))

            result = self.call("query_more", page)
            records += list(result.get("records") or [])
        return records

    def search(self, sosl: str) -> list[dict[str, Any]]:
        result = self.call("search", lambda sf: sf.search(sosl))
        if not result:
            return []
        return list(result.get("searchRecords") or [])

    def rest(
        self,
        what: str,
        path: str,
        *,
        method: str = "GET",
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """One REST call under the data path (`sobjects/...`, `tooling/query`, `limits`), classified."""

        def send(sf: Salesforce) -> Any:
            if body is None:
                return sf.restful(path, params=params, method=method)
            return sf.restful(path, params=params, method=method, json=body)

        return self.call(what, send)

    def userinfo(self) -> dict[str, Any]:
        """The API user as the OAuth userinfo endpoint names it (`user_id`, `organization_id` ...)."""
        result = self.call("userinfo", lambda sf: sf.oauth2("userinfo"))
        return dict(result) if isinstance(result, dict) else {}

    def composite(
        self, subrequests: Sequence[dict[str, Any]], *, all_or_none: bool = False
    ) -> list[SubResponse]:
        """Subrequests in as few composite calls as the limits allow (25 each, 5 of them queries)."""
        out: list[SubResponse] = []
        for chunk in _chunks(subrequests):
            body = {"allOrNone": all_or_none, "compositeRequest": list(chunk)}

            def send(sf: Salesforce, b: dict[str, Any] = body) -> Any:
                return sf.restful("composite", method="POST", json=b)

            result = self.call("composite", send)
            for item in result["compositeResponse"]:
                out.append(
                    SubResponse(str(item["referenceId"]), int(item["httpStatusCode"]), item.get("body"))
                )
        return out

    def composite_queries(self, queries: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        """Named SOQL queries in composite calls; a failed one raises its classified error."""
        subrequests = [
            {"method": "GET", "url": self.query_url(soql), "referenceId": name}
            for name, soql in queries.items()
        ]
        results: dict[str, list[dict[str, Any]]] = {}
        for sub in self.composite(subrequests):
            if sub.status >= 300:
                raise classify_response(sub.status, sub.body, f"composite query {sub.reference}")
            results[sub.reference] = self.more(sub.body)
        return results


def is_query(subrequest: dict[str, Any]) -> bool:
    """A subrequest of the composite's limited kind: "up to 5 ... can be sObject Collections or query operations"."""
    return (
        re.search(r"/(query|queryAll|composite/sobjects)(/|\?|$)", str(subrequest.get("url", ""))) is not None
    )


def _chunks(subrequests: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    queries = 0
    for sub in subrequests:
        q = 1 if is_query(sub) else 0
        if current and (len(current) >= MAX_SUBREQUESTS or queries + q > MAX_QUERY_SUBREQUESTS):
            chunks.append(current)
            current, queries = [], 0
        current.append(sub)
        queries += q
    if current:
        chunks.append(current)
    return chunks
