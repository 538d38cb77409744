"""The console in a real headless Chromium, against the real receiver, Redis and a worker on the Salesforce emulator.

A RevOps admin of tenant `acme` signs in with a token, finds a call, reads its trace and
why the other opportunity lost, fixes the opportunity (the emulator's Task moves to it),
unlocks it (the rules take it back), clears the review queue with one click, replays a
dead letter and runs doctor. A token of tenant `beta` is then refused on each of acme's
pages and forms. Every wait is a condition with a deadline (WebDriverWait, wait_until).

With CALLMATCH_SCREENSHOTS=DIR (`make screenshots`), the main pages are saved there as
PNG files (docs/screenshots/ in the repository); otherwise beside the processes' logs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import wait_until
from tests.e2e.stack import CRM as E2E_CRM
from tests.e2e.stack import ROOT, TENANT, Stack, running_stack
from worker.pipeline.store import CallStatus

TOKENS = {
    "BROWSER_ACME_ADMIN": "acme-admin-browser-token-0123456789",
    "BROWSER_ACME_VIEWER": "acme-viewer-browser-token-0123456789",
    "BROWSER_BETA_ADMIN": "beta-admin-browser-token-0123456789",
}
GLOBAL_TOKEN = "global-admin-browser-token-0123456789"
BETA = "beta"
WAIT = 30.0

JANE = ("jane@acme.com", "+33 6 12 34 56 78")
LEE = ("lee@globex.com", "+33 6 55 44 33 22")
KIM = ("kim@contoso.com", "+33 6 99 88 77 66")
NOBODY = ("someone@nowhere-corp.example", "+33 1 45 00 00 00")


def _opportunity(oid: str, account: str) -> dict[str, Any]:
    return {
        "id": oid,
        "account_id": account,
        "owner_id": "005U1",
        "created_at": "2026-02-01T10:00:00Z",
        "updated_at": "2026-03-01T10:00:00Z",
        "close_date": "2026-04-30",
        "contacts": [{"id": "003C3", "is_primary": False}],
    }


# The end-to-end org, plus Lee of Globex, named on two open opportunities of two accounts (ambiguous).
CRM: dict[str, Any] = {
    **E2E_CRM,
    "accounts": [
        *E2E_CRM["accounts"],
        {"id": "001A3", "name": "Globex", "domains": ["globex.com"]},
        {"id": "001A4", "name": "Initech", "domains": ["initech.com"]},
    ],
    "contacts": [
        *E2E_CRM["contacts"],
        {"id": "003C3", "email": LEE[0], "phones": [LEE[1]], "account_ids": ["001A3"]},
    ],
    "opportunities": [
        *E2E_CRM["opportunities"],
        _opportunity("006O3", "001A3"),
        _opportunity("006O4", "001A4"),
    ],
}


def _give_access(stack: Stack) -> None:
    """Tenant acme gets an admin and a viewer token; tenant beta (another CRM) its own admin token.

    The running processes pick the new tenants file up by themselves (atomic replace).
    """
    path = Path(stack.env["CALLMATCH_TENANTS"])
    scenario = ROOT / "config" / "examples" / "basic.json"
    text = path.read_text().rstrip("\n") + (
        "\n    access:\n"
        "      admin_token_env: BROWSER_ACME_ADMIN\n"
        "      viewer_token_env: BROWSER_ACME_VIEWER\n"
        f"  {BETA}:\n"
        "    crm:\n"
        "      kind: scenario\n"
        f"      scenario_file: {scenario}\n"
        "    access:\n"
        "      admin_token_env: BROWSER_BETA_ADMIN\n"
    )
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    fresh.replace(path)

    def signs_in() -> bool:
        answer = httpx.post(
            f"{stack.api_url}/console/session",
            data={"token": TOKENS["BROWSER_BETA_ADMIN"]},
            headers={"Accept": "application/json"},
            timeout=5,
        )
        return answer.status_code == 303

    wait_until(signs_in, timeout=WAIT, interval=0.2, what="the receiver to read the tenants file with tokens")


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("browser")
    url = redis_url.rsplit("/", 1)[0] + "/11"
    env = {**TOKENS, "CALLMATCH_ADMIN_TOKEN": GLOBAL_TOKEN}
    with running_stack(url, directory, extra_env=env, crm=CRM, policy={"on_ambiguity": "abstain"}) as stack:
        _give_access(stack)
        for number, (email, phone) in zip((9201, 9202, 9203, 9204), (JANE, LEE, KIM, NOBODY), strict=True):
            assert stack.post_aircall(number, email, phone).status_code == 200
        for number in (9201, 9202, 9203, 9204):
            stack.wait_status(f"aircall:{number}", CallStatus.WRITTEN)
        yield stack


@dataclass
class Console:
    """The browser on the receiver, with what the tests do again and again."""

    driver: WebDriver
    base: str
    shots: Path

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def wait(self, predicate: Any, what: str, timeout: float = WAIT) -> None:
        # A page being replaced by the next one answers "stale", "no such element" or a lost node: ask again.
        WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=(WebDriverException,),
        ).until(lambda _: predicate(), message=f"timed out waiting for {what}")

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def heading(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "h1").text

    def sign_in(self, token: str, then: str = "/console/") -> None:
        """Sign out whoever was signed in, then sign in with `token` through the form."""
        self.driver.delete_all_cookies()
        self.open(then)
        self.wait(lambda: "/console/sign-in" in self.driver.current_url, "the sign-in page")
        field = self.driver.find_element(By.ID, "token")
        field.send_keys(token)
        field.submit()
        self.wait(lambda: "/console/sign-in" not in self.driver.current_url, "the sign-in to go through")

    def submit(self, form_id: str, button_text: str | None = None) -> None:
        form = self.driver.find_element(By.ID, form_id)
        buttons = form.find_elements(By.CSS_SELECTOR, "button[type=submit]")
        chosen = next(b for b in buttons if button_text is None or button_text in b.text)
        chosen.click()

    def shot(self, name: str) -> None:
        """The whole page as a PNG (taller window for a long page), for docs/screenshots/ or the log dir."""
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(1440, max(900, min(height + 40, 4000)))
        try:
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))
        finally:
            self.driver.set_window_size(1440, 900)


@pytest.fixture(scope="module")
def console(chromium: WebDriver, stack: Stack) -> Console:
    shots = Path(os.environ.get("CALLMATCH_SCREENSHOTS") or stack.log_dir / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    return Console(chromium, stack.api_url, shots)


def _what_id(stack: Stack, call_id: str) -> str | None:
    tasks = stack.tasks_for(call_id)
    return tasks[0]["WhatId"] if len(tasks) == 1 else None


def test_an_admin_signs_in_finds_a_call_and_reads_its_trace(console: Console, stack: Stack) -> None:
    console.open(f"/console/tenants/{TENANT}/calls")
    console.wait(
        lambda: "/console/sign-in" in console.driver.current_url, "a page to send a stranger to sign in"
    )
    console.driver.find_element(By.ID, "token").send_keys("not-a-token-of-anyone-0000")
    console.driver.find_element(By.ID, "token").submit()
    console.wait(lambda: "Unknown token" in console.text(), "the refused token's message")

    console.sign_in(TOKENS["BROWSER_ACME_ADMIN"], then=f"/console/tenants/{TENANT}/calls")
    assert console.driver.current_url.endswith(f"/console/tenants/{TENANT}/calls")
    assert "admin of acme" in console.driver.find_element(By.CSS_SELECTOR, "header .who").text
    listed = console.driver.find_element(By.ID, "calls").text
    assert all(f"aircall:{n}" in listed for n in (9201, 9202, 9203, 9204)), listed
    console.shot("calls")

    # Filter: calls with an opportunity only (Jane's; Lee's abstained, Kim's and the stranger's have none).
    console.driver.find_element(By.CSS_SELECTOR, "select[name=has_opportunity] option[value=yes]").click()
    console.submit("filters")
    console.wait(lambda: "has_opportunity=yes" in console.driver.current_url, "the filtered list")
    listed = console.driver.find_element(By.ID, "calls").text
    assert "aircall:9201" in listed and "aircall:9202" not in listed and "aircall:9203" not in listed

    console.driver.find_element(By.LINK_TEXT, "aircall:9201").click()
    console.wait(lambda: "aircall:9201" in console.heading(), "the call page")
    result = console.driver.find_element(By.ID, "result-opportunity").text
    assert "006O1" in result and "Acme" in result, result
    link = console.driver.find_element(By.CSS_SELECTOR, "#result-opportunity a")
    assert link.get_attribute("href") == f"{stack.emulator.instance_url}/006O1"
    steps = console.driver.find_elements(By.CSS_SELECTOR, "#trace li .rule")
    rules = [step.text for step in steps]
    assert "M1" in rules and "S1.1" in rules and "V3" in rules, rules
    runner_ups = console.driver.find_element(By.ID, "runner-ups").text
    assert "006O9" in runner_ups and "closed" in runner_ups, runner_ups
    attempts = console.driver.find_element(By.ID, "attempts").text
    assert "associate" in attempts and "write" in attempts
    activity = console.driver.find_element(By.ID, "activity-id").text
    [task] = stack.tasks_for("aircall:9201")
    assert task["Id"] in activity


def test_fixing_the_opportunity_moves_the_crm_activity_and_is_logged(console: Console, stack: Stack) -> None:
    console.open(f"/console/tenants/{TENANT}/calls/aircall:9201")
    assert _what_id(stack, "aircall:9201") == "006O1"

    # An id the CRM does not have is refused before anything is written, naming the field.
    console.driver.find_element(By.ID, "opportunity_other").send_keys("006NOPE00000000")
    console.submit("fix-opportunity")
    console.wait(lambda: bool(console.driver.find_elements(By.ID, "form-error")), "the refusal")
    error = console.driver.find_element(By.ID, "form-error").text
    assert "opportunity" in error and "006NOPE00000000" in error, error
    record = stack.record("aircall:9201")
    assert record is not None and record.overrides == {} and record.changes == []

    console.open(f"/console/tenants/{TENANT}/calls/aircall:9201")
    console.driver.find_element(By.CSS_SELECTOR, "#fix-opportunity input[value='006O9']").click()
    console.submit("fix-opportunity")
    console.wait(lambda: "Opportunity changed" in console.text(), "the change's notice")
    wait_until(
        lambda: _what_id(stack, "aircall:9201") == "006O9",
        timeout=WAIT,
        interval=0.1,
        what=f"the CRM activity to move to 006O9; see {stack.log_dir}",
    )
    assert len(stack.tasks_for("aircall:9201")) == 1

    console.open(f"/console/tenants/{TENANT}/calls/aircall:9201")
    assert "006O9" in console.driver.find_element(By.ID, "result-opportunity").text
    assert "locked" in console.driver.find_element(By.ID, "result").text
    log = console.driver.find_element(By.ID, "changes").text
    record = stack.record("aircall:9201")
    assert record is not None and record.locked == ["opportunity"]
    [change] = record.changes
    assert change["by"] and change["by"] in log, (change, log)
    assert "opportunity → 006O9" in log and "UTC" in log, log
    rows = console.driver.find_elements(By.CSS_SELECTOR, "#runner-ups tbody tr")
    [row] = [r.text for r in rows]
    assert row.startswith("006O1") and "the rules' pick" in row and "a person locked 006O9" in row, row
    console.shot("call")


def test_unlocking_lets_the_rules_decide_again(console: Console, stack: Stack) -> None:
    console.open(f"/console/tenants/{TENANT}/calls/aircall:9201")
    console.submit("unlock")
    console.wait(lambda: "Unlocked" in console.text(), "the unlock's notice")
    wait_until(
        lambda: _what_id(stack, "aircall:9201") == "006O1",
        timeout=WAIT,
        interval=0.1,
        what=f"the rules to take 006O1 back; see {stack.log_dir}",
    )
    record = stack.record("aircall:9201")
    assert record is not None and "opportunity" not in record.locked
    console.open(f"/console/tenants/{TENANT}/calls/aircall:9201")
    assert "locked" not in console.driver.find_element(By.ID, "result").text
    assert "unlock" in console.driver.find_element(By.ID, "changes").text


def test_the_review_queue_takes_a_choice_in_one_click(console: Console, stack: Stack) -> None:
    console.open(f"/console/tenants/{TENANT}/review")
    ambiguous = console.driver.find_element(By.ID, "ambiguous").text
    assert "aircall:9202" in ambiguous and "006O3" in ambiguous and "006O4" in ambiguous
    assert "aircall:9203" in console.driver.find_element(By.ID, "no-opportunity").text
    assert "aircall:9204" in console.driver.find_element(By.ID, "unmatched").text
    console.shot("review")

    choose = console.driver.find_element(
        By.XPATH, "//section[@id='ambiguous']//button[text()='Choose 006O4']"
    )
    choose.click()
    console.wait(lambda: "Choice applied" in console.text(), "the choice's notice")
    wait_until(
        lambda: _what_id(stack, "aircall:9202") == "006O4",
        timeout=WAIT,
        interval=0.1,
        what=f"the chosen opportunity to be written; see {stack.log_dir}",
    )
    console.open(f"/console/tenants/{TENANT}/review")
    assert "aircall:9202" not in console.driver.find_element(By.ID, "ambiguous").text


def test_a_dead_letter_is_listed_and_replayed(console: Console, stack: Stack) -> None:
    stack.emulator.inject("status", times=1000, status=503)
    try:
        assert stack.post_aircall(9205, *JANE).status_code == 200
        stack.wait_status("aircall:9205", CallStatus.DEAD, timeout=60)
    finally:
        stack.emulator.faults.clear()
    console.open(f"/console/tenants/{TENANT}/dead-letters")
    letters = console.driver.find_element(By.ID, "letters").text
    assert "aircall:9205" in letters and "associate" in letters and "gave up after 3 attempts" in letters
    console.shot("dead-letters")

    row = console.driver.find_element(By.XPATH, "//table[@id='letters']//tr[td/a[text()='aircall:9205']]")
    row.find_element(By.XPATH, ".//button[text()='Replay']").click()
    console.wait(lambda: "Sent back" in console.text(), "the replay's notice")
    stack.wait_status("aircall:9205", CallStatus.WRITTEN, timeout=WAIT)
    assert len(stack.tasks_for("aircall:9205")) == 1
    console.open(f"/console/tenants/{TENANT}/dead-letters")
    assert "No dead letter" in console.text()


def test_health_shows_the_tenants_figures_and_doctors_last_report(console: Console, stack: Stack) -> None:
    console.open(f"/console/tenants/{TENANT}/health")
    assert "never" in console.driver.find_element(By.ID, "doctor").text.lower()
    console.submit("run-doctor")
    console.wait(lambda: "Doctor ran" in console.text(), "doctor's report", timeout=60)
    report = console.driver.find_element(By.ID, "doctor").text
    assert "the tenant can run" in report and "aircall.webhook" in report and "daily API budget" in report, (
        report
    )
    figures = console.driver.find_element(By.ID, "figures").text
    assert "written" in figures
    console.shot("health")


def test_a_tenant_b_token_is_refused_on_tenant_a_pages(console: Console, stack: Stack) -> None:
    console.sign_in(TOKENS["BROWSER_BETA_ADMIN"])
    assert f"/console/tenants/{BETA}/calls" in console.driver.current_url, "beta's own calls"
    for page in ("calls", "calls/aircall:9201", "review", "dead-letters", "health"):
        console.open(f"/console/tenants/{TENANT}/{page}")
        assert "Not allowed" in console.heading(), page
        assert "aircall:9201" not in console.driver.page_source or page == "calls/aircall:9201"
        assert "006O1" not in console.driver.page_source
    # Beta's pages do not list acme's calls either.
    console.open(f"/console/tenants/{BETA}/calls")
    assert "aircall:9201" not in console.text()

    # A change posted with beta's own session and CSRF token to acme's forms is refused, nothing changes.
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:
        signed = client.post("/console/session", data={"token": TOKENS["BROWSER_BETA_ADMIN"]})
        assert signed.status_code in (200, 303)
        csrf = client.get("/api/v1/me").json()["csrf_token"]
        before = stack.record("aircall:9201")
        refused = client.post(
            f"/console/tenants/{TENANT}/fix/opportunity/aircall:9201",
            data={"csrf_token": csrf, "opportunity_id": "006O9"},
        )
        assert refused.status_code == 403 and "Not allowed" in refused.text
        assert stack.record("aircall:9201") == before
