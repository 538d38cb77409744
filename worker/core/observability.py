"""JSON logs that never show an email or a phone number, and the pipeline's Prometheus metrics.

Logs carry tenant, call id and stage as fields; ids (call ids included) stay readable, so a
log line can be matched to `callmatch explain`. Every line is JSON, uvicorn's and Python
warnings included. Metrics work across Celery's prefork children through prometheus_client's
multiprocess mode: PROMETHEUS_MULTIPROC_DIR, which the worker makes when it is unset.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client import values as prometheus_values
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from adapters.retry import RetryEvent, add_listener
from worker.config.settings import settings
from worker.core.normalize import mask_email, mask_phone

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w-])\+?\(?\d[\d ().\-]{6,}\d(?![\w-])")
_NOT_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,3}(\.\d{1,3}){3}\b")
_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|session|api[_-]?key)", re.IGNORECASE)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
CALL_ID_PROVIDERS = ("aircall", "ringover", "zoom", "google_meet", "teams")
"""The prefixes of call ids (`ringover:8391047621`): what follows is an id, never a phone number."""
_CALL_ID = re.compile(rf"\b(?:{'|'.join(CALL_ID_PROVIDERS)}):[^\s\"'<>()\[\]{{}},;]+")
_ID_KEYS = re.compile(r"(^|_)ids?$", re.IGNORECASE)


def _mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: m.group(0) if _NOT_PHONE.match(m.group(0)) else mask_phone(m.group(0)), text)


def redact(text: str) -> str:
    """Emails and phone-like digit runs masked, call ids kept whole; what is left is safe to keep in logs."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    out: list[str] = []
    at = 0
    for match in _CALL_ID.finditer(text):  # digits inside a call id are an id: left as they are
        out += [_mask_phones(text[at : match.start()]), match.group(0)]
        at = match.end()
    out.append(_mask_phones(text[at:]))
    return "".join(out)


def _safe(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return "***"
    if isinstance(value, str):
        # A field named as an id (`call_id`, `account_ids`) holds ids: emails masked, digits kept.
        return _EMAIL.sub(lambda m: mask_email(m.group(0)), value) if _ID_KEYS.search(key) else redact(value)
    if isinstance(value, dict):
        return {k: _safe(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(key, v) for v in value]
    return value


def _safe_target(target: str) -> str:
    """A request's path and query for a log line: values of secret-named parameters replaced."""
    path, _, query = target.partition("?")
    if not query:
        return redact(path)
    pairs = [
        (key, "***" if _SECRET_KEYS.search(key) else value)
        for key, value in parse_qsl(query, keep_blank_values=True)
    ]
    shown = "&".join(f"{k}={v}" for k, v in pairs)
    return redact(f"{path}?{shown}")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            # uvicorn's access line: (client, method, path with query, HTTP version, status)
            client, method, target, _, status = args
            entry.update(
                message=f"{method} {_safe_target(str(target))} {status}",
                client=str(client),
                method=str(method),
                path=_safe_target(str(target)),
                status=status,
            )
        else:
            entry["message"] = redact(record.getMessage())
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _safe(key, value)
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(level: str | None = None) -> dict[str, Any]:
    """The `logging.config` of every callmatch process: one JSON handler on stderr, at the root.

    Also uvicorn's `log_config`, so that its own lines (start-up, errors, access) are JSON too:
    its loggers keep no handler of their own and pass their records to the root's.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": (level or settings().log_level).upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(level: str | None = None) -> None:
    """JSON to stderr for every callmatch process; CALLMATCH_LOG_LEVEL sets the level.

    Python warnings (Celery's, a library's deprecations) become log records, hence JSON lines too.
    """
    logging.config.dictConfig(logging_config(level))
    # Off then on: `captureWarnings(True)` does nothing when an earlier capture (Celery's own
    # logging set-up) was left half-undone by a `warnings.catch_warnings` block.
    logging.captureWarnings(False)
    logging.captureWarnings(True)


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
    "Time spent in one pipeline stage, per call (a batch counts each of its calls with its share)",
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
def timed(stage: str, calls: int = 1) -> Iterator[None]:
    """One observation per call: a batch of `calls` counts each call once, with its share of the time.

    So the histogram's count stays the number of calls a stage handled and its sum the time
    spent, batched or not.
    """
    started = time.perf_counter()
    try:
        yield
    finally:
        if calls > 0:
            share = (time.perf_counter() - started) / calls
            histogram = STAGE_SECONDS.labels(stage=stage)
            for _ in range(calls):
                histogram.observe(share)


_BEFORE_SCRAPE: dict[str, Callable[[], None]] = {}
_COLLECTORS: dict[str, Collector] = {}
log = logging.getLogger("callmatch.metrics")


def before_scrape(name: str, hook: Callable[[], None]) -> None:
    """Run `hook` at every scrape, before the figures are read (labels set to zero for known tenants).

    One hook per name: an app built twice in a process replaces its hook, never doubles it.
    """
    _BEFORE_SCRAPE[name] = hook


def add_collector(name: str, collector: Collector) -> None:
    """Figures read at scrape time (queue depth and dead letters from Redis) on every /metrics; one per name."""
    _COLLECTORS[name] = collector


class _Scrape(Collector):
    """The hooks, then every process's figures in multiprocess mode (else this one's), then the collectors."""

    def collect(self) -> Iterable[Metric]:
        for hook in list(_BEFORE_SCRAPE.values()):
            try:
                hook()
            except Exception as exc:  # a scrape never fails for a hook: the figures are still served
                log.warning("metrics hook failed: %s", type(exc).__name__)
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        for collector in list(_COLLECTORS.values()):
            yield from collector.collect()


def scrape_registry() -> CollectorRegistry:
    """What the receiver's /metrics and the worker's metrics port serve."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape())
    return registry


def metrics_text() -> bytes:
    """The exposition for /metrics: every process's figures in multiprocess mode, else this one's."""
    return generate_latest(scrape_registry())


def ensure_multiprocess_dir() -> str | None:
    """Make sure the figures of forked processes add up: PROMETHEUS_MULTIPROC_DIR, made here when unset.

    Returns the directory made (the caller removes it at exit), None when one was given.
    Must run before the first figure is recorded in this process (a Celery worker's
    `worker_init`, before the pool forks): figures recorded earlier stay in this process only.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    path = tempfile.mkdtemp(prefix="callmatch-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    prometheus_values.ValueClass = prometheus_values.get_value_class()  # type: ignore[no-untyped-call]
    return path
