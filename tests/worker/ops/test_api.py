"""The operations API: every route × every kind of caller on tenant a's data, through the real app and Redis.

Allowed callers get the route's 2xx and its effect; the others get 401/403 with a JSON error
and the database is left exactly as it was (every key, every value, the task queue included).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.worker.ops.conftest import CALL, DEAD, GLOBAL, TOKENS, World, bearer, seed
from worker.ops import doctor_log
from worker.pipeline import reassociate
from worker.pipeline.celery_app import BACKFILL_PRIORITY, queue_keys
from worker.pipeline.reassociate import REASSOCIATE_TASK
from worker.pipeline.tasks import REFRESH_TASK

Check = Callable[[World, Any, str], None]


def _explained(world: World, body: Any, by: str) -> None:
    assert body["tenant"] == "a" and body["call_id"] == CALL and body["decision"]["account_id"] == "A1"


def _listed(world: World, body: Any, by: str) -> None:
    assert sorted((c["tenant"], c["call_id"]) for c in body["items"]) == [("a", CALL), ("a", DEAD)]


def _status(world: World, body: Any, by: str) -> None:
    assert body["tenant"] == "a" and [t["tenant"] for t in body["tenants"]] == ["a"]
    assert body["dead_letters"] == 1 and body["tenants"][0]["waiting_review"] == 1


def _records(world: World, body: Any, by: str) -> None:
    assert body["tenant"] == "a" and body["call_id"] == CALL and body["error"] is None
    named = {(r["type"], r["id"]): r for r in body["records"]}
    assert named["account", "A1"]["name"] == "Acme" and named["account", "A1"]["found"] is True
    assert named["contact", "C1"]["name"] == "j***@acme.com"  # an email is masked, the id readable
    assert "open" in named["opportunity", "O1"]["detail"] and body["choices"]["opportunities"] == ["O1"]


def _unlocked(world: World, body: Any, by: str) -> None:
    record = world.pipeline.store.require("a", DEAD)
    assert record.locked == [] and body["locked"] == [] and record.changes[-1]["how"] == "unlock"
    assert record.changes[-1]["by"] == by and world.queued() == [REFRESH_TASK]


def _refreshed(world: World, body: Any, by: str) -> None:
    assert body["status"] == "enqueued" and world.queued() == [REFRESH_TASK]
    assert world.pipeline.store.require("a", CALL).next_stage == "associate"


def _overridden(world: World, body: Any, by: str) -> None:
    record = world.pipeline.store.require("a", CALL)
    assert record.overrides == {"account_id": "A1"} and body["locked"] == ["account"]
    assert record.changes[-1]["by"] == by and world.queued() == [REFRESH_TASK]
    assert world.pipeline.store.require("b", CALL).overrides == {}


def _reviewed(world: World, body: Any, by: str) -> None:
    assert [(item["tenant"], item["call_id"]) for item in body] == [("a", CALL)]


def _review_details(world: World, body: Any, by: str) -> None:
    assert body["tenant"] == "a" and [item["call_id"] for item in body["ambiguous"]] == [CALL]
    named = {(r["type"], r["id"]): r for r in body["candidates"]}
    assert "open" in named["opportunity", "O1"]["detail"] and named["opportunity", "O1"]["found"] is True
    assert body["error"] is None and body["without"] == [] and body["unmatched"] == []


def _chosen(world: World, body: Any, by: str) -> None:
    record = world.pipeline.store.require("a", CALL)
    assert record.overrides.get("opportunity_id") == "O1" and record.changes[-1]["how"] == "review"
    assert record.changes[-1]["by"] == by


def _preferences(world: World, body: Any, by: str) -> None:
    assert [(p["contact_id"], p["account_id"]) for p in body] == [("C1", "A1")]


def _forgotten(world: World, body: Any, by: str) -> None:
    assert body == {"tenant": "a", "forgotten": 1} and world.pipeline.preferences.listing("a") == []


def _dead(world: World, body: Any, by: str) -> None:
    assert [(d["tenant"], d["call_id"], d["stage"]) for d in body] == [("a", DEAD, "write")]


def _replayed(world: World, body: Any, by: str) -> None:
    assert [d["call_id"] for d in body["replayed"]] == [DEAD]
    assert world.pipeline.store.dead_letters() == [] and world.queued() == ["callmatch.write"]


def _doctor(world: World, body: Any, by: str) -> None:
    assert body["tenant"] == "a" and body["can_run"] is True


def _setup(world: World, body: Any, by: str) -> None:
    assert body["tenant"] == "a" and body["dry_run"] is False and body["ok"] is True


def _reassociating(world: World, body: Any, by: str) -> None:
    assert body["tenant"] == "a" and body["state"] == "running" and body["by"] == by and body["total"] == 2
    [raw] = world.redis.lrange(queue_keys()[-1], 0, -1)  # behind every live call
    message = json.loads(raw)
    assert (
        message["headers"]["task"] == REASSOCIATE_TASK
        and message["properties"]["priority"] == BACKFILL_PRIORITY
    )
    assert world.queued() == [] and world.pipeline.store.require("b", CALL).refreshes == 0


def _reassociation(world: World, body: Any, by: str) -> None:
    assert body["tenant"] == "a" and body["run_id"] == RUN and body["done"] == 0 and body["dry_run"]


def _a_run(world: World) -> None:
    reassociate.start(world.pipeline, "a", dt.timedelta(days=30), dry_run=True, run_id=RUN)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    changes: bool
    status: int
    effect: Check
    json: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[World], None] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


API = "/api/v1/tenants/a"
RUN = "r-api-test"
ROUTES = [
    Route("GET", f"{API}/calls", False, 200, _listed),
    Route("GET", f"{API}/status", False, 200, _status),
    Route("GET", f"{API}/calls/{CALL}", False, 200, _explained),
    Route("GET", f"{API}/calls/{CALL}/records", False, 200, _records),
    Route("POST", f"{API}/calls/{DEAD}/unlock", True, 202, _unlocked, json={"fields": ["account"]}),
    Route("POST", f"{API}/calls/{CALL}/refresh", True, 202, _refreshed),
    Route("POST", f"{API}/calls/{CALL}/override", True, 202, _overridden, json={"account_id": "A1"}),
    Route("GET", f"{API}/review", False, 200, _reviewed),
    Route("GET", f"{API}/review/details", False, 200, _review_details),
    Route("POST", f"{API}/review/{CALL}/choose", True, 202, _chosen, json={"opportunity_id": "O1"}),
    Route("GET", f"{API}/preferences", False, 200, _preferences),
    Route("DELETE", f"{API}/preferences", True, 200, _forgotten, params={"all": "true"}),
    Route("GET", f"{API}/dead-letters", False, 200, _dead),
    Route("POST", f"{API}/dead-letters/replay", True, 200, _replayed, json={"all": True}),
    Route("GET", f"{API}/doctor", False, 200, _doctor),
    Route("POST", f"{API}/setup", True, 200, _setup),
    Route("POST", f"{API}/reassociate", True, 202, _reassociating, json={"since": "30d"}),
    Route("GET", f"{API}/reassociate/{RUN}", False, 200, _reassociation, prepare=_a_run),
    # the paths before /api/v1, kept as aliases under the same rules
    Route("GET", f"/calls/a/{CALL}", False, 200, _explained),
    Route("POST", f"/calls/a/{CALL}/refresh", True, 202, _refreshed),
    Route("POST", f"/calls/a/{CALL}/override", True, 202, _overridden, json={"account_id": "A1"}),
    Route("GET", "/dead-letters", False, 200, _dead, params={"tenant": "a"}),
    Route("POST", "/dead-letters/replay", True, 200, _replayed, json={"tenant": "a", "all": True}),
    Route("GET", "/tenants/a/doctor", False, 200, _doctor),
    Route("POST", "/tenants/a/setup", True, 200, _setup),
]
# caller -> (its token, its name as `by`, may read a, may change a)
CALLERS: dict[str, tuple[str | None, str, bool, bool]] = {
    "no token": (None, "", False, False),
    "a viewer": (TOKENS["a-viewer"], "a-viewer", True, False),
    "a admin": (TOKENS["a-admin"], "a-admin", True, True),
    "b viewer": (TOKENS["b-viewer"], "b-viewer", False, False),
    "b admin": (TOKENS["b-admin"], "b-admin", False, False),
    "global admin": (GLOBAL, "admin", True, True),
}


# routes each caller sees for itself, tested below rather than on tenant a
NOT_TENANT_A = {("GET", "/api/v1/me"), ("GET", "/api/v1/tenants")}


def test_the_table_covers_every_operations_route(world: World) -> None:
    """Each route in the OpenAPI document answers one row of ROUTES at least: a new route must join the table."""
    document = world.make_client().get("/openapi.json").json()
    declared = {
        (method.upper(), path)
        for path, methods in document["paths"].items()
        if path != "/readyz" and not path.startswith("/console/session")
        for method in methods
    }
    served: set[tuple[str, str]] = set()

    async def record_route(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)
        route = scope.get("route")
        if scope["type"] == "http" and route is not None:  # set by the router on the route that answered
            # the route's path inside its router: api_router's are under /api/v1, legacy_router's at the root
            prefix = "/api/v1" if route.endpoint.__qualname__.startswith("api_router.") else ""
            served.add((scope["method"], prefix + re.sub(r":path}", "}", route.path)))

    app = world.app
    client = TestClient(record_route, base_url="https://testserver")
    for row in ROUTES:
        reset(world)
        client.request(row.method, row.path, headers=bearer(GLOBAL), json=row.json, params=row.params)
    assert declared - served == NOT_TENANT_A, declared - served - NOT_TENANT_A


def reset(world: World) -> None:
    world.redis.flushdb()
    seed(world.pipeline)


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_every_route_answers_each_caller_by_its_rights_on_tenant_a(world: World, route: Route) -> None:
    client = world.make_client()
    for caller, (token, name, reads, changes) in CALLERS.items():
        reset(world)
        if route.prepare is not None:
            route.prepare(world)
        before = world.snapshot()
        headers = bearer(token) if token else {}
        answer = client.request(
            route.method, route.path, headers=headers, json=route.json, params=route.params
        )
        allowed = changes if route.changes else reads
        if allowed:
            assert answer.status_code == route.status, (caller, answer.text)
            route.effect(world, answer.json(), name)
            continue
        expected = 401 if token is None else 403
        assert answer.status_code == expected, (caller, answer.text)
        assert answer.headers["content-type"] == "application/json" and answer.json()["error"], caller
        assert world.snapshot() == before, f"{caller} changed something with {route}"
        if caller.startswith("b"):
            assert "tenant 'b'" in answer.json()["error"] and answer.json()["field"] == "tenant"
        elif caller == "a viewer":
            assert "viewer token only reads" in answer.json()["error"]


def test_a_tenant_token_lists_and_names_only_its_own_tenant(world: World) -> None:
    client = world.make_client()
    listed = {
        caller: client.get("/api/v1/tenants", headers=bearer(token)).json()
        for caller, (token, *_) in CALLERS.items()
        if token
    }
    assert [t["name"] for t in listed["a viewer"]] == ["a"] and listed["a viewer"][0]["role"] == "viewer"
    assert [t["name"] for t in listed["b admin"]] == ["b"] and listed["b admin"][0]["role"] == "admin"
    assert [t["name"] for t in listed["global admin"]] == ["a", "b"]
    assert listed["a admin"] == [{"name": "a", "role": "admin", "crm": "scenario", "providers": []}]
    assert client.get("/api/v1/tenants").status_code == 401
    me = client.get("/api/v1/me", headers=bearer(TOKENS["b-viewer"])).json()
    assert me == {"tenant": "b", "role": "viewer", "name": "b-viewer", "via": "bearer", "csrf_token": None}
    assert client.get("/api/v1/me", headers=bearer(GLOBAL)).json()["tenant"] is None


def test_a_tenant_token_reads_its_own_call_of_a_shared_id(world: World) -> None:
    """Both tenants have a call with the same id: each token sees its own tenant's record only."""
    client = world.make_client()
    mine = client.get(f"/api/v1/tenants/b/calls/{CALL}", headers=bearer(TOKENS["b-viewer"]))
    assert mine.status_code == 200 and mine.json()["tenant"] == "b"
    legacy = client.get("/dead-letters", headers=bearer(TOKENS["b-admin"]))
    assert legacy.status_code == 200 and legacy.json() == []  # a's dead letter is not b's to see
    before = world.snapshot()
    replayed = client.post("/dead-letters/replay", headers=bearer(TOKENS["b-admin"]), json={"all": True})
    assert replayed.status_code == 200 and replayed.json() == {"replayed": []}
    assert world.snapshot() == before


def test_an_unknown_tenant_is_403_for_a_tenant_token_and_404_for_the_global_admin(world: World) -> None:
    client = world.make_client()
    refused = client.get("/api/v1/tenants/zz/review", headers=bearer(TOKENS["a-admin"]))
    assert refused.status_code == 403 and refused.json()["field"] == "tenant"
    missing = client.get("/api/v1/tenants/zz/review", headers=bearer(GLOBAL))
    assert missing.status_code == 404 and missing.json() == {"error": "unknown tenant 'zz'"}
    call = client.get("/api/v1/tenants/a/calls/zoom:none", headers=bearer(TOKENS["a-viewer"]))
    assert call.status_code == 404 and call.json() == {"error": "no call 'zoom:none' for tenant 'a'"}


def test_override_unlinks_records_and_records_who(world: World) -> None:
    client = world.make_client()
    body = {"remove_contact_ids": ["C1"], "by": "jane@ops"}
    answer = client.post(f"{API}/calls/{CALL}/override", headers=bearer(TOKENS["a-admin"]), json=body)
    assert answer.status_code == 202, answer.text
    record = world.pipeline.store.require("a", CALL)
    assert [(r["type"], r["id"], r["by"]) for r in record.removed] == [("contact", "C1", "jane@ops")]
    assert answer.json()["removed"][0]["id"] == "C1" and record.changes[-1]["by"] == "jane@ops"


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        ({}, 400, "account_id", "nothing to override: give account_id, opportunity_id, contact_ids"),
        (
            {"account_id": "A1", "remove_account_ids": ["A1"]},
            400,
            "remove_account_ids",
            "both set and removed",
        ),
        ({"opportunity": "O1"}, 422, "opportunity", "unknown field"),
        ({"contact_ids": ["C1", " "]}, 422, "contact_ids[1]", "at least 1 character"),
        ({"account_id": 5}, 422, "account_id", "valid string"),
    ],
)
def test_bad_override_bodies_name_the_field_never_a_cli_flag(
    world: World, body: dict[str, Any], status: int, field: str, words: str
) -> None:
    client = world.make_client()
    before = world.snapshot()
    answer = client.post(f"{API}/calls/{CALL}/override", headers=bearer(TOKENS["a-admin"]), json=body)
    assert answer.status_code == status and answer.json()["field"] == field, answer.text
    assert words in answer.json()["error"] and "--" not in answer.json()["error"]
    assert world.snapshot() == before


def test_review_choose_and_preferences_errors_are_in_the_apis_words(world: World) -> None:
    client = world.make_client()
    admin = bearer(TOKENS["a-admin"])
    both = client.post(f"{API}/review/{CALL}/choose", headers=admin, json={})
    assert both.status_code == 400 and both.json()["field"] == "opportunity_id"
    assert "--" not in both.json()["error"]
    other = client.post(f"{API}/review/{CALL}/choose", headers=admin, json={"opportunity_id": "O7"})
    assert other.status_code == 400 and "not one of the call's candidates" in other.json()["error"]
    neither = client.delete(f"{API}/preferences", headers=admin)
    assert neither.status_code == 400 and neither.json()["field"] == "contact_id"
    one = client.delete(f"{API}/preferences", headers=admin, params={"contact_id": "C1"})
    assert one.json() == {"tenant": "a", "forgotten": 1}
    nothing = client.post(f"{API}/dead-letters/replay", headers=admin, json={"call_ids": ["nope"]})
    assert nothing.status_code == 400 and nothing.json() == {
        "error": "not dead letters: nope",
        "field": "call_ids",
    }
    bad_query = client.post(f"{API}/setup", headers=admin, params={"dry_run": "maybe"})
    assert bad_query.status_code == 422 and bad_query.json()["field"] == "dry_run"


def test_unflagged_words_an_actions_message_for_the_api() -> None:
    from worker.ops.api import unflagged

    assert unflagged("review choose: give one of --opportunity or --account") == (
        "review choose: give one of opportunity_id or account_id",
        "opportunity_id",
    )
    assert unflagged(
        "nothing to override: give --account, --contact or --remove-contact/-account/-opportunity"
    )[0] == (
        "nothing to override: give account_id, contact_ids or remove_contact_ids, remove_account_ids,"
        " remove_opportunity_ids"
    )
    assert unflagged("call x is not waiting for review") == ("call x is not waiting for review", None)


def test_openapi_declares_the_bearer_and_cookie_schemes_on_every_operations_route(world: World) -> None:
    document = TestClient(world.app).get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerToken"]["description"],
    }
    assert schemes["consoleSession"]["type"] == "apiKey" and schemes["consoleSession"]["in"] == "cookie"
    assert schemes["consoleSession"]["name"] == "callmatch_session"
    operations = 0
    for path, methods in document["paths"].items():
        if path in ("/readyz",) or path.startswith("/console/session"):
            continue
        for method, operation in methods.items():
            operations += 1
            assert {"bearerToken": []} in operation["security"], (method, path)
            assert {"consoleSession": []} in operation["security"], (method, path)
            csrf = [p for p in operation.get("parameters", []) if p["name"] == "X-CSRF-Token"]
            assert bool(csrf) == (method != "get"), (method, path)
            assert "401" in operation["responses"] and "403" in operation["responses"]
    assert operations >= 20
    assert document["paths"]["/calls/{tenant}/{call_id}"]["get"]["deprecated"] is True


def test_calls_filters_and_unlock_refusals_name_the_field(world: World) -> None:
    client = world.make_client()
    viewer, admin = bearer(TOKENS["a-viewer"]), bearer(TOKENS["a-admin"])
    written = client.get(f"{API}/calls", headers=viewer, params={"status": "dead", "limit": 1})
    assert written.status_code == 200 and [c["call_id"] for c in written.json()["items"]] == [DEAD]
    bogus = client.get(f"{API}/calls", headers=viewer, params={"status": "bogus"})
    assert (
        bogus.status_code == 400 and bogus.json()["field"] == "status" and "--" not in bogus.json()["error"]
    )
    too_many = client.get(f"{API}/calls", headers=viewer, params={"limit": 501})
    assert too_many.status_code == 422 and too_many.json()["field"] == "limit"
    before = world.snapshot()
    for body, named in (({"fields": []}, "fields"), ({"fields": ["owner"]}, "fields[0]"), ({}, "fields")):
        refused = client.post(f"{API}/calls/{DEAD}/unlock", headers=admin, json=body)
        assert refused.status_code == 422 and refused.json()["field"] == named, refused.text
    not_locked = client.post(f"{API}/calls/{CALL}/unlock", headers=admin, json={"fields": ["opportunity"]})
    assert not_locked.status_code == 400 and "--" not in not_locked.json()["error"], not_locked.text
    assert world.snapshot() == before


def test_the_apis_doctor_keeps_its_report_for_the_consoles_health_page(world: World) -> None:
    client = world.make_client()
    assert doctor_log.last(world.redis, "a") is None
    answer = client.get(f"{API}/doctor", headers=bearer(TOKENS["a-viewer"]))
    kept = doctor_log.last(world.redis, "a")
    assert answer.status_code == 200 and kept is not None and doctor_log.last(world.redis, "b") is None
    assert (kept.tenant, kept.can_run, kept.checks) == ("a", True, answer.json()["checks"])
