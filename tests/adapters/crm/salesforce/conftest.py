"""Fixtures: a seeded Salesforce emulator on loopback HTTPS and a real simple-salesforce client on it.

The org's profile (features, custom fields, field-level security) comes from the
`org_profile` fixture: `full()` unless a module parametrises it (indirectly) over
`after_setup()` / `full()` / `plain()`. Each environment shares one capability
cache between its ports, as a tenant does, warmed at start (its discovery is not
counted), so call counts are those of an ordinary association.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from adapters.crm.readiness import CapabilityCache
from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.salesforce.capabilities import Capabilities
from adapters.crm.salesforce.client import Credentials, RetrySettings, SalesforceClient
from adapters.crm.salesforce.mapping import SalesforceSettings
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator, Stats
from worker.core.model import CrmSlice, Policy

PROFILES = {
    "after_setup": OrgProfile.after_setup(),
    "full": OrgProfile.full(),
    "plain": OrgProfile.plain(),
}


def profiles(*names: str) -> pytest.MarkDecorator:
    """`pytestmark = profiles("after_setup", "full")`: run a module's tests on each org profile."""
    return pytest.mark.parametrize(
        "org_profile", [PROFILES[n] for n in names], ids=list(names), indirect=True
    )


@dataclass
class SalesforceEnv:
    emulator: SalesforceEmulator
    settings: SalesforceSettings
    sleeps: list[float]
    capabilities: Capabilities | None = None

    @property
    def profile(self) -> OrgProfile:
        return self.emulator.org.profile

    def credentials(self) -> Credentials:
        return Credentials(
            token_url=f"{self.emulator.instance_url}/services/oauth2/token",
            client_id=self.emulator.client_id,
            client_secret=self.emulator.client_secret,
            refresh_token=self.emulator.refresh_token,
        )

    def client(self, **kwargs: object) -> SalesforceClient:
        options: dict[str, object] = {
            "tenant": "tenant-a",
            "instance_url": self.emulator.instance_url,
            "access_token": self.emulator.issue_token(),
            "credentials": self.credentials(),
            "verify": self.emulator.ca_file,
            "timeout": (2.0, 2.0),
            "retry": RetrySettings(base_delay=0.01, max_delay=0.05, sleep=self.sleeps.append),
        }
        options |= kwargs
        return SalesforceClient(**options)  # type: ignore[arg-type]

    def port(self, region: str = "US", *, policy: Policy | None = None, **kwargs: object) -> SalesforceCrm:
        """A port on a fresh client (`kwargs`); `policy` is the tenant's (what rules v1.1 read)."""
        return SalesforceCrm(
            self.client(**kwargs), self.settings, region, capabilities=self.capabilities, policy=policy
        )

    def reset_stats(self) -> None:
        """Count from here (after warming the capabilities, say)."""
        self.emulator.stats = Stats()


@pytest.fixture()
def org_profile(request: pytest.FixtureRequest) -> OrgProfile:
    profile = getattr(request, "param", None)
    return profile if isinstance(profile, OrgProfile) else OrgProfile.full()


@pytest.fixture()
def salesforce(org_profile: OrgProfile) -> Iterator[Callable[..., SalesforceEnv]]:
    """`salesforce(crm, settings=None, *, profile=None, warm=True, **emulator_options)`: a seeded emulator.

    `warm` discovers the org's capabilities once before the test counts anything.
    """
    started: list[SalesforceEmulator] = []

    def start(
        crm: CrmSlice,
        settings: SalesforceSettings | None = None,
        *,
        profile: OrgProfile | None = None,
        warm: bool = True,
        **options: object,
    ) -> SalesforceEnv:
        settings = settings or SalesforceSettings()
        org = seed_org(crm, profile=profile or org_profile)
        emulator = SalesforceEmulator(org, **options).start()  # type: ignore[arg-type]
        started.append(emulator)
        env = SalesforceEnv(emulator, settings, [])
        env.capabilities = Capabilities(
            env.client(), CapabilityCache(None, "salesforce:tenant-a:capabilities")
        )
        if warm:
            env.capabilities.get()
            env.reset_stats()
        return env

    yield start
    for emulator in started:
        emulator.stop()
