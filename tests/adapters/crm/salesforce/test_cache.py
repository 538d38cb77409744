"""The tenant's users are read once per TTL: every port on the tenant's client shares them."""

from __future__ import annotations

from adapters.crm.salesforce.adapter import SalesforceCrm, UserCache
from adapters.crm.salesforce.mapping import SalesforceSettings
from worker.core.model import CrmSlice, User
from worker.core.port import Lookup

CRM = CrmSlice(users=(User(id="U1", email="Rep@OurCo.example"),))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_users_are_read_once_per_ttl_for_every_port_of_the_tenant(salesforce) -> None:
    env = salesforce(CRM)
    client = env.client()
    clock = Clock()
    UserCache._tenants[client] = UserCache(clock)

    def port() -> SalesforceCrm:
        return SalesforceCrm(client, env.settings, capabilities=env.capabilities)

    keys = Lookup(user_emails=frozenset({"rep@ourco.example", "nobody@ourco.example"}))
    first = port().lookup(keys)
    assert [u.id for u in first.users] == ["U1"]
    assert env.emulator.stats.api_calls == 1
    # another port of the tenant (a batch gets a fresh one): found and not-found both served from the cache
    again = port().lookup(keys)
    assert [u.id for u in again.users] == ["U1"]
    assert env.emulator.stats.api_calls == 1
    assert len([q for q in env.emulator.stats.queries if "FROM User" in q]) == 1
    clock.now += SalesforceSettings().users_ttl + 1
    assert [u.id for u in port().lookup(keys).users] == ["U1"]
    assert env.emulator.stats.api_calls == 2


def test_a_zero_ttl_reads_users_every_time(salesforce) -> None:
    env = salesforce(CRM, SalesforceSettings(users_ttl=0))
    client = env.client()
    keys = Lookup(user_emails=frozenset({"rep@ourco.example"}))
    for _ in range(2):
        SalesforceCrm(client, env.settings, capabilities=env.capabilities).lookup(keys)
    assert len([q for q in env.emulator.stats.queries if "FROM User" in q]) == 2


def test_ports_of_other_clients_do_not_share(salesforce) -> None:
    env = salesforce(CRM)
    keys = Lookup(user_emails=frozenset({"rep@ourco.example"}))
    env.port().lookup(keys)
    env.port().lookup(keys)
    assert len([q for q in env.emulator.stats.queries if "FROM User" in q]) == 2
