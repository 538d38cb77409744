"""`make bench` beside an earlier version: the same scenarios parsed and decided by both, side by side.

The earlier version is a git commit checked out in a worktree (made once, kept under
the system's temp directory). Both sides run in their own processes, alternately, on
the same generated files, and the best of `--rounds` runs is printed:

- parse + validate: JSON documents -> scenarios (the scenario reader);
- rules alone: `apply_rules` on parsed scenarios (the engine);
- through the port: `decide_scenario` (reads round by round through the file-backed CRM);
- decide per file, in process: what the command does for each file (read, parse, unknown keys,
  decide, output line), without the process's start-up;
- `callmatch decide`: the command over every file in one process, start-up included.

    python -m tests.bench_compare [--against SHA] [--count 5000] [--rounds 3]

Defaults: rules v1 (`V1_ENGINE`, the last commit before rules v1.1) on 5,000 scenarios
with every v1.1 key off (the generator writes v1 documents). Figures, never asserted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.scenario_gen import generate_scenarios

ROOT = Path(__file__).resolve().parents[1]
V1_ENGINE = "dd9f7f2"
"""The last commit of rules v1 (the schemas issue done, before rules v1.1)."""
BEFORE_SCHEMAS = "63625fc"
"""The last commit with the hand-written readers (before the declared schemas)."""

# Runs inside one tree: module paths moved when worker/ was laid out by role.
_SIDE = r"""
import glob, json, sys, time
from pathlib import Path
tree, folder, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, tree)
new = Path(tree, "worker", "config", "scenario.py").exists()
if new:
    from worker.config.scenario import loads_document, parse_scenario
    from worker.pipeline.association import decide_scenario
    def read_file(data):
        document = loads_document(data)
        document.unknown_keys()
        return document.to_scenario()
else:
    from worker.scenario import loads_scenario as read_file, parse_scenario
    from worker.association import decide_scenario
from worker.engine.rules import apply_rules
paths = sorted(glob.glob(folder + "/*.json"))
docs = [json.loads(Path(p).read_bytes()) for p in paths]
def files():
    for path in paths:  # what `callmatch decide` does per file, in the process
        line = json.dumps(decide_scenario(read_file(Path(path).read_bytes())).to_json(), ensure_ascii=False)
        line.encode("utf-8")
def best(work):
    fastest = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        fastest = min(fastest, time.perf_counter() - started)
    return len(docs) / fastest
scenarios = [parse_scenario(d) for d in docs]
print(json.dumps({
    "parse": best(lambda: [parse_scenario(d) for d in docs]),
    "rules": best(lambda: [apply_rules(s.call, s.policy, s.crm, s.previous) for s in scenarios]),
    "port": best(lambda: [decide_scenario(s) for s in scenarios]),
    "files": best(files),
}))
"""


def worktree(sha: str) -> Path:
    """The commit checked out beside this one (made once)."""
    path = Path(tempfile.gettempdir()) / f"callmatch-bench-{sha}"
    if not (path / "worker").is_dir():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--force", "--detach", str(path), sha],
            check=True,
            capture_output=True,
        )
    return path


def _cli_module(tree: Path) -> str:
    return "worker.ops.cli" if (tree / "worker" / "ops" / "cli.py").exists() else "worker.cli"


def _side(tree: Path, folder: Path, rounds: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _SIDE, str(tree), str(folder), str(rounds)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _decide(tree: Path, files: list[str]) -> float:
    """`callmatch decide` over every file, in one process (start-up included), as decisions per second."""
    script = f"import sys; sys.path.insert(0, {str(tree)!r}); from {_cli_module(tree)} import main; sys.exit(main())"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, "decide", *files], cwd=tree, capture_output=True, check=False
    )
    seconds = time.perf_counter() - started
    return done.stdout.count(b"\n") / seconds


def _start_up(tree: Path, file: str) -> float:
    """`callmatch decide` on one file, start to exit, in milliseconds: the process's fixed cost."""
    script = f"import sys; sys.path.insert(0, {str(tree)!r}); from {_cli_module(tree)} import main; sys.exit(main())"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, "decide", file], cwd=tree, capture_output=True, check=False)
    return (time.perf_counter() - started) * 1000


def compare(against: str, count: int, rounds: int, seed: int = 1) -> None:
    other = worktree(against)
    with tempfile.TemporaryDirectory(prefix="callmatch-bench-") as folder:
        files = []
        for index, document in enumerate(generate_scenarios(count, seed)):
            path = Path(folder) / f"s{index:05d}.json"
            path.write_text(json.dumps(document))
            files.append(str(path))
        best: dict[str, dict[str, float]] = {"then": {}, "now": {}}
        for _ in range(rounds):  # alternate, so that a busy moment slows both sides alike
            for side, tree in (("then", other), ("now", ROOT)):
                figures = _side(tree, Path(folder), 2)  # the first run of each warms its caches
                figures["decide"] = _decide(tree, files)
                for name, rate in figures.items():
                    best[side][name] = max(best[side].get(name, 0.0), rate)
                one = min(_start_up(tree, files[0]) for _ in range(3))
                best[side]["one"] = min(best[side].get("one", one), one)
    print(f"beside {against} ({count:,} generated scenarios, seed {seed}, v1.1 keys off; best of {rounds}):")
    print(f"  {'':28} {against:>12} {'now':>12}  now/then")
    labels = {
        "parse": "parse + validate",
        "rules": "rules alone (apply_rules)",
        "port": "through the port",
        "files": "decide per file, in process",
        "decide": "callmatch decide (process)",
    }
    for name, label in labels.items():
        then, now = best["then"][name], best["now"][name]
        print(f"  {label:28} {then:>10,.0f}/s {now:>10,.0f}/s  {now / then:6.2f}")
    then, now = best["then"]["one"], best["now"]["one"]
    print(f"  {'callmatch decide, one file':28} {then:>10,.0f}ms {now:>10,.0f}ms  {then / now:6.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_compare")
    parser.add_argument("--against", default=V1_ENGINE, help=f"a commit (default {V1_ENGINE}: rules v1)")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        compare(args.against, args.count, args.rounds)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        print(f"beside {args.against}: unavailable ({exc}); a git checkout with that commit is needed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
