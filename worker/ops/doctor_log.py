"""The last `doctor` report of each tenant, kept in Redis so that the console's Health page can show it.

`keep` takes a report as `doctor` gives it (`Report.to_json()`: already masked and without
secrets, readiness makes every line safe) with the time it ran. The console keeps each
report it runs; any other caller of doctor (CLI, HTTP API) may keep its own the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import redis

from worker.ops import readiness
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline

KEY = "callmatch:doctor:last:{tenant}"
TTL_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True)
class StoredReport:
    """A doctor report as it was when it ran: `at` (UTC, ISO-8601), `can_run`, the checks as dicts."""

    tenant: str
    at: str
    can_run: bool
    checks: list[dict[str, Any]]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def keep(client: redis.Redis, report: dict[str, Any], at: dt.datetime) -> StoredReport:
    """Keep `report` (`Report.to_json()`) as the tenant's last one."""
    stored = StoredReport(
        tenant=str(report["tenant"]),
        at=at.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        can_run=bool(report["can_run"]),
        checks=list(report["checks"]),
    )
    client.set(KEY.format(tenant=stored.tenant), json.dumps(stored.__dict__), ex=TTL_SECONDS)
    return stored


def last(client: redis.Redis, tenant: str) -> StoredReport | None:
    """The tenant's last kept report, or None when doctor never ran (or ran over 30 days ago)."""
    raw = client.get(KEY.format(tenant=tenant))
    if raw is None:
        return None
    data = json.loads(_text(raw))
    return StoredReport(
        tenant=str(data["tenant"]),
        at=str(data["at"]),
        can_run=bool(data["can_run"]),
        checks=list(data["checks"]),
    )


def run_doctor(
    pipeline: Pipeline, tenant: str, factory: CrmFactory, client: redis.Redis, now: dt.datetime | None = None
) -> StoredReport:
    """Doctor for one tenant, kept as its last report."""
    config = pipeline.tenant(tenant)
    report = readiness.doctor(config, factory, redis_client=client)
    return keep(client, report.to_json(), now or dt.datetime.now(dt.UTC))
