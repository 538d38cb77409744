"""JSON logs that never show an email or a phone number, and the pipeline's Prometheus metrics.

Logs carry tenant, call id and stage as fields. Metrics work across Celery's
prefork children through prometheus_client's multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (the worker's launcher sets it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from adapters.retry import RetryEvent, add_listener
from worker.config.settings import settings
from worker.core.normalize import mask_email, mask_phone

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w-])\+?\(?\d[\d ().\-]{6,}\d(?![\w-])")
_NOT_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,3}(\.\d{1,3}){3}\b")
_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|session|api[_-]?key)", re.IGNORECASE)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    """Emails and phone-like digit runs masked; what is left is safe to keep in logs."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE.sub(lambda m: m.group(0) if _NOT_PHONE.match(m.group(0)) else mask_phone(m.group(0)), text)


def _safe(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return "***"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _safe(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(key, v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _safe(key, value)
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str | None = None) -> None:
    """JSON to stderr for every callmatch process; CALLMATCH_LOG_LEVEL sets the level."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or settings().log_level).upper())


EVENTS_IN = Counter(
    "callmatch_events_total", "Call-ended events accepted by the worker", ["tenant", "provider"]
)
ASSOCIATIONS = Counter("callmatch_associations_total", "Associations decided, by case", ["tenant", "case"])
CRM_REQUESTS = Counter("callmatch_crm_requests_total", "CRM API requests sent", ["tenant", "crm"])
RATE_LIMITED = Counter(
    "callmatch_rate_limited_total", "Responses that said to slow down (429, limits)", ["tenant", "stage"]
)
RETRIES = Counter("callmatch_retries_total", "Stage retries scheduled", ["tenant", "stage", "action"])
DEAD_LETTERS = Counter("callmatch_dead_letters_total", "Calls kept as dead letters", ["tenant", "stage"])
WRITES = Counter(
    "callmatch_activities_written_total", "CRM activities written (created or updated)", ["tenant", "created"]
)
API_FAILURES = Counter(
    "callmatch_api_failures_total",
    "Failed external API attempts by what to do: retry, rate_limited (429 and limits), refresh_credentials, fatal",
    ["service", "action", "will_retry"],
)
STAGE_SECONDS = Histogram(
    "callmatch_stage_seconds",
    "Time spent in one pipeline stage",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


def _count_api_failure(event: RetryEvent) -> None:
    service = event.service.split(":", 1)[0]
    API_FAILURES.labels(
        service=service, action=event.action.value, will_retry=str(event.will_retry).lower()
    ).inc()


add_listener(_count_api_failure)


@contextmanager
def timed(stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage=stage).observe(time.perf_counter() - started)


def metrics_text() -> bytes:
    """The exposition for /metrics: every process's figures in multiprocess mode, else this one's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
