"""Each failure of the API recovers or fails clearly, classified once, with the attempts counted."""

from __future__ import annotations

import pytest

from adapters.crm.salesforce.client import Credentials, RetrySettings
from adapters.crm.salesforce.mapping import SalesforceSettings
from adapters.errors import CredentialsExpiredError, FatalError, RateLimitedError, RetryableError
from tests.conftest import wait_until
from worker.core.model import Account, Contact, CrmSlice

CRM = CrmSlice(
    accounts=(Account(id="A1", name="Acme", domains=("acme.example",)),),
    contacts=(Contact(id="C1", email="jane@acme.example", phones=("+1 212 555 0101",), account_ids=("A1",)),),
)
SOQL = "SELECT Id, Email FROM Contact WHERE Email = 'jane@acme.example'"


def test_5xx_is_retried_with_backoff_then_succeeds(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client()
    env.emulator.inject("status", 2, status=503)
    assert [r["Id"] for r in client.query(SOQL)] == ["C1"]
    assert client.last_attempts.count == 3
    assert client.last_attempts.errors == ["RetryableError", "RetryableError"]
    assert len(env.sleeps) == 2
    assert env.emulator.stats.api_calls == 1


def test_5xx_that_persists_fails_after_max_attempts(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client(retry=RetrySettings(max_attempts=4, base_delay=0.01, sleep=env.sleeps.append))
    env.emulator.inject("status", 10, status=500)
    with pytest.raises(RetryableError) as caught:
        client.query(SOQL)
    assert caught.value.status == 500
    assert client.last_attempts.count == 4
    assert len(env.emulator.faults) == 6


def test_daily_limit_is_rate_limited_and_not_retried(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client()
    env.emulator.inject("limit_daily")
    with pytest.raises(RateLimitedError) as caught:
        client.query(SOQL)
    assert caught.value.daily is True
    assert caught.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert client.last_attempts.count == 1


def test_concurrent_limit_backs_off_and_retries(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client()
    env.emulator.inject("limit_concurrent")
    assert len(client.query(SOQL)) == 1
    assert client.last_attempts.count == 2
    assert client.last_attempts.rate_limited == 1
    assert len(env.sleeps) == 1


def test_expired_session_is_refreshed_by_refresh_token(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client()
    env.emulator.inject("expire")
    assert len(client.query(SOQL)) == 1
    assert client.last_attempts.count == 2
    assert client.last_attempts.refreshes == 1
    assert env.emulator.stats.logins == 1


def test_expired_session_is_refreshed_by_login(salesforce) -> None:
    env = salesforce(CRM)
    credentials = Credentials(
        token_url=f"{env.emulator.instance_url}/services/oauth2/token",
        client_id=env.emulator.client_id,
        client_secret=env.emulator.client_secret,
        username=env.emulator.username,
        password=env.emulator.password,
    )
    client = env.client(credentials=credentials)
    env.emulator.inject("expire")
    assert len(client.query(SOQL)) == 1
    assert client.last_attempts.count == 2
    assert env.emulator.stats.logins == 1
    assert "password" not in repr(credentials)


def test_a_client_without_a_session_logs_in_first(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client(access_token=None)
    assert len(client.query(SOQL)) == 1
    assert env.emulator.stats.logins == 1
    assert client.last_attempts.count == 1


def test_expired_session_without_credentials_fails_clearly(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client(credentials=None)
    env.emulator.inject("expire")
    with pytest.raises(CredentialsExpiredError) as caught:
        client.query(SOQL)
    assert caught.value.code == "INVALID_SESSION_ID"
    assert client.last_attempts.count == 1


def test_revoked_refresh_token_is_fatal(salesforce) -> None:
    env = salesforce(CRM)
    revoked = Credentials(
        token_url=f"{env.emulator.instance_url}/services/oauth2/token",
        client_id=env.emulator.client_id,
        client_secret=env.emulator.client_secret,
        refresh_token="revoked",
    )
    client = env.client(credentials=revoked)
    env.emulator.inject("expire")
    with pytest.raises(FatalError) as caught:
        client.query(SOQL)
    assert caught.value.code == "invalid_grant"
    assert client.last_attempts.count == 1
    assert env.emulator.stats.logins == 0


def test_read_timeout_is_retried(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client(timeout=(2.0, 0.3))
    env.emulator.inject("delay", seconds=1.0)
    assert len(client.query(SOQL)) == 1
    assert client.last_attempts.count == 2
    assert client.last_attempts.errors == ["RetryableError"]


def test_connection_reset_is_retried(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client()
    env.emulator.inject("reset")
    assert len(client.query(SOQL)) == 1
    assert client.last_attempts.count == 2


def test_malformed_query_is_fatal_at_once(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client()
    with pytest.raises(FatalError) as caught:
        client.query("SELECT Nope__c FROM Contact")
    assert caught.value.code == "INVALID_FIELD"
    assert client.last_attempts.count == 1


def test_a_failed_composite_subrequest_is_classified(salesforce) -> None:
    env = salesforce(CRM)
    with pytest.raises(FatalError) as caught:
        env.client().composite_queries({"bad": "SELECT Not_In_This_Org__c FROM Contact"})
    assert caught.value.code == "INVALID_FIELD"


def test_a_configured_field_the_org_lacks_is_left_out_not_sent(salesforce) -> None:
    """The tenant names a field the org does not have: the capabilities leave it out of the query."""
    env = salesforce(CRM)
    port = env.port()
    port.settings = SalesforceSettings(extra_email_fields=("Not_In_This_Org__c",))
    from worker.core.port import Lookup

    found = port.lookup(Lookup(emails=frozenset({"jane@acme.example"})))
    assert [c.id for c in found.contacts] == ["C1"]
    assert env.emulator.stats.by_path == {"composite": 1}


def test_write_retried_after_a_timeout_leaves_one_activity(salesforce) -> None:
    from tests.adapters.crm.salesforce.test_writeback import CALL, decision

    env = salesforce(CRM)
    port = env.port(timeout=(2.0, 0.3))
    env.emulator.inject("delay", seconds=0.6)
    written = port.upsert_activity(CALL, decision(contact_ids=("C1",), account_id="A1"))
    assert port.client.last_attempts.count == 2
    wait_until(lambda: env.emulator.stats.api_calls == 2, what="the timed-out write to land too")
    tasks = env.emulator.org.find_by("Task", env.settings.external_id_field, CALL.id)
    assert [t["Id"] for t in tasks] == [written.id]


def test_errors_never_carry_the_query_text(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client()
    with pytest.raises(FatalError) as caught:
        client.query("SELECT Id FROM Contact WHERE Email = 'jane@acme.example' AND")
    assert caught.value.code == "MALFORMED_QUERY"
    assert "jane" not in str(caught.value)
