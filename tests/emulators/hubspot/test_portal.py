"""The HubSpot emulator as a vendor: portal profiles, the properties API, HubSpot's error bodies,
per-object association paging, the search cap and search semantics, account and token endpoints.

Every request goes over HTTP through the real hubspot-api-client (typed APIs, or its generic
`api_request` where the raw body is what is checked).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.objects import PublicObjectSearchRequest, SimplePublicObjectInputForCreate
from hubspot.crm.properties import ApiException, PropertyCreate, PropertyGroupCreate

from tests.conftest import example_dir
from tests.emulators.hubspot import HubSpotEmulator, Limits, PortalProfile, Store
from tests.emulators.hubspot.profile import ALL_SCOPES, OPTIONAL_PROPERTIES, SETUP_PROPERTIES
from tests.emulators.hubspot.server import PORTAL_ID
from worker.config.scenario import loads_scenario

TOKEN = "pat-emulator-token"
NOW = "2026-03-01T09:00:00.000Z"
GENEROUS = Limits(burst=100_000, search=100_000)


@pytest.fixture
def store() -> Store:
    return Store(profile=PortalProfile.plain())


@pytest.fixture
def emulator(store: Store) -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(store, limits=GENEROUS) as running:
        yield running


def client(emulator: HubSpotEmulator, token: str = TOKEN) -> HubSpot:
    return HubSpot(access_token=token, host=emulator.url, base_url=emulator.url)


def raw(
    emulator: HubSpotEmulator, method: str, path: str, body: Any = None, qs: dict[str, Any] | None = None
) -> requests.Response:
    options: dict[str, Any] = {"method": method, "path": path}
    if body is not None:
        options["body"] = body
    if qs:
        options["qs"] = qs
    response: requests.Response = client(emulator).api_request(options)
    return response


# -- profiles and seeding ----------------------------------------------------------------------


def test_profiles_grow_from_plain_to_full() -> None:
    plain, after, full = PortalProfile.plain(), PortalProfile.after_setup(), PortalProfile.full()
    assert plain.custom_properties == frozenset() and plain.unique_properties == frozenset()
    assert after.custom_properties == SETUP_PROPERTIES
    assert after.unique_properties == {"calls.callmatch_call_id", "meetings.callmatch_call_id"}
    assert full.custom_properties == SETUP_PROPERTIES | OPTIONAL_PROPERTIES
    assert plain.association_page_size == after.association_page_size == 3
    assert plain.search_total_cap == 10_000 and plain.scopes == ALL_SCOPES


@pytest.mark.parametrize(
    "profile", [PortalProfile.plain(), PortalProfile.after_setup(), PortalProfile.full()]
)
def test_a_seed_holds_only_values_of_properties_the_portal_has(profile: PortalProfile) -> None:
    scenario = loads_scenario((example_dir() / "basic.json").read_text())
    store = Store.from_scenario(scenario, profile=profile)
    activity = scenario.crm.activities[0]
    held = store.objects["calls"][activity.id].properties
    assert ("callmatch_call_id" in held) == profile.has("calls", "callmatch_call_id")
    if not profile.has("calls", "callmatch_call_id"):
        assert activity.call_id is not None
        assert all(activity.call_id not in value for value in held.values())  # dropped, not moved
    for kind, objects in store.objects.items():
        for obj in objects.values():
            assert store.unknown_properties(kind, obj.properties) == []


# -- properties API ----------------------------------------------------------------------------


def test_the_properties_api_lists_reads_creates_and_archives(emulator: HubSpotEmulator) -> None:
    api = client(emulator).crm.properties
    names = {p.name for p in api.core_api.get_all("calls").results}
    assert {"hs_timestamp", "hs_call_body", "hs_call_title"} <= names
    assert "callmatch_call_id" not in names
    with pytest.raises(ApiException) as missing:
        api.core_api.get_by_name("calls", "callmatch_call_id")
    assert missing.value.status == 404

    group = api.groups_api.create("calls", PropertyGroupCreate(name="callmatch", label="callmatch"))
    assert group.name == "callmatch"
    with pytest.raises(ApiException) as again:
        api.groups_api.create("calls", PropertyGroupCreate(name="callmatch", label="callmatch"))
    assert again.value.status == 409
    assert "callmatch" in {g.name for g in api.groups_api.get_all("calls").results}

    spec = PropertyCreate(
        name="callmatch_call_id",
        label="Callmatch call id",
        type="string",
        field_type="text",
        group_name="callmatch",
        has_unique_value=True,
    )
    created = api.core_api.create("calls", spec)
    assert created.name == "callmatch_call_id" and created.has_unique_value is True
    assert created.hubspot_defined is not True and created.modification_metadata.archivable is True
    assert emulator.store.profile.has("calls", "callmatch_call_id")
    assert "calls.callmatch_call_id" in emulator.store.profile.unique_properties
    assert api.core_api.get_by_name("calls", "callmatch_call_id").group_name == "callmatch"
    with pytest.raises(ApiException) as exists:
        api.core_api.create("calls", spec)
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["category"] == "OBJECT_ALREADY_EXISTS"

    api.core_api.archive("calls", "callmatch_call_id")
    assert not emulator.store.profile.has("calls", "callmatch_call_id")
    with pytest.raises(ApiException) as gone:
        api.core_api.get_by_name("calls", "callmatch_call_id")
    assert gone.value.status == 404


def test_a_property_in_a_group_that_does_not_exist_is_refused(emulator: HubSpotEmulator) -> None:
    spec = PropertyCreate(name="x_y", label="X", type="string", field_type="text", group_name="nope")
    with pytest.raises(ApiException) as error:
        client(emulator).crm.properties.core_api.create("calls", spec)
    assert error.value.status == 400
    assert not emulator.store.has_property("calls", "x_y")


def test_a_token_without_the_schema_write_scope_gets_missing_scopes(emulator: HubSpotEmulator) -> None:
    emulator.set_profile(PortalProfile(scopes=ALL_SCOPES - {"crm.schemas.contacts.write"}))
    response = raw(
        emulator,
        "POST",
        "/crm/v3/properties/calls/groups",
        {"name": "callmatch", "label": "callmatch"},
    )
    assert response.status_code == 403
    body = response.json()
    assert body["category"] == "MISSING_SCOPES"
    assert body["message"].startswith("This app hasn't been granted all required scopes")
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.schemas.contacts.write"]
    assert body["links"] == {"scopes": "https://developers.hubspot.com/scopes"}
    assert "callmatch" not in emulator.store.groups["calls"]
    assert raw(emulator, "GET", "/crm/v3/properties/calls").status_code == 200  # reading is granted


# -- PROPERTY_DOESNT_EXIST -----------------------------------------------------------------------


def assert_property_doesnt_exist(response: requests.Response, name: str) -> None:
    """HubSpot's body, as its CRM objects guide shows it."""
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["status", "message", "correlationId", "errors", "category"]
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR"
    prefix = "Property values were not valid: "
    assert body["message"].startswith(prefix)
    (result,) = json.loads(body["message"][len(prefix) :])
    assert result == {
        "isValid": False,
        "message": f'Property "{name}" does not exist',
        "error": "PROPERTY_DOESNT_EXIST",
        "name": name,
        "localizedErrorMessage": f'Property "{name}" does not exist',
        "portalId": PORTAL_ID,
    }
    assert body["errors"] == [
        {
            "message": f'Property "{name}" does not exist',
            "code": "PROPERTY_DOESNT_EXIST",
            "context": {"propertyName": [name]},
        }
    ]


def test_writes_naming_a_property_the_portal_lacks_are_refused(emulator: HubSpotEmulator) -> None:
    props = {"hs_timestamp": NOW, "callmatch_call_id": "aircall:1"}
    assert_property_doesnt_exist(
        raw(emulator, "POST", "/crm/v3/objects/calls", {"properties": props}), "callmatch_call_id"
    )
    assert emulator.store.objects["calls"] == {}
    created = raw(emulator, "POST", "/crm/v3/objects/calls", {"properties": {"hs_timestamp": NOW}})
    assert created.status_code == 201
    call_id = created.json()["id"]
    patch = raw(
        emulator, "PATCH", f"/crm/v3/objects/calls/{call_id}", {"properties": {"callmatch_written": "true"}}
    )
    assert_property_doesnt_exist(patch, "callmatch_written")
    batch = {"inputs": [{"properties": {"hs_timestamp": NOW}}, {"properties": props}]}
    assert_property_doesnt_exist(
        raw(emulator, "POST", "/crm/v3/objects/calls/batch/create", batch), "callmatch_call_id"
    )
    assert list(emulator.store.objects["calls"]) == [call_id]  # the whole batch was refused
    update = {"inputs": [{"id": call_id, "properties": {"callmatch_written": "true"}}]}
    assert_property_doesnt_exist(
        raw(emulator, "POST", "/crm/v3/objects/calls/batch/update", update), "callmatch_written"
    )

    emulator.set_profile(PortalProfile.after_setup())
    again = raw(emulator, "POST", "/crm/v3/objects/calls", {"properties": props})
    assert again.status_code == 201
    assert again.json()["properties"]["callmatch_call_id"] == "aircall:1"


def test_a_search_filter_on_a_missing_property_is_refused_but_asked_properties_are_omitted(
    emulator: HubSpotEmulator,
) -> None:
    emulator.store.put("calls", "501", {"hs_timestamp": NOW}, NOW, NOW)
    flt = {
        "filterGroups": [{"filters": [{"propertyName": "callmatch_call_id", "operator": "EQ", "value": "x"}]}]
    }
    assert_property_doesnt_exist(
        raw(emulator, "POST", "/crm/v3/objects/calls/search", flt), "callmatch_call_id"
    )
    asked = raw(
        emulator,
        "POST",
        "/crm/v3/objects/calls/search",
        {"properties": ["hs_timestamp", "callmatch_call_id"]},
    )
    assert asked.status_code == 200
    assert asked.json()["results"][0]["properties"] == {"hs_timestamp": NOW, "hs_object_id": "501"}
    read = raw(
        emulator,
        "POST",
        "/crm/v3/objects/calls/batch/read",
        {"inputs": [{"id": "501"}], "properties": ["callmatch_call_id", "hs_timestamp"]},
    )
    assert read.json()["results"][0]["properties"] == {"hs_timestamp": NOW, "hs_object_id": "501"}
    one = raw(emulator, "GET", "/crm/v3/objects/calls/501", qs={"properties": "callmatch_written"})
    assert one.json()["properties"] == {"hs_object_id": "501"}


def test_a_property_archived_at_run_time_stops_serving_its_values() -> None:
    store = Store(profile=PortalProfile.full())
    store.put("calls", "7", {"callmatch_call_id": "aircall:7", "hs_timestamp": NOW}, NOW, NOW)
    with HubSpotEmulator(store, limits=GENEROUS) as emulator:
        assert (
            raw(emulator, "GET", "/crm/v3/objects/calls/7").json()["properties"]["callmatch_call_id"]
            == "aircall:7"
        )
        assert raw(emulator, "DELETE", "/crm/v3/properties/calls/callmatch_call_id").status_code == 204
        assert "callmatch_call_id" not in raw(emulator, "GET", "/crm/v3/objects/calls/7").json()["properties"]
        search = {
            "filterGroups": [
                {"filters": [{"propertyName": "callmatch_call_id", "operator": "EQ", "value": "aircall:7"}]}
            ]
        }
        assert_property_doesnt_exist(
            raw(emulator, "POST", "/crm/v3/objects/calls/search", search), "callmatch_call_id"
        )


def test_id_property_must_be_unique(emulator: HubSpotEmulator) -> None:
    emulator.set_profile(PortalProfile.after_setup())
    emulator.store.put(
        "calls", "8", {"callmatch_call_id": "aircall:8", "callmatch_written": "true"}, NOW, NOW
    )
    by_id = raw(emulator, "GET", "/crm/v3/objects/calls/aircall:8", qs={"idProperty": "callmatch_call_id"})
    assert by_id.status_code == 200 and by_id.json()["id"] == "8"
    not_unique = raw(emulator, "GET", "/crm/v3/objects/calls/true", qs={"idProperty": "callmatch_written"})
    assert not_unique.status_code == 400


def test_a_unique_value_held_by_another_record_is_a_conflict_when_enforced(emulator: HubSpotEmulator) -> None:
    emulator.set_profile(PortalProfile.after_setup())
    emulator.enforce_unique = True
    body = {"properties": {"callmatch_call_id": "aircall:9"}}
    first = raw(emulator, "POST", "/crm/v3/objects/calls", body)
    assert first.status_code == 201
    second = raw(emulator, "POST", "/crm/v3/objects/calls", body)
    assert second.status_code == 409 and second.json()["category"] == "CONFLICT"
    assert first.json()["id"] in second.json()["message"]
    assert len(emulator.store.objects["calls"]) == 1


# -- v4 association paging ----------------------------------------------------------------------


def company_with_deals(store: Store, count: int) -> list[str]:
    store.put("companies", "100", {"name": "Acme"}, NOW, NOW)
    deal_ids = [f"20{n}" for n in range(count)]
    for deal_id in deal_ids:
        store.put("deals", deal_id, {"dealname": deal_id}, NOW, NOW)
        store.link("deals", deal_id, "companies", "100", primary=True)
    return deal_ids


def test_v4_batch_reads_page_each_objects_associations(store: Store, emulator: HubSpotEmulator) -> None:
    deal_ids = company_with_deals(store, 7)
    store.put("companies", "101", {"name": "Solo"}, NOW, NOW)
    store.link("deals", deal_ids[0], "companies", "101")
    api = client(emulator).crm.associations.v4.batch_api
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        inputs: list[dict[str, str]] = [{"id": "100", **({"after": after} if after else {})}]
        if pages == 0:
            inputs.append({"id": "101"})
        page = api.get_page(
            "companies", "deals", BatchInputPublicFetchAssociationsBatchRequest(inputs=inputs)
        )
        pages += 1
        by_id = {r._from.id: r for r in page.results}
        result = by_id["100"]
        assert len(result.to) <= 3
        seen += [str(t.to_object_id) for t in result.to]
        if pages == 1:
            assert [str(t.to_object_id) for t in by_id["101"].to] == [deal_ids[0]]
            assert by_id["101"].paging is None
        if result.paging is None:
            break
        after = result.paging.next.after
    assert pages == 3
    assert seen == sorted(deal_ids)


def test_an_invalid_after_is_refused(store: Store, emulator: HubSpotEmulator) -> None:
    company_with_deals(store, 4)
    body = {"inputs": [{"id": "100", "after": "3"}]}
    assert raw(emulator, "POST", "/crm/v4/associations/companies/deals/batch/read", body).status_code == 400


def test_the_page_size_follows_the_profile(store: Store, emulator: HubSpotEmulator) -> None:
    company_with_deals(store, 7)
    emulator.set_profile(PortalProfile.full())
    body = {"inputs": [{"id": "100"}]}
    (result,) = raw(emulator, "POST", "/crm/v4/associations/companies/deals/batch/read", body).json()[
        "results"
    ]
    assert len(result["to"]) == 7 and "paging" not in result


# -- search -----------------------------------------------------------------------------------------


def test_search_cannot_page_past_the_cap(store: Store, emulator: HubSpotEmulator) -> None:
    emulator.set_profile(PortalProfile(search_total_cap=5))
    for n in range(8):
        store.put("contacts", f"30{n}", {"email": f"p{n}@acme.com"}, NOW, NOW)
    api = client(emulator).crm.contacts.search_api
    seen: list[str] = []
    after = "0"
    with pytest.raises(Exception) as refused:
        while True:
            page = api.do_search(PublicObjectSearchRequest(limit=2, after=after, properties=["email"]))
            assert page.total == 8
            seen += [r.id for r in page.results]
            after = page.paging.next.after
    assert getattr(refused.value, "status", None) == 400
    assert seen == [f"30{n}" for n in range(6)]
    assert after == "6"


def search(emulator: HubSpotEmulator, kind: str, *filters: dict[str, Any], **extra: Any) -> list[str]:
    body = {"filterGroups": [{"filters": list(filters)}], **extra}
    response = raw(emulator, "POST", f"/crm/v3/objects/{kind}/search", body)
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


def test_contains_token_follows_hubspots_tokens(store: Store, emulator: HubSpotEmulator) -> None:
    store.put(
        "contacts", "1", {"email": "jane.doe@acme.com", "hs_additional_emails": "j@acme.io;x@y.org"}, NOW, NOW
    )
    store.put(
        "companies",
        "2",
        {"name": "Test Company 2 - Batch Updated", "hs_additional_domains": "acme.io;acme.co.uk"},
        NOW,
        NOW,
    )

    def token(kind: str, name: str, value: str) -> list[str]:
        return search(emulator, kind, {"propertyName": name, "operator": "CONTAINS_TOKEN", "value": value})

    assert token("contacts", "email", "*@acme.com") == ["1"]  # the guide's own example
    assert token("contacts", "email", "jane.doe@acme.com") == ["1"]
    assert token("contacts", "email", "acme.com") == []  # an email is one token
    assert token("contacts", "hs_additional_emails", "X@Y.ORG") == ["1"]
    assert token("contacts", "hs_additional_emails", "y.org") == []
    assert token("companies", "name", "batch") == ["2"]
    assert token("companies", "name", "upd*") == ["2"]
    assert token("companies", "name", "batched") == []
    assert token("companies", "name", "batch-updated") == ["2"]  # each token of the value is present
    assert token("companies", "hs_additional_domains", "acme.co.uk") == ["2"]
    assert token("companies", "hs_additional_domains", "co") == []


def test_in_takes_lower_case_values_and_enumerations_compare_exactly(
    store: Store, emulator: HubSpotEmulator
) -> None:
    store.put("contacts", "1", {"email": "Jane@Acme.com", "lifecyclestage": "customer"}, NOW, NOW)
    assert search(
        emulator, "contacts", {"propertyName": "email", "operator": "IN", "values": ["jane@acme.com"]}
    ) == ["1"]
    assert (
        search(emulator, "contacts", {"propertyName": "email", "operator": "IN", "values": ["Jane@Acme.com"]})
        == []
    )
    assert search(
        emulator, "contacts", {"propertyName": "email", "operator": "EQ", "value": "JANE@acme.com"}
    ) == ["1"]
    assert search(
        emulator, "contacts", {"propertyName": "lifecyclestage", "operator": "EQ", "value": "customer"}
    ) == ["1"]
    assert (
        search(
            emulator, "contacts", {"propertyName": "lifecyclestage", "operator": "EQ", "value": "CUSTOMER"}
        )
        == []
    )


@pytest.mark.parametrize(
    ("region", "phone", "digits"),
    [
        ("US", "+44 20 7946 0958", "2079460958"),  # country code dropped
        ("US", "(555) 123-4567", "5551234567"),  # formatting dropped
        ("GB", "020 7946 0958", "2079460958"),  # a national number read in the portal's country
        ("US", "0044 20 7946 0958", "2079460958"),
        ("US", "+39 06 1234 5678", "0612345678"),  # Italy's 0 belongs to the area code
        ("US", "555-123-4567 ext. 12", "5551234567"),
    ],
)
def test_searchable_phone_digits(region: str, phone: str, digits: str) -> None:
    store = Store(region=region)
    obj = store.put("contacts", "1", {"phone": phone, "mobilephone": phone}, NOW, NOW)
    assert obj.properties["hs_searchable_calculated_phone_number"] == digits
    assert obj.properties["hs_searchable_calculated_mobile_number"] == digits
    with HubSpotEmulator(store, limits=GENEROUS) as emulator:
        flt = {"propertyName": "hs_searchable_calculated_phone_number", "operator": "EQ", "value": digits}
        assert search(emulator, "contacts", flt) == ["1"]


def test_search_answers_default_properties_oldest_first(store: Store, emulator: HubSpotEmulator) -> None:
    store.put("deals", "9", {"dealname": "Later", "amount": "1"}, NOW, NOW)
    store.put("deals", "10", {"dealname": "Earlier", "amount": "2"}, NOW, NOW)
    response = raw(emulator, "POST", "/crm/v3/objects/deals/search", {"limit": 1})
    body = response.json()
    assert set(body) == {"total", "results", "paging"} and body["paging"] == {"next": {"after": "1"}}
    (first,) = body["results"]
    assert first["id"] == "9"  # creation order, not id order
    assert set(first["properties"]) == {
        "dealname",
        "amount",
        "closedate",
        "pipeline",
        "dealstage",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    }
    ordered = search(emulator, "deals", sorts=[{"propertyName": "amount", "direction": "DESCENDING"}])
    assert ordered == ["10", "9"]


# -- v3 association names ----------------------------------------------------------------------------


def test_v3_lists_hubspot_type_names_and_label_names(store: Store, emulator: HubSpotEmulator) -> None:
    store.put("contacts", "1", {"email": "a@b.co"}, NOW, NOW)
    store.put("companies", "2", {"name": "B"}, NOW, NOW)
    store.put("companies", "3", {"name": "C"}, NOW, NOW)
    store.put("deals", "4", {"dealname": "D"}, NOW, NOW)
    store.link("contacts", "1", "companies", "2", primary=True)
    store.link("contacts", "1", "companies", "3")
    store.link("deals", "4", "contacts", "1", label="Primary")
    contact = raw(
        emulator, "GET", "/crm/v3/objects/contacts/1", qs={"associations": "companies,deals"}
    ).json()
    assert contact["associations"]["companies"]["results"] == [
        {"id": "2", "type": "contact_to_company"},
        {"id": "2", "type": "contact_to_company_unlabeled"},
        {"id": "3", "type": "contact_to_company_unlabeled"},
    ]
    assert contact["associations"]["deals"]["results"] == [
        {"id": "4", "type": "contact_to_deal"},
        {"id": "4", "type": "primary"},
    ]
    labels = raw(emulator, "GET", "/crm/v4/associations/deals/contacts/labels").json()["results"]
    assert {"category": "USER_DEFINED", "typeId": 9, "label": "Primary"} in labels
    v4 = raw(emulator, "POST", "/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": "4"}]})
    (entry,) = v4.json()["results"][0]["to"]
    assert {"category": "USER_DEFINED", "typeId": 9, "label": "Primary"} in entry["associationTypes"]
    assert {"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None} in entry["associationTypes"]


# -- account, usage, tokens ---------------------------------------------------------------------------


def test_account_details_and_daily_usage(emulator: HubSpotEmulator) -> None:
    details = raw(emulator, "GET", "/account-info/v3/details").json()
    assert details["portalId"] == PORTAL_ID and details["accountType"] == "STANDARD"
    first = raw(emulator, "GET", "/account-info/v3/api-usage/daily/private-apps").json()["results"][0]
    second = raw(emulator, "GET", "/account-info/v3/api-usage/daily/private-apps").json()["results"][0]
    assert first["name"] == "private-apps-api-calls-daily"
    assert first["usageLimit"] == GENEROUS.daily
    assert second["currentUsage"] == first["currentUsage"] + 1
    assert set(first) == {"name", "usageLimit", "currentUsage", "collectedAt", "fetchStatus", "resetsAt"}


def test_oauth_token_metadata_lists_the_granted_scopes(emulator: HubSpotEmulator) -> None:
    emulator.set_profile(PortalProfile(scopes=frozenset({"oauth", "crm.objects.contacts.read"})))
    token = emulator.issue_token()
    info = client(emulator).oauth.access_tokens_api.get(token)
    assert info.hub_id == PORTAL_ID and info.token_type == "access"
    assert sorted(info.scopes) == ["crm.objects.contacts.read", "oauth"]
    assert 0 < info.expires_in <= emulator.token_lifetime
    private = raw(emulator, "GET", f"/oauth/v1/access-tokens/{TOKEN}")
    assert private.status_code == 404  # a private app's token is not an OAuth access token
    search_denied = requests.post(
        f"{emulator.url}/crm/v3/objects/deals/search",
        json={},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert search_denied.status_code == 403
    assert search_denied.json()["errors"][0]["context"]["requiredGranularScopes"] == [
        "crm.objects.deals.read"
    ]


def test_owner_by_id_and_pipelines(store: Store, emulator: HubSpotEmulator) -> None:
    store.owners.append(
        {"id": "77", "email": "o@acme.com", "userId": 1077, "type": "PERSON", "archived": False}
    )
    api = client(emulator).crm
    assert api.owners.owners_api.get_by_id(77).email == "o@acme.com"
    assert api.owners.owners_api.get_by_id(1077, id_property="userId").id == "77"
    (pipeline,) = api.pipelines.pipelines_api.get_all("deals").results
    stages = {s.id: s.metadata for s in pipeline.stages}
    assert stages["closedwon"] == {"isClosed": "true", "probability": "1.0"}
    assert stages["closedlost"]["isClosed"] == "true"
    assert len(stages) == 7


def test_created_objects_carry_the_record_url(emulator: HubSpotEmulator) -> None:
    created = client(emulator).crm.objects.basic_api.create(
        "calls", SimplePublicObjectInputForCreate(properties={"hs_timestamp": NOW})
    )
    again = raw(emulator, "GET", f"/crm/v3/objects/calls/{created.id}").json()
    assert again["url"] == f"https://app.hubspot.com/contacts/{PORTAL_ID}/record/0-48/{created.id}"
    assert again["properties"]["hs_createdate"] == again["createdAt"]


def test_a_search_body_over_3000_characters_is_refused(store: Store, emulator: HubSpotEmulator) -> None:
    store.put("contacts", "1", {"email": "a@acme.com"}, NOW, NOW)
    filters = [
        {"propertyName": "email", "operator": "IN", "values": [f"p{n}@example.com" for n in range(200)]}
    ]
    big = raw(emulator, "POST", "/crm/v3/objects/contacts/search", {"filterGroups": [{"filters": filters}]})
    assert big.status_code == 400 and big.json()["category"] == "VALIDATION_ERROR"
    assert search(
        emulator, "contacts", {"propertyName": "email", "operator": "IN", "values": ["a@acme.com"]}
    ) == ["1"]


def test_a_value_outside_an_enumerations_options_is_refused(emulator: HubSpotEmulator) -> None:
    emulator.set_profile(PortalProfile.after_setup())
    bad = raw(emulator, "POST", "/crm/v3/objects/calls", {"properties": {"hs_call_status": "DONE"}})
    assert bad.status_code == 400
    body = bad.json()
    assert body["errors"][0]["code"] == "INVALID_OPTION"
    assert body["errors"][0]["context"] == {"propertyName": ["hs_call_status"]}
    assert "DONE was not one of the allowed options: [BUSY," in body["message"]
    not_bool = raw(emulator, "POST", "/crm/v3/objects/calls", {"properties": {"callmatch_written": "yes"}})
    assert not_bool.json()["errors"][0]["code"] == "INVALID_OPTION"
    not_number = raw(emulator, "POST", "/crm/v3/objects/calls", {"properties": {"hs_call_duration": "1m"}})
    assert not_number.json()["errors"][0]["code"] == "INVALID_FLOAT"
    assert emulator.store.objects["calls"] == {}
    good = {"hs_call_status": "COMPLETED", "hs_call_direction": "OUTBOUND", "callmatch_written": "true"}
    assert raw(emulator, "POST", "/crm/v3/objects/calls", {"properties": good}).status_code == 201
