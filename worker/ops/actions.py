"""Operations on live calls: explain, list, refresh, override, unlock, dead letters, simulate, status.

Shared by the CLI and the HTTP API, so both say and do the same thing. Their errors
name fields (`opportunity_id`, `tenant`), never a command-line flag: the same message
reaches a person at a terminal and a program over HTTP.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from adapters.errors import ExternalError
from adapters.ratelimit import all_budgets
from worker.config.tenants import PROVIDERS, Tenant
from worker.core.model import REMOVABLE_TYPES, Case, Decision
from worker.core.port import CrmPort
from worker.ingest.events import CallEvent, EventError
from worker.pipeline.association import associate
from worker.pipeline.celery_app import BACKFILL_PRIORITY, QUEUE, app, queue_keys, sent_now
from worker.pipeline.heartbeat import processes
from worker.pipeline.preferences import StoredPreference
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallRecord, CallStatus, DeadLetter, IndexRow, Stage, parse_cursor, unmember
from worker.pipeline.tasks import REFRESH_TASK, STAGE_TASKS

Sender = Callable[[str, list[Any]], None]


def celery_sender(celery: Any = None) -> Sender:
    """Fire-and-forget sends on the worker's queue (results are never awaited)."""
    target = celery if celery is not None else app

    def send(task: str, args: list[Any]) -> None:
        from worker.pipeline.reassociate import BACKFILL_TASKS

        options = {"priority": BACKFILL_PRIORITY} if task in BACKFILL_TASKS else {}  # behind every live call
        target.send_task(task, args=args, ignore_result=True, headers=sent_now(), **options)

    return send


class OpsError(LookupError):
    """Something a person asked for that cannot be done as asked; the message says why.

    `field` names what to correct (`opportunity_id`, `tenant`, `cursor`), for an HTTP answer.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class MissingSecretError(OpsError):
    """The tenant's secrets this operation needs are not in this environment (the message names them)."""


class CrmUnavailableError(OpsError):
    """The tenant's CRM did not answer the check this operation needs; nothing was changed."""


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
        raise OpsError(f"no tenant has a call {call_id!r}; name its tenant", "tenant")
    raise OpsError(f"call {call_id!r} exists for tenants {', '.join(owners)}; name its tenant", "tenant")


def require_secrets(tenant: Tenant, purpose: str, prefixes: Sequence[str] = ("crm.",)) -> None:
    """Refuse, naming each missing variable or file, when a secret under `prefixes` was not found."""
    missing = [e for e in tenant.unresolved if e.path.startswith(tuple(prefixes))]
    if missing:
        said = "; ".join(f"{e.path}: {e.reason}" for e in missing)
        raise MissingSecretError(f"{purpose} needs tenant {tenant.name}'s secrets: {said}")


def crm_port(pipeline: Pipeline, tenant: str, purpose: str) -> CrmPort:
    """The tenant's CRM port, once its CRM credentials are known to be there."""
    config = pipeline.tenant(tenant)
    require_secrets(config, purpose)
    return pipeline.crm_for(config)


KIND_FIELDS = {"account": "account_id", "opportunity": "opportunity_id", "contact": "contact_ids"}


def check_ids(
    pipeline: Pipeline,
    tenant: str,
    *,
    account_ids: Sequence[str] = (),
    opportunity_ids: Sequence[str] = (),
    contact_ids: Sequence[str] = (),
) -> None:
    """Every id exists in the tenant's CRM, read by batch (one request per kind); else OpsError naming each.

    Ids compare as strings, as the rules compare them (a Salesforce id in its 18-character form).
    """
    wanted = {
        "account": list(dict.fromkeys(account_ids)),
        "opportunity": list(dict.fromkeys(opportunity_ids)),
        "contact": list(dict.fromkeys(contact_ids)),
    }
    if not any(wanted.values()):
        return
    port = crm_port(pipeline, tenant, "checking the ids in the CRM")
    readers: dict[str, Callable[[Sequence[str]], Iterable[Any]]] = {
        "account": port.accounts_by_ids,
        "opportunity": port.opportunities_by_ids,
        "contact": port.contacts_by_ids,
    }
    unknown: list[tuple[str, str]] = []
    for kind, ids in wanted.items():
        if not ids:
            continue
        try:
            found = {record.id for record in readers[kind](ids)}
        except ExternalError as exc:
            raise CrmUnavailableError(
                f"tenant {tenant}'s CRM could not confirm the {kind} ids ({exc}); nothing was changed; try again",
                KIND_FIELDS[kind],
            ) from None
        unknown += [(kind, given) for given in ids if given not in found]
    if unknown:
        listed = ", ".join(f"{kind} {record_id}" for kind, record_id in unknown)
        raise OpsError(
            f"not found in tenant {tenant}'s CRM: {listed}; nothing was changed", KIND_FIELDS[unknown[0][0]]
        )


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
    """A person's fix: lock (R2, R4), unlink (R6) and remember it (L1); the refresh and write-back follow.

    Every id set is first checked to exist in the tenant's CRM (one batched read per kind):
    an unknown one is refused by name and nothing is written. An id removed is not checked,
    so that a record deleted from the CRM can still be unlinked.
    """
    if account_id is None and opportunity_id is None and contact_ids is None and not remove:
        raise OpsError(
            "nothing to override: set account_id, opportunity_id or contact_ids, or name records to remove",
            "account_id",
        )
    for kind, record_id in remove:
        if kind not in REMOVABLE_TYPES:
            raise OpsError(f"cannot remove a {kind!r} (one of: {', '.join(REMOVABLE_TYPES)})", "remove")
        if (kind, record_id) in (("account", account_id), ("opportunity", opportunity_id)) or (
            kind == "contact" and contact_ids is not None and record_id in contact_ids
        ):
            raise OpsError(f"{kind} {record_id} is both set and removed", "remove")
    name = resolve_tenant(pipeline, call_id, tenant)
    pipeline.store.require(name, call_id)  # an unknown call is said before the CRM is asked
    check_ids(
        pipeline,
        name,
        account_ids=[account_id] if account_id is not None else [],
        opportunity_ids=[opportunity_id] if opportunity_id is not None else [],
        contact_ids=list(contact_ids or ()),
    )
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


LOCKABLE = {"account": "account_id", "opportunity": "opportunity_id", "contacts": "contact_ids"}
"""A field a person can lock, and the key of the value it locked in `CallRecord.overrides`."""


def unlock(
    pipeline: Pipeline,
    call_id: str,
    fields: Sequence[str],
    *,
    tenant: str | None = None,
    by: str = "unknown",
    send: Sender | None = None,
) -> CallRecord:
    """Give fields a person locked back to the rules; the refresh and write-back follow.

    Recorded in the call's change log (`how: unlock`). A preference (L1) this very call
    taught its contacts for the account or opportunity is forgotten with the lock: it
    would otherwise bring the same choice back at the refresh.
    """
    wanted = list(dict.fromkeys(fields))
    if not wanted:
        raise OpsError("nothing to unlock: name fields among account, opportunity and contacts", "fields")
    strange = [f for f in wanted if f not in LOCKABLE]
    if strange:
        raise OpsError(
            f"cannot unlock {', '.join(map(repr, strange))}: fields are account, opportunity and contacts",
            "fields",
        )
    name = resolve_tenant(pipeline, call_id, tenant)
    pipeline.tenant(name)
    at = pipeline.store.now().astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    forgotten: list[str] = []

    def free(record: CallRecord) -> None:
        not_locked = [f for f in wanted if f not in record.locked]
        if not_locked:
            raise OpsError(
                f"call {call_id} has no lock on {', '.join(not_locked)} "
                f"(locked: {', '.join(record.locked) or 'nothing'}); nothing was changed",
                "fields",
            )
        record.locked = [f for f in record.locked if f not in wanted]
        for f in wanted:
            record.overrides.pop(LOCKABLE[f], None)
        change: dict[str, Any] = {"how": "unlock", "by": by, "at": at, "unlocked": wanted}
        if forgotten:
            change["forgot_preferences"] = list(forgotten)
        record.changes.append(change)
        record.next_stage = Stage.ASSOCIATE.value

    if {"account", "opportunity"} & set(wanted):
        # The contacts whose latest preference this call taught (a later choice elsewhere is kept).
        before = pipeline.store.require(name, call_id)
        contacts = before.overrides.get("contact_ids") or (before.decision or {}).get("contact_ids") or []
        forgotten = [
            p.contact_id for p in pipeline.preferences.listing(name, contacts) if p.call_id == call_id
        ]
    record = pipeline.store.update(name, call_id, free)
    if forgotten:
        pipeline.preferences.forget(name, forgotten)
    (send or celery_sender())(REFRESH_TASK, [name, call_id])
    return record


@dataclass(frozen=True)
class CallSummary:
    """One line of the calls list: what a person scans for (the record holds the rest)."""

    tenant: str
    call_id: str
    provider: str
    kind: str | None
    status: str
    received_at: str
    started_at: str | None
    case: str | None
    account_id: str | None
    opportunity_id: str | None
    contact_ids: list[str]
    lead_ids: list[str]
    locked: list[str]
    decided_at: str | None
    written_at: str | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def of(record: CallRecord) -> CallSummary:
        decision = record.decision or {}
        event = record.event
        return CallSummary(
            tenant=record.tenant,
            call_id=record.call_id,
            provider=str(event.get("provider") or record.call_id.split(":", 1)[0]),
            kind=event.get("kind"),
            status=record.status.value,
            received_at=record.created_at,
            started_at=event.get("started_at"),
            case=decision.get("case"),
            account_id=decision.get("account_id"),
            opportunity_id=decision.get("opportunity_id"),
            contact_ids=list(decision.get("contact_ids", [])),
            lead_ids=list(decision.get("lead_ids", [])),
            locked=list(record.locked),
            decided_at=record.decided_at,
            written_at=record.written_at,
            error=record.error.get("reason") if record.error else None,
        )


@dataclass(frozen=True)
class CallsPage:
    """A page of calls, newest first; `next_cursor` continues the listing (None: nothing more)."""

    items: list[CallSummary]
    next_cursor: str | None
    scanned: int = field(default=0, compare=False)
    """How many calls were looked at for this page (a page can end short of `limit` on a budget)."""

    def to_json(self) -> dict[str, Any]:
        return {"items": [item.to_json() for item in self.items], "next_cursor": self.next_cursor}


MAX_LIMIT = 500
SCAN_BUDGET = 5000
"""The most call records one page reads; a page whose filters leave fewer ends early, with a cursor."""
WALK_BUDGET = 50_000
"""The most index entries one page walks (other tenants' and providers' calls are skipped unread)."""
READ_BATCH = 200


def parse_when(text: str | dt.datetime | dt.date | None, name: str, end_of_day: bool = False) -> float | None:
    """A bound of the calls list as a timestamp: a date (`2026-03-10`, UTC) or a date-time with an offset.

    A date as `until` includes that whole day.
    """
    if text is None:
        return None
    if isinstance(text, dt.datetime):
        moment = text
    elif isinstance(text, dt.date):
        moment = dt.datetime.combine(text, dt.time(), dt.UTC)
        if end_of_day:
            moment += dt.timedelta(days=1)
    else:
        value = text.strip()
        try:
            if len(value) == 10:
                moment = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
                if end_of_day:
                    moment += dt.timedelta(days=1)
            else:
                moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise OpsError(
                f"{name}: {text!r} is not a date (YYYY-MM-DD) or an ISO-8601 date-time", name
            ) from None
    if moment.tzinfo is None:
        raise OpsError(f"{name}: {text!r} has no offset (add Z or +01:00)", name)
    return moment.timestamp()


def _choice(value: str | None, name: str, allowed: Sequence[str]) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise OpsError(f"{name}: unknown value {value!r} (expected one of: {', '.join(allowed)})", name)
    return value


def calls_list(
    pipeline: Pipeline,
    tenant: str | None,
    *,
    status: str | None = None,
    case: str | None = None,
    since: str | dt.datetime | dt.date | None = None,
    until: str | dt.datetime | dt.date | None = None,
    has_opportunity: bool | None = None,
    provider: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> CallsPage:
    """A tenant's calls (every tenant's when None), newest received first, filtered, one page at a time.

    `since` / `until` bound when the call was received ([since, until); a date as `until`
    includes that day). `has_opportunity` is about the latest decision (a call not decided
    yet has none). A page looks at no more than SCAN_BUDGET calls: when filters leave few,
    it can hold fewer than `limit` items and still give a `next_cursor`.
    """
    if tenant is not None:
        pipeline.tenant(tenant)
    wanted_status = _choice(status, "status", [s.value for s in CallStatus])
    wanted_case = _choice(case, "case", [c.value for c in Case])
    wanted_provider = _choice(provider, "provider", PROVIDERS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise OpsError(f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {limit!r}", "limit")
    low = parse_when(since, "since")
    high = parse_when(until, "until", end_of_day=True)
    after: tuple[float, int] | None = None
    if cursor:
        try:
            after = parse_cursor(cursor)
        except ValueError as exc:
            raise OpsError(f"cursor: {exc}", "cursor") from None

    def keep(record: CallRecord) -> bool:
        decision = record.decision or {}
        if wanted_status is not None and record.status.value != wanted_status:
            return False
        if wanted_case is not None and decision.get("case") != wanted_case:
            return False
        if has_opportunity is not None and bool(decision.get("opportunity_id")) != has_opportunity:
            return False
        return wanted_provider is None or record.event.get("provider") == wanted_provider

    items: list[CallSummary] = []
    pending: list[IndexRow] = []
    read = 0

    def take() -> IndexRow | None:
        """Keep the matching calls of `pending` (one round trip); the row at which the page filled up."""
        records = pipeline.store.get_many((row.tenant, row.call_id) for row in pending)
        for row, record in zip(pending, records, strict=True):
            if record is not None and keep(record):
                items.append(CallSummary.of(record))
                if len(items) == limit:
                    return row
        return None

    for walked, row in enumerate(pipeline.store.newest_first(after=after, since=low, until=high), start=1):
        mine = tenant is None or row.tenant == tenant
        # A call id starts with its provider's name: other providers' calls need no read.
        if mine and (wanted_provider is None or row.call_id.startswith(f"{wanted_provider}:")):
            pending.append(row)
            read += 1
        if len(pending) >= min(READ_BATCH, limit - len(items)) or read >= SCAN_BUDGET:
            full = take()
            pending = []
            if full is not None:
                return CallsPage(items, full.cursor, read)
        if read >= SCAN_BUDGET or walked >= WALK_BUDGET:
            if pending:
                full = take()
                if full is not None:
                    return CallsPage(items, full.cursor, read)
            return CallsPage(items, row.cursor, read)
    if pending:
        full = take()
        if full is not None:
            return CallsPage(items, full.cursor, read)
    return CallsPage(items, None, read)


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
        raise OpsError("review choose: choose one of opportunity_id or account_id", "opportunity_id")
    name = resolve_tenant(pipeline, call_id, tenant)
    record = pipeline.store.require(name, call_id)
    offered = {(c["type"], c["id"]) for c in (record.decision or {}).get("candidates", [])}
    chosen = ("opportunity", opportunity_id) if opportunity_id is not None else ("account", account_id)
    if not offered:
        raise OpsError(
            f"call {call_id} is not waiting for review (it has no candidates); use override", "call_id"
        )
    if chosen not in offered:
        listed = ", ".join(f"{t} {i}" for t, i in sorted(offered))
        raise OpsError(
            f"{chosen[0]} {chosen[1]} is not one of the call's candidates ({listed}); use override",
            f"{chosen[0]}_id",
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
        raise OpsError("preferences forget: name the contacts (contact_ids), or forget all", "contact_ids")
    if contact_ids and everything:
        raise OpsError(
            "preferences forget: name contacts (contact_ids) or forget all, not both", "contact_ids"
        )
    name = _only_tenant(pipeline, tenant)
    return pipeline.preferences.forget(name, None if everything else contact_ids)


def _only_tenant(pipeline: Pipeline, tenant: str | None) -> str:
    """The named tenant (checked), or the only one."""
    if tenant is not None:
        return pipeline.tenant(tenant).name
    names = sorted(pipeline.tenants.tenants)
    if len(names) == 1:
        return names[0]
    raise OpsError(f"name a tenant (one of: {', '.join(names)})", "tenant")


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
        raise OpsError(f"not dead letters: {', '.join(missing)}", "call_ids")
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


def simulate(pipeline: Pipeline, tenant: str, event_json: object) -> Decision:
    """Fetch and associate against the tenant's live CRM; writes nothing, stores nothing.

    `event_json` is a "call ended" event as the receiver queues it (worker.ingest.events.EventMessage);
    its `tenant` is set to `tenant`.
    """
    config = pipeline.tenant(tenant)
    if not isinstance(event_json, dict):
        raise EventError("(event)", "expected an object")
    # The CRM's credentials, and the providers' API credentials that the fetch may use.
    require_secrets(config, "simulate", ("crm.", *(f"providers.{p}.credentials" for p in PROVIDERS)))
    event = CallEvent.from_json({**event_json, "tenant": tenant})
    if pipeline.fetch_participants is not None:
        event = pipeline.fetch_participants(config, event)
    return associate(event.to_call(), config.policy, pipeline.crm_for(config))


@dataclass(frozen=True)
class TenantStatus:
    """One tenant's calls: how many in each status, and how many became decided / written lately."""

    tenant: str
    calls: dict[str, int]
    decided_last_minute: int
    decided_last_hour: int
    written_last_minute: int
    written_last_hour: int
    dead_letters: int
    waiting_review: int

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


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
    tenants: list[TenantStatus] = field(default_factory=list)
    tenant: str | None = None
    """Set when the status is one tenant's: the counts above are then that tenant's only."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tenants"] = [t.to_json() for t in self.tenants]
        return data


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


def tenant_status(pipeline: Pipeline, tenant: str, dead: Sequence[tuple[str, str]] = ()) -> TenantStatus:
    """Counts per status from the tenant's status sets, rates from its last hour (no record is read)."""
    store = pipeline.store
    rates = store.rates(tenant, (60.0, 3600.0))
    return TenantStatus(
        tenant=tenant,
        calls=store.status_counts(tenant),
        decided_last_minute=rates[CallStatus.DECIDED.value][0],
        decided_last_hour=rates[CallStatus.DECIDED.value][1],
        written_last_minute=rates[CallStatus.WRITTEN.value][0],
        written_last_hour=rates[CallStatus.WRITTEN.value][1],
        dead_letters=sum(1 for owner, _ in dead if owner == tenant),
        waiting_review=sum(1 for owner, _ in pipeline.review.listing(tenant)),
    )


def _members(client: redis.Redis, key: str, *, upto: float | None = None) -> list[tuple[str, str]]:
    """(tenant, call id) of a set of calls (every one, or those scored up to `upto`)."""
    raw = client.zrange(key, 0, -1) if upto is None else client.zrangebyscore(key, "-inf", upto)
    return [unmember(m) for m in raw]


def status(pipeline: Pipeline, client: redis.Redis, tenant: str | None = None) -> Status:
    """Queue depths, tasks held by workers, dead letters, per-tenant calls and rates, each CRM budget.

    With `tenant`, every figure that belongs to tenants is that tenant's only (its calls, its
    dead letters, its budgets, and among the processes' tenants only it); the queue is shared.
    """
    store = pipeline.store
    names = sorted(pipeline.tenants.tenants)
    if tenant is not None:
        pipeline.tenant(tenant)
        names = [tenant]
    queued = {QUEUE: sum(int(client.llen(key)) for key in queue_keys(QUEUE))}
    in_flight = int(client.hlen("unacked"))
    budgets = [
        {"key": b.key, "used": b.used, "limit": b.limit, "remaining": b.remaining}
        for b in all_budgets(client)
        if tenant is None or b.key.split(":")[1:2] == [tenant]
    ]
    running = processes(client)
    dead = _members(client, store.dead_key)
    rows = [tenant_status(pipeline, name, dead) for name in names]
    warnings = config_warnings(running, pipeline.tenants.digest or None)
    if tenant is None:
        return Status(
            queued=queued,
            in_flight=in_flight,
            dead_letters=len(dead),
            scheduled_refreshes=store.scheduled_refreshes(),
            calls=int(client.zcard(store.index_key)),
            budgets=budgets,
            owed=store.owed(),
            stalled=store.stalled_count(),
            processes=running,
            warnings=warnings,
            tenants=rows,
        )
    owed = [m for m in _members(client, store.progress_key) if m[0] == tenant]
    stalled = [m for m in _members(client, store.progress_key, upto=time.time()) if m[0] == tenant]
    return Status(
        queued=queued,
        in_flight=in_flight,
        dead_letters=rows[0].dead_letters,
        scheduled_refreshes=sum(1 for m in _members(client, store.refresh_key) if m[0] == tenant),
        calls=rows[0].total,
        budgets=budgets,
        owed=len(owed),
        stalled=len(stalled),
        processes=[
            {**p, "tenants": [t for t in p.get("tenants", []) if t == tenant], "reload_error": None}
            for p in running
        ],
        warnings=[w for w in warnings if "keeps its previous tenants" not in w],
        tenants=rows,
        tenant=tenant,
    )
