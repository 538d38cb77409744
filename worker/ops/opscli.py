"""The `callmatch` commands that act on live calls (they need Redis and the tenants file).

The tenants file is read without requiring its secrets: `status`, `explain`, `calls list`,
`dead-letters`, `review list`, `preferences`, `refresh` and `unlock` need Redis only. What
calls a CRM (an override's id check, `simulate`) says which variable it misses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from worker.config.tenants import TenantsError
from worker.ingest.events import EventError
from worker.ops.output import EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, format_text
from worker.pipeline.service import UnknownTenantError, decision_from_json
from worker.pipeline.store import RecordNotFoundError

EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

FLAGS = {"tenant": "--tenant"}
"""The flag of a field an action's error names (actions word their errors by field, for HTTP too)."""


def _usage(args: argparse.Namespace) -> str | None:
    """What a command lacks, in its flags' words, before anything is asked of Redis or a CRM."""
    if (
        args.command == "override"
        and not (args.account_id or args.opportunity_id or args.contact_ids)
        and not any(getattr(args, f"remove_{kind}") for kind in ("contact", "account", "opportunity"))
    ):
        return "nothing to override: give --account, --opportunity, --contact or --remove-contact/-account/-opportunity"
    if args.command == "unlock" and not (
        args.unlock_account or args.unlock_opportunity or args.unlock_contacts
    ):
        return "name what to unlock: --account, --opportunity and/or --contacts"
    choose = args.command == "review" and args.review_command == "choose"
    if choose and (args.opportunity_id is None) == (args.account_id is None):
        return "review choose: give one of --opportunity or --account"
    if args.command == "preferences" and args.preferences_command == "forget":
        if not args.contact_ids and not args.all:
            return "preferences forget: name contacts with --contact or use --all"
        if args.contact_ids and args.all:
            return "preferences forget: give --contact or --all, not both"
    return None


def _record_text(record: Any) -> str:
    lines = [
        f"call {record.call_id} (tenant {record.tenant}): {record.status.value}",
        f"  received {record.created_at}; updated {record.updated_at}; refreshes {record.refreshes}",
        f"  attempts: {', '.join(f'{k} {v}' for k, v in sorted(record.attempts.items())) or '-'}",
        f"  locked by a person: {', '.join(record.locked) or '-'}",
    ]
    if record.removed:
        lines.append(
            "  removed by a person: "
            + ", ".join(
                f"{r['type']} {r['id']} ({r.get('by', '?')}, {r.get('at', '?')})" for r in record.removed
            )
        )
    for change in record.changes:
        lines.append(f"  {change['how']} by {change['by']} at {change['at']}: {_change_text(change)}")
    if record.error:
        lines.append(
            f"  stopped at {record.error['stage']}: {record.error['reason']} ({record.error['action']})"
        )
    if record.written:
        lines.append(
            f"  CRM activity: {record.written['kind']} {record.written['id']} (written {record.written_at})"
        )
    if record.decision:
        lines.append(format_text(decision_from_json(record.decision)))
    else:
        lines.append("  not decided yet")
    return "\n".join(lines)


def _change_text(change: dict[str, Any]) -> str:
    """What one change set and removed, for a person: `opportunity O2, contacts C1, C2; removed contact C3`."""
    parts = [
        f"{label} {', '.join(value) if isinstance(value, list) else value}"
        for key, label in (
            ("account_id", "account"),
            ("opportunity_id", "opportunity"),
            ("contact_ids", "contacts"),
        )
        if (value := change.get(key)) is not None
    ]
    if change.get("removed"):
        parts.append("removed " + ", ".join(f"{r['type']} {r['id']}" for r in change["removed"]))
    if change.get("unlocked"):
        parts.append("unlocked " + ", ".join(change["unlocked"]))
    if change.get("forgot_preferences"):
        parts.append("forgot the preferences of " + ", ".join(change["forgot_preferences"]))
    return "; ".join(parts) or "-"


def _read_event(name: str) -> object:
    """The EVENT file of `simulate` as JSON; ValueError naming the file and what is wrong."""
    shown = "<stdin>" if name == "-" else name
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{shown}: (document): not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{shown}: (document): not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise ValueError(f"{shown}: (document): nested too deeply to read") from None
    except ValueError as exc:  # e.g. a number of more digits than Python reads
        raise ValueError(f"{shown}: (document): not readable JSON: {exc}") from None


def _summary_line(item: Any) -> str:
    """`received  tenant  call  status  case  opportunity account contacts` for a person."""
    return (
        f"{item.received_at}  {item.tenant}  {item.call_id}  {item.status}  {item.case or '-'}"
        f"  opportunity {item.opportunity_id or '-'}  account {item.account_id or '-'}"
        f"  contacts {', '.join(item.contact_ids) or '-'}"
        + (f"  locked {', '.join(item.locked)}" if item.locked else "")
    )


def _watch(args: argparse.Namespace, out: TextIO, err: TextIO, snapshot: Any) -> int:
    """Redraw `status` every `args.watch` seconds until Ctrl-C.

    On a terminal the screen is redrawn in place; into a pipe or file each snapshot follows
    the last (with --json, one JSON object per line). A Redis outage is shown and waited out.
    """
    live = out.isatty() and not args.json
    try:
        while True:
            try:
                status = snapshot()
            except Exception as exc:  # Redis away for a moment: say so, keep watching
                import redis

                if not isinstance(exc, redis.RedisError):
                    raise
                err.write(
                    f"callmatch status: Redis is not reachable at {_redis_url()} ({type(exc).__name__})\n"
                )
                err.flush()
            else:
                stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
                if args.json:
                    out.write(json.dumps({"at": stamp, **status.to_json()}) + "\n")
                elif live:
                    out.write(
                        "\x1b[H\x1b[2J"
                        + _status_text(status)
                        + f"\n\n{stamp}, every {args.watch:g}s; Ctrl-C stops\n"
                    )
                else:
                    out.write(f"--- {stamp}\n{_status_text(status)}\n")
                out.flush()
            time.sleep(args.watch)
    except KeyboardInterrupt:
        if live:
            out.write("\n")
        return EXIT_OK


def run_ops(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import redis

    from worker.ops import actions as ops
    from worker.pipeline.tasks import build_pipeline

    lacking = _usage(args)
    if lacking is not None:
        err.write(f"callmatch {args.command}: {lacking}\n")
        return EXIT_INVALID
    try:
        pipe = build_pipeline(lenient_secrets=True)
        if args.command == "explain":
            record = ops.explain(pipe, args.call_id, args.tenant)
            out.write((json.dumps(record.to_json(), indent=2) if args.json else _record_text(record)) + "\n")
        elif args.command == "refresh":
            tenant = ops.refresh(pipe, args.call_id, args.tenant)
            out.write(
                f"refresh of {args.call_id} (tenant {tenant}) enqueued; `callmatch explain {args.call_id}` shows the result\n"
            )
        elif args.command == "override":
            remove = [
                (kind, record_id)
                for kind in ("contact", "account", "opportunity")
                for record_id in getattr(args, f"remove_{kind}")
            ]
            record = ops.override(
                pipe,
                args.call_id,
                tenant=args.tenant,
                account_id=args.account_id,
                opportunity_id=args.opportunity_id,
                contact_ids=args.contact_ids,
                remove=remove,
                by=args.by,
            )
            removed = ", ".join(f"{r['type']} {r['id']}" for r in record.removed)
            out.write(
                f"locked {', '.join(record.locked) or '-'}; removed {removed or '-'} on {args.call_id};"
                " refresh and write-back enqueued\n"
            )
        elif args.command == "unlock":
            fields = [f for f in ("account", "opportunity", "contacts") if getattr(args, f"unlock_{f}")]
            record = ops.unlock(pipe, args.call_id, fields, tenant=args.tenant, by=args.by)
            forgot = record.changes[-1].get("forgot_preferences") or []
            out.write(
                f"unlocked {', '.join(fields)} on {args.call_id} (still locked: {', '.join(record.locked) or '-'})"
                + (f"; forgot the preferences it taught {', '.join(forgot)}" if forgot else "")
                + "; refresh and write-back enqueued\n"
            )
        elif args.command == "calls" and args.calls_command == "list":
            page = ops.calls_list(
                pipe,
                args.tenant,
                status=args.status,
                case=args.case,
                since=args.since,
                until=args.until,
                has_opportunity=None if args.has_opportunity is None else args.has_opportunity == "yes",
                provider=args.provider,
                limit=args.limit,
                cursor=args.cursor,
            )
            if args.json:
                out.write(json.dumps(page.to_json(), indent=2) + "\n")
            else:
                for summary in page.items:
                    out.write(_summary_line(summary) + "\n")
                out.write(f"{len(page.items)} call(s)")
                out.write(f"; more with --cursor {page.next_cursor}\n" if page.next_cursor else "\n")
        elif args.command == "review" and args.review_command == "list":
            items = ops.review_list(pipe, args.tenant)
            if args.json:
                out.write(json.dumps([item.to_json() for item in items], indent=2) + "\n")
            else:
                for item in items:
                    choices = "; ".join(f"{c['type']} {c['id']} ({c['reason']})" for c in item.candidates)
                    out.write(
                        f"{item.decided_at}  {item.tenant}  {item.call_id}  contacts {', '.join(item.contact_ids) or '-'}"
                        f"  account {item.account_id or '-'}\n    candidates: {choices}\n"
                    )
                out.write(f"{len(items)} call(s) waiting for review\n")
        elif args.command == "review" and args.review_command == "choose":
            record = ops.review_choose(
                pipe,
                args.call_id,
                tenant=args.tenant,
                opportunity_id=args.opportunity_id,
                account_id=args.account_id,
                by=args.by,
            )
            out.write(
                f"chose {args.opportunity_id or args.account_id} for {args.call_id} (locked {', '.join(record.locked)});"
                " refresh and write-back enqueued\n"
            )
        elif args.command == "preferences" and args.preferences_command == "list":
            found = ops.preferences_list(pipe, args.tenant, args.contact_ids)
            if args.json:
                out.write(json.dumps([p.to_json() for p in found], indent=2) + "\n")
            else:
                for p in found:
                    out.write(
                        f"{p.contact_id}  account {p.account_id or '-'}  opportunity {p.opportunity_id or '-'}"
                        f"  set {p.set_at} by {p.set_by}{f' (call {p.call_id})' if p.call_id else ''}\n"
                    )
                out.write(f"{len(found)} preference(s)\n")
        elif args.command == "preferences" and args.preferences_command == "forget":
            count = ops.preferences_forget(pipe, args.tenant, args.contact_ids, everything=args.all)
            out.write(f"{count} preference(s) forgotten\n")
        elif args.command == "dead-letters" and args.dead_command == "list":
            letters = ops.dead_letters(pipe, args.tenant)
            if args.json:
                out.write(json.dumps([letter.__dict__ for letter in letters], indent=2) + "\n")
            else:
                for letter in letters:
                    out.write(
                        f"{letter.at}  {letter.tenant}  {letter.call_id}  at {letter.stage} after {letter.attempts} attempt(s): {letter.reason}\n"
                    )
                out.write(f"{len(letters)} dead letter(s)\n")
        elif args.command == "dead-letters" and args.dead_command == "replay":
            if not args.call_ids and not args.all:
                err.write("dead-letters replay: name CALL_IDs or use --all\n")
                return EXIT_INVALID
            replayed = ops.replay(pipe, args.call_ids, args.tenant, everything=args.all)
            for letter in replayed:
                out.write(f"replayed {letter.call_id} (tenant {letter.tenant}) from {letter.stage}\n")
            out.write(f"{len(replayed)} replayed\n")
        elif args.command == "simulate":
            decision = ops.simulate(pipe, args.tenant, _read_event(args.event))
            out.write(
                (format_text(decision) if args.format == "text" else json.dumps(decision.to_json())) + "\n"
            )
        elif args.command == "status":
            client = redis.Redis.from_url(_redis_url(), decode_responses=True)
            if args.tenant is not None:
                pipe.tenant(args.tenant)  # an unknown tenant is refused before any watching
            if args.watch is not None:
                return _watch(args, out, err, lambda: ops.status(pipe, client, args.tenant))
            status = ops.status(pipe, client, args.tenant)
            if args.json:
                out.write(json.dumps(status.to_json(), indent=2) + "\n")
            else:
                out.write(_status_text(status) + "\n")
        else:
            return EXIT_INTERNAL
    except ops.CrmUnavailableError as exc:
        err.write(f"callmatch {args.command}: {exc}\n")
        return EXIT_UNAVAILABLE
    except ops.OpsError as exc:
        flag = FLAGS.get(exc.field or "")
        err.write(f"callmatch {args.command}: {exc}" + (f" ({flag})" if flag else "") + "\n")
        return EXIT_INVALID
    except (
        RecordNotFoundError,
        UnknownTenantError,
        EventError,
        TenantsError,
        ValueError,
    ) as exc:
        err.write(f"callmatch {args.command}: {exc}\n")
        return EXIT_INVALID
    except OSError as exc:
        err.write(f"callmatch {args.command}: {exc}\n")
        return EXIT_INVALID
    except redis.ConnectionError as exc:
        err.write(
            f"callmatch {args.command}: Redis is not reachable at {_redis_url()} ({exc}); start it with `make run` or set CALLMATCH_REDIS_URL\n"
        )
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug of ours: one line, never a traceback
        err.write(
            f"callmatch {args.command}: internal error, please report it: {type(exc).__name__}: {exc}\n"
        )
        return EXIT_INTERNAL
    return EXIT_OK


def _redis_url() -> str:
    from worker.pipeline.celery_app import redis_url

    return redis_url()


def _tenant_table(rows: Any) -> list[str]:
    """Calls per status and the rate, one tenant a line, in columns."""
    statuses = ["received", "fetched", "decided", "written", "dead"]
    head = ["tenant", *statuses, "total", "decided/min", "decided/h", "written/min", "written/h", "review"]
    table = [head] + [
        [
            row.tenant,
            *(str(row.calls.get(s, 0)) for s in statuses),
            str(row.total),
            str(row.decided_last_minute),
            str(row.decided_last_hour),
            str(row.written_last_minute),
            str(row.written_last_hour),
            str(row.waiting_review),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    return [
        "  "
        + "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in table
    ]


def _status_text(status: Any) -> str:
    lines = []
    if status.tenants:
        lines.append(f"calls of tenant {status.tenant}:" if status.tenant else "calls per tenant:")
        lines += _tenant_table(status.tenants)
    lines += [
        f"queued: {', '.join(f'{q} {n}' for q, n in status.queued.items())}",
        f"in flight: {status.in_flight}",
    ]
    lines += [
        f"dead letters: {status.dead_letters}",
        f"scheduled refreshes: {status.scheduled_refreshes}",
        f"calls kept: {status.calls}",
        f"calls owing a stage: {status.owed} ({status.stalled} stalled, the sweep wakes them)",
    ]
    if status.processes:
        lines.append("processes (role, host:pid, tenants digest):")
        lines += [
            f"  {p['role']} {p['host']}:{p['pid']} tenants {p['tenants_digest']} ({len(p.get('tenants', []))})"
            for p in status.processes
        ]
    else:
        lines.append("processes: none has reported (is a worker running?)")
    lines += [f"WARNING: {w}" for w in status.warnings or []]
    if status.budgets:
        lines.append("CRM budgets (as the APIs last reported):")
        lines += [f"  {b['key']}: {b['remaining']:,} of {b['limit']:,} left" for b in status.budgets]
    else:
        lines.append("CRM budgets: none reported yet")
    return "\n".join(lines)
