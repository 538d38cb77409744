"""The classified layer over hubspot-api-client: limits, timeouts, token refresh, one error vocabulary.

hubspot-api-client gives every sub-package its own `ApiException` and lets urllib3
retry only idempotent verbs; most of our reads are POSTs (batch read, search). So
urllib3 retries are off, every response is classified here once into
adapters.errors, and `call_with_retries` decides what to do. Each request first
takes a slot in the tenant's Redis-shared 10-second limiter (and the search
limiter for search), and the daily figures HubSpot reports in
`X-HubSpot-RateLimit-*` headers go into the tenant's `ApiBudget`. An OAuth app's
access token comes from a SessionStore: with Redis, one refresh per tenant across
all workers (adapters.sessions); a private app's token is static and never shared.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hubspot.crm.associations.v4 as hs_assoc
import hubspot.crm.objects as hs_objects
import hubspot.crm.owners as hs_owners
import hubspot.crm.pipelines as hs_pipelines
import hubspot.crm.properties as hs_properties
import hubspot.oauth as hs_oauth
import redis
import urllib3

from adapters.errors import (
    CredentialsExpiredError,
    ExternalError,
    FatalError,
    RateLimitedError,
    RetryableError,
)
from adapters.ratelimit import ApiBudget, Limiter, NullLimiter, RedisRateLimiter
from adapters.redis_errors import redis_call
from adapters.retry import DEFAULT_POST_REFRESH_REJECTIONS, Attempts, RetryEvent, call_with_retries
from adapters.sessions import LocalSessions, RedisSessions, Session, SessionSettings, SessionStore

log = logging.getLogger(__name__)

SERVICE = "hubspot"
BATCH_SIZE = 100
ASSOCIATION_BATCH_SIZE = 1000
ASSOCIATION_WRITE_SIZE = 1000
"""v4 association batch create / archive inputs per request: HubSpot's reference states no figure
(2,000 per the integrations that document one); the read limit (1,000) is kept as a margin."""
SEARCH_PAGE = 200
SEARCH_MAX_BODY = 3000
"""CRM search guide: a search body over 3,000 characters answers 400."""

_API_EXCEPTIONS: tuple[type[Exception], ...] = (
    hs_objects.ApiException,
    hs_assoc.ApiException,
    hs_owners.ApiException,
    hs_pipelines.ApiException,
    hs_properties.ApiException,
    hs_oauth.ApiException,
)
_NOT_FOUND = frozenset({"OBJECT_NOT_FOUND"})
_RETRY_STATUSES = frozenset({408, 423, 500, 502, 503, 504, 520, 521, 522, 523, 524})

JsonObject = dict[str, Any]
Meter = Callable[[str], None]


class PropertyMissingError(FatalError):
    """HubSpot's 400 `PROPERTY_DOESNT_EXIST`: a request named a property the portal lacks.

    The portal changed under us (a property deleted, or capabilities cached before it
    was); the adapter drops its capabilities and tries once more with fresh ones.
    """

    def __init__(self, properties: Sequence[str], *, status: int = 400):
        names = ", ".join(properties) or "?"
        super().__init__(
            SERVICE, f"{status} PROPERTY_DOESNT_EXIST {names}", status=status, code="PROPERTY_DOESNT_EXIST"
        )
        self.properties = tuple(properties)


class ScopeMissingError(FatalError):
    """HubSpot's 403 `MISSING_SCOPES`: the token was not granted a scope the request needs."""

    def __init__(self, scopes: Sequence[str], *, status: int = 403):
        names = ", ".join(scopes) or "a scope"
        super().__init__(SERVICE, f"{status} MISSING_SCOPES {names}", status=status, code="MISSING_SCOPES")
        self.scopes = tuple(scopes)


@dataclass(frozen=True)
class OAuthApp:
    """What a public app needs to refresh its access token; never logged."""

    client_id: str
    client_secret: str
    refresh_token: str

    def __repr__(self) -> str:
        return f"OAuthApp(client_id={self.client_id!r}, ...)"


@dataclass(frozen=True)
class HubSpotSettings:
    """Per-tenant knobs.

    HubSpot allows a private app 190 requests per rolling 10 s (100 on Free/Starter) and
    search 5 per second; the defaults keep a margin under both (180, 4) for the jitter
    between our grant and HubSpot's count.
    """

    tenant: str
    host: str = "https://api.hubapi.com"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    burst_limit: int = 180
    burst_period: float = 10.0
    search_limit: int = 4
    search_period: float = 1.0
    acquire_timeout: float = 30.0
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_rate_limit_wait: float = 30.0
    budget_reserve: float = 0.1
    refresh_margin: float = 60.0
    max_post_refresh_rejections: int = DEFAULT_POST_REFRESH_REJECTIONS
    """401s in a row right after a refresh before the app's credentials count as revoked."""
    burst_floor: int = 2
    """When HubSpot says this many requests or fewer are left in its window, pause (see Cooldown)."""


class TokenSource:
    """The tenant's access token; with an OAuth app it is refreshed before `expires_in` runs out.

    `refreshes` counts tokens this process asked HubSpot for, `adoptions` tokens it took
    from another worker's refresh (the shared session store).
    """

    def __init__(
        self,
        access_token: str | None = None,
        *,
        oauth: OAuthApp | None = None,
        expires_in: float | None = None,
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if access_token is None and oauth is None:
            raise ValueError("a HubSpot token source needs an access token or an OAuth app")
        self.oauth = oauth
        self.margin = margin
        self._clock = clock
        self._token = access_token
        self._issued_us = 0
        self._expires_at = None if expires_in is None else clock() + expires_in
        self._lock = threading.Lock()
        self.refreshes = 0
        self.adoptions = 0

    @property
    def can_refresh(self) -> bool:
        return self.oauth is not None

    def needs_refresh(self) -> bool:
        if self.oauth is None:
            return False
        if self._token is None or self._expires_at is None:
            return True
        return self._clock() >= self._expires_at - self.margin

    def current(self) -> str | None:
        with self._lock:
            return self._token

    def session(self) -> Session | None:
        """The token with its place in the order of sessions (to name it if HubSpot rejects it)."""
        with self._lock:
            if self._token is None:
                return None
            return Session(token=self._token, issued_us=self._issued_us)

    def install(self, session: Session, *, fetched: bool) -> None:
        """Use `session` from now on; `fetched` when this process asked HubSpot for it."""
        with self._lock:
            self._token = session.token
            self._issued_us = session.issued_us
            self._expires_at = None if session.expires_in is None else self._clock() + session.expires_in
            if fetched:
                self.refreshes += 1
            else:
                self.adoptions += 1


class Cooldown:
    """A pause every request of this process takes before going out (HubSpot's window is nearly full)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def start(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return max(self._until - self._clock(), 0.0)


class RedisCooldown(Cooldown):
    """The same pause shared by every worker of the tenant (a Redis key that expires with it)."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        super().__init__()
        self._redis = client
        self._key = "callmatch:cooldown:" + key

    def start(self, seconds: float) -> None:
        millis = max(int(seconds * 1000), 1)
        with redis_call(f"cooldown {self._key}"):
            current = self._redis.pttl(self._key)
            if not isinstance(current, int) or current < millis:
                self._redis.set(self._key, "1", px=millis)

    def remaining(self) -> float:
        with redis_call(f"cooldown {self._key}"):
            left = self._redis.pttl(self._key)
        return left / 1000 if isinstance(left, int) and left > 0 else 0.0


@dataclass
class ClientStats:
    """HTTP attempts actually sent (retries included), by route; 429s and refreshes seen."""

    attempts: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    retries: int = 0
    refreshes: int = 0
    adoptions: int = 0
    last_attempts: Attempts | None = None
    burst_remaining: int | None = None


def classify(status: int, body: bytes | str | None, headers: Any) -> ExternalError:
    """One HubSpot error response -> what to do about it (retry, rate-limited, refresh, fatal)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        parsed = {}
    data = parsed if isinstance(parsed, dict) else {}
    category = str(data.get("category") or data.get("errorType") or data.get("status") or "")
    if status == 429:
        policy = str(data.get("policyName") or "")
        retry_after = _retry_after(headers)
        return RateLimitedError(
            SERVICE,
            f"429 {policy or 'rate limit'}",
            retry_after=retry_after,
            status=status,
            code=policy or None,
            daily=policy == "DAILY",
        )
    if status == 401:
        return CredentialsExpiredError(SERVICE, f"401 {category}", status=status, code=category or None)
    if status in _RETRY_STATUSES or status >= 500 or status == 0:
        return RetryableError(SERVICE, f"{status} {category}".strip(), status=status, code=category or None)
    missing = _missing_properties(data, text)
    if missing is not None:
        return PropertyMissingError(missing, status=status)
    if category == "MISSING_SCOPES":
        return ScopeMissingError(_missing_scopes(data), status=status)
    sub = str(data.get("subCategory") or "")
    return FatalError(SERVICE, f"{status} {category} {sub}".strip(), status=status, code=category or None)


_QUOTED = re.compile(r'[Pp]roperty \\?"([A-Za-z0-9_]+)\\?" does not exist')


def _missing_properties(data: dict[str, Any], text: str) -> list[str] | None:
    """The property names of a `PROPERTY_DOESNT_EXIST` answer, None for any other answer.

    HubSpot says it in `errors[]` (`code`, `context.propertyName`) or, on object
    writes, inside `message` (`Property values were not valid: [{... "error":
    "PROPERTY_DOESNT_EXIST", "name": "x" ...}]`); both are read.
    """
    if "PROPERTY_DOESNT_EXIST" not in text:
        return None
    names: list[str] = []
    for error in data.get("errors") or []:
        if isinstance(error, dict) and error.get("code") == "PROPERTY_DOESNT_EXIST":
            context = error.get("context") or {}
            names += [str(n) for n in (context.get("propertyName") or [])]
            names += _QUOTED.findall(str(error.get("message") or ""))
    message = str(data.get("message") or "")
    start = message.find("[")
    if start >= 0:
        try:
            listed = json.loads(message[start:])
        except ValueError:
            listed = []
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, dict) and item.get("error") == "PROPERTY_DOESNT_EXIST" and item.get("name"):
                names.append(str(item["name"]))
    names += _QUOTED.findall(message)
    return list(dict.fromkeys(names))


def _missing_scopes(data: dict[str, Any]) -> list[str]:
    """The scopes a 403 `MISSING_SCOPES` says are needed (`errors[].context.requiredGranularScopes`)."""
    out: list[str] = []
    for error in data.get("errors") or []:
        context = (error or {}).get("context") or {} if isinstance(error, dict) else {}
        for key in ("requiredGranularScopes", "requiredScopes", "missingScopes"):
            out += [str(s) for s in context.get(key) or []]
    return list(dict.fromkeys(out))


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    if value is None:
        value = getter(name.lower())
    return None if value is None else str(value)


def _retry_after(headers: Any) -> float | None:
    raw = _header(headers, "Retry-After")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None


def search_body(
    filter_groups: list[JsonObject], properties: Sequence[str], after: str | None = None
) -> JsonObject:
    """One search page's body, sorted by id so that `after` pages are stable."""
    body: JsonObject = {
        "filterGroups": filter_groups,
        "properties": list(properties),
        "limit": SEARCH_PAGE,
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
    }
    if after is not None:
        body["after"] = after
    return body


def search_body_size(filter_groups: list[JsonObject], properties: Sequence[str]) -> int:
    """Characters of the largest page's body (a later page adds its `after` cursor)."""
    return len(json.dumps(search_body(filter_groups, properties, "9" * 12)))


def chunks(values: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


class HubSpotClient:
    """One tenant's HubSpot API: thread-safe, shared by every association of that tenant in a process."""

    def __init__(
        self,
        settings: HubSpotSettings,
        tokens: TokenSource,
        *,
        limiter: Limiter | None = None,
        search_limiter: Limiter | None = None,
        budget: ApiBudget | None = None,
        cooldown: Cooldown | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_failure: Callable[[RetryEvent], None] | None = None,
        sessions: SessionStore | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.sessions: SessionStore = sessions if sessions is not None else LocalSessions()
        self.limiter: Limiter = limiter or NullLimiter()
        self.search_limiter: Limiter = search_limiter or NullLimiter()
        self.budget = budget
        self.cooldown = cooldown or Cooldown()
        self.sleep = sleep
        self.rng = rng
        self.on_failure = on_failure
        self.stats = ClientStats()
        self._stats_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self.objects_batch = self._api(hs_objects, "BatchApi")
        self.objects_search = self._api(hs_objects, "SearchApi")
        self.objects_basic = self._api(hs_objects, "BasicApi")
        self.associations = self._api(hs_assoc, "BatchApi")
        self.pipelines = self._api(hs_pipelines, "PipelinesApi")
        self.owners = self._api(hs_owners, "OwnersApi")
        self.oauth_tokens = self._api(hs_oauth, "TokensApi")
        self.oauth_access_tokens = self._api(hs_oauth, "AccessTokensApi")
        self.properties = self._api(hs_properties, "CoreApi")
        self.property_groups = self._api(hs_properties, "GroupsApi")

    @classmethod
    def for_tenant(
        cls,
        settings: HubSpotSettings,
        tokens: TokenSource,
        redis_client: redis.Redis,
        *,
        session_settings: SessionSettings | None = None,
        **kwargs: Any,
    ) -> HubSpotClient:
        """The production wiring: limits, the daily budget and an OAuth app's token shared by all
        workers through Redis (a private app's token is static: nothing to share)."""
        sleep = kwargs.get("sleep", time.sleep)
        prefix = f"hubspot:{settings.tenant}"
        if tokens.can_refresh and "sessions" not in kwargs:
            # The lock outlives the slowest token request, so a slow refresh is never joined by a second.
            lock_ttl = max(SessionSettings.lock_ttl, settings.connect_timeout + settings.read_timeout + 5.0)
            kwargs["sessions"] = RedisSessions(
                redis_client, prefix, session_settings or SessionSettings(lock_ttl=lock_ttl)
            )
        return cls(
            settings,
            tokens,
            limiter=RedisRateLimiter(
                redis_client, f"{prefix}:requests", settings.burst_limit, settings.burst_period, sleep=sleep
            ),
            search_limiter=RedisRateLimiter(
                redis_client,
                f"{prefix}:search",
                settings.search_limit,
                settings.search_period,
                sleep=sleep,
                spacing_seconds=settings.search_period / settings.search_limit,
            ),
            budget=ApiBudget(redis_client, f"{prefix}:daily"),
            cooldown=RedisCooldown(redis_client, prefix),
            **kwargs,
        )

    def _api(self, package: Any, name: str) -> Any:
        configuration = package.Configuration(host=self.settings.host.rstrip("/"))
        configuration.retries = False
        configuration.connection_pool_maxsize = 16
        api_client = package.ApiClient(configuration=configuration)
        api_client.user_agent = "callmatch (hubspot-api-client)"
        return getattr(package, name)(api_client=api_client)

    # -- the one send path -------------------------------------------------------------------
    def send(
        self,
        route: str,
        call: Callable[[dict[str, Any]], Any],
        *,
        search: bool = False,
        meter: Meter | None = None,
        missing_ok: bool = False,
    ) -> JsonObject:
        """Send one request with limits, classification and retries; the parsed JSON body.

        `meter(route)` is told once per logical request (retries are in `stats`). With
        `missing_ok`, a 404 is an answer (an empty body), not a failure to log or retry.
        """
        if meter is not None:
            meter(route)
        attempts = Attempts()
        used: list[Session | None] = [None]

        def refresh() -> None:
            self._renew(used[0])

        try:
            return call_with_retries(
                lambda: self._once(route, call, search, missing_ok, used),
                service=SERVICE,
                max_attempts=self.settings.max_attempts,
                refresh=refresh if self.tokens.can_refresh else None,
                base_delay=self.settings.base_delay,
                max_delay=self.settings.max_delay,
                max_rate_limit_wait=self.settings.max_rate_limit_wait,
                sleep=self.sleep,
                attempts=attempts,
                on_failure=self.on_failure,
                rng=self.rng,
                max_post_refresh_rejections=self.settings.max_post_refresh_rejections,
            )
        finally:
            with self._stats_lock:
                self.stats.last_attempts = attempts
                self.stats.retries += attempts.retries
                self.stats.rate_limited += attempts.rate_limited

    def _once(
        self,
        route: str,
        call: Callable[[dict[str, Any]], Any],
        search: bool,
        missing_ok: bool = False,
        used: list[Session | None] | None = None,
    ) -> JsonObject:
        """One attempt; `used[0]` is set to the token it sends, the one to replace on a 401."""
        if self.budget is not None:
            self.budget.check(self.settings.budget_reserve)
        if self.tokens.needs_refresh():
            self._renew(self.tokens.session(), only_if_due=True)
        pause = self.cooldown.remaining()
        if pause > 0:
            self.sleep(pause)
        # The 10-second slot first: a search slot taken and then held while the 10-second
        # limiter waits would reach HubSpot late, bunched with later searches (a 429 SECONDLY).
        self.limiter.acquire(self.settings.acquire_timeout)
        if search:
            self.search_limiter.acquire(self.settings.acquire_timeout)
        session = self.tokens.session()
        if used is not None:
            used[0] = session
        token = session.token if session is not None else ""
        kwargs: dict[str, Any] = {
            "_preload_content": False,
            "_request_timeout": (self.settings.connect_timeout, self.settings.read_timeout),
            "_request_auth": {
                "in": "header",
                "key": "Authorization",
                "value": f"Bearer {token}",
                "type": "oauth2",
            },
        }
        with self._stats_lock:
            self.stats.attempts += 1
            self.stats.by_route[route] += 1
        try:
            response = call(kwargs)
        except _API_EXCEPTIONS as error:
            if missing_ok and int(getattr(error, "status", 0) or 0) == 404:
                return {}
            raise classify(
                int(getattr(error, "status", 0) or 0),
                getattr(error, "body", None),
                getattr(error, "headers", None),
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise RetryableError(SERVICE, f"{route}: {type(error).__name__}") from None
        try:
            raw = response.data
            self._note_limits(response.headers)
        finally:
            response.release_conn()
        if not raw:
            return {}
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {"results": parsed}

    @staticmethod
    def _check_partial(data: JsonObject) -> None:
        """A 207 batch answer: missing objects are normal; any other error is not."""
        for error in data.get("errors") or []:
            category = str(error.get("category") or "")
            sub = str(error.get("subCategory") or "")
            if category not in _NOT_FOUND and "NOT_FOUND" not in category and "NOT_FOUND" not in sub:
                raise FatalError(SERVICE, f"207 {category} {sub}".strip(), status=207, code=category or None)

    def _note_limits(self, headers: Any) -> None:
        """HubSpot's own count: the daily figure feeds the budget; a nearly full 10-second
        window (someone else spends this app's budget too) pauses every worker a little.

        This runs after HubSpot answered: Redis being away must not turn a delivered
        response (perhaps a write) into a failure that is retried, so it is only logged.
        """
        try:
            self._record_limits(headers)
        except RetryableError as error:
            log.warning("hubspot tenant %s: rate-limit headers not recorded: %s", self.settings.tenant, error)

    def _record_limits(self, headers: Any) -> None:
        remaining = _header(headers, "X-HubSpot-RateLimit-Remaining")
        cap = _header(headers, "X-HubSpot-RateLimit-Max")
        interval = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        if remaining is not None and remaining.isdigit():
            left = int(remaining)
            self.stats.burst_remaining = left
            floor = self.settings.burst_floor
            if left <= floor and cap and cap.isdigit() and int(cap) > 0 and interval and interval.isdigit():
                self.cooldown.start(int(interval) / 1000 / int(cap) * (floor + 1 - left))
        daily = _header(headers, "X-HubSpot-RateLimit-Daily")
        daily_left = _header(headers, "X-HubSpot-RateLimit-Daily-Remaining")
        if self.budget is not None and daily and daily_left and daily.isdigit() and daily_left.isdigit():
            self.budget.record_remaining(int(daily_left), int(daily))

    def verify_refresh(self) -> float | None:
        """Ask HubSpot for a new access token with the refresh token now (doctor) and use it.

        Returns its lifetime in seconds; raises FatalError when the refresh token is refused."""
        oauth = self.tokens.oauth
        if oauth is None:
            raise ValueError("a private app has no refresh token")
        with self._refresh_lock:
            session = self._request_token(oauth)
            self.tokens.install(session, fetched=True)
        return session.expires_in

    def refresh_token(self) -> None:
        """After a 401 with the current token: a newer token, shared or fetched."""
        self._renew(self.tokens.session())

    def _renew(self, held: Session | None, *, only_if_due: bool = False) -> None:
        """Replace `held` (rejected, or due with `only_if_due`) by a newer token.

        A token another thread of this process installed since `held` is used as is; the
        session store does the same across workers and lets only one of them ask HubSpot.
        """
        oauth = self.tokens.oauth
        if oauth is None:
            raise CredentialsExpiredError(SERVICE, "access token rejected and no OAuth app to refresh it")
        with self._refresh_lock:
            if only_if_due and not self.tokens.needs_refresh():
                return
            current = self.tokens.session()
            if not only_if_due and current is not None and current.replaces(held):
                return
            fetched: list[Session] = []

            def fetch() -> Session:
                fetched.append(self._request_token(oauth))
                return fetched[0]

            session = self.sessions.renew(held, fetch, min_lifetime=self.tokens.margin)
            self.tokens.install(session, fetched=bool(fetched))
            if not fetched:
                with self._stats_lock:
                    self.stats.adoptions += 1
                log.info(
                    "hubspot tenant %s: adopted the token another worker refreshed", self.settings.tenant
                )

    def _request_token(self, oauth: OAuthApp) -> Session:
        """One refresh-token grant; a refused one is fatal, a 5xx or network failure retryable."""
        try:
            response = self.oauth_tokens.create(
                grant_type="refresh_token",
                client_id=oauth.client_id,
                client_secret=oauth.client_secret,
                refresh_token=oauth.refresh_token,
                _preload_content=False,
                _request_timeout=(self.settings.connect_timeout, self.settings.read_timeout),
            )
        except _API_EXCEPTIONS as error:
            failure = classify(int(getattr(error, "status", 0) or 0), getattr(error, "body", None), None)
            if isinstance(failure, CredentialsExpiredError) or failure.status == 400:
                raise FatalError(SERVICE, "refresh token rejected", status=failure.status) from None
            raise failure from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise RetryableError(SERVICE, f"token refresh: {type(error).__name__}") from None
        with self._stats_lock:
            self.stats.attempts += 1
            self.stats.by_route["POST /oauth/v1/token"] += 1
            self.stats.refreshes += 1
        try:
            data = json.loads(response.data)
        finally:
            response.release_conn()
        log.info("hubspot token refreshed for tenant %s", self.settings.tenant)
        return Session(token=str(data["access_token"]), expires_in=float(data.get("expires_in", 1800)))

    # -- typed operations --------------------------------------------------------------------
    def batch_read(
        self,
        kind: str,
        ids: Sequence[str],
        properties: Sequence[str],
        id_property: str | None = None,
        *,
        meter: Meter | None = None,
    ) -> list[JsonObject]:
        """Objects by id (or a unique property such as `email`), 100 per request; missing ones are skipped."""
        out: list[JsonObject] = []
        for part in chunks(list(dict.fromkeys(ids)), BATCH_SIZE):
            body: dict[str, Any] = {"inputs": [{"id": key} for key in part], "properties": list(properties)}
            if id_property is not None:
                body["idProperty"] = id_property
            data = self.send(
                f"POST /crm/v3/objects/{kind}/batch/read",
                lambda kw, body=body: self.objects_batch.read(kind, body, **kw),  # type: ignore[misc]
                meter=meter,
            )
            self._check_partial(data)
            out.extend(data.get("results") or [])
        return out

    def search(
        self,
        kind: str,
        filter_groups: list[JsonObject],
        properties: Sequence[str],
        *,
        meter: Meter | None = None,
    ) -> list[JsonObject]:
        """Every page of one search (each page is one request under the search limit)."""
        out: list[JsonObject] = []
        after: str | None = None
        while True:
            body = search_body(filter_groups, properties, after)
            data = self.send(
                f"POST /crm/v3/objects/{kind}/search",
                lambda kw, body=body: self.objects_search.do_search(kind, body, **kw),  # type: ignore[misc]
                meter=meter,
                search=True,
            )
            out.extend(data.get("results") or [])
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return out

    def associations_of(
        self, from_kind: str, to_kind: str, ids: Sequence[str], *, meter: Meter | None = None
    ) -> dict[str, list[JsonObject]]:
        """v4 batch read: from id -> every one of its `to` entries (`toObjectId`, `associationTypes`).

        HubSpot pages each object's list on its own: a result carries `paging.next.after`
        when that object has more, and the next request names it again with that
        `after` (`{"inputs": [{"id": ..., "after": ...}]}`). Every page is read, so a
        company with many deals loses none; the follow-ups of several objects share
        requests.
        """
        out: dict[str, list[JsonObject]] = {}
        pending: list[JsonObject] = [{"id": key} for key in dict.fromkeys(ids)]
        route = f"POST /crm/v4/associations/{from_kind}/{to_kind}/batch/read"
        while pending:
            part, pending = pending[:ASSOCIATION_BATCH_SIZE], pending[ASSOCIATION_BATCH_SIZE:]
            body = {"inputs": part}
            data = self.send(
                route,
                lambda kw, body=body: self.associations.get_page(from_kind, to_kind, body, **kw),  # type: ignore[misc]
                meter=meter,
            )
            self._check_partial(data)
            asked = {str(item["id"]): item.get("after") for item in part}
            for result in data.get("results") or []:
                from_id = str((result.get("from") or {}).get("id"))
                out.setdefault(from_id, []).extend(result.get("to") or [])
                after = ((result.get("paging") or {}).get("next") or {}).get("after")
                if after and str(after) != str(asked.get(from_id)):
                    pending.append({"id": from_id, "after": str(after)})
        return out

    def create_associations(
        self, from_kind: str, to_kind: str, inputs: list[JsonObject], *, meter: Meter | None = None
    ) -> None:
        """Every pair linked, or FatalError: a pair HubSpot refuses in its 207 answer fails the call."""
        for data in self.batch_create_associations(from_kind, to_kind, inputs, meter=meter):
            for error in data.get("errors") or []:
                category = str(error.get("category") or "")
                raise FatalError(SERVICE, f"207 {category}".strip(), status=207, code=category or None)

    def batch_create_associations(
        self, from_kind: str, to_kind: str, inputs: list[JsonObject], *, meter: Meter | None = None
    ) -> list[JsonObject]:
        """v4 batch create, `ASSOCIATION_WRITE_SIZE` pairs per request; the answers as HubSpot gives
        them (a 207's `errors` name the refused pairs in `context`: the caller decides)."""
        out: list[JsonObject] = []
        for start in range(0, len(inputs), ASSOCIATION_WRITE_SIZE):
            body = {"inputs": inputs[start : start + ASSOCIATION_WRITE_SIZE]}
            out.append(
                self.send(
                    f"POST /crm/v4/associations/{from_kind}/{to_kind}/batch/create",
                    lambda kw, body=body: self.associations.create(from_kind, to_kind, body, **kw),  # type: ignore[misc]
                    meter=meter,
                )
            )
        return out

    def batch_archive_associations(
        self,
        from_kind: str,
        to_kind: str,
        stale: dict[str, list[str]],
        *,
        meter: Meter | None = None,
    ) -> None:
        """v4 batch archive of several objects' links (from id -> to ids), in as few requests as fit."""
        inputs = [{"from": {"id": f}, "to": [{"id": t} for t in to]} for f, to in stale.items() if to]
        for start in range(0, len(inputs), ASSOCIATION_WRITE_SIZE):
            body = {"inputs": inputs[start : start + ASSOCIATION_WRITE_SIZE]}
            self.send(
                f"POST /crm/v4/associations/{from_kind}/{to_kind}/batch/archive",
                lambda kw, body=body: self.associations.archive(from_kind, to_kind, body, **kw),  # type: ignore[misc]
                meter=meter,
            )

    def archive_associations(
        self, from_kind: str, to_kind: str, from_id: str, to_ids: Sequence[str], *, meter: Meter | None = None
    ) -> None:
        if to_ids:
            body = {"inputs": [{"from": {"id": from_id}, "to": [{"id": i} for i in to_ids]}]}
            self.send(
                f"POST /crm/v4/associations/{from_kind}/{to_kind}/batch/archive",
                lambda kw: self.associations.archive(from_kind, to_kind, body, **kw),
                meter=meter,
            )

    def create(
        self,
        kind: str,
        properties: dict[str, str],
        associations: list[JsonObject],
        *,
        meter: Meter | None = None,
    ) -> JsonObject:
        body = {"properties": properties, "associations": associations}
        return self.send(
            f"POST /crm/v3/objects/{kind}",
            lambda kw: self.objects_basic.create(kind, body, **kw),
            meter=meter,
        )

    def batch_create(self, kind: str, inputs: list[JsonObject], *, meter: Meter | None = None) -> JsonObject:
        """`POST /crm/v3/objects/{kind}/batch/create` (at most 100 inputs, each with its inline
        `associations` and an `objectWriteTraceId`). The answer as HubSpot gives it: `results`,
        and with a 207 the refused inputs in `errors` (the caller decides what each one means)."""
        if len(inputs) > BATCH_SIZE:
            raise ValueError(f"batch create of {len(inputs)} inputs: HubSpot takes {BATCH_SIZE}")
        body = {"inputs": inputs}
        return self.send(
            f"POST /crm/v3/objects/{kind}/batch/create",
            lambda kw: self.objects_batch.create(kind, body, **kw),
            meter=meter,
        )

    def batch_update(self, kind: str, inputs: list[JsonObject], *, meter: Meter | None = None) -> JsonObject:
        """`POST /crm/v3/objects/{kind}/batch/update` (at most 100 inputs of `id`, `properties` and an
        `objectWriteTraceId`): 200 with `results`, or 207 with the refused inputs in `errors`."""
        if len(inputs) > BATCH_SIZE:
            raise ValueError(f"batch update of {len(inputs)} inputs: HubSpot takes {BATCH_SIZE}")
        body = {"inputs": inputs}
        return self.send(
            f"POST /crm/v3/objects/{kind}/batch/update",
            lambda kw: self.objects_batch.update(kind, body, **kw),
            meter=meter,
        )

    def update(
        self, kind: str, object_id: str, properties: dict[str, str], *, meter: Meter | None = None
    ) -> JsonObject:
        body = {"properties": properties}
        return self.send(
            f"PATCH /crm/v3/objects/{kind}/{{id}}",
            lambda kw: self.objects_basic.update(kind, object_id, body, **kw),
            meter=meter,
        )

    def get(
        self,
        kind: str,
        object_id: str,
        properties: Sequence[str],
        associations: Sequence[str] = (),
        *,
        meter: Meter | None = None,
    ) -> JsonObject:
        """One object with the ids of its associated objects (v3), in one request."""
        return self.send(
            f"GET /crm/v3/objects/{kind}/{{id}}",
            lambda kw: self.objects_basic.get_by_id(
                kind, object_id, properties=list(properties), associations=list(associations), **kw
            ),
            meter=meter,
        )

    def find(
        self,
        kind: str,
        key: str,
        properties: Sequence[str],
        associations: Sequence[str] = (),
        id_property: str | None = None,
        *,
        meter: Meter | None = None,
    ) -> JsonObject | None:
        """`get` for a lookup: None when HubSpot has no such object (its 404 is the answer)."""
        kw_id: dict[str, Any] = {"id_property": id_property} if id_property is not None else {}
        data = self.send(
            f"GET /crm/v3/objects/{kind}/{{id}}",
            lambda kw: self.objects_basic.get_by_id(
                kind, key, properties=list(properties), associations=list(associations), **kw_id, **kw
            ),
            meter=meter,
            missing_ok=True,
        )
        return data or None

    def pipeline(self, pipeline_id: str, *, meter: Meter | None = None) -> JsonObject:
        return self.send(
            "GET /crm/v3/pipelines/deals/{id}",
            lambda kw: self.pipelines.get_by_id("deals", pipeline_id, **kw),
            meter=meter,
        )

    def owners_by_email(self, email: str, *, meter: Meter | None = None) -> list[JsonObject]:
        data = self.send(
            "GET /crm/v3/owners/",
            lambda kw: self.owners.get_page(email=email, limit=100, **kw),
            meter=meter,
        )
        return list(data.get("results") or [])

    # -- the portal's shape: properties, groups, pipelines (capabilities, setup, doctor) ------
    def properties_of(self, kind: str, *, meter: Meter | None = None) -> list[JsonObject]:
        """Every property of an object type (`GET /crm/v3/properties/{objectType}`)."""
        data = self.send(
            f"GET /crm/v3/properties/{kind}",
            lambda kw: self.properties.get_all(kind, **kw),
            meter=meter,
        )
        return list(data.get("results") or [])

    def property_groups_of(self, kind: str, *, meter: Meter | None = None) -> list[JsonObject]:
        data = self.send(
            f"GET /crm/v3/properties/{kind}/groups",
            lambda kw: self.property_groups.get_all(kind, **kw),
            meter=meter,
        )
        return list(data.get("results") or [])

    def create_property_group(self, kind: str, body: JsonObject, *, meter: Meter | None = None) -> JsonObject:
        return self.send(
            f"POST /crm/v3/properties/{kind}/groups",
            lambda kw: self.property_groups.create(kind, body, **kw),
            meter=meter,
        )

    def create_property(self, kind: str, body: JsonObject, *, meter: Meter | None = None) -> JsonObject:
        return self.send(
            f"POST /crm/v3/properties/{kind}",
            lambda kw: self.properties.create(kind, body, **kw),
            meter=meter,
        )

    def pipelines_of(self, kind: str = "deals", *, meter: Meter | None = None) -> list[JsonObject]:
        """Every pipeline of an object type with its stages (`GET /crm/v3/pipelines/{objectType}`)."""
        data = self.send(
            f"GET /crm/v3/pipelines/{kind}",
            lambda kw: self.pipelines.get_all(kind, **kw),
            meter=meter,
        )
        return list(data.get("results") or [])

    def probe_read(self, kind: str, *, meter: Meter | None = None) -> None:
        """The harmless read that proves a read scope: one object by an id no portal has, no
        property. HubSpot checks the scope first (403 `MISSING_SCOPES`), then answers 404."""
        self.find(kind, "0", (), meter=meter)

    def first_owner(self, *, meter: Meter | None = None) -> JsonObject:
        return self.send("GET /crm/v3/owners/", lambda kw: self.owners.get_page(limit=1, **kw), meter=meter)

    def account_details(self, *, meter: Meter | None = None) -> JsonObject:
        """`GET /account-info/v3/details`: the portal id and time zone (any valid token may read it)."""
        return self._get_raw("/account-info/v3/details", meter=meter)

    def daily_usage(self, *, meter: Meter | None = None) -> list[JsonObject]:
        """`GET /account-info/v3/api-usage/daily/private-apps`: `usageLimit`, `currentUsage`, `resetsAt`."""
        return list(
            self._get_raw("/account-info/v3/api-usage/daily/private-apps", meter=meter).get("results") or []
        )

    def token_info(self, *, meter: Meter | None = None) -> JsonObject:
        """`GET /oauth/v1/access-tokens/{token}`: the hub, the user and the scopes of our access token."""
        if self.tokens.needs_refresh():
            self._renew(self.tokens.session(), only_if_due=True)
        token = self.tokens.current() or ""
        return self.send(
            "GET /oauth/v1/access-tokens/{token}",
            lambda kw: self.oauth_access_tokens.get(token, **kw),
            meter=meter,
        )

    def _get_raw(self, path: str, *, meter: Meter | None = None) -> JsonObject:
        """A GET the client library has no method for, through its own HTTP stack."""
        api_client = self.properties.api_client

        def call(kw: dict[str, Any]) -> Any:
            return api_client.call_api(
                path,
                "GET",
                header_params={"Accept": "application/json"},
                auth_settings=["oauth2"],
                _return_http_data_only=True,
                **kw,
            )

        return self.send(f"GET {path}", call, meter=meter)
