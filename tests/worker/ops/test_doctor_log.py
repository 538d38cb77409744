"""Doctor's last report per tenant, kept for the console's Health page."""

from __future__ import annotations

import datetime as dt

from tests.worker.ops.conftest import World
from worker.ops import doctor_log
from worker.pipeline.crm_factory import CrmFactory

AT = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)


def test_a_run_is_kept_per_tenant_and_read_back(world: World) -> None:
    assert doctor_log.last(world.redis, "a") is None
    kept = doctor_log.run_doctor(world.pipeline, "a", CrmFactory(world.redis), world.redis, now=AT)
    assert kept.at == "2026-03-10T09:30:00Z" and kept.can_run
    assert [c["name"] for c in kept.checks][:2] == ["redis", "crm.scenario"]
    assert doctor_log.last(world.redis, "a") == kept
    assert doctor_log.last(world.redis, "b") is None
    assert 0 < world.redis.ttl(doctor_log.KEY.format(tenant="a")) <= doctor_log.TTL_SECONDS


def test_a_later_report_replaces_the_earlier_one(redis_client) -> None:
    failing = {"tenant": "a", "can_run": False, "checks": [{"name": "crm.scenario", "status": "fail"}]}
    doctor_log.keep(redis_client, failing, AT)
    fixed = {"tenant": "a", "can_run": True, "checks": [{"name": "crm.scenario", "status": "ok"}]}
    doctor_log.keep(redis_client, fixed, AT + dt.timedelta(hours=1))
    last = doctor_log.last(redis_client, "a")
    assert last is not None and last.can_run and last.at == "2026-03-10T10:30:00Z"
    assert last.checks == fixed["checks"]
