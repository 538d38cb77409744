"""Operations on live calls: explain, refresh, override, dead letters, simulate, status.

Shared by the CLI and the HTTP admin routes, so both say and do the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from adapters.ratelimit import all_budgets
from worker.core.model import REMOVABLE_TYPES, Decision
from worker.ingest.events import CallEvent
from worker.pipeline.association import associate
from worker.pipeline.celery_app import QUEUE, app, sent_now
from worker.pipeline.heartbeat import processes
from worker.pipeline.preferences import StoredPreference
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
    remove: Sequence[tuple[str, str]] = (),
    by: str = "unknown",
    how: str = "override",
    send: Sender | None = None,
) -> CallRecord:
    """A person's fix: lock (R2, R4), unlink (R6) and remember it (L1); the refresh and write-back follow."""
    if account_id is None and opportunity_id is None and contact_ids is None and not remove:
        raise OpsError(
            "nothing to override: give --account, --opportunity, --contact or --remove-contact/-account/-opportunity"
        )
    for kind, record_id in remove:
        if kind not in REMOVABLE_TYPES:
            raise OpsError(f"cannot remove a {kind!r} (one of: {', '.join(REMOVABLE_TYPES)})")
        if (kind, record_id) in (("account", account_id), ("opportunity", opportunity_id)) or (
            kind == "contact" and contact_ids is not None and record_id in contact_ids
        ):
            raise OpsError(f"{kind} {record_id} is both set and removed")
    name = resolve_tenant(pipeline, call_id, tenant)
    record = pipeline.override(
        name,
        call_id,
        account_id=account_id,
        opportunity_id=opportunity_id,
        contact_ids=contact_ids,
        remove=remove,
        by=by,
        how=how,
    )
    (send or celery_sender())(REFRESH_TASK, [name, call_id])
    return record


@dataclass(frozen=True)
class ReviewItem:
    """A call waiting in the review queue: its stored result and the candidates a person picks from."""

    tenant: str
    call_id: str
    decided_at: str | None
    contact_ids: list[str]
    account_id: str | None
    candidates: list[dict[str, str]]

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def review_list(pipeline: Pipeline, tenant: str | None = None) -> list[ReviewItem]:
    """The ambiguous calls, newest first (a call no longer ambiguous leaves the queue at its next decision)."""
    if tenant is not None:
        pipeline.tenant(tenant)
    items = []
    for member_tenant, call_id in pipeline.review.listing(tenant):
        record = pipeline.store.get(member_tenant, call_id)
        if record is None or record.decision is None:
            continue
        items.append(
            ReviewItem(
                tenant=member_tenant,
                call_id=call_id,
                decided_at=record.decided_at,
                contact_ids=list(record.decision.get("contact_ids", [])),
                account_id=record.decision.get("account_id"),
                candidates=list(record.decision.get("candidates", [])),
            )
        )
    return items


def review_choose(
    pipeline: Pipeline,
    call_id: str,
    *,
    tenant: str | None = None,
    opportunity_id: str | None = None,
    account_id: str | None = None,
    by: str = "unknown",
    send: Sender | None = None,
) -> CallRecord:
    """A person's choice for an ambiguous call: applied like an override (locked, remembered, written back)."""
    if (opportunity_id is None) == (account_id is None):
        raise OpsError("review choose: give one of --opportunity or --account")
    name = resolve_tenant(pipeline, call_id, tenant)
    record = pipeline.store.require(name, call_id)
    offered = {(c["type"], c["id"]) for c in (record.decision or {}).get("candidates", [])}
    chosen = ("opportunity", opportunity_id) if opportunity_id is not None else ("account", account_id)
    if not offered:
        raise OpsError(f"call {call_id} is not waiting for review (it has no candidates); use override")
    if chosen not in offered:
        listed = ", ".join(f"{t} {i}" for t, i in sorted(offered))
        raise OpsError(
            f"{chosen[0]} {chosen[1]} is not one of the call's candidates ({listed}); use override"
        )
    return override(
        pipeline,
        call_id,
        tenant=name,
        opportunity_id=opportunity_id,
        account_id=account_id,
        by=by,
        how="review",
        send=send,
    )


def preferences_list(
    pipeline: Pipeline, tenant: str | None, contact_ids: Sequence[str] | None = None
) -> list[StoredPreference]:
    name = _only_tenant(pipeline, tenant)
    return pipeline.preferences.listing(name, contact_ids)


def preferences_forget(
    pipeline: Pipeline, tenant: str | None, contact_ids: Sequence[str], everything: bool = False
) -> int:
    if not contact_ids and not everything:
        raise OpsError("preferences forget: name contacts with --contact or use --all")
    if contact_ids and everything:
        raise OpsError("preferences forget: give --contact or --all, not both")
    name = _only_tenant(pipeline, tenant)
    return pipeline.preferences.forget(name, None if everything else contact_ids)


def _only_tenant(pipeline: Pipeline, tenant: str | None) -> str:
    """The named tenant (checked), or the only one."""
    if tenant is not None:
        return pipeline.tenant(tenant).name
    names = sorted(pipeline.tenants.tenants)
    if len(names) == 1:
        return names[0]
    raise OpsError(f"name a tenant with --tenant (one of: {', '.join(names)})")


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
