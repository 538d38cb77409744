"""A tenant's `crm` config becomes a working Salesforce port with its shared limiter and budget."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from adapters.crm.salesforce.client import RetrySettings
from adapters.crm.salesforce.tenant import SalesforceConfigError, SalesforceTenant
from adapters.ratelimit import ApiBudget
from tests.adapters.crm.salesforce.test_writeback import CALL, CRM
from tests.config_example import load_example
from worker.config.tenants import CrmConfig, RateLimit, Tenant
from worker.core.model import Case, Policy
from worker.pipeline.association import associate


def _tenant(env, **credentials: str) -> Tenant:
    crm = CrmConfig(
        kind="salesforce",
        settings={
            "login_url": env.emulator.instance_url,
            "ca_file": env.emulator.ca_file,
            "extra_email_fields": "Secondary_Email__c, Other_Email__c",
            "reserve_fraction": "0.2",
        },
        credentials=credentials
        or {
            "client_id": env.emulator.client_id,
            "client_secret": env.emulator.client_secret,
            "refresh_token": env.emulator.refresh_token,
        },
        rate_limit=RateLimit(per_second=50, burst=100),
    )
    return Tenant(name="acme", crm=crm, policy=Policy(default_region="US"))


def test_a_tenant_logs_in_decides_and_records_its_budget(salesforce, redis_client) -> None:
    env = salesforce(CRM, daily_limit=1000)
    org = SalesforceTenant.from_config(_tenant(env), redis_client)
    decision = associate(CALL, Policy(), org.port())
    org.port().upsert_activity(CALL, decision)
    assert decision.case is Case.CONTACTS and decision.contact_ids == ("C1", "C2")
    assert env.emulator.stats.logins == 1
    calls = env.emulator.stats.api_calls
    assert org.remaining == 1000 - calls
    assert ApiBudget(redis_client, "salesforce:acme:daily").remaining() == (1000 - calls, 1000)
    assert redis_client.exists("callmatch:ratelimit:salesforce:acme:requests")


def test_config_errors_name_the_setting_not_the_secret(salesforce) -> None:
    env = salesforce(CRM)
    with pytest.raises(SalesforceConfigError, match=r"crm\.credentials"):
        SalesforceTenant.from_config(_tenant(env, client_id="id", client_secret="s3cret"))
    other = _tenant(env)
    hubspot = dataclasses.replace(other, crm=dataclasses.replace(other.crm, kind="hubspot"))
    with pytest.raises(SalesforceConfigError, match=r"crm\.kind"):
        SalesforceTenant.from_config(hubspot)
    try:
        SalesforceTenant.from_config(_tenant(env, client_id="id", client_secret="s3cret"))
    except SalesforceConfigError as error:
        assert "s3cret" not in str(error)


def test_a_revoked_tenant_fails_clearly_on_first_use(salesforce) -> None:
    env = salesforce(CRM)
    revoked = _tenant(
        env, client_id=env.emulator.client_id, client_secret=env.emulator.client_secret, refresh_token="old"
    )
    org = SalesforceTenant.from_config(revoked, retry=RetrySettings(sleep=env.sleeps.append))
    from adapters.errors import FatalError

    with pytest.raises(FatalError):
        associate(CALL, Policy(), org.port())
    assert env.emulator.stats.api_calls == 0


def test_the_documented_salesforce_tenant_builds_with_every_setting(tmp_path: Path) -> None:
    """config/tenants.example.yaml's Salesforce tenant: every setting it documents is accepted and used."""
    tenants, document = load_example(tmp_path)
    acme = tenants.tenants["acme"]
    documented = document["tenants"]["acme"]["crm"]
    tenant = SalesforceTenant.from_config(acme)
    settings = tenant.settings
    assert settings.api_version == documented["api_version"]
    assert settings.external_id_field == documented["external_id_field"]
    assert settings.task_call_id_field == documented["task_call_id_field"]
    assert settings.event_call_id_field == documented["event_call_id_field"]
    assert settings.attendee_emails_field == documented["attendee_emails_field"]
    assert settings.account_domain_field == documented["account_domain_field"]
    assert ",".join(settings.extra_email_fields) == documented["extra_email_fields"]
    assert tenant.reserve_fraction == documented["reserve_fraction"]
    assert tenant.client.credentials is not None
    assert tenant.client.credentials.token_url == documented["login_url"] + "/services/oauth2/token"
    assert tenant.capabilities is not None
    assert tenant.capabilities.cache.ttl == documented["capabilities_ttl"]
