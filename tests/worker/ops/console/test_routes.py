"""The console's pages and forms through the real app, auth and Redis: every route × every kind of caller.

Tenant a's pages answer its viewer (read) and admin (read and change), and the global admin;
tenant b's tokens get the 403 page on every one of them, by bearer token and by session, and
a refused change leaves the database exactly as it was. A change needs the session's CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.worker.ops.conftest import CALL, DEAD, GLOBAL, TOKENS, World, bearer
from worker.ops import doctor_log
from worker.ops.console import mount_console
from worker.ops.console.routes import console_router
from worker.pipeline.tasks import REFRESH_TASK

Check = Callable[[World, TestClient, Any], None]
PAGES = "/console/tenants/a"


@pytest.fixture()
def console(world: World) -> World:
    mount_console(world.app)
    return world


def signed_in(world: World, token: str) -> tuple[TestClient, str]:
    """A client holding a console session for `token`, and the session's CSRF token."""
    client = world.make_client()
    answer = client.post("/console/session", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    csrf = client.get("/api/v1/me").json()["csrf_token"]
    return client, csrf


def _page(markers: tuple[str, ...]) -> Check:
    def check(world: World, client: TestClient, answer: Any) -> None:
        assert answer.status_code == 200, answer.text[:500]
        for marker in markers:
            assert marker in answer.text, marker

    return check


def _changed(expect: Callable[[World], None], done: str) -> Check:
    def check(world: World, client: TestClient, answer: Any) -> None:
        assert answer.status_code == 303, answer.text[:500]
        assert f"done={done}" in answer.headers["location"]
        expect(world)

    return check


def _overridden(world: World) -> None:
    record = world.pipeline.store.require("a", CALL)
    assert record.overrides == {"opportunity_id": "O1"} and record.locked == ["opportunity"]
    assert record.changes[-1]["by"] in ("a-admin", "admin") and world.queued() == [REFRESH_TASK]
    assert world.pipeline.store.require("b", CALL).overrides == {}


def _unlocked(world: World) -> None:
    record = world.pipeline.store.require("a", DEAD)
    assert record.locked == [] and record.changes[-1]["how"] == "unlock"


def _refreshed(world: World) -> None:
    assert world.queued() == [REFRESH_TASK]


def _chosen(world: World) -> None:
    record = world.pipeline.store.require("a", CALL)
    assert record.overrides.get("opportunity_id") == "O1" and record.changes[-1]["how"] == "review"


def _replayed(world: World) -> None:
    assert world.pipeline.store.dead_letters() == [] and world.queued() == ["callmatch.write"]


def _doctored(world: World) -> None:
    kept = doctor_log.last(world.redis, "a")
    assert kept is not None and kept.tenant == "a" and kept.can_run and kept.checks
    assert doctor_log.last(world.redis, "b") is None


def _lock_dead(world: World) -> None:
    def lock(record: Any) -> None:
        record.locked = ["account"]
        record.overrides = {"account_id": "A1"}

    world.pipeline.store.update("a", DEAD, lock)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    role: str  # viewer: read (any token of a); admin: change
    effect: Check
    form: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[World], None] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ROUTES = [
    Route("GET", f"{PAGES}/calls", "viewer", _page((CALL, DEAD, "Filter"))),
    Route("GET", f"{PAGES}/calls/{CALL}", "viewer", _page(("Why: the trace", "S1.1", "O1", "Acme"))),
    Route("GET", f"{PAGES}/review", "viewer", _page((CALL, "Ambiguous", "O1"))),
    Route("GET", f"{PAGES}/dead-letters", "viewer", _page((DEAD, "INVALID_FIELD", "write"))),
    Route("GET", f"{PAGES}/health", "viewer", _page(("calls written", "Run doctor now"))),
    Route("GET", PAGES, "viewer", lambda w, c, a: _redirected_to(a, f"{PAGES}/calls")),
    Route("GET", f"{PAGES}/", "viewer", lambda w, c, a: _redirected_to(a, f"{PAGES}/calls")),
    Route(
        "POST",
        f"{PAGES}/health/doctor",
        "viewer",
        _changed(_doctored, "doctor"),
    ),
    Route(
        "POST",
        f"{PAGES}/fix/opportunity/{CALL}",
        "admin",
        _changed(_overridden, "opportunity"),
        form={"opportunity_id": "O1"},
    ),
    Route(
        "POST",
        f"{PAGES}/unlock/{DEAD}",
        "admin",
        _changed(_unlocked, "unlock"),
        form={"field": "account"},
        prepare=_lock_dead,
    ),
    Route("POST", f"{PAGES}/refresh/{CALL}", "admin", _changed(_refreshed, "refresh")),
    Route(
        "POST", f"{PAGES}/choose/{CALL}", "admin", _changed(_chosen, "choose"), form={"opportunity_id": "O1"}
    ),
    Route(
        "POST", f"{PAGES}/dead-letters/replay", "admin", _changed(_replayed, "replay"), form={"call_id": DEAD}
    ),
]


def _redirected_to(answer: Any, path: str) -> None:
    assert answer.status_code == 303 and answer.headers["location"] == path


def _send(client: TestClient, route: Route, csrf: str | None = None, **options: Any) -> Any:
    if route.method == "GET":
        return client.get(route.path, follow_redirects=False, **options)
    form = {**route.form, **({"csrf_token": csrf} if csrf is not None else {})}
    return client.post(route.path, data=form, follow_redirects=False, **options)


def test_the_table_covers_every_console_route() -> None:
    declared = {
        (method, route.path)
        for route in console_router().routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    tenant_routes = {(m, p) for m, p in declared if "{tenant}" in p}
    covered = set()
    for route in ROUTES:
        for method, pattern in tenant_routes:
            regex = "^" + re.sub(r"\{(\w+)(:path)?\}", lambda m: ".+" if m[2] else "[^/]+", pattern) + "$"
            if method == route.method and re.match(regex, route.path):
                covered.add((method, pattern))
    assert covered == tenant_routes, tenant_routes - covered


@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize("who", ["a-viewer", "a-admin", "global"])
def test_tenant_a_tokens_in_a_session(console: World, route: Route, who: str) -> None:
    if route.prepare is not None:
        route.prepare(console)
    token = GLOBAL if who == "global" else TOKENS[who]
    client, csrf = signed_in(console, token)
    if route.role == "admin" and who == "a-viewer":
        before = console.snapshot()
        answer = _send(client, route, csrf)
        assert answer.status_code == 403 and "Not allowed" in answer.text
        assert "only reads" in answer.text and console.snapshot() == before
        return
    route.effect(console, client, _send(client, route, csrf))


@pytest.mark.parametrize("route", ROUTES, ids=str)
@pytest.mark.parametrize("who", ["b-viewer", "b-admin"])
@pytest.mark.parametrize("via", ["session", "bearer"])
def test_a_tenant_b_token_is_refused_on_every_tenant_a_route(
    console: World, route: Route, who: str, via: str
) -> None:
    if route.prepare is not None:
        route.prepare(console)
    if via == "session":
        client, csrf = signed_in(console, TOKENS[who])
        options: dict[str, Any] = {}
    else:
        client, csrf, options = console.make_client(), "", {"headers": bearer(TOKENS[who])}
    before = console.snapshot()
    answer = _send(client, route, csrf, **options)
    assert answer.status_code == 403, answer.text[:300]
    assert "Not allowed" in answer.text and "cannot reach tenant &#39;a&#39;" in answer.text
    assert CALL not in answer.text and DEAD not in answer.text and "INVALID_FIELD" not in answer.text
    assert console.snapshot() == before


@pytest.mark.parametrize("route", [r for r in ROUTES if r.method == "POST"], ids=str)
def test_a_change_without_the_sessions_csrf_token_is_refused(console: World, route: Route) -> None:
    if route.prepare is not None:
        route.prepare(console)
    client, csrf = signed_in(console, TOKENS["a-admin"])
    before = console.snapshot()
    for given in (None, "not-" + csrf):
        answer = _send(client, route, given)
        assert answer.status_code == 403 and "CSRF" in answer.text
    assert console.snapshot() == before


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_without_a_session_every_page_goes_to_sign_in(console: World, route: Route) -> None:
    before = console.snapshot()
    answer = _send(console.make_client(), route)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/console/sign-in?next=")
    if route.method == "GET":
        assert location.endswith(route.path.replace("/", "%2F").replace(":", "%3A"))
    assert console.snapshot() == before


def test_sign_in_page_and_its_refusal(console: World) -> None:
    client = console.make_client()
    page = client.get("/console/sign-in")
    assert (
        page.status_code == 200
        and 'action="/console/session"' in page.text
        and 'type="password"' in page.text
    )
    refused = client.post(
        "/console/session",
        data={"token": "wrong-token-0123456789", "next": "/console/tenants/a/calls"},
        headers={"Accept": "text/html"},
        follow_redirects=True,
    )
    assert refused.status_code == 200 and "Unknown token" in refused.text
    # Text in the URL is never shown as is: a page says only its own fixed words.
    crafted = client.get("/console/sign-in", params={"error": "Call 555-0100 to unlock your account"})
    assert "555-0100" not in crafted.text and "Unknown token" in crafted.text
    signed = client.post(
        "/console/session", data={"token": TOKENS["a-admin"], "next": "/console/tenants/a/review"}
    )
    assert signed.status_code == 200 and signed.url.path == "/console/tenants/a/review"


def test_the_global_admin_chooses_among_all_tenants_and_a_tenant_goes_straight_to_its_calls(
    console: World,
) -> None:
    admin, _ = signed_in(console, GLOBAL)
    home = admin.get("/console/")
    assert home.status_code == 200
    assert "/console/tenants/a/calls" in home.text and "/console/tenants/b/calls" in home.text
    own, _ = signed_in(console, TOKENS["b-viewer"])
    assert own.get("/console/", follow_redirects=False).headers["location"] == "/console/tenants/b/calls"


def test_pages_carry_no_script_and_forbid_any(console: World) -> None:
    client, _ = signed_in(console, TOKENS["a-admin"])
    for path in (
        "/console/sign-in",
        *(r.path for r in ROUTES if r.method == "GET" and r.path.count("/") > 3),
    ):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert "<script" not in answer.text.lower() and " on" + "click=" not in answer.text.lower()
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_a_viewer_sees_no_form_that_changes_a_call(console: World) -> None:
    viewer, _ = signed_in(console, TOKENS["a-viewer"])
    page = viewer.get(f"{PAGES}/calls/{CALL}").text
    assert "/fix/" not in page and "/unlock/" not in page and "/refresh/" not in page
    assert "reads only" in page
    admin, csrf = signed_in(console, TOKENS["a-admin"])
    page = admin.get(f"{PAGES}/calls/{CALL}").text
    assert f"{PAGES}/fix/opportunity/{CALL}" in page and f'value="{csrf}"' in page


def test_an_id_the_crm_lacks_is_refused_naming_the_field_and_nothing_is_written(console: World) -> None:
    client, csrf = signed_in(console, TOKENS["a-admin"])
    before = console.snapshot()
    answer = client.post(
        f"{PAGES}/fix/opportunity/{CALL}", data={"csrf_token": csrf, "opportunity_other": "O404"}
    )
    assert answer.status_code == 400
    assert (
        "O404" in answer.text
        and 'id="opportunity_other"' in answer.text
        and 'aria-invalid="true"' in answer.text
    )
    assert console.snapshot() == before
    too_long = client.post(
        f"{PAGES}/fix/opportunity/{CALL}", data={"csrf_token": csrf, "opportunity_other": "O" * 300}
    )
    assert (
        too_long.status_code == 400
        and "opportunity_id: String should have at most 255 characters" in too_long.text
    )
    assert console.snapshot() == before
    empty = client.post(f"{PAGES}/fix/contacts/{CALL}", data={"csrf_token": csrf})
    assert empty.status_code == 400 and "contact_ids" in empty.text
    typed = client.post(
        f"{PAGES}/fix/contacts/{CALL}",
        data={"csrf_token": csrf, "contacts_other": "C1"},
        follow_redirects=False,
    )
    assert typed.status_code == 303
    assert console.pipeline.store.require("a", CALL).overrides == {"contact_ids": ["C1"]}


def test_the_call_page_shows_the_change_log_with_who_and_when(console: World) -> None:
    client, csrf = signed_in(console, TOKENS["a-admin"])
    client.post(f"{PAGES}/fix/account/{CALL}", data={"csrf_token": csrf, "account_id": "A1"})
    page = client.get(f"{PAGES}/calls/{CALL}").text
    [change] = console.pipeline.store.require("a", CALL).changes
    log = page[page.index('id="changes"') :]
    assert change["by"] in log and "account → A1" in log and "UTC" in log
    assert "locked" in page[page.index('id="result"') : page.index('id="activity"')]


def test_the_calls_list_filters_and_refuses_a_bad_filter_by_name(console: World) -> None:
    client, _ = signed_in(console, TOKENS["a-viewer"])
    dead = client.get(f"{PAGES}/calls", params={"status": "dead"}).text
    assert DEAD in dead and f">{CALL}<" not in dead
    bad = client.get(f"{PAGES}/calls", params={"case": "nope"})
    assert bad.status_code == 400 and "case" in bad.text and "nope" in bad.text
    bad = client.get(f"{PAGES}/calls", params={"since": "yesterday"})
    assert bad.status_code == 400 and "since" in bad.text and 'aria-invalid="true"' in bad.text
    bad = client.get(f"{PAGES}/calls", params={"has_opportunity": "maybe"})
    assert bad.status_code == 400 and "has_opportunity" in bad.text


def test_an_unknown_call_or_fix_is_a_404_page(console: World) -> None:
    client, csrf = signed_in(console, TOKENS["a-admin"])
    missing = client.get(f"{PAGES}/calls/aircall:404")
    assert missing.status_code == 404 and "Not found" in missing.text
    strange = client.post(f"{PAGES}/fix/owner/{CALL}", data={"csrf_token": csrf, "owner": "U1"})
    assert strange.status_code == 404


def test_health_shows_doctors_last_report_once_it_ran(console: World) -> None:
    client, csrf = signed_in(console, TOKENS["a-viewer"])
    assert "never run" in client.get(f"{PAGES}/health").text
    ran = client.post(f"{PAGES}/health/doctor", data={"csrf_token": csrf})
    assert ran.status_code == 200 and "Doctor ran" in ran.text
    assert "crm.scenario" in ran.text and "the tenant can run" in ran.text
