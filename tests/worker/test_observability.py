"""Logs never show emails, phone numbers or secrets; metrics are exposed."""

from __future__ import annotations

import json
import logging

from worker.core.observability import ASSOCIATIONS, JsonFormatter, metrics_text, redact, timed


def test_redact_masks_emails_and_phones_but_keeps_dates_and_ids() -> None:
    text = redact(
        "jane.doe@acme.example called +33 6 12 34 56 78 and (212) 555-0199 on 2026-03-10 for order 12345"
    )
    assert "jane.doe" not in text and "612345" not in text and "555-0199" not in text
    assert "j***@acme.example" in text and "2026-03-10" in text and "12345" in text
    assert redact("Connected to redis://127.0.0.1:6379/0") == "Connected to redis://127.0.0.1:6379/0"


def test_json_log_lines_carry_fields_masked() -> None:
    record = logging.LogRecord(
        "callmatch", logging.INFO, __file__, 1, "matched %s", ("kim@contoso.example",), None
    )
    record.tenant = "acme"
    record.call_id = "zoom:1"
    record.phone = "+1 212 555 0199"
    record.access_token = "abc123"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "matched k***@contoso.example"
    assert (line["tenant"], line["call_id"]) == ("acme", "zoom:1")
    assert "555" not in line["phone"] and line["access_token"] == "***"


def test_metrics_exposition_names_the_counters() -> None:
    ASSOCIATIONS.labels(tenant="acme", case="contacts").inc()
    with timed("associate"):
        pass
    text = metrics_text().decode()
    assert 'callmatch_associations_total{case="contacts",tenant="acme"}' in text
    assert 'callmatch_stage_seconds_bucket{le="0.005",stage="associate"}' in text


def test_api_failures_inside_adapters_are_counted() -> None:
    from adapters.errors import RateLimitedError
    from adapters.retry import call_with_retries

    failures = [RateLimitedError("hubspot", "429 TEN_SECONDLY_ROLLING", retry_after=0.0)]

    def flaky() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    assert call_with_retries(flaky, service="hubspot:acme", sleep=lambda _: None) == "ok"
    text = metrics_text().decode()
    assert 'callmatch_api_failures_total{action="rate_limited",service="hubspot",will_retry="true"}' in text
