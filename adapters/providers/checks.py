"""What every provider client's `check` shares: a short-budget client and one way to word a refusal.

`callmatch doctor` makes one harmless authenticated GET per provider. It goes
through the same ApiClient as a fetch (same classification, same limiter), but
with two attempts and a few seconds of waiting: a doctor answers in seconds,
and a refusal is shown as the provider gave it (status and error code), with
what to change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from adapters.crm.readiness import Check, Status
from adapters.errors import ExternalError, RateLimitedError, RetryableError
from worker.ingest.apiclient import ApiClient, FetchContext

PROBE_ATTEMPTS = 2
PROBE_TOTAL_WAIT_SECONDS = 5.0
PROBE_READ_TIMEOUT_SECONDS = 10.0

ProviderCheck = Callable[[FetchContext], list[Check]]


def probe_client(
    ctx: FetchContext,
    base_url: str,
    *,
    auth: Callable[[], Mapping[str, str]] | None = None,
    refresh: Callable[[], None] | None = None,
) -> ApiClient:
    """An ApiClient for a doctor's request: the tenant's limiter, two attempts, seconds of waiting."""
    return ctx.client(
        base_url,
        auth=auth,
        refresh=refresh,
        read_timeout=PROBE_READ_TIMEOUT_SECONDS,
        max_attempts=PROBE_ATTEMPTS,
        max_total_wait=PROBE_TOTAL_WAIT_SECONDS,
    )


def answer(exc: ExternalError) -> str:
    """`zoom: credentials refused (HTTP 401, invalid_client)`: the error, its status and the API's code."""
    message = str(exc)
    extra = [f"HTTP {exc.status}"] if exc.status is not None and f"HTTP {exc.status}" not in message else []
    if exc.code:
        extra.append(exc.code)
    return message + (f" ({', '.join(extra)})" if extra else "")


def refused(name: str, what: str, exc: ExternalError, fix: str) -> Check:
    """A doctor line for a failed request: a 429 is a warning (the API is there), anything else fails."""
    if isinstance(exc, RateLimitedError):
        return Check(name, Status.WARN, f"{what}: rate limited, try again later: {answer(exc)}", None)
    if isinstance(exc, RetryableError):
        return Check(
            name,
            Status.FAIL,
            f"{what}: no answer: {answer(exc)}",
            "check the network path to the provider and its api_base_url, then run doctor again",
        )
    return Check(name, Status.FAIL, f"{what}: {answer(exc)}", fix)


def missing_scopes(
    granted: set[str], needs: Mapping[str, tuple[str, ...]]
) -> list[tuple[str, tuple[str, ...]]]:
    """The needs (what for, any one of these grants) that no granted scope or role covers."""
    return [(why, options) for why, options in needs.items() if not granted.intersection(options)]


def wording(missing: list[tuple[str, tuple[str, ...]]]) -> str:
    """`CallRecords.Read.All (to read call records); User.Read.All or ... (to read our users' email)`."""
    return "; ".join(f"{' or '.join(options)} ({why})" for why, options in missing)
