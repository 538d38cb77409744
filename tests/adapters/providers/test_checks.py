"""Each provider client's `check` against the HTTP emulator: one harmless GET, and what the vendor granted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import jwt
import pytest

from adapters.crm.readiness import Check, Status
from adapters.errors import FatalError
from adapters.providers.aircall import client as aircall
from adapters.providers.google_meet import client as google_meet
from adapters.providers.ringover import client as ringover
from adapters.providers.teams import client as teams
from adapters.providers.zoom import client as zoom
from tests.adapters.providers.api_tenant import provider_emulator
from tests.adapters.providers.test_clients import _event
from tests.adapters.providers.test_clients import _tenant as emulated_tenant
from tests.emulators.providers.server import ProviderEmulator
from worker.config.tenants import Tenant
from worker.ingest.apiclient import FetchContext
from worker.ingest.enrich import complete_event


class Sleeps(list[float]):
    """The waits a retry asked for, recorded instead of slept."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture()
def emulator() -> Iterator[ProviderEmulator]:
    with provider_emulator() as emu:
        yield emu


@pytest.fixture()
def tenant(emulator: ProviderEmulator, tmp_path: Any) -> Tenant:
    return emulated_tenant(emulator, tmp_path)


@pytest.fixture()
def sleeps() -> Sleeps:
    return Sleeps()


def ctx(tenant: Tenant, provider: str, sleeps: Sleeps, redis_client: Any = None) -> FetchContext:
    return FetchContext(
        tenant=tenant, config=tenant.providers[provider], redis_client=redis_client, sleep=sleeps
    )


def by_name(checks: list[Check]) -> dict[str, Check]:
    names = [check.name for check in checks]
    assert len(names) == len(set(names)), names
    return {check.name: check for check in checks}


def test_every_provider_is_ok_with_one_harmless_get(emulator, tenant, sleeps, redis_client) -> None:
    results = {
        "aircall": aircall.check(ctx(tenant, "aircall", sleeps, redis_client)),
        "ringover": ringover.check(ctx(tenant, "ringover", sleeps, redis_client)),
        "zoom": zoom.check(ctx(tenant, "zoom", sleeps, redis_client)),
        "teams": teams.check(ctx(tenant, "teams", sleeps, redis_client)),
        "google_meet": google_meet.check(ctx(tenant, "google_meet", sleeps, redis_client)),
    }
    for provider, checks in results.items():
        assert all(c.status is Status.OK for c in checks), (provider, checks)
    assert [c.name for c in results["zoom"]] == ["zoom.api", "zoom.scopes"]
    assert [c.name for c in results["teams"]] == ["teams.api", "teams.permissions"]
    assert [c.name for c in results["google_meet"]] == ["google_meet.delegation", "google_meet.api"]
    assert (
        by_name(results["teams"])["teams.permissions"].detail
        == "granted: CallRecords.Read.All, User.Read.All"
    )
    # One GET per provider (plus the token requests), nothing else, and never a wait.
    gets = [c for c in emulator.calls() if c.startswith("GET ")]
    assert sorted(gets) == [
        "GET /v1.0/communications/callRecords",
        "GET /v1/ping",
        "GET /v2/conferenceRecords",
        "GET /v2/teams",
        "GET /v2/users/me",
    ]
    assert sleeps == []


def test_a_refused_api_key_fails_with_the_status_and_the_fix(emulator, tenant, sleeps) -> None:
    emulator.state.aircall_auth = ("api-id", "rotated-token")
    emulator.state.ringover_key = "another-key"
    [air] = aircall.check(ctx(tenant, "aircall", sleeps))
    assert air.status is Status.FAIL and air.name == "aircall.api"
    assert air.detail == "GET /v1/ping: aircall: access token rejected (HTTP 401, Unauthorized)"
    assert air.fix is not None and "API Keys" in air.fix
    [ring] = ringover.check(ctx(tenant, "ringover", sleeps))
    assert ring.status is Status.FAIL and "HTTP 401" in ring.detail
    assert sleeps == []


def test_refused_client_credentials_fail_at_the_token(emulator, tenant, sleeps) -> None:
    emulator.state.zoom_client = ("zoom-account", "zoom-client", "other-secret")
    emulator.state.graph_client = ("graph-client", "other-secret")
    [z] = zoom.check(ctx(tenant, "zoom", sleeps))
    assert z.name == "zoom.api" and z.status is Status.FAIL
    assert "credentials refused" in z.detail and "invalid_client" in z.detail
    [t] = teams.check(ctx(tenant, "teams", sleeps))
    assert t.name == "teams.api" and t.status is Status.FAIL and "invalid_client" in t.detail
    assert t.fix is not None and "client secret" in t.fix
    assert not [c for c in emulator.calls() if c.startswith("GET ")]


def test_a_teams_app_without_call_records_permission_fails_and_so_would_every_fetch(
    emulator, tenant, sleeps, redis_client
) -> None:
    """The issue's lesson: the app had User.Read.All only; doctor names the permission, as the fetch meets it."""
    emulator.state.graph_roles = ("User.Read.All",)
    checks = by_name(teams.check(ctx(tenant, "teams", sleeps)))
    permissions = checks["teams.permissions"]
    assert permissions.status is Status.FAIL
    assert "CallRecords.Read.All (to read call records and their participants)" in permissions.detail
    assert "granted: User.Read.All" in permissions.detail
    assert permissions.fix is not None
    assert permissions.fix.endswith("Application permissions: CallRecords.Read.All; then Grant admin consent")
    api = checks["teams.api"]
    assert api.status is Status.FAIL and api.detail.endswith("teams: HTTP 403 (Forbidden)")
    assert api.fix == permissions.fix
    emulator.state.graph_records["r1"] = {
        "id": "r1",
        "type": "groupCall",
        "startDateTime": "2026-03-10T09:00:00Z",
    }
    with pytest.raises(FatalError) as refused:
        complete_event(_event("teams", "r1"), tenant, redis_client)
    assert refused.value.status == 403


def test_a_teams_app_with_nothing_granted_has_no_roles_claim(emulator, tenant, sleeps) -> None:
    emulator.state.graph_roles = ()
    permissions = by_name(teams.check(ctx(tenant, "teams", sleeps)))["teams.permissions"]
    assert permissions.status is Status.FAIL
    assert "granted: none" in permissions.detail
    assert "User.ReadBasic.All or User.Read.All" in permissions.detail


def test_teams_basic_user_reads_are_enough(emulator, tenant, sleeps) -> None:
    emulator.state.graph_roles = ("CallRecords.Read.All", "User.ReadBasic.All")
    checks = teams.check(ctx(tenant, "teams", sleeps))
    assert [c.status for c in checks] == [Status.OK, Status.OK]


def test_zoom_scopes_must_cover_participants_and_host(emulator, tenant, sleeps, redis_client) -> None:
    emulator.state.zoom_scopes = ("meeting:read:list_past_participants:admin",)
    checks = by_name(zoom.check(ctx(tenant, "zoom", sleeps)))
    scopes = checks["zoom.scopes"]
    assert scopes.status is Status.FAIL
    assert "user:read:admin or user:read:user:admin (to read the host's email)" in scopes.detail
    assert "past meeting participants" not in scopes.detail
    assert scopes.fix is not None and "Scopes" in scopes.fix
    # GET /users/me needs the same scope: Zoom answers 400 with code 4711.
    assert checks["zoom.api"].status is Status.FAIL and "4711" in checks["zoom.api"].detail
    assert checks["zoom.api"].fix == scopes.fix


def test_zoom_classic_scopes_cover_the_same_calls(emulator, tenant, sleeps) -> None:
    emulator.state.zoom_scopes = ("meeting:read:admin", "user:read:admin")
    checks = by_name(zoom.check(ctx(tenant, "zoom", sleeps)))
    assert checks["zoom.scopes"].status is Status.OK
    assert checks["zoom.scopes"].detail == "the token grants meeting:read:admin, user:read:admin"


def test_google_without_domain_wide_delegation_fails_at_the_token(emulator, tenant, sleeps) -> None:
    emulator.state.google_delegated_scopes = frozenset()
    [delegation] = google_meet.check(ctx(tenant, "google_meet", sleeps))
    assert delegation.name == "google_meet.delegation" and delegation.status is Status.FAIL
    assert "unauthorized_client" in delegation.detail and "HTTP 401" in delegation.detail
    assert delegation.fix is not None and "Domain Wide Delegation" in delegation.fix
    assert "admin.directory.user.readonly" in delegation.fix
    assert not [c for c in emulator.calls() if c.startswith("GET ")]


def test_google_delegation_with_the_meet_scope_alone_fails_and_one_missing_scope_warns(
    emulator, tenant, sleeps
) -> None:
    """Meet participants carry no email: directory and calendar are what match them; each is asked alone."""
    meet = "https://www.googleapis.com/auth/meetings.space.readonly"
    directory = "https://www.googleapis.com/auth/admin.directory.user.readonly"
    emulator.state.google_delegated_scopes = frozenset({meet})
    checks = by_name(google_meet.check(ctx(tenant, "google_meet", sleeps)))
    assert checks["google_meet.delegation"].status is Status.FAIL
    assert "admin.directory.user.readonly refused" in checks["google_meet.delegation"].detail
    assert "calendar.events.readonly refused" in checks["google_meet.delegation"].detail
    assert checks["google_meet.api"].status is Status.OK

    emulator.state.google_delegated_scopes = frozenset({meet, directory})
    checks = by_name(google_meet.check(ctx(tenant, "google_meet", sleeps)))
    delegation = checks["google_meet.delegation"]
    assert delegation.status is Status.WARN
    assert "calendar.events.readonly refused" in delegation.detail
    assert "guests' emails" in delegation.detail and "admin.directory" not in delegation.detail


def test_google_without_a_delegated_user_warns(emulator, tenant, sleeps) -> None:
    config = tenant.providers["google_meet"]
    settings = {k: v for k, v in config.settings.items() if k != "delegated_user"}
    bare = replace(tenant, providers={"google_meet": replace(config, settings=settings)})
    checks = by_name(google_meet.check(ctx(bare, "google_meet", sleeps)))
    assert checks["google_meet.delegation"].status is Status.WARN
    assert "delegated_user" in (checks["google_meet.delegation"].fix or "")


def test_google_key_that_is_not_json_fails_without_a_request(emulator, tenant, sleeps) -> None:
    config = tenant.providers["google_meet"]
    broken = replace(config, credentials={"service_account_key": "{not json"})
    [check] = google_meet.check(FetchContext(tenant=tenant, config=broken, sleep=sleeps))
    assert check.status is Status.FAIL and "not JSON" in check.detail
    assert emulator.calls() == []


def test_rate_limited_is_a_warning_and_a_failing_api_is_a_failure(emulator, tenant, sleeps) -> None:
    emulator.fail_next("/v1/ping", 429, {"retry-after": "600"})
    [limited] = aircall.check(ctx(tenant, "aircall", sleeps))
    assert limited.status is Status.WARN and "rate limited" in limited.detail
    emulator.fail_next("/v2/teams", 503, times=5)
    [down] = ringover.check(ctx(tenant, "ringover", sleeps))
    assert down.status is Status.FAIL and "no answer" in down.detail and "HTTP 503" in down.detail
    assert emulator.calls("/v2/teams") == ["GET /v2/teams"] * 2  # two attempts, not the fetch's four
    assert len(sleeps) == 1


def test_token_response_of_zoom_names_its_scopes() -> None:
    assert zoom.granted_scopes({"scope": "a b"}) == {"a", "b"}
    assert zoom.granted_scopes({"scope": ["a"]}) == {"a"}
    assert zoom.granted_scopes({"access_token": "x"}) is None


def test_roles_of_a_token_that_is_not_a_jwt_are_unknown() -> None:
    assert teams.granted_roles("opaque-token") is None
    assert teams.granted_roles(jwt.encode({"roles": "Not.A.List"}, "k" * 32, algorithm="HS256")) == set()
    assert teams.granted_roles(jwt.encode({"roles": ["A.B"]}, "k" * 32, algorithm="HS256")) == {"A.B"}
