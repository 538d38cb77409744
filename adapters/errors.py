"""External failures named by what to do about them.

Every adapter maps each response of its API to one of these exactly once, in its
base client; tenacity and the Celery tasks only look at the class.
"""

from __future__ import annotations

from enum import StrEnum


class ResponseAction(StrEnum):
    SUCCESS = "success"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    REFRESH_CREDENTIALS = "refresh_credentials"
    FATAL = "fatal"


class ExternalError(Exception):
    """Base of every classified failure; `service` names the API, never a secret."""

    action: ResponseAction = ResponseAction.FATAL

    def __init__(self, service: str, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(f"{service}: {message}")
        self.service = service
        self.status = status
        self.code = code


class RetryableError(ExternalError):
    """5xx, timeouts, connection resets: the same request may succeed later."""

    action = ResponseAction.RETRY


class RateLimitedError(ExternalError):
    """The API said to slow down; `retry_after` seconds is how long, when it said so."""

    action = ResponseAction.RATE_LIMITED

    def __init__(
        self,
        service: str,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        code: str | None = None,
        daily: bool = False,
    ):
        super().__init__(service, message, status=status, code=code)
        self.retry_after = retry_after
        self.daily = daily


class CredentialsExpiredError(ExternalError):
    """The session or token is no longer valid: refresh it once, then retry."""

    action = ResponseAction.REFRESH_CREDENTIALS


class FatalError(ExternalError):
    """A request that will never succeed as it is (bad field, permission, missing object)."""

    action = ResponseAction.FATAL


class BudgetExhaustedError(RateLimitedError):
    """We stopped ourselves before the tenant's reserve of API calls (not the API's refusal)."""
