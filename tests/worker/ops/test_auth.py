"""Who may call the operations API: tokens checked against hashes, console sessions with CSRF, on the real Redis."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from tests.worker.ops.conftest import CALL, GLOBAL, TOKENS, World, bearer, tenants_text
from worker.ops.admin import mount
from worker.ops.auth import (
    SESSION_COOKIE,
    Principal,
    can_see,
    csrf_token,
    local_path,
    require,
)

API = "/api/v1/tenants/a"


def sign_in(client: TestClient, token: str, **form: str) -> tuple[int, str, dict[str, str]]:
    """Status, Location and the Set-Cookie attributes of a sign-in."""
    answer = client.post("/console/session", data={"token": token, **form}, follow_redirects=False)
    cookie = SimpleCookie(answer.headers.get("set-cookie", ""))
    attributes = {}
    if SESSION_COOKIE in cookie:
        morsel = cookie[SESSION_COOKIE]
        attributes = {key: str(value) for key, value in morsel.items() if value} | {"value": morsel.value}
    return answer.status_code, answer.headers.get("location", ""), attributes


def csrf_of(client: TestClient) -> str:
    me = client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["via"] == "session"
    token = me.json()["csrf_token"]
    assert isinstance(token, str) and len(token) >= 32
    return token


def test_signing_in_sets_a_secure_http_only_strict_expiring_cookie(world: World) -> None:
    client = world.make_client("https://callmatch.example")
    status, location, cookie = sign_in(client, TOKENS["a-viewer"], next="/console/calls?tenant=a")
    assert status == 303 and location == "/console/calls?tenant=a"
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "strict"
    assert cookie["max-age"] == "28800" and cookie["path"] == "/"
    assert TOKENS["a-viewer"] not in cookie["value"]
    read = client.get(f"{API}/calls/{CALL}")
    assert read.status_code == 200 and read.json()["tenant"] == "a"
    assert client.get("/api/v1/me").json()["name"] == "a-viewer"
    [key] = world.redis.keys("callmatch:console:session:*")
    assert 28700 < world.redis.ttl(key) <= 28800


@pytest.mark.parametrize(
    ("base_url", "secure"),
    [("http://localhost:8000", False), ("http://127.0.0.1:8000", False), ("http://callmatch.example", True)],
)
def test_the_cookie_is_secure_except_over_plain_http_to_a_loopback_host(
    world: World, base_url: str, secure: bool
) -> None:
    _, _, cookie = sign_in(world.make_client(base_url), TOKENS["a-admin"])
    assert bool(cookie.get("secure")) is secure and cookie["httponly"]


def test_the_session_length_is_a_setting(world: World, redis_client, monkeypatch) -> None:
    monkeypatch.setenv("CALLMATCH_CONSOLE_SESSION_SECONDS", "600")
    app = FastAPI()
    mount(app, lambda: world.pipeline, redis_client, token=GLOBAL)
    _, _, cookie = sign_in(TestClient(app, base_url="https://testserver"), GLOBAL)
    assert cookie["max-age"] == "600"
    [key] = redis_client.keys("callmatch:console:session:*")
    assert 590 < redis_client.ttl(key) <= 600


def test_a_changing_request_with_the_cookie_needs_the_sessions_csrf_token(world: World) -> None:
    client = world.make_client()
    sign_in(client, TOKENS["a-admin"])
    csrf = csrf_of(client)
    before = world.snapshot()
    missing = client.post(f"{API}/calls/{CALL}/override", json={"account_id": "A1"})
    assert missing.status_code == 403 and missing.json()["field"] == "csrf_token"
    assert "missing CSRF token" in missing.json()["error"]
    wrong = client.post(
        f"{API}/calls/{CALL}/override", json={"account_id": "A1"}, headers={"X-CSRF-Token": "x" * 43}
    )
    assert wrong.status_code == 403 and "wrong CSRF token" in wrong.json()["error"]
    other = client.post(f"{API}/calls/{CALL}/refresh", data={"csrf_token": csrf[::-1]})
    assert other.status_code == 403
    assert world.snapshot() == before
    done = client.post(
        f"{API}/calls/{CALL}/override", json={"account_id": "A1"}, headers={"X-CSRF-Token": csrf}
    )
    assert done.status_code == 202, done.text
    record = world.pipeline.store.require("a", CALL)
    assert record.overrides == {"account_id": "A1"} and record.changes[-1]["by"] == "a-admin"
    form = client.post(f"{API}/calls/{CALL}/refresh", data={"csrf_token": csrf})
    assert form.status_code == 202, form.text


def test_a_bearer_request_needs_no_csrf_token_even_beside_a_cookie(world: World) -> None:
    client = world.make_client()
    sign_in(client, TOKENS["a-viewer"])
    answer = client.post(f"{API}/calls/{CALL}/refresh", headers=bearer(TOKENS["a-admin"]))
    assert answer.status_code == 202


def test_a_viewers_session_reads_but_does_not_change(world: World) -> None:
    client = world.make_client()
    sign_in(client, TOKENS["a-viewer"])
    csrf = csrf_of(client)
    before = world.snapshot()
    refused = client.post(f"{API}/calls/{CALL}/refresh", headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403 and "viewer token only reads" in refused.json()["error"]
    assert client.get(f"/api/v1/tenants/b/calls/{CALL}").status_code == 403
    assert world.snapshot() == before


def test_signing_out_needs_the_csrf_token_and_ends_the_session_everywhere(world: World) -> None:
    client = world.make_client()
    sign_in(client, TOKENS["a-admin"])
    csrf = csrf_of(client)
    stolen = client.cookies[SESSION_COOKIE]
    refused = client.post("/console/session/delete", follow_redirects=False)
    assert refused.status_code == 403 and client.get("/api/v1/me").status_code == 200
    out = client.post("/console/session/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    assert world.redis.keys("callmatch:console:session:*") == []
    replayed = world.make_client()
    replayed.cookies.set(SESSION_COOKIE, stolen)
    gone = replayed.get("/api/v1/me")
    assert gone.status_code == 401 and "sign in again" in gone.json()["error"]


def test_a_forged_or_foreign_cookie_is_refused(world: World) -> None:
    client = world.make_client()
    sign_in(client, TOKENS["a-admin"])
    value = client.cookies[SESSION_COOKIE]
    forged = world.make_client()
    forged.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert forged.get("/api/v1/me").status_code == 401
    world.redis.delete("callmatch:console:signing-key")  # Redis emptied: every session signs in again
    assert client.get("/api/v1/me").status_code == 401


def test_a_token_taken_out_of_the_file_ends_its_sessions_and_its_bearer_use(world: World) -> None:
    client = world.make_client()
    sign_in(client, TOKENS["a-viewer"])
    assert client.get(f"{API}/review").status_code == 200
    assert client.get(f"{API}/review", headers=bearer(TOKENS["a-viewer"])).status_code == 200
    world.path.write_text(tenants_text(viewers_of_a=False))
    assert client.get(f"{API}/review").status_code == 401
    assert client.get(f"{API}/review", headers=bearer(TOKENS["a-viewer"])).status_code == 401
    assert client.get(f"{API}/review", headers=bearer(TOKENS["a-admin"])).status_code == 200


def test_a_failed_sign_in_is_401_json_or_back_to_the_sign_in_page_for_a_browser(world: World) -> None:
    client = world.make_client()
    refused = client.post("/console/session", data={"token": "not-a-token-of-anyone"}, follow_redirects=False)
    assert refused.status_code == 401 and refused.json() == {"error": "unknown token", "field": "token"}
    assert "set-cookie" not in refused.headers
    browser = client.post(
        "/console/session",
        data={"token": "not-a-token-of-anyone", "next": "/console/calls"},
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )
    assert browser.status_code == 303
    assert browser.headers["location"] == "/console/sign-in?error=unknown+token&next=%2Fconsole%2Fcalls"
    assert client.post("/console/session", data={}).status_code == 422


def test_sign_in_refuses_another_sites_form_and_never_redirects_off_site(world: World) -> None:
    client = world.make_client()
    posted = client.post(
        "/console/session",
        data={"token": TOKENS["a-admin"]},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert posted.status_code == 403 and "set-cookie" not in posted.headers
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example", "console"):
        assert sign_in(client, TOKENS["a-admin"], next=target)[1] == "/console/", target
    same = client.post(
        "/console/session",
        data={"token": TOKENS["a-admin"]},
        headers={"Origin": "https://testserver"},
        follow_redirects=False,
    )
    assert same.status_code == 303
    assert local_path("/console/calls/aircall:1", "/") == "/console/calls/aircall:1"


def test_no_token_is_401_an_unknown_one_401_and_no_configured_token_at_all_403(
    world: World, redis_client
) -> None:
    client = world.make_client()
    missing = client.get(f"{API}/review")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert client.get(f"{API}/review", headers=bearer("a-admin-token-0123456788")).status_code == 401
    assert (
        client.get(f"{API}/review", headers={"Authorization": f"Basic {TOKENS['a-admin']}"}).status_code
        == 401
    )
    world.path.write_text("version: 1\ntenants:\n  a:\n    crm:\n      kind: salesforce\n")
    off = FastAPI()
    mount(off, lambda: world.pipeline, redis_client, token="")
    refused = TestClient(off).get(f"{API}/review", headers=bearer(GLOBAL))
    assert refused.status_code == 403 and "CALLMATCH_ADMIN_TOKEN" in refused.json()["error"]
    assert "access:" in refused.json()["error"]


def test_helpers_for_the_console_pages(world: World) -> None:
    """`require(role)`, `can_see` and `csrf_token(request)` as a page of the console would use them."""

    @world.app.post("/console/test-page/{tenant}")
    def page(
        request: Request, who: Annotated[Principal, Depends(require("admin"))], tenant: str
    ) -> dict[str, object]:
        return {"name": who.name, "csrf": csrf_token(request), "sees_b": can_see(who, "b")}

    client = world.make_client()
    assert client.post("/console/test-page/a", headers=bearer(TOKENS["a-viewer"])).status_code == 403
    assert client.post("/console/test-page/a", headers=bearer(TOKENS["b-admin"])).status_code == 403
    assert client.post("/console/test-page/a", headers=bearer(GLOBAL)).json() == {
        "name": "admin",
        "csrf": "",
        "sees_b": True,
    }
    sign_in(client, TOKENS["a-admin"])
    csrf = csrf_of(client)
    assert client.post("/console/test-page/a").status_code == 403
    shown = client.post("/console/test-page/a", data={"csrf_token": csrf}).json()
    assert shown == {"name": "a-admin", "csrf": csrf, "sees_b": False}


def test_tokens_are_checked_once_then_remembered_until_the_tenants_change(world: World) -> None:
    from worker.ops.auth import Authenticator

    auth = world.app.state.callmatch_auth
    assert isinstance(auth, Authenticator)
    first = auth.identify(TOKENS["b-admin"], hint="a")
    assert first is not None and (first.tenant, first.role, first.name) == ("b", "admin", "b-admin")
    assert auth.identify(TOKENS["b-admin"]) is first  # the cached answer: no scrypt this time
    assert auth.identify("nobody-s-token-0123456789") is None
    everyone = auth.identify(GLOBAL)
    assert everyone is not None and (everyone.tenant, everyone.role, everyone.name) == (
        None,
        "admin",
        "admin",
    )
