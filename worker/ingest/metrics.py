"""Receiver metrics: deliveries by outcome and acknowledgement latency, per tenant and provider."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOKS = Counter(
    "callmatch_webhooks_total",
    "Webhook deliveries answered, by outcome (accepted, duplicate, ignored, challenge, refused_4xx, unavailable)",
    ["tenant", "provider", "outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "callmatch_webhook_seconds",
    "Time from request to acknowledgement",
    ["provider"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def count(tenant: str, provider: str, outcome: str, n: int = 1) -> None:
    if n > 0:
        WEBHOOKS.labels(tenant=tenant, provider=provider, outcome=outcome).inc(n)
