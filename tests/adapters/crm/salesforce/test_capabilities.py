"""Capability discovery: what each profile's describes say, one composite call, a Redis cache with a TTL
shared by a tenant's workers, and a refresh when the org answers INVALID_FIELD."""

from __future__ import annotations

import dataclasses

import pytest

from adapters.crm.readiness import CapabilityCache, CrmAdmin, MissingRequirementError
from adapters.crm.salesforce.capabilities import Capabilities, OrgCapabilities, discover
from adapters.crm.salesforce.tenant import SalesforceTenant
from tests.adapters.crm.salesforce.conftest import PROFILES
from tests.adapters.crm.salesforce.test_writeback import CALL, CRM
from tests.emulators.salesforce.profile import OrgProfile
from worker.config.tenants import CrmConfig, RateLimit, Tenant
from worker.core.model import Policy
from worker.core.port import Lookup
from worker.pipeline.association import associate

FIELD = "Callmatch_Call_Id__c"


def _tenant(env, **settings: str) -> Tenant:
    crm = CrmConfig(
        kind="salesforce",
        settings={"login_url": env.emulator.instance_url, "ca_file": env.emulator.ca_file, **settings},
        credentials={
            "client_id": env.emulator.client_id,
            "client_secret": env.emulator.client_secret,
            "refresh_token": env.emulator.refresh_token,
        },
        rate_limit=RateLimit(per_second=50, burst=100),
    )
    return Tenant(name="acme", crm=crm)


def test_each_profile_is_discovered_in_one_composite_call(salesforce) -> None:
    for name, profile in PROFILES.items():
        env = salesforce(CRM, profile=profile, warm=False)
        client = env.client()
        caps = discover(client)
        assert client.api_calls == 1 and env.emulator.stats.by_path == {"composite": 1}, name
        assert caps.shared_activities is profile.shared_activities, name
        assert caps.contacts_to_multiple_accounts is profile.contacts_to_multiple_accounts, name
        assert caps.has_object("TaskRelation") is profile.shared_activities, name
        assert caps.has_field("EventRelation", "IsParent") is profile.shared_activities, name
        assert caps.has_field("EventRelation", "IsInvitee"), name
        assert caps.has_field("Contact", "Secondary_Email__c") is (name == "full")
        assert caps.has_field("Account", "Domains__c") is (name == "full")
        field = caps.field("Task", FIELD)
        if name == "plain":
            assert field is None and caps.field("Event", FIELD) is None
        else:
            assert field is not None and field.external_id and field.unique and field.createable
        for sobject in ("Contact", "Lead", "Account", "Opportunity", "OpportunityContactRole", "User"):
            assert caps.can(sobject, "read"), (name, sobject)
        assert caps.can("Task", "create") and caps.can("Event", "edit")
        assert caps.has_child("Contact", "OpportunityContactRoles")
        assert caps.has_child("Contact", "AccountContactRelations") is profile.contacts_to_multiple_accounts


def test_object_permissions_and_hidden_fields_come_from_the_users_describe(salesforce) -> None:
    profile = dataclasses.replace(
        OrgProfile.full(),
        denied=frozenset({"Task.create", "Lead.read"}),
        hidden_fields=frozenset({"Contact.Other_Email__c"}),
    )
    caps = discover(salesforce(CRM, profile=profile, warm=False).client())
    assert not caps.can("Task", "create") and caps.can("Task", "edit") and caps.can("Task", "read")
    assert not caps.can("Lead", "read")
    assert not caps.has_field("Contact", "Other_Email__c") and caps.has_field("Contact", "Secondary_Email__c")


def test_capabilities_survive_the_cache_as_json() -> None:
    caps = OrgCapabilities.from_describes(
        {"sobjects": [{"name": "Task", "queryable": True, "createable": True}, {"name": "TaskRelation"}]},
        {
            "Task": {
                "queryable": True,
                "createable": True,
                "updateable": True,
                "fields": [
                    {"name": FIELD, "type": "string", "externalId": True, "unique": True, "createable": True}
                ],
                "childRelationships": [{"relationshipName": "TaskRelations", "childSObject": "TaskRelation"}],
            },
            "TaskRelation": None,
        },
        discovered_at=12.5,
    )
    again = OrgCapabilities.from_json(caps.to_json())
    assert again == caps
    assert again is not None and again.shared_activities and again.field("task", FIELD.lower()) is not None
    assert OrgCapabilities.from_json({"version": 0, "objects": {}}) is None


def test_the_tenants_workers_share_one_discovery_through_redis_with_a_ttl(salesforce, redis_client) -> None:
    env = salesforce(CRM, profile=OrgProfile.after_setup(), warm=False)
    first = SalesforceTenant.from_config(_tenant(env, capabilities_ttl="120"), redis_client)
    second = SalesforceTenant.from_config(_tenant(env, capabilities_ttl="120"), redis_client)
    key = "salesforce:acme:capabilities"
    admin: CrmAdmin = first  # the shape `callmatch setup` / `doctor` ask for (checked by mypy)
    assert callable(admin.setup) and callable(admin.doctor)

    decision = associate(CALL, Policy(), first.port())
    first.port().upsert_activity(CALL, decision)
    assert first.capabilities is not None and first.capabilities.discoveries == 1
    assert 0 < redis_client.ttl(key) <= 120

    calls = env.emulator.stats.api_calls
    port = second.port()
    again = associate(CALL, Policy(), port)
    assert (again.case, again.contact_ids, again.opportunity_id) == (
        decision.case,
        decision.contact_ids,
        decision.opportunity_id,
    )
    assert second.capabilities is not None and second.capabilities.discoveries == 0
    assert "capabilities" not in port.stats.by_method
    assert env.emulator.stats.api_calls - calls == port.stats.requests == 1

    # a field turned off at run time: one worker is refused, describes again and every worker reads that
    env.emulator.org.set_profile(
        dataclasses.replace(
            OrgProfile.after_setup(),
            custom_fields=frozenset({"Contact.Secondary_Email__c", "Activity." + FIELD}),
        )
    )
    assert first.port().lookup(Lookup(emails=frozenset({"jane@acme.example"}))).contacts
    assert first.capabilities.discoveries == 1  # a field added is picked up at the TTL, not sooner
    env.emulator.org.set_profile(OrgProfile.plain())
    with pytest.raises(MissingRequirementError):
        second.port().upsert_activity(CALL, decision)
    assert second.capabilities.discoveries == 1
    cached = OrgCapabilities.from_json(CapabilityCache(redis_client, key).get() or {})
    assert cached is not None and not cached.has_field("Task", FIELD)


def test_without_redis_a_tenant_keeps_its_capabilities_in_the_process(salesforce) -> None:
    env = salesforce(CRM, profile=OrgProfile.after_setup(), warm=False)
    tenant = SalesforceTenant.from_config(_tenant(env))
    tenant.port().lookup(Lookup(emails=frozenset({"jane@acme.example"})))
    tenant.port().lookup(Lookup(emails=frozenset({"li@acme.example"})))
    assert isinstance(tenant.capabilities, Capabilities) and tenant.capabilities.discoveries == 1


def test_setup_through_the_tenant_drops_the_cached_capabilities_so_workers_see_the_field(
    salesforce, redis_client
) -> None:
    env = salesforce(CRM, profile=OrgProfile.plain(), warm=False)
    tenant = SalesforceTenant.from_config(_tenant(env), redis_client)
    worker = SalesforceTenant.from_config(_tenant(env), redis_client)
    decision = associate(CALL, Policy(), worker.port())
    with pytest.raises(MissingRequirementError):
        worker.port().upsert_activity(CALL, decision)
    assert redis_client.exists("salesforce:acme:capabilities")
    assert {step.outcome.value for step in tenant.setup()} == {"created"}
    assert not redis_client.exists("salesforce:acme:capabilities")
    assert worker.port().upsert_activity(CALL, decision).created
    assert not [c for c in tenant.doctor() if c.status.value == "fail"]
