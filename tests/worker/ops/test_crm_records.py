"""A call's CRM records as a person sees them: names and details read back through the port, links into the CRM."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.worker.ops.conftest import World
from worker.config.tenants import CrmConfig, Tenant, TenantsSource
from worker.ops.crm_records import call_records, open_opportunities_of_accounts, record_url
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStore

ROOT = Path(__file__).resolve().parents[3]


def test_links_into_salesforce_and_hubspot_and_none_without_their_settings() -> None:
    salesforce = Tenant(
        "s", CrmConfig("salesforce", settings={"instance_url": "https://acme.my.salesforce.com/"})
    )
    assert record_url(salesforce, "opportunity", "006O1") == "https://acme.my.salesforce.com/006O1"
    assert record_url(salesforce, "task", "00T1") == "https://acme.my.salesforce.com/00T1"
    assert record_url(Tenant("s", CrmConfig("salesforce")), "account", "001A1") is None
    hubspot = Tenant("h", CrmConfig("hubspot", settings={"portal_id": "4242"}))
    assert record_url(hubspot, "opportunity", "77") == "https://app.hubspot.com/contacts/4242/record/0-3/77"
    assert record_url(hubspot, "account", "5") == "https://app.hubspot.com/contacts/4242/record/0-2/5"
    assert record_url(hubspot, "contact", "9") == "https://app.hubspot.com/contacts/4242/record/0-1/9"
    assert record_url(hubspot, "calls", "12") == "https://app.hubspot.com/contacts/4242/record/0-48/12"
    eu = Tenant(
        "h", CrmConfig("hubspot", settings={"portal_id": "4242", "app_url": "https://app-eu1.hubspot.com"})
    )
    assert record_url(eu, "meetings", "3") == "https://app-eu1.hubspot.com/contacts/4242/record/0-47/3"
    assert record_url(Tenant("h", CrmConfig("hubspot")), "account", "5") is None
    assert record_url(Tenant("x", CrmConfig("scenario")), "account", "A1") is None


def test_names_details_and_choices_come_from_the_crm(world: World) -> None:
    found = call_records(
        world.pipeline,
        "a",
        contact_ids=["C1"],
        lead_ids=["L1"],
        account_ids=["A1"],
        opportunity_ids=["O1", "O9"],
    )
    assert found.error is None
    account = found.get("account", "A1")
    assert (account.name, account.detail, account.found) == ("Acme", "acme.com", True)
    contact = found.get("contact", "C1")
    assert contact.name == "j***@acme.com" and contact.detail == "Acme (A1)"
    opportunity = found.get("opportunity", "O1")
    assert opportunity.detail.startswith("Acme (A1) · open · close date 2026-04-30")
    assert not found.get("opportunity", "O9").found, "an id the CRM does not have is shown as such"
    assert [o.id for o in found.opportunities] == ["O1"]
    assert [a.id for a in found.accounts] == ["A1"] and [c.id for c in found.contacts] == ["C1"]
    assert open_opportunities_of_accounts(world.pipeline, "a", ["A1"])["A1"][0].id == "O1"


def test_a_crm_that_cannot_be_read_leaves_the_ids_and_says_why(redis_client, tmp_path: Path) -> None:
    scenario = tmp_path / "crm.json"
    shutil.copy(ROOT / "config" / "examples" / "basic.json", scenario)
    path = tmp_path / "tenants.yaml"
    path.write_text(
        f"version: 1\ntenants:\n  a:\n    crm:\n      kind: scenario\n      scenario_file: {scenario}\n"
    )
    source = TenantsSource(path)
    pipeline = Pipeline(source.current, CallStore(redis_client), CrmFactory(redis_client).crm_for)
    scenario.unlink()
    found = call_records(pipeline, "a", account_ids=["A1"], opportunity_ids=["O1"])
    assert (
        found.error is not None and "could not be read" in found.error and "FileNotFoundError" in found.error
    )
    assert found.get("account", "A1").id == "A1" and found.get("account", "A1").name is None
    assert open_opportunities_of_accounts(pipeline, "a", ["A1"]) == {}
