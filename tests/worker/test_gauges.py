"""Queue depth, tasks in flight, dead letters and calls per status, read from a real Redis at scrape time;
known tenants' counters exported at zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest

from tests.conftest import free_port
from tests.worker.test_service import event
from worker.config.tenants import Tenants, parse_tenants
from worker.core.observability import metrics_text
from worker.ops.actions import celery_sender
from worker.pipeline.celery_app import create_celery
from worker.pipeline.gauges import RedisGauges, zero_counters
from worker.pipeline.store import CallStore, Stage
from worker.pipeline.tasks import REFRESH_TASK

ROOT = Path(__file__).resolve().parents[2]


def tenants(*names: str) -> Tenants:
    scenario = str(ROOT / "config" / "examples" / "basic.json")
    tenant = {
        "crm": {"kind": "scenario", "scenario_file": scenario},
        "providers": {"aircall": {"webhook_secret_env": "GAUGE_TEST_TOKEN"}},
    }
    return parse_tenants(
        {"version": 1, "tenants": dict.fromkeys(names, tenant)}, environ={"GAUGE_TEST_TOKEN": "t" * 16}
    )


def scrape(collector: RedisGauges) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_gauges_read_redis_at_each_scrape(redis_url: str, redis_client: Any) -> None:
    store = CallStore(redis_client)
    for n in (1, 2, 3):
        store.create("acme", f"aircall:{n}", event(f"aircall:{n}").to_json())
    store.bury("acme", "aircall:3", Stage.FETCH, "aircall: 403", "fatal")
    store.bury("ghost", "zoom:1", Stage.WRITE, "no record", "fatal")  # a tenant no longer in the file
    send = celery_sender(create_celery(redis_url))
    send(REFRESH_TASK, ["acme", "aircall:1"])
    send(REFRESH_TASK, ["acme", "aircall:2"])
    gauges = RedisGauges(redis_client, lambda: tenants("acme", "beta"))
    text = scrape(gauges)
    assert "callmatch_redis_up 1.0" in text
    assert 'callmatch_queue_depth{queue="callmatch"} 2.0' in text
    assert "callmatch_tasks_in_flight 0.0" in text
    assert 'callmatch_dead_letters_waiting{tenant="acme"} 1.0' in text
    assert 'callmatch_dead_letters_waiting{tenant="beta"} 0.0' in text
    assert 'callmatch_dead_letters_waiting{tenant="ghost"} 1.0' in text
    assert 'callmatch_calls{status="received",tenant="acme"} 2.0' in text
    assert 'callmatch_calls{status="dead",tenant="acme"} 1.0' in text
    assert 'callmatch_calls{status="written",tenant="beta"} 0.0' in text

    redis_client.delete("callmatch")
    store.forget("acme", "aircall:3")
    again = scrape(gauges)
    assert 'callmatch_queue_depth{queue="callmatch"} 0.0' in again
    assert 'callmatch_dead_letters_waiting{tenant="acme"} 0.0' in again


def test_a_scrape_without_redis_says_so_and_fails_nothing() -> None:
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    text = scrape(RedisGauges(nowhere, lambda: tenants("acme")))
    assert "callmatch_redis_up 0.0" in text
    assert "callmatch_queue_depth" not in text, "no figure rather than a false 0"


def test_known_tenants_counters_are_exported_at_zero() -> None:
    zero_counters(tenants("gauge-zero"), receiver=True)
    text = metrics_text().decode()
    for line in (
        'callmatch_events_total{provider="aircall",tenant="gauge-zero"} 0.0',
        'callmatch_associations_total{case="ambiguous",tenant="gauge-zero"} 0.0',
        'callmatch_crm_requests_total{crm="scenario",tenant="gauge-zero"} 0.0',
        'callmatch_dead_letters_total{stage="write",tenant="gauge-zero"} 0.0',
        'callmatch_retries_total{action="rate_limited",stage="fetch",tenant="gauge-zero"} 0.0',
        'callmatch_rate_limited_total{stage="associate",tenant="gauge-zero"} 0.0',
        'callmatch_activities_written_total{created="true",tenant="gauge-zero"} 0.0',
        'callmatch_webhooks_total{outcome="accepted",provider="aircall",tenant="gauge-zero"} 0.0',
    ):
        assert line in text, line
