"""The one retry policy of every API client, driven only by the class of adapters.errors.

The adapter base classifies each response once; this module decides what that
class means: back off (retry), wait what the API asked (rate-limited), refresh the
session (credentials), or stop (fatal, daily limit, our own budget reserve).
A `redis.RedisError` that reaches it unclassified is a RetryableError of service
"redis": shared infrastructure that is briefly away, not a request that can never work.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis
from tenacity import RetryCallState, Retrying, stop_after_attempt

from adapters.errors import (
    BudgetExhaustedError,
    CredentialsExpiredError,
    ExternalError,
    FatalError,
    RateLimitedError,
    ResponseAction,
    RetryableError,
)
from adapters.redis_errors import redis_failure

T = TypeVar("T")

DEFAULT_POST_REFRESH_REJECTIONS = 3
"""Rejections in a row right after a refresh before the credentials count as revoked.

With several workers, another one may rotate the session between our refresh and
our request; one rejection right after a refresh is no proof the credentials are bad."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryEvent:
    """One failed attempt, for metrics hooks (retries, 429s) and logs; carries no secret or PII."""

    service: str
    attempt: int
    action: ResponseAction
    error: BaseException
    will_retry: bool
    delay: float | None


_LISTENERS: list[Callable[[RetryEvent], None]] = []


def add_listener(listener: Callable[[RetryEvent], None]) -> None:
    """Called on every failed attempt of every API call in this process (metrics, not control)."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


@dataclass
class Attempts:
    """What happened during one call: pass one in to assert on it or report it."""

    count: int = 0
    errors: list[str] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    refreshes: int = 0
    rate_limited: int = 0

    @property
    def retries(self) -> int:
        return len(self.delays)


def backoff_delay(retry_number: int, base_delay: float, max_delay: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max_delay, base_delay * 2**(n-1))]."""
    exponent = min(max(retry_number - 1, 0), 62)
    return rng.uniform(0.0, min(max_delay, base_delay * (2.0**exponent)))


def _action_of(error: BaseException | None) -> ResponseAction | None:
    if error is None:
        return None
    if isinstance(error, ExternalError):
        return error.action
    return ResponseAction.FATAL


def call_with_retries(
    fn: Callable[[], T],
    *,
    service: str,
    max_attempts: int = 5,
    refresh: Callable[[], None] | None = None,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    max_rate_limit_wait: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    attempts: Attempts | None = None,
    on_failure: Callable[[RetryEvent], None] | None = None,
    rng: random.Random | None = None,
    max_total_wait: float | None = None,
    max_post_refresh_rejections: int = DEFAULT_POST_REFRESH_REJECTIONS,
) -> T:
    """Call `fn` until it succeeds or its classified error says to stop; re-raise that error.

    - RetryableError, and a bare `redis.RedisError` (raised as RetryableError of service
      "redis"): exponential backoff with full jitter.
    - RateLimitedError: wait `retry_after` when given and at most `max_rate_limit_wait`;
      re-raise at once when longer (the task reschedules itself with `retry_after`) or daily;
      without `retry_after`, back off.
    - BudgetExhaustedError (our reserve): re-raise at once.
    - CredentialsExpiredError: call `refresh()` and retry at once; without `refresh` it is
      re-raised. An expiry right after a refresh (another worker may have rotated the
      session in between) backs off, refreshes again and retries; the
      `max_post_refresh_rejections`-th such expiry in a row raises FatalError (revoked).
    - FatalError and anything unclassified: re-raise at once.
    After `max_attempts` calls, or when the next wait would take the total past
    `max_total_wait`, the last error is re-raised as is (never tenacity's RetryError).
    Pass `attempts` to read what happened; `on_failure` sees every failed attempt (metrics).
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    if max_post_refresh_rejections < 1:
        raise ValueError(f"max_post_refresh_rejections must be at least 1, got {max_post_refresh_rejections}")
    record = attempts if attempts is not None else Attempts()
    jitter = rng if rng is not None else random.Random()
    refreshed_last = [False]
    # Consecutive expiries right after a refresh; 0 when the last failure was anything else.
    rejections = [0]
    planned: dict[int, float] = {}

    def decide(error: BaseException, attempt: int) -> float | None:
        """The delay before the next attempt, or None to give up now."""
        delay = policy_delay(error, attempt)
        if delay is not None and max_total_wait is not None and sum(record.delays) + delay > max_total_wait:
            return None
        return delay

    def policy_delay(error: BaseException, attempt: int) -> float | None:
        if isinstance(error, BudgetExhaustedError):
            return None
        if isinstance(error, RateLimitedError):
            if error.daily:
                return None
            if error.retry_after is not None:
                wait = max(float(error.retry_after), 0.0)
                return wait if wait <= max_rate_limit_wait else None
            return backoff_delay(attempt, base_delay, max_delay, jitter)
        if isinstance(error, CredentialsExpiredError):
            if refresh is None:
                return None
            # The first expiry refreshes at once; one right after a refresh gives the
            # worker that rotated the session time to publish it.
            return backoff_delay(rejections[0], base_delay, max_delay, jitter) if rejections[0] else 0.0
        if isinstance(error, RetryableError):
            return backoff_delay(attempt, base_delay, max_delay, jitter)
        return None

    def classified() -> T:
        try:
            return fn()
        except redis.RedisError as error:
            raise redis_failure(error, f"during a {service} call") from error

    def attempt_once() -> T:
        record.count += 1
        try:
            return classified()
        except BaseException as error:
            record.errors.append(type(error).__name__)
            if isinstance(error, RateLimitedError):
                record.rate_limited += 1
            if isinstance(error, CredentialsExpiredError) and refreshed_last[0]:
                rejections[0] += 1
                if rejections[0] >= max_post_refresh_rejections:
                    raise FatalError(
                        error.service,
                        f"credentials rejected {rejections[0]} time(s) in a row right after a refresh",
                        status=error.status,
                        code=error.code,
                    ) from error
            else:
                rejections[0] = 0
            raise
        finally:
            refreshed_last[0] = False

    def should_retry(state: RetryCallState) -> bool:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        action = _action_of(error)
        if error is None:
            return False
        delay = decide(error, state.attempt_number)
        will_retry = delay is not None and state.attempt_number < max_attempts
        if delay is not None:
            planned[state.attempt_number] = delay
        assert action is not None
        event = RetryEvent(
            service=service,
            attempt=state.attempt_number,
            action=action,
            error=error,
            will_retry=will_retry,
            delay=delay if will_retry else None,
        )
        log.log(
            logging.INFO if will_retry else logging.WARNING,
            "%s attempt %d failed: %s status=%s code=%s, %s",
            service,
            state.attempt_number,
            type(error).__name__,
            getattr(error, "status", None),
            getattr(error, "code", None),
            f"retrying in {delay:.2f}s" if will_retry and delay is not None else "giving up",
        )
        if on_failure is not None:
            on_failure(event)
        for listener in _LISTENERS:
            listener(event)
        return delay is not None

    def wait(state: RetryCallState) -> float:
        return planned.get(state.attempt_number, 0.0)

    def before_sleep(state: RetryCallState) -> None:
        delay = planned.get(state.attempt_number, 0.0)
        record.delays.append(delay)
        outcome = state.outcome
        if (
            refresh is not None
            and outcome is not None
            and isinstance(outcome.exception(), CredentialsExpiredError)
        ):
            record.refreshes += 1
            refresh()
            refreshed_last[0] = True

    def pause(seconds: float) -> None:
        if seconds > 0:
            sleep(seconds)

    retrying = Retrying(
        sleep=pause,
        stop=stop_after_attempt(max_attempts),
        wait=wait,
        retry=should_retry,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(attempt_once)
