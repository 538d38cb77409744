"""Logs never show emails, phone numbers or secrets; metrics are exposed."""

from __future__ import annotations

import json
import logging

import pytest

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


def test_call_ids_stay_whole_while_phones_next_to_them_are_masked() -> None:
    """`ringover:8391047621` is an id to match with `callmatch explain`, not a phone number."""
    text = redact(
        "enqueued demo/ringover ringover:8391047621 call organizer=rep@ourco.com participants=[+33 6 12 34 56 78]"
        " then aircall:5512345621, zoom:Ab12/345678901== and W-teams:0a1b-2c3d-44444444-5555"
    )
    assert "ringover:8391047621" in text and "aircall:5512345621," in text
    assert "zoom:Ab12/345678901==" in text and "teams:0a1b-2c3d-44444444-5555" in text
    assert "+33 6 12" not in text and "***78" in text and "rep@ourco.com" not in text
    assert redact("call tel:+33612345678") == "call tel:***78", (
        "a prefix that is no provider's masks the number"
    )


def test_fields_named_as_ids_keep_their_digits_but_never_an_email() -> None:
    record = logging.LogRecord("callmatch", logging.INFO, __file__, 1, "stage done", (), None)
    record.call_id = "ringover:8391047621"
    record.account_ids = ["12345678901", "kim@contoso.example"]
    record.phone = "+33 6 12 34 56 78"
    line = json.loads(JsonFormatter().format(record))
    assert line["call_id"] == "ringover:8391047621"
    assert line["account_ids"] == ["12345678901", "k***@contoso.example"]
    assert line["phone"] == "***78"


def test_uvicorns_access_line_is_json_with_secret_parameters_hidden() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        (
            "127.0.0.1:50000",
            "POST",
            "/webhooks/acme/teams?validationToken=s3cr3t&who=kim@contoso.example",
            "1.1",
            200,
        ),
        None,
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "POST /webhooks/acme/teams?validationToken=***&who=k***@contoso.example 200"
    assert (line["method"], line["status"], line["client"]) == ("POST", 200, "127.0.0.1:50000")
    assert "s3cr3t" not in json.dumps(line)


def test_python_warnings_become_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from worker.core.observability import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO")
        warnings.warn("call rep@ourco.com back", UserWarning, stacklevel=1)
        logging.getLogger("uvicorn.error").info("Uvicorn running on http://127.0.0.1:8000")
        err = capsys.readouterr().err.splitlines()
    finally:
        logging.captureWarnings(False)
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in err]
    assert [line["logger"] for line in lines] == ["py.warnings", "uvicorn.error"]
    assert "r***@ourco.com" in lines[0]["message"]


def test_scrape_hooks_and_collectors_are_kept_once_per_name() -> None:
    from prometheus_client.core import GaugeMetricFamily

    from worker.core.observability import _COLLECTORS, add_collector, before_scrape

    class One:
        def __init__(self, value: float) -> None:
            self.value = value

        def collect(self) -> list[GaugeMetricFamily]:
            return [GaugeMetricFamily("callmatch_test_gauge", "a test gauge", value=self.value)]

    calls: list[int] = []
    try:
        add_collector("test", One(1))
        add_collector("test", One(2))
        before_scrape("test", lambda: calls.append(1))
        text = metrics_text().decode()
    finally:
        _COLLECTORS.pop("test", None)
        from worker.core.observability import _BEFORE_SCRAPE

        _BEFORE_SCRAPE.pop("test", None)
    assert text.count("callmatch_test_gauge 2.0") == 1 and "callmatch_test_gauge 1.0" not in text
    assert calls == [1]
