"""Tenant `acme` whose five providers read their APIs from the provider emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.adapters.providers import samples
from tests.emulators.providers.server import ProviderEmulator
from worker.config.tenants import Tenant, parse_tenants

SA_EMAIL = "callmatch@acme-project.iam.gserviceaccount.com"
AZURE_TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95"


def api_tenant(emulator: ProviderEmulator, tmp_path: Path) -> Tenant:
    """`acme` with API credentials for all five providers, pointed at `emulator`."""
    base = emulator.base_url
    document = samples.tenant_document(str(tmp_path))
    providers = document["tenants"]["acme"]["providers"]
    environ = dict(samples.ENVIRON)
    environ.update(
        {
            "C_AIRCALL_ID": "api-id",
            "C_AIRCALL_TOKEN": "api-token",
            "C_RINGOVER": "ringover-api-key",
            "C_ZOOM_ACCOUNT": "zoom-account",
            "C_ZOOM_CLIENT": "zoom-client",
            "C_ZOOM_SECRET": "zoom-secret",
            "C_GOOGLE_KEY": json.dumps(
                {
                    "type": "service_account",
                    "client_email": SA_EMAIL,
                    "private_key": samples.private_pem(samples.OTHER_KEY),
                    "token_uri": f"{base}/token",
                }
            ),
            "C_GRAPH_CLIENT": "graph-client",
            "C_GRAPH_SECRET": "graph-secret",
        }
    )
    providers["aircall"].update(
        api_base_url=base, credentials={"api_id_env": "C_AIRCALL_ID", "api_token_env": "C_AIRCALL_TOKEN"}
    )
    providers["ringover"].update(api_base_url=base, credentials={"api_key_env": "C_RINGOVER"})
    providers["zoom"].update(
        api_base_url=base,
        oauth_url=f"{base}/oauth/token",
        credentials={
            "account_id_env": "C_ZOOM_ACCOUNT",
            "client_id_env": "C_ZOOM_CLIENT",
            "client_secret_env": "C_ZOOM_SECRET",
        },
    )
    providers["google_meet"].update(
        api_base_url=base,
        delegated_user="admin@ourco.com",
        credentials={"service_account_key_env": "C_GOOGLE_KEY"},
    )
    providers["teams"].update(
        api_base_url=base,
        azure_tenant_id=AZURE_TENANT,
        token_url=f"{base}/{{azure_tenant_id}}/oauth2/v2.0/token",
        credentials={"client_id_env": "C_GRAPH_CLIENT", "client_secret_env": "C_GRAPH_SECRET"},
    )
    return parse_tenants(document, "t.yaml", tmp_path, environ).tenants["acme"]


@contextmanager
def provider_emulator() -> Iterator[ProviderEmulator]:
    """The provider emulator, trusting the Google service account the samples sign with."""
    emu = ProviderEmulator().start()
    emu.state.google_public_key = samples.public_pem(samples.OTHER_KEY)
    emu.state.google_client_email = SA_EMAIL
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture()
def emulator() -> Iterator[ProviderEmulator]:
    with provider_emulator() as emu:
        yield emu
