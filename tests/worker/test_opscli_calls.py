"""`callmatch calls list` and `actions.calls_list`: newest first, filtered, paged by cursor, per tenant.

Two tenants on the scenario CRM of test_service_review; calls received a minute apart (and
three at the same instant, so a cursor has to place a row among equals), in every status.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.worker.test_service_review import JANE, PAUL, Clock, world_pipeline, write_world
from worker.ingest.events import CallEvent
from worker.ops import actions as ops
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStatus, Stage

CALLMATCH = str(Path(sys.executable).parent / "callmatch")
Run = Callable[..., subprocess.CompletedProcess[str]]
START = dt.datetime(2026, 3, 10, 8, 0, tzinfo=dt.UTC)


def receive(
    pipeline: Pipeline,
    clock: Clock,
    call_id: str,
    at: dt.datetime,
    *people: dict[str, Any],
    tenant: str = "acme",
) -> None:
    clock.now = at
    provider = call_id.split(":", 1)[0]
    pipeline.accept(
        CallEvent.from_json(
            {
                "tenant": tenant,
                "provider": provider,
                "call_id": call_id,
                "event_id": f"evt-{call_id}",
                "kind": "call",
                "received_at": at.isoformat(),
                "started_at": "2026-03-10T07:30:00Z",
                "ended_at": "2026-03-10T07:52:00Z",
                "organizer": {"email": "rep@ourco.com"},
                "participants": list(people),
                "complete": True,
            }
        )
    )


@pytest.fixture()
def tenants_path(tmp_path: Path) -> Path:
    return write_world(tmp_path)


@pytest.fixture()
def world(redis_client: Any, tenants_path: Path) -> Pipeline:
    return build_world(redis_client, tenants_path)


def build_world(redis_client: Any, tenants_path: Path) -> Pipeline:
    """acme: 8 calls, newest first `aircall:8` ... `aircall:1`, with aircall:4-6 received together; beta: 1."""
    clock = Clock()
    pipeline = world_pipeline(redis_client, tenants_path, clock)
    minute = dt.timedelta(minutes=1)
    receive(pipeline, clock, "aircall:1", START, PAUL)  # decided, contacts case, an opportunity
    pipeline.decide("acme", "aircall:1")
    receive(pipeline, clock, "ringover:2", START + minute, PAUL)  # written
    pipeline.decide("acme", "ringover:2")
    pipeline.write("acme", "ringover:2")
    receive(pipeline, clock, "aircall:3", START + 2 * minute, JANE, PAUL)  # ambiguous: no opportunity
    pipeline.decide("acme", "aircall:3")
    for n in (4, 5, 6):  # the same instant
        receive(pipeline, clock, f"aircall:{n}", START + 3 * minute)
    receive(pipeline, clock, "ringover:7", START + dt.timedelta(days=1))  # next day, dead
    pipeline.store.bury("acme", "ringover:7", Stage.FETCH, "ringover: 403", "fatal")
    receive(pipeline, clock, "aircall:8", START + dt.timedelta(days=1, minutes=1))
    receive(pipeline, clock, "aircall:9", START + 2 * minute, tenant="beta")
    return pipeline


NEWEST_FIRST = [
    "aircall:8",
    "ringover:7",
    "aircall:6",
    "aircall:5",
    "aircall:4",
    "aircall:3",
    "ringover:2",
    "aircall:1",
]


def ids(page: ops.CallsPage) -> list[str]:
    return [item.call_id for item in page.items]


def every_page(pipeline: Pipeline, tenant: str | None, limit: int, **filters: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = ops.calls_list(pipeline, tenant, limit=limit, cursor=cursor, **filters)
        pages.append(ids(page))
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor must move on"


def test_newest_first_and_every_page_continues_exactly_where_the_last_stopped(world: Pipeline) -> None:
    assert ids(ops.calls_list(world, "acme")) == NEWEST_FIRST
    for limit in (1, 2, 3, 5):
        pages = every_page(world, "acme", limit)
        assert [call for page in pages for call in page] == NEWEST_FIRST, f"limit {limit}"
        assert all(len(page) == limit for page in pages[:-1])


def test_a_call_received_meanwhile_neither_repeats_nor_shifts_the_next_page(
    world: Pipeline, tenants_path: Path
) -> None:
    first = ops.calls_list(world, "acme", limit=4)
    clock = Clock()
    clock.now = START + dt.timedelta(days=2)
    later = world_pipeline(world.store.redis, tenants_path, clock)
    receive(later, clock, "aircall:10", clock.now)
    rest = ops.calls_list(world, "acme", limit=10, cursor=first.next_cursor)
    assert ids(first) + ids(rest) == NEWEST_FIRST
    assert ids(ops.calls_list(world, "acme", limit=1)) == ["aircall:10"]


def test_each_tenant_sees_its_own_calls_and_the_cursor_names_none(world: Pipeline) -> None:
    assert ids(ops.calls_list(world, "beta")) == ["aircall:9"]
    both = ids(ops.calls_list(world, None, limit=100))
    assert sorted(both) == sorted([*NEWEST_FIRST, "aircall:9"])
    page = ops.calls_list(world, "beta", limit=1)
    assert page.next_cursor is not None  # it stopped on beta's call, other tenants' calls may follow
    decoded = base64.urlsafe_b64decode(page.next_cursor + "=" * (-len(page.next_cursor) % 4)).decode()
    assert "aircall" not in decoded and "beta" not in decoded and "acme" not in decoded
    assert ops.calls_list(world, "beta", cursor=page.next_cursor).items == []


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({"status": "written"}, ["ringover:2"]),
        ({"status": "dead"}, ["ringover:7"]),
        ({"status": "received"}, ["aircall:8", "aircall:6", "aircall:5", "aircall:4"]),
        ({"case": "ambiguous"}, ["aircall:3"]),
        ({"case": "contacts", "status": "decided"}, ["aircall:1"]),
        ({"has_opportunity": True}, ["ringover:2", "aircall:1"]),
        ({"has_opportunity": False, "status": "decided"}, ["aircall:3"]),
        ({"provider": "ringover"}, ["ringover:7", "ringover:2"]),
        ({"since": "2026-03-11"}, ["aircall:8", "ringover:7"]),
        ({"until": "2026-03-10"}, NEWEST_FIRST[2:]),
        (
            {"since": "2026-03-10T08:01:00Z", "until": "2026-03-10T08:03:00+00:00"},
            ["aircall:3", "ringover:2"],
        ),
        (
            {"since": dt.date(2026, 3, 10), "until": dt.date(2026, 3, 10), "provider": "aircall"},
            [*NEWEST_FIRST[2:6], "aircall:1"],
        ),
    ],
)
def test_filters(world: Pipeline, filters: dict[str, Any], expected: list[str]) -> None:
    assert ids(ops.calls_list(world, "acme", **filters)) == expected
    assert [call for page in every_page(world, "acme", 1, **filters) for call in page] == expected


def test_an_item_says_what_the_list_shows(world: Pipeline) -> None:
    (item,) = ops.calls_list(world, "acme", status="written").items
    assert item.to_json() | {"written_at": None} == {
        "tenant": "acme",
        "call_id": "ringover:2",
        "provider": "ringover",
        "kind": "call",
        "status": "written",
        "received_at": "2026-03-10T08:01:00Z",
        "started_at": "2026-03-10T07:30:00Z",
        "case": "contacts",
        "account_id": "A1",
        "opportunity_id": item.opportunity_id,
        "contact_ids": ["C2"],
        "lead_ids": [],
        "locked": [],
        "decided_at": "2026-03-10T08:01:00+00:00",
        "written_at": None,
        "error": None,
    }
    assert item.opportunity_id is not None
    (dead,) = ops.calls_list(world, "acme", status="dead").items
    assert dead.error == "ringover: 403"


def test_a_page_that_filters_out_many_calls_stops_at_its_budget_with_a_cursor(
    world: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "SCAN_BUDGET", 3)
    first = ops.calls_list(world, "acme", status="written")
    assert first.items == [] and first.next_cursor is not None and first.scanned == 3
    assert [call for page in every_page(world, "acme", 50, status="written") for call in page] == [
        "ringover:2"
    ]


@pytest.mark.parametrize(
    "filters, field",
    [
        ({"status": "finished"}, "status"),
        ({"case": "maybe"}, "case"),
        ({"provider": "skype"}, "provider"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-03-10T08:00:00"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b'["x", 1]').decode()}, "cursor"),
    ],
)
def test_a_bad_filter_is_refused_by_its_field(world: Pipeline, filters: dict[str, Any], field: str) -> None:
    with pytest.raises(ops.OpsError) as refused:
        ops.calls_list(world, "acme", **filters)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ") and "--" not in str(refused.value)


# the command line ---------------------------------------------------------------------------


@pytest.fixture()
def cli(redis_url: str, redis_client: Any, tenants_path: Path) -> Run:
    env = {**os.environ, "CALLMATCH_REDIS_URL": redis_url, "CALLMATCH_TENANTS": str(tenants_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CALLMATCH, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    return run


def test_calls_list_on_the_command_line(cli: Run, world: Pipeline) -> None:
    proc = cli("calls", "list", "--tenant", "acme", "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[2] for line in lines[:3]] == NEWEST_FIRST[:3]
    assert lines[1].startswith("2026-03-11T08:00:00Z  acme  ringover:7  dead  -")
    assert lines[-1].startswith("3 call(s); more with --cursor ")
    cursor = lines[-1].rsplit(" ", 1)[1]
    rest = json.loads(cli("calls", "list", "--tenant", "acme", "--cursor", cursor, "--json").stdout)
    assert [item["call_id"] for item in rest["items"]] == NEWEST_FIRST[3:] and rest["next_cursor"] is None

    written = cli("calls", "list", "--tenant", "acme", "--status", "written", "--has-opportunity", "yes")
    assert written.stdout.splitlines()[-1] == "1 call(s)"
    assert "  ringover:2  written  contacts  opportunity O" in written.stdout
    by_provider = json.loads(
        cli("calls", "list", "--provider", "aircall", "--until", "2026-03-10", "--json").stdout
    )
    assert [i["call_id"] for i in by_provider["items"]] == [
        *NEWEST_FIRST[2:5],
        "aircall:9",
        "aircall:3",
        "aircall:1",
    ]


@pytest.mark.parametrize(
    "args, said",
    [
        (
            ("--since", "2026-13-01"),
            "callmatch calls: since: '2026-13-01' is not a date (YYYY-MM-DD) or an ISO-8601 date-time\n",
        ),
        (("--cursor", "x"), "callmatch calls: cursor: not a cursor a listing gave\n"),
        (("--tenant", "nope"), "callmatch calls: unknown tenant 'nope'\n"),
    ],
)
def test_calls_list_refusals_are_one_line(
    cli: Run, world: Pipeline, args: tuple[str, ...], said: str
) -> None:
    proc = cli("calls", "list", *args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", said)


def test_calls_list_usage_errors(cli: Run) -> None:
    for args in (("--status", "finished"), ("--limit", "0"), ("--has-opportunity", "maybe")):
        proc = cli("calls", "list", *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stdout == ""


def test_status_sets_follow_every_call(world: Pipeline) -> None:
    assert world.store.status_counts("acme") == {
        "received": 3 + 1,
        "fetched": 0,
        "decided": 2,
        "written": 1,
        "dead": 1,
    }
    assert world.store.status_counts("beta") == dict.fromkeys([s.value for s in CallStatus], 0) | {
        "received": 1
    }
