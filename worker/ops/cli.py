"""The `callmatch` command line.

`setup` and `doctor` print lines made safe by worker.ops.readiness (emails and phones
masked, the tenant's secrets replaced); exit codes: 0 done / can run, 1 a step
failed / cannot run, 2 a usage error (unknown tenant, bad tenants file).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from worker import __version__
from worker.config.scenario import ScenarioError, loads_document
from worker.ops.output import EXIT_FAILED, EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, format_text
from worker.pipeline.association import decide_scenario

if TYPE_CHECKING:
    from worker.ops.readiness import Report, SetupReport

STDIN_NAME = "<stdin>"


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    return Path(name).read_bytes()


def decide_files(names: Sequence[str], out: TextIO, err: TextIO, text: bool = False) -> int:
    """scenario-v1 `decide`: one line per valid file in argument order; invalid files named on stderr.

    A key scenario-v1 does not know is ignored, as the contract says, but named on
    stderr as a warning (a misspelt policy key would otherwise silently be its default).
    """
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
            document = loads_document(data)
            for key in document.unknown_keys():  # ignored as scenario-v1 says, but likely a typo
                err.write(f"{shown}: warning: {key}: unknown key, ignored\n")
            decision = decide_scenario(document.to_scenario())
        except ScenarioError as exc:
            err.write(f"{shown}: {exc}\n")
            status = max(status, EXIT_INVALID)
            continue
        except RecursionError:  # arrays or objects nested thousands deep: no scenario is
            err.write(f"{shown}: (document): nested too deeply to read\n")
            status = max(status, EXIT_INVALID)
            continue
        except ValueError as exc:
            if "integer string conversion" not in str(exc):
                err.write(f"{shown}: internal error, please report it: {type(exc).__name__}: {exc}\n")
                status = EXIT_INTERNAL if status == EXIT_OK else status
                continue
            err.write(
                f"{shown}: (document): not valid JSON: a number has more than {sys.get_int_max_str_digits()} digits\n"
            )
            status = max(status, EXIT_INVALID)
            continue
        except Exception as exc:  # a bug of ours: say so in one line, keep deciding the others
            err.write(f"{shown}: internal error, please report it: {type(exc).__name__}: {exc}\n")
            status = EXIT_INTERNAL if status == EXIT_OK else status
            continue
        line = (
            format_text(decision) + "\n\n"
            if text
            else json.dumps(decision.to_json(), ensure_ascii=False) + "\n"
        )
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # JSON may escape a lone surrogate (\\ud800) that no output can carry
            err.write(
                f"{shown}: the decision would echo text that is not valid Unicode (a lone surrogate in an id)\n"
            )
            status = max(status, EXIT_INVALID)
            continue
        out.write(line)
        out.flush()
    return status


def _add_by(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by",
        help="who makes this change, kept with it (default: $USER)",
        default=os.environ.get("USER") or "cli",
    )


def _add_tenant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="the tenant (default: the only one, or the one that has the call)")


def _add_format(parser: argparse.ArgumentParser) -> None:
    """`--format json|text`, the same for `decide` and `simulate`."""
    parser.add_argument(
        "--format",
        choices=("json", "text"),
        default="json",
        help="json (default): one result per line (the contract); text: the result and its trace for a person",
    )


def _seconds(text: str) -> float:
    """A watch interval: a number of seconds, at least 0.2."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0.2 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"expected 0.2 to 86400 seconds, got {text}")
    return value


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 500:
        raise argparse.ArgumentTypeError(f"expected 1 to 500, got {value}")
    return value


SIMULATE_EPILOG = """\
EVENT.json is one "call ended" event: the message the receiver queues for a worker, the
JSON of EventMessage in worker/ingest/events.py. Required: kind (call or meeting),
received_at, provider, call_id and event_id; started_at too, unless the provider's API
can be asked for it. Times are ISO-8601 with an offset. `tenant` is taken from --tenant;
keys it does not know are ignored. Example:

  {"version": 1, "kind": "call", "provider": "aircall", "call_id": "aircall:812731",
   "event_id": "call.ended:812731", "received_at": "2026-03-10T09:53:00Z",
   "started_at": "2026-03-10T09:30:00Z", "ended_at": "2026-03-10T09:52:00Z",
   "direction": "inbound", "organizer": {"email": "rep@ourco.com"},
   "participants": [{"email": "jane@acme.com", "phone": "+33 6 12 34 56 78", "name": "Jane"}],
   "complete": true}

`callmatch explain CALL_ID --json` prints a stored call's event under "event": a ready input.
"""


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
    _add_format(decide)
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
    for kind in ("contact", "account", "opportunity"):
        override.add_argument(
            f"--remove-{kind}",
            dest=f"remove_{kind}",
            action="append",
            default=[],
            metavar="ID",
            help=f"unlink this {kind}; no refresh links it again (R6); repeatable",
        )
    _add_by(override)
    _add_tenant(override)

    unlock = commands.add_parser(
        "unlock",
        help="give fields a person locked back to the rules, then refresh and write back",
        description="Removes a person's lock on the account, the opportunity or the contacts of a call "
        "(recorded in its change log, shown by `explain`); a preference this call taught its contacts "
        "is forgotten with it. The refresh that applies it is enqueued.",
    )
    unlock.add_argument("call_id", metavar="CALL_ID")
    unlock.add_argument("--account", dest="unlock_account", action="store_true", help="unlock the account")
    unlock.add_argument(
        "--opportunity", dest="unlock_opportunity", action="store_true", help="unlock the opportunity"
    )
    unlock.add_argument("--contacts", dest="unlock_contacts", action="store_true", help="unlock the contacts")
    _add_by(unlock)
    _add_tenant(unlock)

    calls = commands.add_parser("calls", help="the calls kept, newest first, filtered and paged")
    call_commands = calls.add_subparsers(dest="calls_command", required=True, metavar="ACTION")
    calls_list = call_commands.add_parser(
        "list",
        help="calls newest first, with the console's filters",
        description="One line per call: received, tenant, call id, status, case, opportunity, account, "
        "contacts. Filters combine; dates bound when the call was received (UTC dates, or ISO-8601 "
        "date-times with an offset; --until DATE includes that day). Prints the cursor of the next page.",
    )
    calls_list.add_argument("--status", choices=("received", "fetched", "decided", "written", "dead"))
    calls_list.add_argument(
        "--case",
        choices=(
            "activity_opportunity",
            "activity_account",
            "activity_contact",
            "contacts",
            "domain",
            "leads_only",
            "none",
            "ambiguous",
        ),
    )
    calls_list.add_argument("--since", metavar="DATE", help="received on or after (YYYY-MM-DD or date-time)")
    calls_list.add_argument(
        "--until", metavar="DATE", help="received before the end of (YYYY-MM-DD) or before"
    )
    calls_list.add_argument("--has-opportunity", choices=("yes", "no"), help="whether the result has one")
    calls_list.add_argument("--provider", choices=("aircall", "ringover", "zoom", "google_meet", "teams"))
    calls_list.add_argument("--limit", type=_limit, default=50, help="calls per page (1-500, default 50)")
    calls_list.add_argument("--cursor", help="the next page, as the previous one printed it")
    calls_list.add_argument("--json", action="store_true", help='{"items": [...], "next_cursor": ...}')
    _add_tenant(calls_list)

    review = commands.add_parser(
        "review", help="calls the rules left ambiguous (U1), waiting for a person to choose"
    )
    review_commands = review.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    review_list = review_commands.add_parser(
        "list", help="the calls waiting, newest first, with their candidates"
    )
    review_list.add_argument("--json", action="store_true")
    _add_tenant(review_list)
    review_choose = review_commands.add_parser(
        "choose", help="choose a call's opportunity or account (applied like an override, then written back)"
    )
    review_choose.add_argument("call_id", metavar="CALL_ID")
    review_choose.add_argument("--opportunity", dest="opportunity_id")
    review_choose.add_argument("--account", dest="account_id")
    _add_by(review_choose)
    _add_tenant(review_choose)

    preferences = commands.add_parser(
        "preferences", help="what people chose for contacts (L1): listed, or forgotten"
    )
    preference_commands = preferences.add_subparsers(
        dest="preferences_command", required=True, metavar="ACTION"
    )
    preferences_list = preference_commands.add_parser("list", help="a tenant's preferences, by contact")
    preferences_list.add_argument(
        "--contact", dest="contact_ids", action="append", help="only these contacts"
    )
    preferences_list.add_argument("--json", action="store_true")
    _add_tenant(preferences_list)
    preferences_forget = preference_commands.add_parser(
        "forget", help="drop the preferences of these contacts (or --all of the tenant's)"
    )
    preferences_forget.add_argument("--contact", dest="contact_ids", action="append", default=[])
    preferences_forget.add_argument("--all", action="store_true")
    _add_tenant(preferences_forget)

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
        "simulate",
        help="fetch and associate an event against the live CRM; writes nothing",
        description="Decide a call-ended event as a worker would, against the tenant's live CRM "
        "(participants fetched from the provider when the event lacks them). Nothing is written "
        "or stored. Prints the result like `decide`.",
        epilog=SIMULATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_argument(
        "event", metavar="EVENT.json", help="a \"call ended\" event as JSON (below); '-' reads standard input"
    )
    simulate.add_argument("--tenant", required=True)
    _add_format(simulate)

    status = commands.add_parser(
        "status",
        help="calls per tenant and status, rates, queue, dead letters, processes, CRM budgets",
        description="Per tenant: calls in each status, how many were decided and written in the last "
        "minute and hour, and calls waiting for review; then the queue, tasks held by workers, dead "
        "letters, calls owing a stage, scheduled refreshes, running processes and CRM budgets.",
    )
    status.add_argument("--json", action="store_true")
    status.add_argument(
        "--watch",
        nargs="?",
        type=_seconds,
        const=2.0,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until Ctrl-C; with --json, one object per line",
    )
    status.add_argument("--tenant", help="only this tenant's figures (the queue is shared)")

    setup = commands.add_parser(
        "setup",
        help="create the fields and properties callmatch needs in the tenant's CRM",
        description="Create in the tenant's CRM what callmatch needs, where the credentials allow it; "
        "idempotent. Prints one line per step: created, present, manual (what an admin must do) or "
        "failed. Exits 1 when a step failed.",
    )
    setup.add_argument("--tenant", help="the tenant (default: the only one)")
    setup.add_argument(
        "--dry-run", action="store_true", help="change nothing: print the exact steps for an admin instead"
    )
    setup.add_argument("--json", action="store_true", help="the steps as JSON")
    doctor = commands.add_parser(
        "doctor",
        help="check that a tenant can run: CRM, permissions, fields, providers",
        description="One line per check (ok, warn, fail) with the fix when not ok. "
        "Exits 0 when the tenant can run (no check failed), 1 when it cannot.",
    )
    doctor.add_argument("--tenant", help="the tenant (default: the only one)")
    doctor.add_argument("--json", action="store_true", help='{"tenant", "can_run", "checks": [...]}')
    providers = commands.add_parser(
        "providers",
        help="the Teams (Graph) and Google Meet (Workspace Events) subscriptions that notify callmatch",
    )
    provider_commands = providers.add_subparsers(dest="providers_command", required=True, metavar="ACTION")
    subscribe = provider_commands.add_parser(
        "subscribe",
        help="create (or renew) the tenant's subscriptions and store their ids and expiry",
        description="Graph: communications/callRecords to <public_url>/webhooks/<tenant>/teams; Google: "
        "Workspace Events for Meet's conference ended to the Pub/Sub topic. Exits 1 when one failed.",
    )
    subscribe.add_argument("--tenant", required=True)
    subscribe.add_argument("--provider", choices=("teams", "google_meet"), help="only this one")
    provider_status = provider_commands.add_parser(
        "status",
        help="each subscription: id, resource, expiry, last renewal, state; exits 1 when one is not active",
    )
    provider_status.add_argument("--tenant", help="only this tenant")
    provider_status.add_argument("--json", action="store_true")
    from worker.ops.access import add_access_parser

    add_access_parser(commands)
    from worker.ops.reassociate import add_reassociate_parser

    add_reassociate_parser(commands)
    return parser


def _rows(entries: Sequence[tuple[str, str, str, str | None]]) -> list[str]:
    """`status  name  detail` with names and details in columns; continuation and `fix:` lines under the detail."""
    status_width = max((len(status) for status, _, _, _ in entries), default=0)
    name_width = max((len(name) for _, name, _, _ in entries), default=0)
    indent = " " * (status_width + name_width + 4)
    out = []
    for status, name, detail, fix in entries:
        first, *rest = detail.splitlines() or [""]
        out.append(f"{status:<{status_width}}  {name:<{name_width}}  {first}".rstrip())
        out += [indent + line for line in rest]
        if fix:
            out.append(f"{indent}fix: {fix}")
    return out


def format_steps(report: SetupReport) -> str:
    """`created  Task.Callmatch_Call_Id__c  ...`, one step a line, then what it comes to."""
    lines = _rows([(str(step.outcome), step.name, step.detail, None) for step in report.steps])
    failed = sum(1 for step in report.steps if str(step.outcome) == "failed")
    manual = sum(1 for step in report.steps if str(step.outcome) == "manual")
    verdict = f"tenant {report.tenant}: " + (f"{failed} step(s) failed" if failed else "no step failed")
    if manual:
        verdict += f"; {manual} step(s) for an admin"
    if report.dry_run:
        verdict += " (dry run: nothing was changed)"
    return "\n".join([*lines, verdict])


def format_checks(report: Report) -> str:
    """`ok|warn|fail  name  detail`, a `fix:` line under each one that is not ok, then the verdict."""
    lines = _rows(
        [
            (str(check.status), check.name, check.detail, check.fix if str(check.status) != "ok" else None)
            for check in report.checks
        ]
    )
    failed = sum(1 for check in report.checks if str(check.status) == "fail")
    warned = sum(1 for check in report.checks if str(check.status) == "warn")
    if failed:
        lines.append(f"tenant {report.tenant} cannot run: {failed} check(s) failed, {warned} warning(s)")
    else:
        lines.append(f"tenant {report.tenant} can run ({warned} warning(s))")
    return "\n".join(lines)


def run_readiness(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`setup` / `doctor`: the tenants file and Redis the other commands use; never a traceback."""
    import datetime as dt

    import redis

    from worker.config.tenants import TenantsError, default_tenants_path, load_tenants
    from worker.ops import doctor_log, readiness
    from worker.pipeline.celery_app import redis_url
    from worker.pipeline.crm_factory import CrmFactory

    try:
        # Other tenants' secrets need not be here: only the one checked or set up must have its own.
        tenants = load_tenants(default_tenants_path(), lenient=True)
    except TenantsError as exc:
        err.write(f"callmatch {args.command}: {exc}\n")
        return EXIT_INVALID
    names = sorted(tenants.tenants)
    name = args.tenant
    if name is None:
        if len(names) != 1:
            err.write(f"callmatch {args.command}: name a tenant with --tenant (one of: {', '.join(names)})\n")
            return EXIT_INVALID
        name = names[0]
    tenant = tenants.get(name)
    if tenant is None:
        err.write(f"callmatch {args.command}: unknown tenant {name!r} (known: {', '.join(names)})\n")
        return EXIT_INVALID
    if tenant.unresolved:
        for missing in tenant.unresolved:
            err.write(f"callmatch {args.command}: {missing}\n")
        return EXIT_INVALID
    client = redis.Redis.from_url(
        redis_url(), decode_responses=True, socket_timeout=10, socket_connect_timeout=5
    )
    # The report says what each refused request answered; the retry log would say it again on stderr.
    retry_log = logging.getLogger("adapters.retry")
    level = retry_log.level
    retry_log.setLevel(logging.ERROR)
    try:
        factory = CrmFactory(client)
        if args.command == "setup":
            steps = readiness.setup(tenant, factory, dry_run=args.dry_run)
            out.write((json.dumps(steps.to_json(), indent=2) if args.json else format_steps(steps)) + "\n")
            return EXIT_OK if steps.ok else EXIT_FAILED
        report = readiness.doctor(tenant, factory, redis_client=client)
        out.write((json.dumps(report.to_json(), indent=2) if args.json else format_checks(report)) + "\n")
        try:  # the tenant's last report, shown on the console's Health whichever ran doctor
            doctor_log.keep(client, report.to_json(), dt.datetime.now(dt.UTC))
        except redis.RedisError:
            err.write("callmatch doctor: Redis unreachable, this report is not kept for the console\n")
        return EXIT_OK if report.can_run else EXIT_FAILED
    except Exception as exc:  # a bug of ours: one line, never a traceback (nor a secret)
        said = readiness.safe_text(f"{type(exc).__name__}: {exc}", readiness.tenant_secrets(tenant))
        err.write(f"callmatch {args.command}: internal error, please report it: {said}\n")
        return EXIT_INTERNAL
    finally:
        retry_log.setLevel(level)
        client.close()


def format_subscriptions(rows: Sequence[dict[str, object]]) -> str:
    """One line per subscription: state, tenant/provider, expiry and time left, id, resource, last renewal."""
    lines = []
    for row in rows:
        left = row.get("seconds_left")
        when = "-"
        if isinstance(left, int):
            sign, seconds = ("-" if left < 0 else ""), abs(left)
            when = f"{row['expires_at']} ({sign}{seconds // 86400}d{seconds % 86400 // 3600}h{seconds % 3600 // 60}m left)"
        line = f"{row['state']:<9}  {row['tenant']}/{row['provider']}  expires {when}"
        if row.get("id"):
            line += f"\n           id {row['id']}  resource {row['resource']}  renewed {row['renewed_at']}"
        if row.get("detail"):
            line += f"\n           {row['detail']}"
        lines.append(line)
    bad = sum(1 for row in rows if row["state"] != "active")
    lines.append(f"{len(rows)} subscription(s), {bad} not active" if rows else "no subscription expected")
    return "\n".join(lines)


def run_providers(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`providers subscribe` / `providers status`: one line each, never a traceback nor a secret."""
    import redis

    from worker.config.tenants import TenantsError, default_tenants_path, load_tenants
    from worker.ingest.enqueue import CeleryEnqueuer
    from worker.ingest.subscriptions import SubscriptionError, Subscriptions
    from worker.ops.readiness import safe_text, tenant_secrets
    from worker.pipeline.celery_app import create_celery, redis_url
    from worker.pipeline.clock import process_clock

    name = f"providers {args.providers_command}"
    try:
        tenants = load_tenants(default_tenants_path())
    except TenantsError as exc:
        err.write(f"callmatch {name}: {exc}\n")
        return EXIT_INVALID
    if args.tenant and tenants.get(args.tenant) is None:
        err.write(
            f"callmatch {name}: unknown tenant {args.tenant!r} (known: {', '.join(sorted(tenants.tenants))})\n"
        )
        return EXIT_INVALID
    client = redis.Redis.from_url(
        redis_url(), decode_responses=True, socket_timeout=10, socket_connect_timeout=5
    )
    service = Subscriptions(tenants, client, CeleryEnqueuer(create_celery(redis_url())), process_clock())
    secrets = [s for tenant in tenants.tenants.values() for s in tenant_secrets(tenant)]
    try:
        if args.providers_command == "subscribe":
            status = EXIT_OK
            for provider in [args.provider] if args.provider else [None]:
                try:
                    for sub in service.subscribe(args.tenant, provider):
                        line = f"subscribed  {sub.tenant}/{sub.provider}  {sub.id}  expires {sub.to_json()['expires_at']}"
                        if sub.detail and sub.detail.startswith(("adopted", "replaced")):
                            line += f"  ({safe_text(sub.detail, secrets)})"
                        out.write(line + "\n")
                except Exception as exc:  # one line per failure, secrets replaced, emails masked
                    text = str(exc) if isinstance(exc, SubscriptionError) else f"{type(exc).__name__}: {exc}"
                    said = safe_text(text, secrets)
                    err.write(f"callmatch {name}: {said}\n")
                    status = EXIT_FAILED
            return status
        rows = [row.to_json() for row in service.status(args.tenant)]
        out.write((json.dumps(rows, indent=2) if args.json else format_subscriptions(rows)) + "\n")
        return EXIT_OK if all(row["state"] == "active" for row in rows) else EXIT_FAILED
    except redis.RedisError as exc:
        err.write(f"callmatch {name}: redis unavailable ({type(exc).__name__})\n")
        return EXIT_INTERNAL
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "decide":
        # What start-up built (modules, the scenario models' validators) lives as long as the process:
        # kept out of the collector's sight, each collection over many files walks only their objects.
        gc.freeze()
        return decide_files(args.scenarios, sys.stdout, sys.stderr, text=args.format == "text")
    if args.command in ("setup", "doctor"):
        return run_readiness(args, sys.stdout, sys.stderr)
    if args.command == "providers":
        return run_providers(args, sys.stdout, sys.stderr)
    if args.command == "access":
        from worker.ops.access import run_access

        return run_access(args, sys.stdout, sys.stderr)
    if args.command == "reassociate":
        from worker.ops.reassociate import run_reassociate

        return run_reassociate(args, sys.stdout, sys.stderr)
    from worker.ops.opscli import run_ops

    return run_ops(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
