"""The retry policy: attempts, waits and refreshes per error class.

The called functions raise the classified errors an adapter base would; `sleep` is
the clock, recorded instead of waited.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import redis
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.errors import (
    BudgetExhaustedError,
    CredentialsExpiredError,
    ExternalError,
    FatalError,
    RateLimitedError,
    ResponseAction,
    RetryableError,
)
from adapters.retry import (
    DEFAULT_POST_REFRESH_REJECTIONS,
    Attempts,
    RetryEvent,
    backoff_delay,
    call_with_retries,
)


class Script:
    """Raises the given errors in order, then returns `result`; counts its calls."""

    def __init__(self, *outcomes: BaseException, result: str = "ok") -> None:
        self.outcomes = list(outcomes)
        self.result = result
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.outcomes:
            raise self.outcomes.pop(0)
        return self.result


class Clock:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def retryable() -> RetryableError:
    return RetryableError("salesforce", "503 Service Unavailable", status=503)


def expired() -> CredentialsExpiredError:
    return CredentialsExpiredError("salesforce", "INVALID_SESSION_ID", status=401, code="INVALID_SESSION_ID")


def test_success_after_retryable_failures() -> None:
    fn, clock, attempts = Script(retryable(), retryable(), retryable()), Clock(), Attempts()

    result = call_with_retries(fn, service="salesforce", sleep=clock.sleep, attempts=attempts)

    assert result == "ok"
    assert fn.calls == 4 and attempts.count == 4
    assert attempts.retries == 3
    assert attempts.errors == ["RetryableError"] * 3
    assert len(clock.sleeps) <= 3


def test_backoff_is_exponential_with_full_jitter() -> None:
    fn, attempts = Script(*[retryable() for _ in range(6)]), Attempts()

    call_with_retries(
        fn,
        service="hubspot",
        max_attempts=7,
        base_delay=0.5,
        max_delay=4.0,
        sleep=Clock().sleep,
        attempts=attempts,
        rng=random.Random(7),
    )

    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(attempts.delays) == 6
    assert all(0.0 <= d <= cap for d, cap in zip(attempts.delays, caps, strict=True))
    rng = random.Random(7)
    assert attempts.delays == [backoff_delay(n, 0.5, 4.0, rng) for n in range(1, 7)]


def test_backoff_delay_bounds() -> None:
    rng = random.Random(1)
    for n in range(1, 200):
        assert 0.0 <= backoff_delay(n, 0.5, 30.0, rng) <= min(30.0, 0.5 * 2 ** min(n - 1, 62))


def test_retryable_gives_up_after_max_attempts_with_the_last_error() -> None:
    errors = [RetryableError("hubspot", f"502 #{i}", status=502) for i in range(4)]
    fn, clock, attempts = Script(*errors), Clock(), Attempts()

    with pytest.raises(RetryableError) as raised:
        call_with_retries(fn, service="hubspot", max_attempts=4, sleep=clock.sleep, attempts=attempts)

    assert raised.value is errors[3]
    assert fn.calls == 4
    assert attempts.retries == 3


def test_rate_limited_honours_retry_after() -> None:
    fn = Script(
        RateLimitedError("hubspot", "429", retry_after=2.5, status=429),
        RateLimitedError("hubspot", "429", retry_after=1.0, status=429),
    )
    clock, attempts = Clock(), Attempts()

    assert call_with_retries(fn, service="hubspot", sleep=clock.sleep, attempts=attempts) == "ok"

    assert clock.sleeps == [2.5, 1.0]
    assert fn.calls == 3
    assert attempts.rate_limited == 2


def test_rate_limited_longer_than_the_cap_is_raised_for_rescheduling() -> None:
    fn, clock = Script(RateLimitedError("hubspot", "429", retry_after=120.0, status=429)), Clock()

    with pytest.raises(RateLimitedError) as raised:
        call_with_retries(fn, service="hubspot", max_rate_limit_wait=60.0, sleep=clock.sleep)

    assert raised.value.retry_after == 120.0
    assert fn.calls == 1
    assert clock.sleeps == []


def test_rate_limited_without_retry_after_backs_off() -> None:
    fn, attempts = Script(RateLimitedError("salesforce", "REQUEST_LIMIT_EXCEEDED", status=403)), Attempts()

    call_with_retries(
        fn, service="salesforce", base_delay=0.5, sleep=Clock().sleep, attempts=attempts, rng=random.Random(3)
    )

    assert fn.calls == 2
    assert len(attempts.delays) == 1 and 0.0 <= attempts.delays[0] <= 0.5


def test_daily_limit_is_not_waited_for() -> None:
    fn, clock = (
        Script(RateLimitedError("hubspot", "daily", retry_after=3600, status=429, daily=True)),
        Clock(),
    )

    with pytest.raises(RateLimitedError) as raised:
        call_with_retries(fn, service="hubspot", sleep=clock.sleep)

    assert raised.value.daily
    assert fn.calls == 1 and clock.sleeps == []


def test_budget_reserve_is_not_retried() -> None:
    fn, clock = Script(BudgetExhaustedError("salesforce", "reserve", retry_after=1.0)), Clock()

    with pytest.raises(BudgetExhaustedError):
        call_with_retries(fn, service="salesforce", sleep=clock.sleep)

    assert fn.calls == 1 and clock.sleeps == []


def test_expired_credentials_refresh_once_then_retry_at_once() -> None:
    fn, clock, attempts = Script(expired()), Clock(), Attempts()
    refreshes: list[int] = []

    result = call_with_retries(
        fn,
        service="salesforce",
        refresh=lambda: refreshes.append(fn.calls),
        sleep=clock.sleep,
        attempts=attempts,
    )

    assert result == "ok"
    assert refreshes == [1], "refreshed exactly once, after the first call"
    assert fn.calls == 2 and attempts.refreshes == 1
    assert clock.sleeps == []


def test_expiry_right_after_a_refresh_backs_off_refreshes_again_and_succeeds() -> None:
    """Another worker may rotate the session between our refresh and our request."""
    fn, clock, attempts = Script(expired(), expired(), expired()), Clock(), Attempts()
    refreshes: list[int] = []

    result = call_with_retries(
        fn,
        service="salesforce",
        refresh=lambda: refreshes.append(fn.calls),
        base_delay=0.5,
        sleep=clock.sleep,
        attempts=attempts,
        rng=random.Random(7),
    )

    assert result == "ok"
    assert DEFAULT_POST_REFRESH_REJECTIONS == 3
    assert fn.calls == 4 and refreshes == [1, 2, 3] and attempts.refreshes == 3
    first, *after_refresh = attempts.delays
    assert first == 0.0, "the first expiry refreshes at once"
    assert len(after_refresh) == 2
    assert 0.0 < after_refresh[0] <= 0.5 and 0.0 < after_refresh[1] <= 1.0, "then backs off, with jitter"
    assert clock.sleeps == after_refresh


@pytest.mark.parametrize("allowed", [1, 2, 3, 4])
def test_expiry_right_after_a_refresh_is_fatal_after_the_configured_count(allowed: int) -> None:
    outcomes = [expired() for _ in range(allowed + 1)]
    last = outcomes[-1]
    fn, refreshes, attempts = Script(*outcomes), [], Attempts()

    with pytest.raises(FatalError) as raised:
        call_with_retries(
            fn,
            service="salesforce",
            max_attempts=10,
            refresh=lambda: refreshes.append(1),
            sleep=Clock().sleep,
            attempts=attempts,
            max_post_refresh_rejections=allowed,
        )

    assert raised.value.__cause__ is last
    assert raised.value.code == "INVALID_SESSION_ID"
    assert fn.calls == allowed + 1
    assert len(refreshes) == allowed
    assert attempts.errors == ["CredentialsExpiredError"] * (allowed + 1)


def test_post_refresh_rejections_count_only_in_a_row() -> None:
    """An unrelated failure between two rejections starts the count again."""
    fn = Script(expired(), expired(), retryable(), expired(), expired())
    refreshes: list[int] = []

    result = call_with_retries(
        fn,
        service="salesforce",
        max_attempts=10,
        refresh=lambda: refreshes.append(1),
        sleep=Clock().sleep,
        max_post_refresh_rejections=2,
    )

    assert result == "ok" and fn.calls == 6 and len(refreshes) == 4


def test_post_refresh_rejections_must_be_allowed_at_least_once() -> None:
    with pytest.raises(ValueError, match="max_post_refresh_rejections"):
        call_with_retries(Script(), service="salesforce", max_post_refresh_rejections=0)


def test_a_bare_redis_error_is_retried_as_retryable() -> None:
    """Redis restarting under a worker is transient infrastructure, not a request that cannot work."""
    fn, clock, attempts = (
        Script(redis.ConnectionError("reset"), redis.TimeoutError("slow")),
        Clock(),
        Attempts(),
    )

    assert call_with_retries(fn, service="salesforce", sleep=clock.sleep, attempts=attempts) == "ok"

    assert fn.calls == 3
    assert attempts.errors == ["RetryableError", "RetryableError"]
    assert len(clock.sleeps) == 2


def test_a_persistent_redis_error_ends_retryable_of_service_redis() -> None:
    cause = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
    fn = Script(redis.ConnectionError("refused"), redis.ResponseError("LOADING"), cause)

    with pytest.raises(RetryableError) as raised:
        call_with_retries(fn, service="hubspot", max_attempts=3, sleep=Clock().sleep)

    assert raised.value.service == "redis"
    assert raised.value.__cause__ is cause
    assert "127.0.0.1" not in str(raised.value), "names the failure, not the server"
    assert fn.calls == 3


def test_expiry_after_an_unrelated_failure_may_refresh_again() -> None:
    fn, refreshes = Script(expired(), retryable(), expired()), []

    assert (
        call_with_retries(fn, service="salesforce", refresh=lambda: refreshes.append(1), sleep=Clock().sleep)
        == "ok"
    )

    assert fn.calls == 4
    assert refreshes == [1, 1]


def test_expiry_without_a_refresh_is_raised() -> None:
    fn = Script(expired())

    with pytest.raises(CredentialsExpiredError):
        call_with_retries(fn, service="salesforce", sleep=Clock().sleep)

    assert fn.calls == 1


def test_refresh_failure_propagates() -> None:
    fn = Script(expired())

    def refresh() -> None:
        raise FatalError("salesforce", "invalid_grant", status=400, code="invalid_grant")

    with pytest.raises(FatalError):
        call_with_retries(fn, service="salesforce", refresh=refresh, sleep=Clock().sleep)

    assert fn.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        FatalError("salesforce", "INVALID_FIELD", status=400, code="INVALID_FIELD"),
        ExternalError("salesforce", "unclassified"),
        KeyError("a bug"),
    ],
)
def test_fatal_and_unclassified_errors_are_not_retried(error: BaseException) -> None:
    fn, clock = Script(error), Clock()

    with pytest.raises(type(error)) as raised:
        call_with_retries(fn, service="salesforce", sleep=clock.sleep)

    assert raised.value is error
    assert fn.calls == 1 and clock.sleeps == []


def test_single_attempt_means_no_retry() -> None:
    fn = Script(retryable())

    with pytest.raises(RetryableError):
        call_with_retries(fn, service="salesforce", max_attempts=1, sleep=Clock().sleep)

    assert fn.calls == 1
    with pytest.raises(ValueError):
        call_with_retries(fn, service="salesforce", max_attempts=0)


def test_failure_hook_sees_every_failed_attempt() -> None:
    fn = Script(
        retryable(),
        RateLimitedError("hubspot", "429", retry_after=0.25, status=429),
        FatalError("hubspot", "400", status=400),
    )
    events: list[RetryEvent] = []

    with pytest.raises(FatalError):
        call_with_retries(
            fn, service="hubspot", sleep=Clock().sleep, on_failure=events.append, rng=random.Random(0)
        )

    assert [(e.service, e.attempt, e.action, e.will_retry) for e in events] == [
        ("hubspot", 1, ResponseAction.RETRY, True),
        ("hubspot", 2, ResponseAction.RATE_LIMITED, True),
        ("hubspot", 3, ResponseAction.FATAL, False),
    ]
    assert events[1].delay == 0.25
    assert events[2].delay is None
    assert sum(e.action is ResponseAction.RATE_LIMITED for e in events) == 1


def test_total_wait_is_bounded() -> None:
    fn = Script(*[RateLimitedError("hubspot", "429", retry_after=10.0, status=429) for _ in range(4)])
    clock = Clock()

    with pytest.raises(RateLimitedError):
        call_with_retries(fn, service="hubspot", sleep=clock.sleep, max_total_wait=25.0)

    assert clock.sleeps == [10.0, 10.0]
    assert fn.calls == 3


def test_hook_marks_the_last_attempt_as_not_retried() -> None:
    fn = Script(retryable(), retryable())
    events: list[RetryEvent] = []

    with pytest.raises(RetryableError):
        call_with_retries(fn, service="s", max_attempts=2, sleep=Clock().sleep, on_failure=events.append)

    assert [e.will_retry for e in events] == [True, False]


# A real HTTP exchange: a tiny API on 127.0.0.1 answering 503, 429 + Retry-After, then 200.


class _Api(BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, dict[str, str]]]] = []
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        body = b'{"ok": true}' if status == 200 else b'{"message": "no"}'
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture()
def api() -> Iterator[tuple[str, type[_Api]]]:
    handler = type("Api", (_Api,), {"answers": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def classified_get(session: requests.Session, url: str, token: Callable[[], str]) -> Callable[[], object]:
    """What an adapter base does: one request, its response mapped once to an error class."""

    def call() -> object:
        response = session.get(url, headers={"Authorization": f"Bearer {token()}"}, timeout=5)
        if response.status_code == 401:
            raise CredentialsExpiredError("api", "expired", status=401)
        if response.status_code == 429:
            after = response.headers.get("Retry-After")
            raise RateLimitedError("api", "429", status=429, retry_after=float(after) if after else None)
        if response.status_code >= 500:
            raise RetryableError("api", str(response.status_code), status=response.status_code)
        if response.status_code >= 400:
            raise FatalError("api", str(response.status_code), status=response.status_code)
        return response.json()

    return call


def test_over_http_retries_refreshes_and_honours_retry_after(api: tuple[str, type[_Api]]) -> None:
    base, handler = api
    handler.answers.extend([(503, {}), (401, {}), (429, {"Retry-After": "3"})])
    tokens = ["t1"]
    clock, attempts = Clock(), Attempts()

    with requests.Session() as session:
        result = call_with_retries(
            classified_get(session, base + "/things", lambda: tokens[-1]),
            service="api",
            refresh=lambda: tokens.append(f"t{len(tokens) + 1}"),
            sleep=clock.sleep,
            attempts=attempts,
            rng=random.Random(5),
        )

    assert result == {"ok": True}
    assert attempts.errors == ["RetryableError", "CredentialsExpiredError", "RateLimitedError"]
    assert handler.seen == ["Bearer t1", "Bearer t1", "Bearer t2", "Bearer t2"]
    assert clock.sleeps[-1] == 3.0
    assert attempts.refreshes == 1


# Model-based: any sequence of classified failures against a plain statement of the policy.

_KINDS = [
    "retryable",
    "rate_limited",
    "rate_limited_after",
    "rate_limited_long",
    "daily",
    "budget",
    "expired",
    "fatal",
    "redis",
]


def _make(kind: str, after: float) -> BaseException:
    return {
        "retryable": lambda: RetryableError("svc", "503", status=503),
        "rate_limited": lambda: RateLimitedError("svc", "429", status=429),
        "rate_limited_after": lambda: RateLimitedError("svc", "429", status=429, retry_after=after),
        "rate_limited_long": lambda: RateLimitedError("svc", "429", status=429, retry_after=61.0),
        "daily": lambda: RateLimitedError("svc", "429", status=429, daily=True),
        "budget": lambda: BudgetExhaustedError("svc", "reserve", retry_after=5.0, daily=True),
        "expired": lambda: CredentialsExpiredError("svc", "401", status=401),
        "fatal": lambda: FatalError("svc", "400", status=400),
        "redis": lambda: redis.ConnectionError("Connection refused"),
    }[kind]()


def _expected(kinds: list[str], max_attempts: int, with_refresh: bool, allowed: int) -> tuple[int, str, int]:
    """(calls, outcome class name or "ok", refreshes) as the docstring of call_with_retries states it."""
    refreshes, refreshed_last, rejections = 0, False, 0
    for calls, kind in enumerate([*kinds, "ok"], start=1):
        if kind == "ok":
            return calls, "ok", refreshes
        if kind == "expired" and refreshed_last:
            rejections += 1
            if rejections >= allowed:
                return calls, "FatalError", refreshes
        else:
            rejections = 0
        refreshed_last = False
        retried = kind in ("retryable", "rate_limited", "rate_limited_after", "redis") or (
            kind == "expired" and with_refresh
        )
        if not retried or calls == max_attempts:
            return calls, "RetryableError" if kind == "redis" else type(_make(kind, 0.0)).__name__, refreshes
        if kind == "expired":
            refreshes += 1
            refreshed_last = True
    raise AssertionError("unreachable")


@settings(max_examples=200, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(_KINDS), max_size=7),
    after=st.floats(min_value=0.0, max_value=60.0),
    max_attempts=st.integers(min_value=1, max_value=6),
    with_refresh=st.booleans(),
    allowed=st.integers(min_value=1, max_value=3),
)
def test_policy_matches_its_statement(
    kinds: list[str], after: float, max_attempts: int, with_refresh: bool, allowed: int
) -> None:
    fn = Script(*[_make(kind, after) for kind in kinds])
    clock, attempts, refreshes = Clock(), Attempts(), []
    calls, outcome, expected_refreshes = _expected(kinds, max_attempts, with_refresh, allowed)

    try:
        result = call_with_retries(
            fn,
            service="svc",
            max_attempts=max_attempts,
            refresh=(lambda: refreshes.append(1)) if with_refresh else None,
            sleep=clock.sleep,
            attempts=attempts,
            rng=random.Random(0),
            max_post_refresh_rejections=allowed,
        )
        got = "ok" if result == "ok" else "?"
    except ExternalError as error:
        got = type(error).__name__

    assert (fn.calls, got, len(refreshes)) == (calls, outcome, expected_refreshes)
    assert attempts.count == calls and attempts.retries == calls - 1
    honoured = [after for kind in kinds[: calls - 1] if kind == "rate_limited_after"]
    assert [
        d for d, kind in zip(attempts.delays, kinds, strict=False) if kind == "rate_limited_after"
    ] == honoured
    assert all(0.0 <= d <= 60.0 for d in attempts.delays)
