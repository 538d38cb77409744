"""`make bench`: figures, printed, never asserted.

Engine alone (pure rules over parsed scenarios), the association service through
the file-backed port (with the reads it costs), and `callmatch decide` over N
generated scenario files in one process. Further sections come from the adapter and
ingestion benchmarks when they are present.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adapters.crm.scenario import ScenarioCrm
from tests.scenario_gen import generate_scenarios
from worker.config.scenario import parse_scenario
from worker.engine.rules import apply_rules
from worker.pipeline.association import associate

SECTIONS = (
    "tests.bench_salesforce",
    "tests.adapters.crm.salesforce.cost_by_profile",
    "tests.bench_hubspot",
    "tests.adapters.crm.hubspot.cost_by_profile",
    "tests.bench_ingest",
    "tests.bench_ratelimit",
    "tests.bench_e2e",
    "tests.bench_fairness",
    "tests.bench_reassociate",
)


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({seconds:.2f} s for {count:,})"


def bench_engine(count: int, seed: int) -> None:
    documents = generate_scenarios(count, seed)
    started = time.perf_counter()
    scenarios = [parse_scenario(d) for d in documents]
    parse_seconds = time.perf_counter() - started

    started = time.perf_counter()
    for s in scenarios:
        apply_rules(s.call, s.policy, s.crm, s.previous)
    engine_seconds = time.perf_counter() - started

    rounds: list[int] = []
    requests: list[int] = []
    started = time.perf_counter()
    for s in scenarios:
        port = ScenarioCrm(s.crm, s.policy.default_region)
        associate(s.call, s.policy, port, s.previous)
        rounds.append(port.stats.rounds)
        requests.append(port.stats.requests)
    service_seconds = time.perf_counter() - started

    print(f"engine: {count:,} generated scenarios (seed {seed})")
    print(f"  parse + validate             {_rate(count, parse_seconds)}")
    print(f"  rules alone (apply_rules)    {_rate(count, engine_seconds)}")
    print(f"  through the port (associate) {_rate(count, service_seconds)}")
    print(
        f"  reads per association        rounds mean {statistics.mean(rounds):.2f} max {max(rounds)};"
        f" batch requests mean {statistics.mean(requests):.2f} max {max(requests)}"
    )


def bench_cli(count: int, seed: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="callmatch-bench-"))
    try:
        paths = []
        for index, document in enumerate(generate_scenarios(count, seed)):
            path = workdir / f"s{index:05d}.json"
            path.write_text(json.dumps(document))
            paths.append(str(path))
        exe = shutil.which("callmatch", path=str(Path(sys.executable).parent)) or "callmatch"
        started = time.perf_counter()
        proc = subprocess.run([exe, "decide", *paths], capture_output=True, check=False)
        seconds = time.perf_counter() - started
        lines = proc.stdout.count(b"\n")
        print(f"callmatch decide: {count:,} scenario files in one process")
        print(f"  decisions                    {_rate(lines, seconds)}; exit {proc.returncode}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--count", type=int, default=int(os.environ.get("BENCH_COUNT", "10000")))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("engine", "all"), default="all")
    args = parser.parse_args(argv)
    print(f"callmatch bench on {os.cpu_count()} cores, Python {sys.version.split()[0]}\n")
    bench_engine(args.count, args.seed)
    print()
    bench_cli(args.count, args.seed)
    from tests import bench_compare

    for against in (bench_compare.V1_ENGINE, bench_compare.BEFORE_SCHEMAS):
        print()
        # The same 10,000 files as the sections above: the command's fixed start-up (pydantic's import
        # and the models, ~0.1 s) weighs on a short run; per-file figures are printed beside it.
        bench_compare.main(["--against", against, "--count", str(min(args.count, 10000))])
    if args.only == "all":
        for name in SECTIONS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError:
                continue
            print()
            module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
