"""Figures the Health page reads from the metrics, where the call records keep no count.

Rate-limit waits are counted only by `callmatch_rate_limited_total{tenant, stage}`. The
receiver reads it from the same registry its `/metrics` serves: every process's figures
when they share PROMETHEUS_MULTIPROC_DIR (as under `make run`), else its own only, which
the page says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from worker.core.observability import metrics_text

RATE_LIMITED = "callmatch_rate_limited"


@dataclass(frozen=True)
class Waits:
    """Rate-limit waits of one tenant by stage; `shared` says whether other processes' counts are in."""

    by_stage: dict[str, int] = field(default_factory=dict)
    shared: bool = False

    @property
    def total(self) -> int:
        return sum(self.by_stage.values())


def rate_limit_waits(tenant: str) -> Waits:
    """The tenant's rate-limit waits since the processes started (Prometheus counter, by stage)."""
    by_stage: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text().decode("utf-8", "replace")):
        if family.name != RATE_LIMITED:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("tenant") == tenant:
                stage = sample.labels.get("stage", "")
                by_stage[stage] = by_stage.get(stage, 0) + int(sample.value)
    return Waits(by_stage, shared=bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")))
