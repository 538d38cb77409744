"""End to end, rules v1.1: an ambiguous call waits for a person, whose choice the contact's next call follows.

The tenant abstains on ambiguity (U1). Lee's contact is named on two open
opportunities of two accounts, so the first call is written with Lee and no
opportunity and waits in the review queue. `callmatch review choose` picks one: the
CRM activity moves to it, and Lee's next call goes there by L1. Real processes
(receiver, Celery worker, `callmatch`), a real redis-server, the Salesforce
emulator; every wait is a condition with a deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.e2e.stack import Stack, running_stack
from worker.pipeline.store import CallStatus

LEE_EMAIL = "lee@globex.com"
LEE_PHONE = "+33 6 55 44 33 22"


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


CRM: dict[str, Any] = {
    "users": [{"id": "005U1", "email": "rep@ourco.com"}],
    "accounts": [
        {"id": "001A3", "name": "Globex", "domains": ["globex.com"]},
        {"id": "001A4", "name": "Initech", "domains": ["initech.com"]},
    ],
    "contacts": [{"id": "003C3", "email": LEE_EMAIL, "phones": [LEE_PHONE], "account_ids": ["001A3"]}],
    "opportunities": [_opportunity("006O3", "001A3"), _opportunity("006O4", "001A4")],
}


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("e2e-review")
    url = redis_url.rsplit("/", 1)[0] + "/10"
    with running_stack(url, directory, crm=CRM, policy={"on_ambiguity": "abstain"}) as stack:
        yield stack


def _review_list(stack: Stack) -> list[dict[str, Any]]:
    proc = stack.callmatch("review", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    listed: list[dict[str, Any]] = json.loads(proc.stdout)
    return listed


def test_a_reviewed_choice_moves_the_activity_and_the_contacts_next_call_follows_it(stack: Stack) -> None:
    assert stack.post_aircall(9101, LEE_EMAIL, LEE_PHONE).status_code == 200
    first = stack.wait_status("aircall:9101", CallStatus.WRITTEN)
    assert first.decision is not None
    assert (first.decision["case"], first.decision["opportunity_id"]) == ("ambiguous", None)
    tied = [("opportunity", "006O3"), ("opportunity", "006O4")]
    assert [(c["type"], c["id"]) for c in first.decision["candidates"]] == tied
    [task] = stack.tasks_for("aircall:9101")
    assert task["WhoId"] == "003C3" and task["WhatId"] not in ("006O3", "006O4"), (
        "the contact, no opportunity"
    )
    [waiting] = _review_list(stack)
    assert waiting["call_id"] == "aircall:9101"
    assert [(c["type"], c["id"]) for c in waiting["candidates"]] == tied

    chose = stack.callmatch("review", "choose", "aircall:9101", "--opportunity", "006O4", "--by", "e2e")
    assert chose.returncode == 0, chose.stderr

    def moved() -> bool:
        record = stack.record("aircall:9101")
        return (
            record is not None
            and record.refreshes >= 1
            and record.status is CallStatus.WRITTEN
            and stack.tasks_for("aircall:9101")[0]["WhatId"] == "006O4"
        )

    wait_until(
        moved, timeout=30, interval=0.1, what=f"the chosen opportunity to be written; see {stack.log_dir}"
    )
    settled = stack.record("aircall:9101")
    assert settled is not None and settled.decision is not None
    assert (settled.decision["case"], settled.decision["opportunity_id"]) == ("contacts", "006O4")
    assert settled.decision["account_id"] == "001A4" and settled.decision["candidates"] == []
    assert len(stack.tasks_for("aircall:9101")) == 1
    assert _review_list(stack) == []

    assert stack.post_aircall(9102, LEE_EMAIL, LEE_PHONE).status_code == 200
    second = stack.wait_status("aircall:9102", CallStatus.WRITTEN)
    assert second.decision is not None
    assert (second.decision["case"], second.decision["opportunity_id"]) == ("contacts", "006O4")
    assert second.decision["candidates"] == []
    assert any(e["rule"] == "L1" and "006O4" in e["message"] for e in second.decision["trace"])
    assert not any(e["rule"].startswith("U1") for e in second.decision["trace"])
    [task] = stack.tasks_for("aircall:9102")
    assert (task["WhoId"], task["WhatId"]) == ("003C3", "006O4")
    assert _review_list(stack) == []
