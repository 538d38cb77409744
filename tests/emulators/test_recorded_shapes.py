"""Our emulators answer the recorded real requests in the recorded key structure.

The same method, path, params and body as recorded (ids adapted to the seeded records)
go to the emulator; the answer's keys, value types, nesting, paging fields and headers
are compared with what the real API sent (`tests.recorded.shape_differences`). The
recording is read in place and these tests skip without `../shared`.

The emulator engineers' own recorded-shape tests (`tests/emulators/salesforce/test_recorded.py`,
and HubSpot's when present) cover Salesforce's global describe, describe, query paging,
search and upserts; this file adds what they do not: HubSpot's six recordings, the headers,
and the recorded requests exactly as sent where the emulator differs.

Known differences, each a strict xfail below (it fails loudly once the emulator changes):
- Salesforce: the recorded Account query selects standard fields the emulator's Account
  lacks (AccountNumber, Industry, Type, BillingCity/State/Country, SystemModstamp).
- HubSpot: no `X-HubSpot-Correlation-Id` header; no `X-HubSpot-RateLimit-Secondly(-Remaining)`;
  a created note lacks the properties HubSpot computes (`hs_body_preview*`, `hs_createdate`,
  `hs_obj_coords`, `hs_object_source*`, `hs_all_owner_ids`, `hubspot_owner_assigneddate` ...);
  creation answers 201 where the recording says 200 (HubSpot's OpenAPI spec, as shipped in
  hubspot-api-client's `BasicApi.create`, declares 201).
Documented differences that are not defects: the emulator sends `X-HubSpot-RateLimit-Daily`
and `-Daily-Remaining` (a private app's token, as HubSpot documents); the recording is of
an OAuth app, which HubSpot's changelog says gets no daily headers.
"""

from __future__ import annotations

import copy
import json
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
from worker.model import Account, CrmSlice
from worker.scenario import loads_scenario

HS_TOKEN = "pat-emulator-token"
NOW = "2026-03-01T09:00:00Z"


def _computed_note_properties() -> frozenset[str]:
    """Properties HubSpot computed on the recorded new note: in its answer, not in the request."""
    (exchange,) = exchanges("hs_create_note")
    return frozenset(exchange.response["properties"]) - frozenset(exchange.data["properties"])


def _known(name: str) -> frozenset[str]:
    """Shape differences known and listed above, by recording; each has its strict xfail below."""
    if name == "hs_create_note":
        return frozenset(f"$.properties.{p}: missing (recorded has it)" for p in _computed_note_properties())
    return frozenset()


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
    differences = shape_differences(exchange.response, response.json())
    assert [d for d in differences if d not in _known(name)] == []
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


@pytest.mark.xfail(
    strict=True,
    reason="the emulator sends no X-HubSpot-RateLimit-Secondly / -Secondly-Remaining (recorded on GET owner)",
)
def test_hubspot_secondly_rate_limit_headers(portal: Portal) -> None:
    response = _hs_request(portal, "hs_get_owner")
    for name in ("x-hubspot-ratelimit-secondly", "x-hubspot-ratelimit-secondly-remaining"):
        assert _header(response.headers, name) is not None, name


@pytest.mark.xfail(strict=True, reason="the emulator sends no X-HubSpot-Correlation-Id header")
def test_hubspot_correlation_id_header(portal: Portal) -> None:
    for name in ("hs_get_owner", "hs_search_companies"):
        (exchange,) = exchanges(name)
        assert exchange.header("x-hubspot-correlation-id")
        assert _header(_hs_request(portal, name).headers, "x-hubspot-correlation-id"), name


@pytest.mark.xfail(
    strict=True,
    reason="a note the emulator creates lacks the properties HubSpot computes (hs_body_preview, hs_createdate ...)",
)
def test_hubspot_note_has_the_computed_properties(portal: Portal) -> None:
    (exchange,) = exchanges("hs_create_note")
    properties = _hs_request(portal, "hs_create_note").json()["properties"]
    assert sorted(set(exchange.response["properties"]) - set(properties)) == []


@pytest.mark.xfail(
    strict=True,
    reason="creation answers 201 (HubSpot's OpenAPI spec); the recorded note creation says 200",
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


@pytest.mark.xfail(
    strict=True,
    reason="the emulator's Account lacks standard fields the recorded query selects "
    "(AccountNumber, Industry, Type, BillingCity/State/Country, SystemModstamp): INVALID_FIELD",
)
def test_salesforce_the_recorded_account_query_as_sent(orgs: dict[str, SalesforceEmulator]) -> None:
    first, second = exchanges("sf_query_pages")
    emulator = orgs["full"]
    page = _sf(emulator, first)
    assert page.status_code == first.status, page.text[:300]
    assert shape_differences(first.response, page.json()) == []
    rest = _sf(emulator, second, path=page.json()["nextRecordsUrl"])
    assert shape_differences(second.response, rest.json()) == []


def test_recorded_bodies_are_json_round_trips() -> None:
    """What the comparisons rely on: every recorded body survives JSON as it was recorded."""
    for name in [*HS_NAMES, "sf_query_pages", "sf_composite", "sf_search_empty"]:
        for exchange in exchanges(name):
            assert json.loads(json.dumps(exchange.response)) == exchange.response
