"""Each HubSpot failure is classified once and either recovers or fails clearly; attempts are asserted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import redis

from adapters.crm.hubspot.client import (
    HubSpotClient,
    OAuthApp,
    PropertyMissingError,
    ScopeMissingError,
    TokenSource,
    classify,
)
from adapters.errors import (
    BudgetExhaustedError,
    CredentialsExpiredError,
    FatalError,
    RateLimitedError,
    RetryableError,
)
from adapters.ratelimit import ApiBudget
from tests.adapters.crm.hubspot.support import TOKEN, Sleeps, examples, load, portal, settings
from tests.emulators.hubspot import HubSpotEmulator, Limits
from worker.core.model import Scenario

READ = "POST /crm/v3/objects/contacts/batch/read"


@pytest.fixture()
def scenario() -> Scenario:
    return load(next(p for p in examples() if p.stem == "basic"))


@pytest.fixture()
def emulator(scenario: Scenario) -> Iterator[HubSpotEmulator]:
    with portal(scenario) as running:
        yield running


def make_client(emulator: HubSpotEmulator, **overrides: object) -> tuple[HubSpotClient, Sleeps]:
    sleeps = Sleeps()
    return HubSpotClient(settings(emulator, **overrides), TokenSource(TOKEN), sleep=sleeps), sleeps


def read_contact(client: HubSpotClient) -> list[dict[str, object]]:
    return client.batch_read("contacts", ["jane@acme.com"], ["email"], id_property="email")


def test_5xx_is_retried_until_it_succeeds(emulator: HubSpotEmulator) -> None:
    client, sleeps = make_client(emulator)
    emulator.fail_next(503, count=2, path="/contacts/batch/read")
    assert [o["id"] for o in read_contact(client)] == ["C1"]
    assert emulator.requests[READ] == 3
    assert client.stats.last_attempts is not None and client.stats.last_attempts.count == 3
    assert len(sleeps.waits) == 2


def test_persistent_5xx_fails_as_retryable_after_max_attempts(emulator: HubSpotEmulator) -> None:
    client, _ = make_client(emulator, max_attempts=4)
    emulator.fail_next(500, count=10, path="/contacts/batch/read")
    with pytest.raises(RetryableError) as failure:
        read_contact(client)
    assert failure.value.status == 500
    assert emulator.requests[READ] == 4


def test_ten_secondly_429_waits_what_retry_after_says(emulator: HubSpotEmulator) -> None:
    client, sleeps = make_client(emulator)
    emulator.fail_next(429, count=1, path="/contacts/batch/read", retry_after=2)
    assert [o["id"] for o in read_contact(client)] == ["C1"]
    assert sleeps.waits == [2.0]
    assert emulator.requests[READ] == 2
    assert client.stats.rate_limited == 1


def test_daily_429_fails_at_once(emulator: HubSpotEmulator) -> None:
    client, sleeps = make_client(emulator)
    emulator.limits.daily = 0
    with pytest.raises(RateLimitedError) as failure:
        read_contact(client)
    assert failure.value.daily and failure.value.code == "DAILY"
    assert emulator.requests[READ] == 1
    assert sleeps.waits == []


def test_the_rolling_limit_answers_hubspots_429_and_headers(scenario: Scenario) -> None:
    with portal(scenario, limits=Limits(burst=3, burst_window=60)) as emulator:
        client, _ = make_client(emulator, max_attempts=1)
        for _ in range(3):
            read_contact(client)
        assert client.stats.burst_remaining == 0
        with pytest.raises(RateLimitedError) as failure:
            read_contact(client)
    assert failure.value.code == "TEN_SECONDLY_ROLLING"
    assert not failure.value.daily
    assert emulator.statuses[429] == 1


def test_a_timeout_is_retried(emulator: HubSpotEmulator) -> None:
    client, sleeps = make_client(emulator, read_timeout=0.2)
    emulator.slow_next(1.0, path="/contacts/batch/read")
    assert [o["id"] for o in read_contact(client)] == ["C1"]
    assert emulator.requests[READ] == 2
    assert len(sleeps.waits) == 1


def test_a_bad_request_is_fatal_at_once(emulator: HubSpotEmulator) -> None:
    client, sleeps = make_client(emulator)
    groups = [{"filters": [{"propertyName": "email", "operator": "EQ", "value": str(i)}]} for i in range(6)]
    with pytest.raises(FatalError) as failure:
        client.search("contacts", groups, ["email"])
    assert failure.value.status == 400
    assert emulator.requests["POST /crm/v3/objects/contacts/search"] == 1
    assert sleeps.waits == []


def oauth_client(emulator: HubSpotEmulator, tokens: TokenSource) -> HubSpotClient:
    return HubSpotClient(settings(emulator), tokens, sleep=Sleeps())


APP = OAuthApp(client_id="client-id", client_secret="client-secret", refresh_token="refresh-emulator")


def test_an_expired_token_is_refreshed_once_and_the_request_retried(emulator: HubSpotEmulator) -> None:
    tokens = TokenSource(oauth=APP)
    client = oauth_client(emulator, tokens)
    read_contact(client)
    assert tokens.refreshes == 1  # no token yet: refreshed before the first request
    emulator.expire_tokens()
    assert [o["id"] for o in read_contact(client)] == ["C1"]
    assert tokens.refreshes == 2
    assert emulator.requests["POST /oauth/v1/token"] == 2
    assert emulator.statuses[401] == 1
    assert emulator.requests[READ] == 3


def test_a_token_is_refreshed_before_expires_in_runs_out(emulator: HubSpotEmulator) -> None:
    now = [0.0]
    tokens = TokenSource(oauth=APP, margin=60, clock=lambda: now[0])
    client = oauth_client(emulator, tokens)
    read_contact(client)
    now[0] = emulator.token_lifetime - 30.0
    read_contact(client)
    assert tokens.refreshes == 2
    assert emulator.statuses[401] == 0


def test_a_rejected_private_app_token_fails_clearly(emulator: HubSpotEmulator) -> None:
    client, _ = make_client(emulator)
    emulator.expire_tokens()
    with pytest.raises(CredentialsExpiredError) as failure:
        read_contact(client)
    assert failure.value.code == "EXPIRED_AUTHENTICATION"
    assert emulator.requests[READ] == 1


def test_a_refused_refresh_token_is_fatal(emulator: HubSpotEmulator) -> None:
    tokens = TokenSource(oauth=OAuthApp("client-id", "client-secret", "revoked"))
    with pytest.raises(FatalError):
        read_contact(oauth_client(emulator, tokens))
    assert emulator.requests[READ] == 0


def test_the_daily_budget_is_recorded_and_its_reserve_kept(
    scenario: Scenario, redis_client: redis.Redis
) -> None:
    with portal(scenario, limits=Limits(daily=100, burst=1000, search=1000)) as emulator:
        client = HubSpotClient.for_tenant(
            settings(emulator, budget_reserve=0.6), TokenSource(TOKEN), redis_client, sleep=Sleeps()
        )
        for _ in range(40):
            read_contact(client)
        assert ApiBudget(redis_client, "hubspot:t1:daily").remaining() == (60, 100)
        read_contact(client)
        with pytest.raises(BudgetExhaustedError):
            read_contact(client)
    assert emulator.requests[READ] == 41


@pytest.mark.parametrize("search", [True, False], ids=["search", "burst"])
def test_limits_are_held_across_workers(scenario: Scenario, redis_client: redis.Redis, search: bool) -> None:
    """Two workers (clients sharing only Redis) send as fast as they can: HubSpot never says 429.

    The portal allows 6 per second (search) or 8 per second (the burst window, shortened);
    the workers' shared limiters allow 4 and 5: the margin covers the jitter between a grant
    and the request's arrival. Sent unthrottled, the 10 requests would arrive within ~0.1 s.
    """
    limits = Limits(burst=8 if not search else 1000, burst_window=1.0, search=6, search_window=1.0)
    with portal(scenario, limits=limits) as emulator:
        options = {"max_attempts": 1, "burst_limit": 5 if not search else 1000, "burst_period": 1.0}
        workers = [
            HubSpotClient.for_tenant(settings(emulator, **options), TokenSource(TOKEN), redis_client)
            for _ in range(2)
        ]
        errors: list[BaseException] = []
        group = [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "jane@acme.com"}]}]

        def work(client: HubSpotClient) -> None:
            try:
                for _ in range(5):
                    found = client.search("contacts", group, ["email"]) if search else read_contact(client)
                    assert [o["id"] for o in found] == ["C1"]
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(client,)) for client in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert sum(emulator.requests.values()) == 10
    assert emulator.statuses[429] == 0


def test_without_the_shared_limiter_the_same_load_is_refused(scenario: Scenario) -> None:
    limits = Limits(burst=1000, search=5, search_window=60.0)
    with portal(scenario, limits=limits) as emulator:
        client, _ = make_client(emulator, max_attempts=1)
        group = [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "jane@acme.com"}]}]
        with pytest.raises(RateLimitedError) as failure:
            for _ in range(6):
                client.search("contacts", group, ["email"])
    assert failure.value.code == "SECONDLY"


def test_a_nearly_full_hubspot_window_pauses_the_next_request(scenario: Scenario) -> None:
    """Someone else spends this app's budget: HubSpot's Remaining header, not our limiter, says so."""
    with portal(scenario, limits=Limits(burst=4, burst_window=60)) as emulator:
        client, sleeps = make_client(emulator)
        read_contact(client)  # 3 left of 4: no pause
        read_contact(client)  # 2 left: at the floor
        assert sleeps.waits == []
        read_contact(client)
        assert len(sleeps.waits) == 1
        assert 0 < sleeps.waits[0] <= 60 / 4
        assert emulator.statuses[429] == 0


def test_the_pause_is_shared_by_every_worker_of_the_tenant(
    scenario: Scenario, redis_client: redis.Redis
) -> None:
    with portal(scenario, limits=Limits(burst=4, burst_window=60)) as emulator:
        first = HubSpotClient.for_tenant(settings(emulator), TokenSource(TOKEN), redis_client, sleep=Sleeps())
        second_sleeps = Sleeps()
        second = HubSpotClient.for_tenant(
            settings(emulator), TokenSource(TOKEN), redis_client, sleep=second_sleeps
        )
        read_contact(first)
        read_contact(first)
        read_contact(second)
    assert len(second_sleeps.waits) == 1 and 0 < second_sleeps.waits[0] <= 15


@pytest.mark.parametrize(
    "body",
    [
        {  # the objects API: the legacy validation results inside `message`, the code in `errors[]`
            "status": "error",
            "message": 'Property values were not valid: [{"isValid":false,"message":"Property \\"callmatch_written\\" '
            'does not exist","error":"PROPERTY_DOESNT_EXIST","name":"callmatch_written"}]',
            "correlationId": "0f2c6f4e-0000-4000-8000-000000000000",
            "category": "VALIDATION_ERROR",
        },
        {
            "status": "error",
            "message": "Property values were not valid",
            "category": "VALIDATION_ERROR",
            "errors": [
                {
                    "message": 'Property "callmatch_written" does not exist',
                    "code": "PROPERTY_DOESNT_EXIST",
                    "context": {"propertyName": ["callmatch_written"]},
                }
            ],
        },
    ],
    ids=["in-message", "in-errors"],
)
def test_property_doesnt_exist_names_the_property(body: dict[str, object]) -> None:
    error = classify(400, json.dumps(body).encode(), None)
    assert isinstance(error, PropertyMissingError)
    assert error.properties == ("callmatch_written",)
    assert error.code == "PROPERTY_DOESNT_EXIST"


def test_another_validation_error_stays_a_plain_fatal_error() -> None:
    body = {"status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"}
    error = classify(400, json.dumps(body).encode(), None)
    assert isinstance(error, FatalError) and not isinstance(error, PropertyMissingError)


def test_missing_scopes_names_the_scopes() -> None:
    body = {
        "status": "error",
        "message": "This app hasn't been granted all required scopes to make this call.",
        "category": "MISSING_SCOPES",
        "errors": [
            {
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": ["crm.schemas.contacts.write"]},
            }
        ],
    }
    error = classify(403, json.dumps(body).encode(), None)
    assert isinstance(error, ScopeMissingError)
    assert error.scopes == ("crm.schemas.contacts.write",)
