"""The end-to-end benchmarks' harness starts the real stack and measures a call (make bench must not rot)."""

from __future__ import annotations

from tests.bench_e2e import bench_stack, latencies, send_calls, written_times


def test_the_bench_harness_measures_one_call_from_webhook_to_written() -> None:
    with bench_stack(["bench"], concurrency=1, latency=0.0) as bench:
        sent, failures = send_calls(bench, "bench", 1, rate=10, seconds=0.1)
        written, _ = written_times(bench.client, "bench", sent, timeout=30)
        result = latencies(sent, written, failures)
        api_calls = bench.emulator.stats.api_calls
    assert list(sent) == ["aircall:1"]
    assert result.written == 1 and result.failures == 0
    assert 0 < result.p50 == result.p99 < 30
    assert api_calls > 0  # the call was associated and written through the emulated CRM
