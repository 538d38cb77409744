"""Figures read from Redis at scrape time, and the counters of known tenants exported at zero.

Queue depth and dead letters are states, not events: a counter in one process cannot
know them, Redis can. They are read when Prometheus scrapes (a custom collector), so
every process serving /metrics shows the same figures. Counters of a tenant that has
seen no event yet are exported at 0, so that `rate()` and alerts work from the start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from adapters.errors import ResponseAction
from worker.config.tenants import Tenants
from worker.core.model import Case
from worker.core.observability import (
    API_FAILURES,
    ASSOCIATIONS,
    CRM_REQUESTS,
    DEAD_LETTERS,
    EVENTS_IN,
    RATE_LIMITED,
    RETRIES,
    STAGE_SECONDS,
    WRITES,
)
from worker.ingest.metrics import WEBHOOKS
from worker.pipeline.celery_app import QUEUE, queue_keys
from worker.pipeline.store import (
    PREFIX,
    RECORD_TTL_SECONDS,
    CallStatus,
    CallStore,
    Stage,
    status_key,
    unmember,
)

QUEUES = (QUEUE,)
"""The Celery queues callmatch sends to (one today; a list so that a second one is counted too)."""
UNACKED = "unacked"
"""kombu's hash of the messages a worker holds and has not acknowledged."""
WEBHOOK_OUTCOMES = ("accepted", "duplicate", "ignored", "unavailable", "refused_400", "refused_401")
"""The webhook outcomes exported at zero (the other refusals appear when they happen)."""
log = logging.getLogger("callmatch.metrics")


class RedisGauges(Collector):
    """`callmatch_queue_depth{queue}`, `callmatch_tasks_in_flight`, `callmatch_dead_letters_waiting{tenant}`
    and `callmatch_calls{tenant,status}`, read from Redis at each scrape; `callmatch_redis_up` says
    whether it answered (when not, the other gauges are left out rather than shown as 0).
    """

    def __init__(self, client: redis.Redis, tenants: Callable[[], Tenants]):
        self.redis = client
        self.tenants = tenants

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("callmatch_redis_up", "1 when Redis answered this scrape, else 0")
        try:
            families = self._read()
        except redis.RedisError as exc:
            log.warning("metrics: Redis did not answer the scrape (%s)", type(exc).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    def _read(self) -> list[Metric]:
        names = sorted(self.tenants().tenants)
        CallStore(self.redis).index_statuses()  # once after an upgrade: records kept before the sets
        oldest = time.time() - RECORD_TTL_SECONDS
        with self.redis.pipeline(transaction=False) as pipe:
            for queue in QUEUES:
                for key in queue_keys(queue):
                    pipe.llen(key)
            pipe.hlen(UNACKED)
            pipe.zrange(f"{PREFIX}:dead", 0, -1)
            for name in names:
                for status in CallStatus:
                    pipe.zcount(status_key(name, status), oldest, "+inf")
            answers: list[Any] = pipe.execute()
        depth = GaugeMetricFamily("callmatch_queue_depth", "Tasks waiting in the queue", labels=["queue"])
        steps = len(queue_keys())
        for index, queue in enumerate(QUEUES):  # every priority's list (live and backfill) counts
            depth.add_metric([queue], sum(int(n) for n in answers[index * steps : (index + 1) * steps]))
        answers = answers[len(QUEUES) * steps :]
        in_flight = GaugeMetricFamily(
            "callmatch_tasks_in_flight", "Tasks held by workers and not yet acknowledged"
        )
        in_flight.add_metric([], int(answers[0]))
        dead = dict.fromkeys(names, 0)
        for member in answers[1]:
            tenant = unmember(member)[0]
            dead[tenant] = dead.get(tenant, 0) + 1
        letters = GaugeMetricFamily(
            "callmatch_dead_letters_waiting", "Dead letters waiting for a replay", labels=["tenant"]
        )
        for tenant, n in sorted(dead.items()):
            letters.add_metric([tenant], n)
        calls = GaugeMetricFamily("callmatch_calls", "Calls kept, by status", labels=["tenant", "status"])
        counts = answers[2:]
        for i, name in enumerate(names):
            for j, status in enumerate(CallStatus):
                calls.add_metric([name, status.value], int(counts[i * len(CallStatus) + j]))
        return [depth, in_flight, letters, calls]


def zero_counters(tenants: Tenants, *, receiver: bool = False) -> None:
    """Every label set a known tenant will use, created at 0 (creating one twice changes nothing)."""
    stages = [stage.value for stage in Stage]
    actions = sorted({action.value for action in ResponseAction} - {"success"})
    for stage in stages:
        STAGE_SECONDS.labels(stage=stage)
    crms = set()
    for name, tenant in tenants.tenants.items():
        crms.add(tenant.crm.kind)
        for provider in tenant.providers:
            EVENTS_IN.labels(tenant=name, provider=provider)
            if receiver:
                for outcome in WEBHOOK_OUTCOMES:
                    WEBHOOKS.labels(tenant=name, provider=provider, outcome=outcome)
        for case in Case:
            ASSOCIATIONS.labels(tenant=name, case=case.value)
        CRM_REQUESTS.labels(tenant=name, crm=tenant.crm.kind)
        for created in ("true", "false"):
            WRITES.labels(tenant=name, created=created)
        for stage in stages:
            RATE_LIMITED.labels(tenant=name, stage=stage)
            DEAD_LETTERS.labels(tenant=name, stage=stage)
            for action in actions:
                RETRIES.labels(tenant=name, stage=stage, action=action)
    for service in sorted(crms - {"scenario"}):
        for action in actions:
            for will_retry in ("true", "false"):
                API_FAILURES.labels(service=service, action=action, will_retry=will_retry)
