"""Our emulators answer the recorded real requests in the recorded key structure.

The same method, path, params and body as recorded (ids adapted to the seeded records)
go to the emulator; the answer's keys, value types, nesting, paging fields and headers
are compared with what the real API sent (`tests.recorded.shape_differences`). The
recording is read in place and these tests skip without `../shared`.

The emulator engineers' own recorded-shape tests (`tests/emulators/salesforce/test_recorded.py`,
and HubSpot's when present) cover Salesforce's global describe, describe, query paging,
search and upserts; this file adds what they do not: HubSpot's six recordings, the headers,
and the recorded requests exactly as sent where the emulator differs.

Closed differences, each now a plain test below: the Salesforce Account carries the standard
fields the recorded query selects (AccountNumber, Industry, Type, Billing*, and SystemModstamp
on every object, moved by every write); HubSpot answers carry `X-HubSpot-Correlation-Id` and,
beside the ten-second window headers, `X-HubSpot-RateLimit-Secondly(-Remaining)`; a created
note (and call, meeting) carries the properties HubSpot computes.
Known difference, a strict xfail below (it fails loudly once the emulator changes): creation
answers 201 where the recording says 200. HubSpot's OpenAPI spec, as shipped in
hubspot-api-client 12's `BasicApi.create` (`response_types_map` {201: SimplePublicObject}),
declares 201 and nothing else for success, so the docs disagree with the recording and the
emulator follows the spec (the recording is a Nango test fixture, whose recorded status may
not be the wire status).
Documented differences that are not defects: the emulator sends `X-HubSpot-RateLimit-Daily`
and `-Daily-Remaining` (a private app's token, as HubSpot documents); the recording is of
an OAuth app, which HubSpot's changelog says gets no daily headers.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.conftest import example_dir
from tests.emulators.hubspot import HubSpotEmulator, Limits, Store
from tests.emulators.hubspot.profile import PortalProfile
from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.recorded import Exchange, entry, exchanges, shape_differences
from worker.config.scenario import loads_scenario
from worker.core.model import Account, CrmSlice

HS_TOKEN = "pat-emulator-token"
NOW = "2026-03-01T09:00:00Z"


def _computed_note_properties() -> frozenset[str]:
    """Properties HubSpot computed on the recorded new note: in its answer, not in the request."""
    (exchange,) = exchanges("hs_create_note")
    return frozenset(exchange.response["properties"]) - frozenset(exchange.data["properties"])


@dataclass
class Portal:
    emulator: HubSpotEmulator
    owner_id: str
    contact_id: str

    def send(self, exchange: Exchange, *, path: str | None = None, data: Any = None) -> requests.Response:
        return requests.request(
            exchange.method,
            f"{self.emulator.url}{path or exchange.path}",
            params=exchange.params,
            json=exchange.data if data is None else data,
            headers={"Authorization": f"Bearer {HS_TOKEN}"},
            timeout=10,
        )


@pytest.fixture(scope="module")
def portal() -> Iterator[Portal]:
    """A plain portal from the contract's basic example, plus companies and deals enough for the
    recorded searches (a `test` token in company names, more deals than one page of five)."""
    scenario = loads_scenario((example_dir() / "basic.json").read_text())
    store = Store.from_scenario(scenario, profile=PortalProfile.plain())
    for number in range(3):
        store.seed(
            "companies",
            f"7100{number}",
            {
                "name": f"Test Company {number}",
                "domain": f"test{number}.example",
                "city": "Boston",
                "industry": "COMPUTER_SOFTWARE",
            },
            NOW,
        )
    for number in range(7):
        store.seed(
            "deals",
            f"7200{number}",
            {
                "dealname": f"Recorded deal {number}",
                "amount": "5000",
                "dealstage": "appointmentscheduled",
                "pipeline": "default",
            },
            NOW,
        )
    # limits far above what this module sends: these tests compare shapes, not throttling
    with HubSpotEmulator(store, limits=Limits(burst=100_000, search=100_000)) as emulator:
        yield Portal(emulator, scenario.crm.users[0].id, scenario.crm.contacts[0].id)


def _hs_request(portal: Portal, name: str) -> requests.Response:
    """The recorded request of `name`, ids adapted to the seeded portal."""
    (exchange,) = exchanges(name)
    if name == "hs_get_owner":
        return portal.send(exchange, path=f"/crm/v3/owners/{portal.owner_id}")
    if name == "hs_create_note":
        data = copy.deepcopy(exchange.data)
        data["associations"][0]["to"]["id"] = portal.contact_id
        data["properties"]["hubspot_owner_id"] = portal.owner_id
        return portal.send(exchange, data=data)
    return portal.send(exchange)


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {HS_TOKEN}"}


def _header(headers: Any, name: str) -> str | None:
    return next((str(v) for k, v in headers.items() if str(k).lower() == name.lower()), None)


HS_NAMES = [
    "hs_search_companies",
    "hs_search_deals",
    "hs_pipelines",
    "hs_owners",
    "hs_get_owner",
    "hs_create_note",
]


@pytest.mark.parametrize("name", HS_NAMES)
def test_hubspot_answers_in_the_recorded_shape(portal: Portal, name: str) -> None:
    (exchange,) = exchanges(name)
    response = _hs_request(portal, name)
    assert 200 <= response.status_code < 300, response.text[:300]
    assert shape_differences(exchange.response, response.json()) == []
    assert _header(response.headers, "Content-Type") == exchange.header("content-type")


def test_hubspot_search_pages_as_recorded(portal: Portal) -> None:
    """`paging.next.after` only (no `link`), the total of every match, and a last page without paging."""
    (exchange,) = exchanges("hs_search_deals")
    first = _hs_request(portal, "hs_search_deals").json()
    assert set(first["paging"]) == set(exchange.response["paging"]) == {"next"}
    assert set(first["paging"]["next"]) == set(exchange.response["paging"]["next"]) == {"after"}
    assert len(first["results"]) == exchange.data["limit"] < first["total"]
    # the recorded cursor of a five-result page is "5": an offset, as HubSpot's search pages by
    assert first["paging"]["next"]["after"] == exchange.response["paging"]["next"]["after"]
    rest = portal.send(exchange, data={**exchange.data, "after": first["paging"]["next"]["after"]}).json()
    assert "paging" not in rest and rest["total"] == first["total"]
    ids = [r["id"] for r in first["results"] + rest["results"]]
    assert len(ids) == len(set(ids)) == first["total"]


def test_hubspot_search_answers_carry_no_rate_limit_headers(portal: Portal) -> None:
    """Search has its own per-second limit: the recorded search answers carry no
    X-HubSpot-RateLimit headers, and neither do the emulator's."""
    for name in ("hs_search_companies", "hs_search_deals"):
        (exchange,) = exchanges(name)
        assert not [h for h in exchange.headers if h.lower().startswith("x-hubspot-ratelimit")]
        response = _hs_request(portal, name)
        assert not [h for h in response.headers if h.lower().startswith("x-hubspot-ratelimit")], name


RATE_LIMIT_SHARED = (
    "x-hubspot-ratelimit-interval-milliseconds",
    "x-hubspot-ratelimit-max",
    "x-hubspot-ratelimit-remaining",
)


def test_hubspot_rate_limit_headers_as_recorded(portal: Portal) -> None:
    """The ten-second window headers the client reads are there, integers, remaining <= max."""
    (exchange,) = exchanges("hs_get_owner")
    response = _hs_request(portal, "hs_get_owner")
    for name in RATE_LIMIT_SHARED:
        recorded, ours = exchange.header(name), _header(response.headers, name)
        assert recorded is not None and recorded.isdigit(), name
        assert ours is not None and ours.isdigit(), name
    assert int(_header(response.headers, RATE_LIMIT_SHARED[2]) or -1) <= int(
        _header(response.headers, RATE_LIMIT_SHARED[1]) or -1
    )
    assert _header(response.headers, RATE_LIMIT_SHARED[0]) == exchange.header(RATE_LIMIT_SHARED[0])


def test_hubspot_secondly_rate_limit_headers(portal: Portal) -> None:
    """As recorded on GET owner: the per-second share of the ten-second window (110 -> 11) and
    what is left of it, this request counted."""
    (exchange,) = exchanges("hs_get_owner")
    response = _hs_request(portal, "hs_get_owner")
    secondly = _header(response.headers, "x-hubspot-ratelimit-secondly")
    left = _header(response.headers, "x-hubspot-ratelimit-secondly-remaining")
    assert secondly is not None and secondly.isdigit() and left is not None and left.isdigit()
    assert 0 <= int(left) < int(secondly)
    recorded_max = int(exchange.header("x-hubspot-ratelimit-max") or 0)
    recorded_secondly = int(exchange.header("x-hubspot-ratelimit-secondly") or 0)
    ours_max = int(_header(response.headers, "x-hubspot-ratelimit-max") or 0)
    assert recorded_secondly * 10 == recorded_max and int(secondly) * 10 == ours_max


def test_hubspot_correlation_id_header(portal: Portal) -> None:
    """A UUID of the recorded form (version 7) on every answer, a new one each time; an error's
    header and body name the same id."""
    seen = set()
    for name in ("hs_get_owner", "hs_search_companies", "hs_get_owner"):
        (exchange,) = exchanges(name)
        recorded = uuid.UUID(exchange.header("x-hubspot-correlation-id") or "")
        ours = uuid.UUID(_header(_hs_request(portal, name).headers, "x-hubspot-correlation-id") or "")
        assert ours.version == recorded.version == 7, name
        seen.add(ours)
    assert len(seen) == 3
    missing = requests.get(
        f"{portal.emulator.url}/crm/v3/objects/notes/404404", headers=_bearer(), timeout=10
    )
    assert missing.status_code == 404
    assert _header(missing.headers, "x-hubspot-correlation-id") == missing.json()["correlationId"]
    refused = requests.get(f"{portal.emulator.url}/crm/v3/owners", timeout=10)
    assert refused.status_code == 401 and _header(refused.headers, "x-hubspot-correlation-id")


def test_hubspot_note_has_the_computed_properties(portal: Portal) -> None:
    """Every property HubSpot computed on the recorded note, with values of the recorded form."""
    (exchange,) = exchanges("hs_create_note")
    response = _hs_request(portal, "hs_create_note").json()
    properties = response["properties"]
    assert sorted(_computed_note_properties() - set(properties)) == []
    recorded = exchange.response["properties"]
    for name in (
        "hs_body_preview",
        "hs_body_preview_html",
        "hs_body_preview_is_truncated",
        "hs_object_source",
    ):
        assert properties[name] == recorded[name], name
    assert properties["hs_object_source_label"] == recorded["hs_object_source_label"]
    assert properties["hs_object_source_id"].isdigit()
    assert properties["hs_object_id"] == response["id"]
    assert properties["hs_obj_coords"] == f"0-46-{response['id']}"
    assert properties["hs_all_owner_ids"] == properties["hubspot_owner_id"] == portal.owner_id
    assert properties["hs_user_ids_of_all_owners"].isdigit()
    created = response["createdAt"]
    assert properties["hs_createdate"] == properties["hs_lastmodifieddate"] == created
    assert properties["hubspot_owner_assigneddate"] == created


def test_hubspot_call_and_meeting_carry_the_computed_properties(portal: Portal) -> None:
    """Consistently with the note: a created call or meeting has its coordinates and source, no
    owner ids while it has no owner, and gets them (and `hubspot_owner_assigneddate`) when one is
    assigned; no body preview (the recording shows it on notes only)."""
    computed = {
        "hs_createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
        "hs_obj_coords",
        "hs_object_source",
        "hs_object_source_id",
        "hs_object_source_label",
    }
    owned = {"hs_all_owner_ids", "hs_user_ids_of_all_owners", "hubspot_owner_assigneddate"}
    for kind, type_id, title in (
        ("calls", "0-48", "hs_call_title"),
        ("meetings", "0-47", "hs_meeting_title"),
    ):
        url = f"{portal.emulator.url}/crm/v3/objects/{kind}"
        body = {"properties": {title: "Recorded", "hs_timestamp": NOW}}
        created = requests.post(url, json=body, headers=_bearer(), timeout=10).json()
        properties = created["properties"]
        assert sorted(computed - set(properties)) == [], kind
        assert owned & set(properties) == set(), kind
        assert not [p for p in properties if p.startswith("hs_body_preview")], kind
        assert properties["hs_obj_coords"] == f"{type_id}-{created['id']}"
        patch = {"properties": {"hubspot_owner_id": portal.owner_id}}
        moved = requests.patch(f"{url}/{created['id']}", json=patch, headers=_bearer(), timeout=10).json()
        assert sorted(owned - set(moved["properties"])) == [], kind
        assert moved["properties"]["hs_all_owner_ids"] == portal.owner_id
        assert moved["properties"]["hubspot_owner_assigneddate"] == moved["updatedAt"]


@pytest.mark.xfail(
    strict=True,
    reason="creation answers 201: HubSpot's OpenAPI spec as shipped in hubspot-api-client 12 "
    "(notes BasicApi.create response_types_map {201: SimplePublicObject}) declares 201 only; "
    "the recorded note creation (a Nango fixture) says 200",
)
def test_hubspot_note_creation_status_as_recorded(portal: Portal) -> None:
    (exchange,) = exchanges("hs_create_note")
    assert _hs_request(portal, "hs_create_note").status_code == exchange.status


# --- Salesforce -----------------------------------------------------------------------------------

FEATURE_OBJECTS = {"TaskRelation", "TaskWhoRelation", "EventWhoRelation", "AccountContactRelation"}
"""Objects of Shared Activities and Contacts to Multiple Accounts: absent from the recorded org."""


@pytest.fixture(scope="module")
def orgs() -> Iterator[dict[str, SalesforceEmulator]]:
    crm = CrmSlice(accounts=tuple(Account(id=f"001R{i:014d}", name=f"Recorded {i}") for i in range(3)))
    plain = SalesforceEmulator(seed_org(crm, OrgProfile.plain()), page_size=2).start()
    full = SalesforceEmulator(seed_org(crm, OrgProfile.full()), page_size=2).start()
    try:
        yield {"plain": plain, "full": full}
    finally:
        plain.stop()
        full.stop()


def _sf(emulator: SalesforceEmulator, exchange: Exchange, path: str | None = None) -> requests.Response:
    return requests.request(
        exchange.method,
        f"{emulator.instance_url}{path or exchange.path}",
        params=exchange.params,
        json=exchange.data,
        headers={"Authorization": f"Bearer {emulator.issue_token()}"},
        verify=emulator.ca_file,
        timeout=10,
    )


def test_salesforce_full_org_adds_only_the_feature_objects(orgs: dict[str, SalesforceEmulator]) -> None:
    """Every object of the emulator's full org is one the recorded Enterprise org has, except the
    four the optional features bring; the plain org lists none of those four."""
    real = set(entry("sf_describe_global")["sobjects"])
    path = str(entry("sf_describe_global")["path"])
    listed = {}
    for profile, emulator in orgs.items():
        response = requests.get(
            f"{emulator.instance_url}{path}",
            headers={"Authorization": f"Bearer {emulator.issue_token()}"},
            verify=emulator.ca_file,
            timeout=10,
        )
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
        listed[profile] = {o["name"] for o in response.json()["sobjects"]}
    assert listed["full"] - real == FEATURE_OBJECTS
    assert listed["plain"] & FEATURE_OBJECTS == set()
    assert FEATURE_OBJECTS & real == set()


def test_salesforce_the_recorded_account_query_as_sent(orgs: dict[str, SalesforceEmulator]) -> None:
    first, second = exchanges("sf_query_pages")
    emulator = orgs["full"]
    page = _sf(emulator, first)
    assert page.status_code == first.status, page.text[:300]
    assert shape_differences(first.response, page.json()) == []
    rest = _sf(emulator, second, path=page.json()["nextRecordsUrl"])
    assert shape_differences(second.response, rest.json()) == []


ACCOUNT_STANDARD = {"AccountNumber", "Industry", "Type", "BillingCity", "BillingState", "BillingCountry"}


def test_salesforce_standard_fields_in_every_profile(orgs: dict[str, SalesforceEmulator]) -> None:
    """The recorded query's fields are standard: every profile's Account describe lists them, with
    the recorded org's types, and SystemModstamp is on every object as a read-only system field."""
    real = {
        f["name"]: f["type"]
        for f in entry("sf_composite")["response"]["compositeResponse"][0]["body"]["fields"]
    }
    for profile, emulator in orgs.items():
        fields = {f["name"]: f for f in _describe(emulator, "Account")["fields"]}
        for name in sorted(ACCOUNT_STANDARD | {"SystemModstamp"}):
            assert fields[name]["type"] == real[name], (profile, name)
        assert {v["value"] for v in fields["Industry"]["picklistValues"]} >= {"Apparel", "Biotechnology"}
        for name in ("Contact", "Task", "Event", "User"):
            stamp = {f["name"]: f for f in _describe(emulator, name)["fields"]}["SystemModstamp"]
            assert (stamp["type"], stamp["createable"], stamp["updateable"]) == ("datetime", False, False)


def test_salesforce_system_modstamp_moves_on_every_write(orgs: dict[str, SalesforceEmulator]) -> None:
    """Set on create (with LastModifiedDate), moved by an update and by a delete (which a
    replication client finds through queryAll by SystemModstamp); never written by the API."""
    emulator = orgs["plain"]
    org = emulator.org
    base = f"{emulator.instance_url}/services/data/v59.0"
    stamps = [dt.datetime(2026, 3, 1, 9, minute, tzinfo=dt.UTC) for minute in (0, 5, 10)]

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {emulator.issue_token()}"}
        return requests.request(
            method, f"{base}{path}", headers=headers, verify=emulator.ca_file, timeout=10, **kwargs
        )

    def read(record_id: str) -> dict[str, Any]:
        soql = f"SELECT LastModifiedDate, SystemModstamp, IsDeleted FROM Account WHERE Id = '{record_id}'"
        (row,) = call("GET", "/queryAll", params={"q": soql}).json()["records"]
        return dict(row)

    before = org.now
    try:
        org.now = stamps[0]
        created = call("POST", "/sobjects/Account", json={"Name": "Stamped", "Industry": "Energy"})
        assert created.status_code == 201, created.text
        record_id = created.json()["id"]
        assert (
            read(record_id)["SystemModstamp"]
            == read(record_id)["LastModifiedDate"]
            == "2026-03-01T09:00:00.000+0000"
        )
        refused = call(
            "PATCH", f"/sobjects/Account/{record_id}", json={"SystemModstamp": "2026-01-01T00:00:00Z"}
        )
        assert refused.status_code == 400
        org.now = stamps[1]
        assert call("PATCH", f"/sobjects/Account/{record_id}", json={"Type": "Prospect"}).status_code == 204
        assert (
            read(record_id)["SystemModstamp"]
            == read(record_id)["LastModifiedDate"]
            == "2026-03-01T09:05:00.000+0000"
        )
        org.now = stamps[2]
        assert call("DELETE", f"/sobjects/Account/{record_id}").status_code == 204
        row = read(record_id)
        assert (row["IsDeleted"], row["SystemModstamp"]) == (True, "2026-03-01T09:10:00.000+0000")
    finally:
        org.now = before


def _describe(emulator: SalesforceEmulator, name: str) -> dict[str, Any]:
    response = requests.get(
        f"{emulator.instance_url}/services/data/v59.0/sobjects/{name}/describe",
        headers={"Authorization": f"Bearer {emulator.issue_token()}"},
        verify=emulator.ca_file,
        timeout=10,
    )
    assert response.status_code == 200, response.text[:300]
    body: dict[str, Any] = response.json()
    return body


def test_recorded_bodies_are_json_round_trips() -> None:
    """What the comparisons rely on: every recorded body survives JSON as it was recorded."""
    for name in [*HS_NAMES, "sf_query_pages", "sf_composite", "sf_search_empty"]:
        for exchange in exchanges(name):
            assert json.loads(json.dumps(exchange.response)) == exchange.response
