"""The HTTP base every provider API client uses: one classification, one retry policy, one limiter.

Each response is mapped once, here, to the vocabulary of adapters.errors; the
retry policy (adapters.retry) and the Redis limiter (adapters.ratelimit) do the rest.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
import requests

from adapters.errors import (
    CredentialsExpiredError,
    ExternalError,
    FatalError,
    RateLimitedError,
    RetryableError,
)
from adapters.ratelimit import Limiter, NullLimiter, RedisRateLimiter
from adapters.retry import call_with_retries
from worker.config.tenants import ProviderConfig, Tenant

CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` as seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(when.timestamp() - now(), 0.0)


def classify(service: str, response: requests.Response) -> Any:
    """The decoded JSON of a success, or the classified error of anything else."""
    status = response.status_code
    if 200 <= status < 300:
        if status == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RetryableError(service, "response is not JSON", status=status) from None
    code = _error_code(response)
    if status == 429:
        daily = "daily" in (response.headers.get("x-ratelimit-type") or "").lower()
        raise RateLimitedError(
            service,
            "rate limited",
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
            status=status,
            code=code,
            daily=daily,
        )
    if status == 401:
        raise CredentialsExpiredError(service, "access token rejected", status=status, code=code)
    if status in (408, 425) or status >= 500:
        raise RetryableError(service, f"HTTP {status}", status=status, code=code)
    raise FatalError(service, f"HTTP {status}", status=status, code=code)


def _error_code(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for key in ("code", "error", "troubleshoot"):
        value = body.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)[:80]
        if isinstance(value, dict) and isinstance(value.get("code"), str | int):
            return str(value["code"])[:80]
    return None


class BearerToken:
    """An OAuth access token cached until shortly before it expires; `refresh` forgets it."""

    def __init__(self, fetch: Callable[[], tuple[str, float]], clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._expires:
                token, lifetime = self._fetch()
                self._token = token
                self._expires = self._clock() + max(lifetime - 60.0, lifetime / 2)
            return {"Authorization": f"Bearer {self._token}"}

    def refresh(self) -> None:
        with self._lock:
            self._token = None


_tokens_lock = threading.Lock()
_tokens: dict[tuple[str, ...], BearerToken] = {}


def shared_token(
    ctx: FetchContext, token_url: str, subject: str, fetch: Callable[[], tuple[str, float]]
) -> BearerToken:
    """One cached token per tenant, provider, endpoint, subject and credentials, for every event of a process."""
    digest = hashlib.sha256(json.dumps(sorted(ctx.config.credentials.items())).encode()).hexdigest()
    key = (ctx.tenant.name, ctx.config.name, token_url, subject, digest)
    with _tokens_lock:
        token = _tokens.get(key)
        if token is None:
            token = BearerToken(fetch)
            _tokens[key] = token
        return token


def token_response(service: str, body: object) -> tuple[str, float]:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise FatalError(service, "token endpoint answered without access_token")
    lifetime = body.get("expires_in", 3600)
    seconds = (
        float(lifetime) if isinstance(lifetime, int | float | str) and str(lifetime).isdigit() else 3600.0
    )
    return body["access_token"], seconds


class ApiClient:
    """GETs (and token POSTs) against one provider API, limited, classified and retried."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        auth: Callable[[], Mapping[str, str]] | None = None,
        refresh: Callable[[], None] | None = None,
        limiter: Limiter | None = None,
        session: requests.Session | None = None,
        read_timeout: float = READ_TIMEOUT,
        max_attempts: int = 4,
        max_total_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        limit_timeout: float = 10.0,
    ):
        self.service = service
        self.base_url = base_url.rstrip("/")
        self._auth = auth
        self._refresh = refresh
        self._limiter = limiter or NullLimiter()
        self._session = session or requests.Session()
        self._read_timeout = read_timeout
        self._max_attempts = max_attempts
        self._max_total_wait = max_total_wait
        self._sleep = sleep
        self._limit_timeout = limit_timeout
        self.requests = 0

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _send(self, method: str, url: str, **kwargs: Any) -> Any:
        self._limiter.acquire(self._limit_timeout)
        self.requests += 1
        try:
            response = self._session.request(
                method, url, timeout=(CONNECT_TIMEOUT, self._read_timeout), allow_redirects=False, **kwargs
            )
        except requests.Timeout as exc:
            raise RetryableError(self.service, f"timeout ({type(exc).__name__})") from None
        except requests.ConnectionError as exc:
            raise RetryableError(self.service, f"connection failed ({type(exc).__name__})") from None
        return classify(self.service, response)

    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        return self.send("GET", path, params=params)

    def send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Any:
        """One request (a JSON body for writes), retried and classified like every other."""
        url = self.url(path)

        def once() -> Any:
            headers = dict(self._auth()) if self._auth else {}
            if body is None:
                return self._send(method, url, params=params, headers=headers)
            return self._send(method, url, params=params, json=body, headers=headers)

        return call_with_retries(
            once,
            service=self.service,
            max_attempts=self._max_attempts,
            refresh=self._refresh,
            sleep=self._sleep,
            max_total_wait=self._max_total_wait,
        )

    def post_token(self, url: str, data: Mapping[str, str], headers: Mapping[str, str] | None = None) -> Any:
        """A token request: a refused one is fatal (bad credentials), not a refresh loop."""

        def once() -> Any:
            try:
                return self._send("POST", url, data=dict(data), headers=dict(headers or {}))
            except CredentialsExpiredError as exc:
                raise FatalError(
                    self.service, "credentials refused", status=exc.status, code=exc.code
                ) from None

        return call_with_retries(
            once,
            service=self.service,
            max_attempts=self._max_attempts,
            sleep=self._sleep,
            max_total_wait=self._max_total_wait,
        )


def provider_limiter(config: ProviderConfig, tenant: str, redis_client: redis.Redis | None) -> Limiter:
    """`burst` requests per `burst / per_second` seconds, shared by every worker through Redis."""
    if redis_client is None:
        return NullLimiter()
    limit = config.rate_limit
    return RedisRateLimiter(
        redis_client, f"{config.name}:{tenant}:requests", limit.burst, limit.burst / limit.per_second
    )


@contextmanager
def reading(service: str) -> Iterator[None]:
    """A provider answer we cannot read is a fatal error of that provider, named by field."""
    from worker.ingest.webhook import PayloadError

    try:
        yield
    except PayloadError as exc:
        raise FatalError(service, f"unexpected response: {exc.field}: {exc.reason}") from None


__all__ = [
    "ApiClient",
    "BearerToken",
    "ExternalError",
    "FetchContext",
    "classify",
    "provider_limiter",
    "reading",
    "retry_after_seconds",
    "token_response",
]


@dataclass(frozen=True)
class FetchContext:
    """What a provider client needs to fetch one call: the tenant, its provider config, shared plumbing."""

    tenant: Tenant
    config: ProviderConfig
    redis_client: redis.Redis | None = None
    session: requests.Session | None = None
    sleep: Callable[[float], None] = time.sleep

    def client(
        self,
        base_url: str,
        *,
        auth: Callable[[], Mapping[str, str]] | None = None,
        refresh: Callable[[], None] | None = None,
        **options: Any,
    ) -> ApiClient:
        """A client on the provider's API with the tenant's limiter; `options` tune ApiClient (timeouts, attempts)."""
        return ApiClient(
            self.config.name,
            base_url,
            auth=auth,
            refresh=refresh,
            limiter=provider_limiter(self.config, self.tenant.name, self.redis_client),
            session=self.session,
            sleep=self.sleep,
            **options,
        )
