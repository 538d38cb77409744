"""The `callmatch` commands that act on live calls (they need Redis and the tenants file)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from worker.config.tenants import TenantsError
from worker.ingest.events import EventError
from worker.ops.output import EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, format_text
from worker.pipeline.service import UnknownTenantError, decision_from_json
from worker.pipeline.store import RecordNotFoundError

EXIT_UNAVAILABLE = 3


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
    return "; ".join(parts) or "-"


def run_ops(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import redis

    from worker.ops import actions as ops
    from worker.pipeline.tasks import pipeline

    try:
        pipe = pipeline()
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
            text = sys.stdin.read() if args.event == "-" else Path(args.event).read_text(encoding="utf-8")
            decision = ops.simulate(pipe, args.tenant, json.loads(text))
            out.write(
                (format_text(decision) if args.format == "text" else json.dumps(decision.to_json())) + "\n"
            )
        elif args.command == "status":
            client = redis.Redis.from_url(_redis_url(), decode_responses=True)
            status = ops.status(pipe, client)
            if args.json:
                out.write(json.dumps(status.to_json(), indent=2) + "\n")
            else:
                out.write(_status_text(status) + "\n")
        else:
            return EXIT_INTERNAL
    except (
        ops.OpsError,
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
    except Exception as exc:  # a bug of ours: one line, never a traceback
        err.write(
            f"callmatch {args.command}: internal error, please report it: {type(exc).__name__}: {exc}\n"
        )
        return EXIT_INTERNAL
    return EXIT_OK


def _redis_url() -> str:
    from worker.pipeline.celery_app import redis_url

    return redis_url()


def _status_text(status: Any) -> str:
    lines = [
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
