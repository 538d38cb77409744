"""`HubSpotTenant.setup()` and `doctor()` (the CrmAdmin of a HubSpot tenant) against the emulator's portals."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from adapters.crm.hubspot import HubSpotCrm, HubSpotTenant, PortalCapabilities, TenantCache
from adapters.crm.readiness import CapabilityCache, Check, Outcome, Status, can_run
from adapters.errors import RetryableError
from adapters.ratelimit import ApiBudget
from tests.adapters.crm.hubspot.support import TOKEN, Sleeps, examples, load, portal
from tests.emulators.hubspot import HubSpotEmulator, Limits, PortalProfile
from tests.emulators.hubspot.profile import (
    ALL_SCOPES,
    READ_ONLY_SCOPES,
    SETUP_PROPERTIES,
    UNIQUE_SETUP_PROPERTIES,
)

OAUTH = {"client_id": "client-id", "client_secret": "client-secret", "refresh_token": "refresh-emulator"}
REQUIRED = [
    "property calls.callmatch_call_id",
    "property calls.callmatch_written",
    "property meetings.callmatch_call_id",
    "property meetings.callmatch_written",
]
OPTIONAL_CUSTOM = ["property meetings.callmatch_attendee_emails", "property contacts.callmatch_other_phones"]
STEPS = [
    "calls group callmatch",
    "calls.callmatch_call_id",
    "calls.callmatch_written",
    "meetings group callmatch",
    "meetings.callmatch_call_id",
    "meetings.callmatch_written",
]


@contextmanager
def hubspot(
    profile: PortalProfile,
    *,
    credentials: dict[str, str] | None = None,
    settings: dict[str, str] | None = None,
    limits: Limits | None = None,
    redis_client: redis.Redis | None = None,
) -> Iterator[tuple[HubSpotEmulator, HubSpotTenant]]:
    scenario = load(next(p for p in examples() if p.stem == "basic"))
    with portal(scenario, profile=profile, limits=limits) as emulator:
        tenant = HubSpotTenant.from_config(
            "acme",
            {"host": emulator.url, "base_delay": "0.01", **(settings or {})},
            credentials or {"access_token": TOKEN},
            redis_client=redis_client,
            sleep=Sleeps(),
        )
        yield emulator, tenant


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def posts(emulator: HubSpotEmulator) -> dict[str, int]:
    return {r: n for r, n in emulator.requests.items() if not r.startswith("GET ")}


def test_doctor_on_a_plain_portal_fails_on_the_required_properties_only() -> None:
    with hubspot(PortalProfile.plain()) as (_, tenant):
        checks = tenant.doctor()
    lines = by_name(checks)
    assert not can_run(checks)
    assert sorted(c.name for c in checks if c.status is Status.FAIL) == sorted(REQUIRED)
    for name in REQUIRED:
        assert lines[name].fix == "callmatch setup --tenant acme"
        assert lines[name].detail.startswith("missing: W1")
    for name in OPTIONAL_CUSTOM:
        assert lines[name].status is Status.WARN and "lost" in lines[name].detail
    assert lines["credentials"].status is Status.OK and "portal" in lines["credentials"].detail
    assert lines["scopes"].status is Status.OK
    assert lines["pipelines"].status is Status.OK
    assert lines["daily API budget"].status is Status.OK
    assert lines["property companies.hs_additional_domains"].status is Status.OK  # a HubSpot default


def test_setup_twice_turns_a_plain_portal_into_one_that_runs() -> None:
    with hubspot(PortalProfile.plain()) as (emulator, tenant):
        first = tenant.setup()
        created = posts(emulator)
        emulator.reset_counts()
        second = tenant.setup()
        again = posts(emulator)
        profile = emulator.store.profile
        checks = tenant.doctor()
    assert [s.name for s in first] == STEPS
    assert {s.outcome for s in first} == {Outcome.CREATED}
    assert {s.outcome for s in second} == {Outcome.PRESENT}
    assert created == {
        "POST /crm/v3/properties/calls/groups": 1,
        "POST /crm/v3/properties/calls": 2,
        "POST /crm/v3/properties/meetings/groups": 1,
        "POST /crm/v3/properties/meetings": 2,
    }
    assert again == {}
    assert profile.custom_properties == SETUP_PROPERTIES
    assert profile.unique_properties == UNIQUE_SETUP_PROPERTIES
    assert can_run(checks)
    assert by_name(checks)["property calls.callmatch_call_id"].detail == "present, unique"


def test_dry_run_changes_nothing_and_says_where_to_click() -> None:
    with hubspot(PortalProfile.plain()) as (emulator, tenant):
        steps = tenant.setup(dry_run=True)
        sent = posts(emulator)
        profile = emulator.store.profile
    assert [s.name for s in steps] == STEPS
    assert {s.outcome for s in steps} == {Outcome.MANUAL}
    assert sent == {}
    assert profile == PortalProfile.plain()
    assert all("Settings > Data Management > Properties" in s.detail for s in steps)
    unique = next(s for s in steps if s.name == "calls.callmatch_call_id")
    assert "internal name callmatch_call_id" in unique.detail and "Require unique values" in unique.detail


def test_dry_run_on_a_portal_after_setup_finds_everything_present() -> None:
    with hubspot(PortalProfile.after_setup()) as (emulator, tenant):
        steps = tenant.setup(dry_run=True)
        sent = posts(emulator)
    assert {s.outcome for s in steps} == {Outcome.PRESENT}
    assert sent == {}


def test_setup_without_the_schema_scope_leaves_manual_steps() -> None:
    profile = dataclasses.replace(PortalProfile.plain(), scopes=READ_ONLY_SCOPES)
    with hubspot(profile) as (emulator, tenant):
        steps = tenant.setup()
        profile_after = emulator.store.profile
    assert {s.outcome for s in steps} == {Outcome.MANUAL}
    assert all("crm.schemas.contacts.write" in s.detail for s in steps if "group" in s.name)
    assert profile_after.custom_properties == frozenset()


def test_a_refused_private_app_token_is_the_only_line() -> None:
    with hubspot(PortalProfile.after_setup(), credentials={"access_token": "pat-revoked"}) as (_, tenant):
        checks = tenant.doctor()
    assert [(c.name, c.status) for c in checks] == [("credentials", Status.FAIL)]
    assert checks[0].fix is not None and "Private Apps" in checks[0].fix
    assert "pat-revoked" not in checks[0].detail


@pytest.mark.parametrize("missing", ["crm.objects.owners.read", "crm.objects.deals.read"])
def test_a_private_app_missing_a_read_scope_fails_naming_it(missing: str) -> None:
    profile = dataclasses.replace(PortalProfile.after_setup(), scopes=ALL_SCOPES - {missing})
    with hubspot(profile) as (_, tenant):
        checks = by_name(tenant.doctor())
    assert checks["scopes"].status is Status.FAIL
    assert missing in checks["scopes"].detail
    assert checks["scopes"].fix is not None and missing in checks["scopes"].fix


def test_an_oauth_app_refreshes_and_lists_its_scopes() -> None:
    with hubspot(PortalProfile.after_setup(), credentials=OAUTH) as (emulator, tenant):
        checks = tenant.doctor()
        refreshes = emulator.requests["POST /oauth/v1/token"]
        introspections = emulator.requests["GET /oauth/v1/access-tokens/{token}"]
    lines = by_name(checks)
    assert can_run(checks)
    assert lines["credentials"].detail.startswith("OAuth refresh token accepted")
    assert lines["scopes"].status is Status.OK
    assert lines["setup scope"].status is Status.OK
    assert lines["daily API budget"].detail.startswith("OAuth apps have no daily cap")
    assert (refreshes, introspections) == (1, 1)


def test_an_oauth_app_without_write_or_setup_scope() -> None:
    profile = dataclasses.replace(PortalProfile.after_setup(), scopes=READ_ONLY_SCOPES)
    with hubspot(profile, credentials=OAUTH) as (_, tenant):
        lines = by_name(tenant.doctor())
    assert lines["scopes"].status is Status.FAIL
    assert lines["scopes"].detail == "missing crm.objects.contacts.write"
    assert lines["setup scope"].status is Status.WARN
    assert "--dry-run" in (lines["setup scope"].fix or "")


def test_an_oauth_refresh_token_refused_fails_credentials() -> None:
    bad = {**OAUTH, "refresh_token": "refresh-revoked"}
    with hubspot(PortalProfile.after_setup(), credentials=bad) as (_, tenant):
        checks = tenant.doctor()
    assert [(c.name, c.status) for c in checks] == [("credentials", Status.FAIL)]
    assert "refresh-revoked" not in checks[0].detail


@pytest.mark.parametrize(
    ("reserve", "status"), [("0.1", Status.OK), ("0.9", Status.WARN), ("0.99", Status.FAIL)]
)
def test_the_daily_budget_line_compares_what_is_left_with_the_reserve(reserve: str, status: Status) -> None:
    limits = Limits(burst=100_000, search=100_000, daily=1_000)
    with hubspot(PortalProfile.after_setup(), settings={"budget_reserve": reserve}, limits=limits) as (
        _,
        tenant,
    ):
        line = by_name(tenant.doctor())["daily API budget"]
    assert line.status is status
    assert "of 1,000 requests left today" in line.detail


def test_doctor_keeps_what_it_read_as_the_tenants_capabilities() -> None:
    """A port after doctor reads no property list: doctor's fresh read is the cache."""
    with hubspot(PortalProfile.after_setup()) as (emulator, tenant):
        tenant.doctor()
        emulator.reset_counts()
        tenant.port().users_by_emails(["rep@ourco.com"])
        tenant.port().contacts_by_emails(["someone@example.com"])
        reads = [r for r in emulator.requests if r.startswith("GET /crm/v3/properties/")]
    assert reads == []


def test_capabilities_are_shared_by_the_workers_of_a_tenant_through_redis(redis_client: redis.Redis) -> None:
    """Two workers (two tenant objects) discover the portal once; setup drops the shared copy."""
    with hubspot(PortalProfile.plain(), redis_client=redis_client) as (emulator, tenant):
        tenant.port().contacts_by_emails(["someone@example.com"])
        key = "hubspot:acme:capabilities"
        ttl = redis_client.ttl(key)
        other = HubSpotTenant.from_config(
            "acme", {"host": emulator.url}, {"access_token": TOKEN}, redis_client=redis_client, sleep=Sleeps()
        )
        emulator.reset_counts()
        other.port().contacts_by_emails(["else@example.com"])
        shared_reads = [r for r in emulator.requests if r.startswith("GET /crm/v3/properties/")]
        tenant.setup()
        dropped = redis_client.exists(key)
    assert isinstance(ttl, int) and 0 < ttl <= 6 * 3600
    assert shared_reads == []
    assert dropped == 0


def test_redis_away_while_reading_the_capabilities_is_retryable() -> None:
    """The call waits for Redis (RetryableError, service redis); it is never buried for it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.2)
    cache = TenantCache(capabilities=PortalCapabilities(CapabilityCache(dead, "hubspot:acme:capabilities")))
    with hubspot(PortalProfile.after_setup()) as (emulator, tenant):
        crm = HubSpotCrm(tenant.client, tenant.mapping, cache)
        with pytest.raises(RetryableError) as failure:
            crm.contacts_by_emails(["someone@example.com"])
        sent = sum(emulator.requests.values())
    assert failure.value.service == "redis"
    assert sent == 0


def test_doctor_at_callmatchs_own_reserve_says_only_that(redis_client: redis.Redis) -> None:
    """Every request stops at the reserve, doctor's too: one line says so, not a list of errors."""
    with hubspot(PortalProfile.after_setup(), redis_client=redis_client) as (emulator, tenant):
        ApiBudget(redis_client, "hubspot:acme:daily").record(used=495_000, limit=500_000)
        checks = tenant.doctor()
        sent = sum(emulator.requests.values())
    assert [(c.name, c.status) for c in checks] == [("daily API budget", Status.FAIL)]
    assert "reserve" in checks[0].detail and checks[0].fix is not None
    assert sent == 0
