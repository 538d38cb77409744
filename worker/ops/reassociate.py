"""`callmatch reassociate`: the rules again on a tenant's past calls, after a settings change.

    callmatch reassociate --tenant acme --since 30d --dry-run   # what would change, nothing written
    callmatch reassociate --tenant acme --since 30d             # apply it (refresh path, write-back)
    callmatch reassociate --tenant acme --resume [RUN]          # continue a run that was stopped
    callmatch reassociate --tenant acme --list                  # the tenant's runs and their progress

The work is done in this process, call by call (decide, then write when changed), with a
progress bar on a terminal and plain progress lines on standard error otherwise; the summary
goes to standard output (`--json`: one JSON object). The console's API starts the same run in
the background instead (`POST /api/v1/tenants/{tenant}/reassociate`).
Exit codes: 0 done, 1 some calls failed (each listed), 2 a usage error, 3 Redis or the CRM
unreachable, 130 interrupted (the run is kept: `--resume` continues it).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, TextIO

from worker.ops.output import EXIT_FAILED, EXIT_INTERNAL, EXIT_INVALID, EXIT_OK

EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130
FLAGS = {"since": "--since", "run_id": "--resume", "tenant": "--tenant"}


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def add_reassociate_parser(commands: Any) -> None:
    """The `reassociate` command on the CLI's subcommands."""
    parser = commands.add_parser(
        "reassociate",
        help="run the rules again on a tenant's past calls (after a settings change), with a summary",
        description="Decides again every call of the tenant whose call started or ended within --since "
        "(people's locks and removals kept, as a refresh does), writes back the calls whose result "
        "changed, and prints what changed per case and per field. Progress is kept in Redis: a run "
        "stopped by Ctrl-C or a killed process continues with --resume.",
    )
    parser.add_argument("--tenant", required=True)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--since", metavar="DURATION", help="how far back: 30d, 12h, 90m, 2w")
    what.add_argument(
        "--resume", nargs="?", const="", metavar="RUN", help="continue a stopped run (default: the latest)"
    )
    what.add_argument("--list", action="store_true", help="the tenant's runs, newest first")
    parser.add_argument("--dry-run", action="store_true", help="decide and report, write nothing")
    parser.add_argument("--limit", type=_count, metavar="N", help="stop after N calls (resume later)")
    parser.add_argument("--json", action="store_true", help="the run and its summary as JSON")
    parser.add_argument("--by", default=None, help="who runs it, kept with the run (default: $USER)")


class _Lines:
    """Plain progress lines on standard error (not a terminal, or --json): every 5% and at the end."""

    def __init__(self, err: TextIO, total: int, done: int):
        self.err = err
        self.total = total
        self.first = done
        self.started = time.monotonic()
        self.step = max(1, total // 20)

    def __call__(self, run: Any, outcome: Any) -> None:
        if run.done % self.step and run.done != run.total:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (run.done - self.first) / elapsed
        eta = (run.total - run.done) / rate if rate else 0.0
        self.err.write(
            f"reassociate {run.run_id}: {run.done}/{run.total} calls ({rate:.1f}/s, ETA {eta:.0f}s)\n"
        )
        self.err.flush()

    def close(self) -> None:
        pass


class _Bar:
    """rich's progress bar: count, rate, ETA."""

    def __init__(self, err: TextIO, total: int, done: int):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        class Rate(TextColumn):
            def render(self, task: Any) -> Any:
                from rich.text import Text

                speed = task.finished_speed or task.speed
                return Text(f"{speed:.1f} calls/s" if speed else "- calls/s")

        self.progress = Progress(
            TextColumn("reassociate"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            Rate(""),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=err),
        )
        self.task = self.progress.add_task("calls", total=total, completed=done)
        self.progress.start()

    def __call__(self, run: Any, outcome: Any) -> None:
        self.progress.update(self.task, completed=run.done)

    def close(self) -> None:
        self.progress.stop()


def _run_line(run: Any) -> str:
    s = run.summary
    return (
        f"{run.run_id}  {run.state:<7}  {run.done}/{run.total}  since {run.since}"
        f"{'  dry run' if run.dry_run else ''}  changed {s.changed}  unchanged {s.unchanged}"
        f"  skipped {len(s.skipped)}  failed {len(s.failed)}  by {run.by}"
    )


def run_reassociate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Start, resume or list runs; never a traceback, never an email or phone on screen."""
    import os

    import redis

    from worker.config.tenants import TenantsError
    from worker.ops import actions as ops
    from worker.pipeline import reassociate as service
    from worker.pipeline.service import UnknownTenantError
    from worker.pipeline.tasks import build_pipeline

    name = "callmatch reassociate"
    if args.dry_run and args.since is None:
        err.write(f"{name}: --dry-run goes with --since (a resumed run keeps its own)\n")
        return EXIT_INVALID
    bar: Any = None
    try:
        since = service.parse_since(args.since) if args.since is not None else None
        pipe = build_pipeline(lenient_secrets=True)
        tenant = pipe.tenant(args.tenant)
        if args.list:
            listed = service.runs(pipe, args.tenant)
            if args.json:
                out.write(json.dumps([r.to_json() for r in listed], indent=2) + "\n")
            else:
                out.write("".join(_run_line(r) + "\n" for r in listed) + f"{len(listed)} run(s)\n")
            return EXIT_OK
        ops.require_secrets(tenant, "re-association")
        if since is not None:
            by = args.by or os.environ.get("USER") or "cli"
            run = service.start(pipe, args.tenant, since, dry_run=args.dry_run, by=by)
        elif args.resume:
            run = service.load(pipe, args.tenant, args.resume)
        else:
            run = service.latest_unfinished(pipe, args.tenant)
        if run.finished and run.state == "done":
            out.write(
                (json.dumps(run.to_json(), indent=2) if args.json else "\n".join(service.summary_lines(run)))
                + "\n"
            )
            return EXIT_FAILED if run.summary.failed else EXIT_OK
        live = err.isatty() and not args.json
        err.write(
            f"{name}: run {run.run_id}: {run.total - run.done} call(s) to go"
            f"{' (dry run: nothing is written)' if run.dry_run else ''}\n"
        )
        bar = (_Bar if live else _Lines)(err, run.total, run.done)
        try:
            run = service.proceed(pipe, args.tenant, run.run_id, limit=args.limit, on_call=bar)
        finally:
            bar.close()
        out.write(
            (json.dumps(run.to_json(), indent=2) if args.json else "\n".join(service.summary_lines(run)))
            + "\n"
        )
        if not run.finished:
            err.write(
                f"{name}: stopped after {run.done} of {run.total}; continue with"
                f" `callmatch reassociate --tenant {args.tenant} --resume {run.run_id}`\n"
            )
        return EXIT_FAILED if run.summary.failed else EXIT_OK
    except KeyboardInterrupt:
        err.write(
            f"\n{name}: interrupted; the run is kept: `callmatch reassociate --tenant {args.tenant} --resume`\n"
        )
        return EXIT_INTERRUPTED
    except service.ReassociateError as exc:
        flag = FLAGS.get(exc.field or "")
        text = str(exc)
        if exc.field == "since" and flag:
            text = f"{flag} {text}"
        err.write(f"{name}: {text}\n")
        return EXIT_INVALID
    except ops.MissingSecretError as exc:
        err.write(f"{name}: {exc}\n")
        return EXIT_INVALID
    except (UnknownTenantError, TenantsError) as exc:
        err.write(f"{name}: {exc} (--tenant)\n")
        return EXIT_INVALID
    except redis.ConnectionError as exc:
        err.write(f"{name}: Redis is not reachable ({type(exc).__name__}); set CALLMATCH_REDIS_URL\n")
        return EXIT_UNAVAILABLE
    except Exception as exc:  # a bug of ours: one line, never a traceback
        from worker.core.observability import redact

        err.write(f"{name}: internal error, please report it: {redact(f'{type(exc).__name__}: {exc}')}\n")
        return EXIT_INTERNAL
