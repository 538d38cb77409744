"""Fixtures: a seeded Salesforce emulator on loopback HTTPS and a real simple-salesforce client on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.salesforce.client import Credentials, RetrySettings, SalesforceClient
from adapters.crm.salesforce.mapping import SalesforceSettings
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from worker.model import CrmSlice


@dataclass
class SalesforceEnv:
    emulator: SalesforceEmulator
    settings: SalesforceSettings
    sleeps: list[float]

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

    def port(self, region: str = "US", **kwargs: object) -> SalesforceCrm:
        return SalesforceCrm(self.client(**kwargs), self.settings, region)


@pytest.fixture()
def salesforce() -> Iterator[Callable[..., SalesforceEnv]]:
    """`salesforce(crm, **emulator_options)` starts a seeded emulator, stopped after the test."""
    started: list[SalesforceEmulator] = []

    def start(crm: CrmSlice, settings: SalesforceSettings | None = None, **options: object) -> SalesforceEnv:
        settings = settings or SalesforceSettings()
        emulator = SalesforceEmulator(seed_org(crm, profile=OrgProfile.full()), **options).start()  # type: ignore[arg-type]
        started.append(emulator)
        return SalesforceEnv(emulator, settings, [])

    yield start
    for emulator in started:
        emulator.stop()
