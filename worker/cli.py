"""The `callmatch` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from worker import __version__
from worker.association import decide_scenario
from worker.model import Decision
from worker.scenario import ScenarioError, loads_scenario

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2
STDIN_NAME = "<stdin>"


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def format_text(decision: Decision) -> str:
    """A person's view of a decision: the result first, then the trace rule by rule."""
    lines = [
        f"call {decision.call_id}: {decision.case.value}",
        f"  opportunity: {decision.opportunity_id or '-'}",
        f"  account:     {decision.account_id or '-'}",
        f"  contacts:    {', '.join(decision.contact_ids) or '-'}",
        f"  leads:       {', '.join(decision.lead_ids) or '-'}",
        "  why:",
    ]
    lines += [f"    [{entry.rule}] {entry.message}" for entry in decision.trace]
    return "\n".join(lines)


def decide_files(names: Sequence[str], out: TextIO, err: TextIO, text: bool = False) -> int:
    """scenario-v1 `decide`: one line per valid file in argument order; invalid files named on stderr."""
    status = EXIT_OK
    for name in names:
        shown = STDIN_NAME if name == "-" else name
        try:
            data = _read(name)
        except OSError as exc:
            err.write(f"{shown}: cannot read: {exc.strerror or exc}\n")
            status = max(status, EXIT_INVALID)
            continue
        try:
            decision = decide_scenario(loads_scenario(data))
        except ScenarioError as exc:
            err.write(f"{shown}: {exc}\n")
            status = max(status, EXIT_INVALID)
            continue
        except Exception as exc:  # a bug of ours: say so in one line, keep deciding the others
            err.write(f"{shown}: internal error, please report it: {type(exc).__name__}: {exc}\n")
            status = EXIT_INTERNAL if status == EXIT_OK else status
            continue
        if text:
            out.write(format_text(decision) + "\n\n")
        else:
            out.write(json.dumps(decision.to_json(), ensure_ascii=False) + "\n")
        out.flush()
    return status


def _add_tenant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="the tenant (default: the only one, or the one that has the call)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callmatch",
        description="Link finished calls and meetings to CRM contacts, leads, accounts and opportunities.",
    )
    parser.add_argument("--version", action="version", version=f"callmatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    decide = commands.add_parser(
        "decide",
        help="decide scenario files (scenario-v1) and print one JSON result per line",
        description="Decide each scenario as a live call would be decided; nothing is written to any CRM.",
    )
    decide.add_argument(
        "scenarios", nargs="+", metavar="SCENARIO.json", help="scenario files; '-' reads standard input"
    )
    decide.add_argument(
        "--format",
        choices=("json", "text"),
        default="json",
        help="json: one result per line (the contract); text: the result and its trace for a person",
    )
    explain = commands.add_parser("explain", help="print a call's stored result, trace, status and attempts")
    explain.add_argument("call_id", metavar="CALL_ID")
    explain.add_argument("--json", action="store_true", help="the whole stored record as JSON")
    _add_tenant(explain)

    refresh = commands.add_parser("refresh", help="run the rules again for a call (R1-R4) and write back")
    refresh.add_argument("call_id", metavar="CALL_ID")
    _add_tenant(refresh)

    override = commands.add_parser(
        "override", help="lock a call's account, opportunity or contacts (R2, R4) and write back"
    )
    override.add_argument("call_id", metavar="CALL_ID")
    override.add_argument("--account", dest="account_id")
    override.add_argument("--opportunity", dest="opportunity_id")
    override.add_argument(
        "--contact", dest="contact_ids", action="append", help="repeat for several contacts"
    )
    _add_tenant(override)

    dead = commands.add_parser("dead-letters", help="calls kept after a fatal error or the last retry")
    dead_commands = dead.add_subparsers(dest="dead_command", required=True, metavar="ACTION")
    dead_list = dead_commands.add_parser("list", help="list dead letters with their stage and reason")
    dead_list.add_argument("--json", action="store_true")
    _add_tenant(dead_list)
    dead_replay = dead_commands.add_parser(
        "replay", help="send dead letters back to the stage where they stopped"
    )
    dead_replay.add_argument("call_ids", nargs="*", metavar="CALL_ID")
    dead_replay.add_argument(
        "--all", action="store_true", help="replay every dead letter (of --tenant when given)"
    )
    _add_tenant(dead_replay)

    simulate = commands.add_parser(
        "simulate", help="fetch and associate an event against the live CRM; writes nothing"
    )
    simulate.add_argument(
        "event", metavar="EVENT.json", help="a call-ended event as JSON ('-' reads standard input)"
    )
    simulate.add_argument("--tenant", required=True)
    simulate.add_argument("--format", choices=("json", "text"), default="text")

    status = commands.add_parser("status", help="queue depths, in-flight tasks, dead letters, CRM budgets")
    status.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "decide":
        return decide_files(args.scenarios, sys.stdout, sys.stderr, text=args.format == "text")
    from worker.opscli import run_ops

    return run_ops(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
