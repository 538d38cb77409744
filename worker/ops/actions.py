"""Operations on live calls: explain, refresh, override, dead letters, simulate, status.

Shared by the CLI and the HTTP admin routes, so both say and do the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from adapters.ratelimit import all_budgets
from worker.core.model import Decision
from worker.ingest.events import CallEvent
from worker.pipeline.association import associate
from worker.pipeline.celery_app import QUEUE, app, sent_now
from worker.pipeline.heartbeat import processes
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallRecord, DeadLetter, Stage
from worker.pipeline.tasks import REFRESH_TASK, STAGE_TASKS

Sender = Callable[[str, list[Any]], None]


def celery_sender(celery: Any = None) -> Sender:
    """Fire-and-forget sends on the worker's queue (results are never awaited)."""
    target = celery if celery is not None else app

    def send(task: str, args: list[Any]) -> None:
        target.send_task(task, args=args, ignore_result=True, headers=sent_now())

    return send


class OpsError(LookupError):
    """Something a person asked for that cannot be done as asked; the message says why."""


def resolve_tenant(pipeline: Pipeline, call_id: str, tenant: str | None) -> str:
    """The tenant of a call: as given, the only one configured, or the one whose record has it."""
    if tenant is not None:
        pipeline.tenant(tenant)
        return tenant
    names = sorted(pipeline.tenants.tenants)
    if len(names) == 1:
        return names[0]
    owners = [name for name in names if pipeline.store.get(name, call_id) is not None]
    if len(owners) == 1:
        return owners[0]
    if not owners:
        raise OpsError(f"no tenant has a call {call_id!r}; name one with --tenant")
    raise OpsError(f"call {call_id!r} exists for tenants {', '.join(owners)}; name one with --tenant")


def explain(pipeline: Pipeline, call_id: str, tenant: str | None = None) -> CallRecord:
    return pipeline.explain(resolve_tenant(pipeline, call_id, tenant), call_id)


def refresh(pipeline: Pipeline, call_id: str, tenant: str | None = None, send: Sender | None = None) -> str:
    """R1 on demand: enqueue the associate stage again; the write-back follows it."""
    name = resolve_tenant(pipeline, call_id, tenant)
    pipeline.store.request_stage(name, call_id, Stage.ASSOCIATE)  # owed now, even if the message is lost
    (send or celery_sender())(REFRESH_TASK, [name, call_id])
    return name


def override(
    pipeline: Pipeline,
    call_id: str,
    *,
    tenant: str | None = None,
    account_id: str | None = None,
    opportunity_id: str | None = None,
    contact_ids: Sequence[str] | None = None,
    send: Sender | None = None,
) -> CallRecord:
    if account_id is None and opportunity_id is None and contact_ids is None:
        raise OpsError("nothing to override: give --account, --opportunity or --contact")
    name = resolve_tenant(pipeline, call_id, tenant)
    record = pipeline.override(
        name, call_id, account_id=account_id, opportunity_id=opportunity_id, contact_ids=contact_ids
    )
    (send or celery_sender())(REFRESH_TASK, [name, call_id])
    return record


def dead_letters(pipeline: Pipeline, tenant: str | None = None) -> list[DeadLetter]:
    return pipeline.store.dead_letters(tenant=tenant)


def replay(
    pipeline: Pipeline,
    call_ids: Sequence[str],
    tenant: str | None = None,
    everything: bool = False,
    send: Sender | None = None,
) -> list[DeadLetter]:
    """Take dead letters back to the stage where they stopped; returns those replayed.

    Each call first owes its stage again in its record, then its task is sent, and only
    then is the letter dropped: a failed send leaves the letter listed (and the sweep
    runs the stage anyway), never a call that is neither dead nor moving.
    """
    letters = pipeline.store.dead_letters(tenant=tenant)
    chosen = letters if everything else [d for d in letters if d.call_id in set(call_ids)]
    missing = sorted(set(call_ids) - {d.call_id for d in chosen})
    if missing and not everything:
        raise OpsError(f"not dead letters: {', '.join(missing)}")
    replayed: list[DeadLetter] = []
    for letter in chosen:
        if letter.stage not in STAGE_TASKS:
            continue
        owed = pipeline.store.revive(letter.tenant, letter.call_id)
        if owed is None:
            continue  # no record to replay (it was lost): the letter stays as the only trace
        (send or celery_sender())(STAGE_TASKS[Stage(owed.stage)], [letter.tenant, letter.call_id])
        pipeline.store.forget(letter.tenant, letter.call_id)
        replayed.append(letter)
    return replayed


def simulate(pipeline: Pipeline, tenant: str, event_json: dict[str, Any]) -> Decision:
    """Fetch and associate against the tenant's live CRM; writes nothing, stores nothing."""
    config = pipeline.tenant(tenant)
    event = CallEvent.from_json({**event_json, "tenant": tenant})
    if pipeline.fetch_participants is not None:
        event = pipeline.fetch_participants(config, event)
    return associate(event.to_call(), config.policy, pipeline.crm_for(config))


@dataclass(frozen=True)
class Status:
    queued: dict[str, int]
    in_flight: int
    dead_letters: int
    scheduled_refreshes: int
    calls: int
    budgets: list[dict[str, Any]]
    owed: int = 0
    stalled: int = 0
    processes: list[dict[str, Any]] | None = None
    warnings: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def config_warnings(running: list[dict[str, Any]], expected_digest: str | None) -> list[str]:
    """What an operator must know about the processes' tenants files: they differ, or one failed to reload."""
    warnings = []
    digests = sorted({str(p.get("tenants_digest")) for p in running})
    if len(digests) > 1:
        by_digest = {
            d: [
                f"{p.get('role')}@{p.get('host')}:{p.get('pid')}"
                for p in running
                if p.get("tenants_digest") == d
            ]
            for d in digests
        }
        warnings.append(
            "processes run different tenants files: "
            + "; ".join(f"{d}: {', '.join(names)}" for d, names in by_digest.items())
        )
    if expected_digest and digests and digests != [expected_digest]:
        warnings.append(f"the tenants file here has digest {expected_digest}, which not every process runs")
    for p in running:
        if p.get("reload_error"):
            warnings.append(
                f"{p.get('role')}@{p.get('host')}:{p.get('pid')} keeps its previous tenants: {p['reload_error']}"
            )
    return warnings


def status(pipeline: Pipeline, client: redis.Redis) -> Status:
    """Queue depths, tasks held by workers, dead letters, and each CRM budget as last reported."""
    queued = {QUEUE: int(client.llen(QUEUE))}
    in_flight = int(client.hlen("unacked"))
    budgets = [
        {"key": b.key, "used": b.used, "limit": b.limit, "remaining": b.remaining}
        for b in all_budgets(client)
    ]
    running = processes(client)
    store = pipeline.store
    return Status(
        queued=queued,
        in_flight=in_flight,
        dead_letters=store.dead_count(),
        scheduled_refreshes=store.scheduled_refreshes(),
        calls=int(client.zcard(store.index_key)),
        budgets=budgets,
        owed=store.owed(),
        stalled=store.stalled_count(),
        processes=running,
        warnings=config_warnings(running, pipeline.tenants.digest or None),
    )
