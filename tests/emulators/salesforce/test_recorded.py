"""The emulator answers the recorded real requests in the recorded shape (read in place; skipped without it).

The recordings are reduced (a global describe keeps three flags per object, the describe
keeps field names and types), so a key the emulator adds is fine where the recording was
cut down; a key the recording has and the emulator lacks, or a different JSON type, is not.
Beyond shape, what the emulator models must agree with the real org: a plain org lists no
object the recorded Enterprise org lacks, and the fields and child relationships of
Account it has carry the recorded types and names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.emulators.salesforce.profile import OrgProfile
from tests.emulators.salesforce.seed import seed_org
from tests.emulators.salesforce.server import SalesforceEmulator
from tests.recorded import entry, exchanges, shape_differences
from worker.core.model import Account, CrmSlice

LIMIT_INFO = re.compile(r"^api-usage=\d+/\d+$")
LOCATOR = re.compile(r"^/services/data/v\d+\.\d+/query/[0-9A-Za-z]+-\d+$")


@pytest.fixture()
def emulator() -> Iterator[SalesforceEmulator]:
    crm = CrmSlice(accounts=tuple(Account(id=f"001A{i:014d}", name=f"Account {i}") for i in range(7)))
    with SalesforceEmulator(seed_org(crm, OrgProfile.plain()), page_size=5) as server:
        yield server


def _call(emulator: SalesforceEmulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method,
        f"{emulator.instance_url}{path}",
        headers={"Authorization": f"Bearer {emulator.issue_token()}"},
        verify=emulator.ca_file,
        timeout=10,
        **kwargs,
    )


def _missing(recorded: Any, ours: Any) -> list[str]:
    """Shape differences except keys only we have (the recording was reduced)."""
    return [line for line in shape_differences(recorded, ours) if "extra (not in the recording)" not in line]


def test_global_describe(emulator: SalesforceEmulator) -> None:
    recorded = entry("sf_describe_global")
    response = _call(emulator, "GET", str(recorded["path"]))
    assert response.status_code == 200
    ours = {o["name"]: o for o in response.json()["sobjects"]}
    real: dict[str, dict[str, Any]] = recorded["sobjects"]
    assert sorted(set(ours) - set(real)) == []  # a plain org has nothing a real Enterprise org lacks
    for name, flags in sorted(real.items()):
        if name in ours:
            assert _missing(flags, ours[name]) == [], name
            assert {k: ours[name][k] for k in flags} == flags, name
    assert {"encoding", "maxBatchSize", "sobjects"} <= set(response.json())


def test_describe_in_a_composite(emulator: SalesforceEmulator) -> None:
    (exchange,) = exchanges("sf_composite")
    response = _call(emulator, "POST", exchange.path, json=exchange.data)
    assert response.status_code == exchange.status
    assert LIMIT_INFO.match(response.headers["Sforce-Limit-Info"])
    assert _missing(exchange.response, response.json()) == []
    real = exchange.response["compositeResponse"][0]["body"]
    ours = response.json()["compositeResponse"][0]["body"]
    assert ours["name"] == real["name"] == "Account"
    real_types = {f["name"]: f["type"] for f in real["fields"]}
    for field in ours["fields"]:
        assert real_types.get(field["name"]) == field["type"], field["name"]
    real_children = {
        (c["childSObject"], c["field"], c["relationshipName"]) for c in real["childRelationships"]
    }
    ours_children = {
        (c["childSObject"], c["field"], c["relationshipName"]) for c in ours["childRelationships"]
    }
    assert ours_children <= real_children


def test_query_pages(emulator: SalesforceEmulator) -> None:
    first, second = exchanges("sf_query_pages")
    soql = (
        "SELECT Id, Name, Phone, Website, CreatedDate, LastModifiedDate FROM Account ORDER BY CreatedDate ASC"
    )
    page = _call(emulator, "GET", first.path, params={"q": soql})
    assert page.status_code == first.status == 200
    assert LIMIT_INFO.match(page.headers["Sforce-Limit-Info"])
    body = page.json()
    assert LOCATOR.match(body["nextRecordsUrl"]) and LOCATOR.match(first.response["nextRecordsUrl"])
    fields = {"Id", "Name", "Phone", "Website", "CreatedDate", "LastModifiedDate", "attributes"}
    reduced = {
        **first.response,
        "records": [{k: v for k, v in r.items() if k in fields} for r in first.response["records"]],
    }
    assert shape_differences(reduced, body) == []
    rest = _call(emulator, "GET", body["nextRecordsUrl"]).json()
    reduced_rest = {
        **second.response,
        "records": [{k: v for k, v in r.items() if k in fields} for r in second.response["records"]],
    }
    assert shape_differences(reduced_rest, rest) == []
    assert (body["done"], rest["done"], rest["totalSize"]) == (False, True, 7)


def test_empty_search(emulator: SalesforceEmulator) -> None:
    (exchange,) = exchanges("sf_search_empty")
    response = _call(emulator, "GET", exchange.path, params=exchange.params)
    assert response.status_code == exchange.status
    assert response.json() == exchange.response


def test_upserts(emulator: SalesforceEmulator) -> None:
    (created,) = exchanges("sf_upsert_created")
    response = _call(emulator, "PATCH", created.path, json=created.data)
    assert response.status_code == created.status == 201
    assert shape_differences(created.response, response.json()) == []
    (updated,) = exchanges("sf_upsert_updated")
    path = re.sub(r"/Id/[^/]+$", "/Id/001A00000000000003", updated.path)
    response = _call(emulator, "PATCH", path, params=updated.params, json=updated.data)
    assert response.status_code == updated.status == 200
    assert shape_differences(updated.response, response.json()) == []
    assert response.json()["created"] is False
