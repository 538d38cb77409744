"""Rate-limit waits as the Health page reads them: the metrics' counter, by tenant and stage."""

from __future__ import annotations

from worker.core.observability import RATE_LIMITED
from worker.ops.console.figures import rate_limit_waits


def test_waits_are_counted_per_tenant_and_stage() -> None:
    before = rate_limit_waits("figures-tenant")
    RATE_LIMITED.labels(tenant="figures-tenant", stage="associate").inc()
    RATE_LIMITED.labels(tenant="figures-tenant", stage="associate").inc()
    RATE_LIMITED.labels(tenant="figures-tenant", stage="write").inc()
    RATE_LIMITED.labels(tenant="figures-other", stage="write").inc()
    after = rate_limit_waits("figures-tenant")
    assert after.by_stage.get("associate", 0) - before.by_stage.get("associate", 0) == 2
    assert after.by_stage.get("write", 0) - before.by_stage.get("write", 0) == 1
    assert after.total - before.total == 3
