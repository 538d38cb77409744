"""The pipeline's service functions: one per stage, each idempotent on (tenant, call id).

Celery tasks call exactly one of these and own only retry and acknowledgement;
everything else (what to read, what to keep, what to write) happens here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from adapters.errors import ExternalError
from worker.config.tenants import Tenant, Tenants, TenantsSource
from worker.core.model import (
    Candidate,
    Case,
    Decision,
    Opportunity,
    Preference,
    Previous,
    Removed,
    TraceEntry,
)
from worker.core.observability import ASSOCIATIONS, CRM_REQUESTS, WRITES
from worker.core.port import CrmPort, WrittenActivity
from worker.ingest.events import CallEvent
from worker.pipeline.association import PreferencesFor, associate
from worker.pipeline.batching import BatchItem, associate_many
from worker.pipeline.preferences import DEFAULT_PREFERENCE_DAYS, PreferenceStore, ReviewQueue
from worker.pipeline.store import CallRecord, CallStatus, CallStore, RecordNotFoundError, Stage

CrmFactory = Callable[[Tenant], CrmPort]
ParticipantFetcher = Callable[[Tenant, CallEvent], CallEvent]


def with_fetch_notes(decision: Decision, event: CallEvent) -> Decision:
    """The decision whose trace first says what the fetch could not learn (M3: who was not matched, and why)."""
    if not event.notes:
        return decision
    notes = tuple(TraceEntry(rule="M3", message=note) for note in event.notes)
    return replace(decision, trace=notes + decision.trace)


class UnknownTenantError(LookupError):
    """No such tenant, even after reading the tenants file again: a dead letter until it is added."""


class NotReadyError(RuntimeError):
    """A stage was asked for before the one it needs (e.g. write before associate)."""


class BusyError(RuntimeError):
    """Another worker holds this call's write: try again once its lock expires."""

    def __init__(self, message: str, wait_seconds: float):
        super().__init__(message)
        self.wait_seconds = wait_seconds


def decision_from_json(data: dict[str, Any]) -> Decision:
    return Decision(
        call_id=data["call_id"],
        case=Case(data["case"]),
        contact_ids=tuple(data["contact_ids"]),
        lead_ids=tuple(data["lead_ids"]),
        account_id=data["account_id"],
        opportunity_id=data["opportunity_id"],
        trace=tuple(TraceEntry(rule=e["rule"], message=e["message"]) for e in data["trace"]),
        candidates=tuple(
            Candidate(type=c["type"], id=c["id"], reason=c["reason"]) for c in data.get("candidates", ())
        ),
    )


def _unset(record: CallRecord, kind: str, record_id: str) -> None:
    """A removed record is no longer an override of the call (nor locked in).

    Removing the last of the contacts a person set drops that lock too: a lock on no
    contacts would unlink every contact the call matched.
    """
    overrides = record.overrides
    if kind == "contact" and record_id in overrides.get("contact_ids", ()):
        overrides["contact_ids"] = [c for c in overrides["contact_ids"] if c != record_id]
        if not overrides["contact_ids"]:
            del overrides["contact_ids"]
            record.locked = [name for name in record.locked if name != "contacts"]
    field = f"{kind}_id"
    if kind != "contact" and overrides.get(field) == record_id:
        del overrides[field]
        record.locked = [name for name in record.locked if name != kind]


def _unremove(record: CallRecord, kind: str, record_ids: Sequence[str]) -> None:
    """A person now sets a record an earlier change removed: the later choice wins (R6 no longer applies)."""
    record.removed = [r for r in record.removed if not (r["type"] == kind and r["id"] in record_ids)]


def _previous(record: CallRecord) -> Previous | None:
    """What a refresh starts from: the stored result, with a person's overrides on top.

    The stored account is not carried (R2) when it came with an opportunity that is no
    longer the call's: a person locked another one, or removed it (R6). The account is
    then the one the rules give, the locked opportunity's own when they choose it (V3).
    """
    if record.decision is None and not record.overrides and not record.removed:
        return None
    base = record.decision or {}
    overrides = record.overrides
    removed = tuple(Removed(type=r["type"], id=r["id"]) for r in record.removed)
    account_id = base.get("account_id")
    stored_opportunity = base.get("opportunity_id")
    if "opportunity_id" in overrides or any(
        r.type == "opportunity" and r.id == stored_opportunity for r in removed
    ):
        account_id = None
    return Previous(
        contact_ids=tuple(overrides.get("contact_ids", base.get("contact_ids", ()))),
        lead_ids=tuple(base.get("lead_ids", ())),
        account_id=overrides.get("account_id", account_id),
        opportunity_id=overrides.get("opportunity_id", stored_opportunity),
        locked=frozenset(record.locked),
        removed=removed,
    )


@dataclass
class Pipeline:
    tenants: Tenants
    store: CallStore
    crm_for: CrmFactory
    fetch_participants: ParticipantFetcher | None = None
    source: TenantsSource | None = None
    write_lock_seconds: float = 150.0
    preference_days: int = DEFAULT_PREFERENCE_DAYS

    @property
    def preferences(self) -> PreferenceStore:
        return PreferenceStore(self.store.redis, self.preference_days)

    @property
    def review(self) -> ReviewQueue:
        return ReviewQueue(self.store.redis)

    def reload_tenants(self, force: bool = False) -> None:
        """Pick up a changed tenants file (a stat per call; `force` reads it whatever the stat)."""
        if self.source is not None:
            self.source.reload(force)
            self.tenants = self.source.current

    def tenant(self, name: str) -> Tenant:
        tenant = self.tenants.get(name)
        if tenant is None and self.source is not None:
            self.reload_tenants(force=True)  # a tenant added since this process read the file
            tenant = self.tenants.get(name)
        if tenant is None:
            raise UnknownTenantError(f"unknown tenant {name!r}")
        return tenant

    def accept(self, event: CallEvent) -> tuple[CallRecord, bool]:
        """A call's record, created once whatever the redeliveries (or again from its event if lost)."""
        return self.store.create(event.tenant, event.call_id, event.to_json())

    def fetch(self, tenant_name: str, call_id: str) -> CallRecord | None:
        """Participants from the provider's API when the webhook did not carry them; None if done already."""
        tenant = self.tenant(tenant_name)
        record = self.store.require(tenant_name, call_id)
        if record.next_stage != Stage.FETCH.value and record.status is not CallStatus.RECEIVED:
            return None  # a redelivered or swept duplicate: the call is past this stage
        event = CallEvent.from_json(record.event)
        if not event.complete and self.fetch_participants is not None:
            event = self.fetch_participants(tenant, event)

        def keep(r: CallRecord) -> None:
            r.event = event.to_json()
            if r.status is CallStatus.RECEIVED:
                r.status = CallStatus.FETCHED
            if r.next_stage in (None, Stage.FETCH.value):
                r.next_stage = Stage.ASSOCIATE.value

        return self.store.update(tenant_name, call_id, keep)

    def decide(self, tenant_name: str, call_id: str) -> Decision | None:
        """The rules through the tenant's CRM; a refresh when a result is already stored (R1-R4).

        None when the call does not owe this stage (a duplicate message): nothing is read.
        """
        tenant = self.tenant(tenant_name)
        record = self.store.require(tenant_name, call_id)
        if record.decision is not None and record.next_stage != Stage.ASSOCIATE.value:
            return None
        now = self.store.now()
        decision = self.plan(tenant, record, now)
        started_at = CallEvent.from_json(record.event).to_call().started_at
        self._keep_decision(tenant, call_id, started_at, decision, now)
        return decision

    def plan(self, tenant: Tenant, record: CallRecord, now: dt.datetime) -> Decision:
        """The rules through the tenant's CRM for a kept call, stored nowhere (`decide` keeps it).

        A refresh when a result is stored: people's overrides, locks and removals on top
        (`Previous`), L1's live preferences.
        """
        event = CallEvent.from_json(record.event)
        port = self.crm_for(tenant)
        try:
            decided = associate(
                event.to_call(), tenant.policy, port, _previous(record), self._preferences_for(tenant, now)
            )
        finally:
            CRM_REQUESTS.labels(tenant=tenant.name, crm=tenant.crm.kind).inc(port.stats.requests)
        return with_fetch_notes(decided, event)

    def _preferences_for(self, tenant: Tenant, now: dt.datetime) -> PreferencesFor:
        """L1's source for `associate`: the live preferences of the contacts read."""
        preferences = self.preferences

        def preferences_for(
            contact_ids: Sequence[str], opportunities: Sequence[Opportunity]
        ) -> tuple[Preference, ...]:
            return preferences.live(tenant.name, contact_ids, opportunities, now)

        return preferences_for

    def _keep_decision(
        self, tenant: Tenant, call_id: str, started_at: dt.datetime, decision: Decision, now: dt.datetime
    ) -> None:
        """The decision stored, the write owed, the review queue and R5's next look updated."""
        ASSOCIATIONS.labels(tenant=tenant.name, case=decision.case.value).inc()

        def keep(r: CallRecord) -> None:
            if r.decision is not None:
                r.refreshes += 1
            r.decision = decision.to_json()
            r.decided_at = now.isoformat()
            r.status = CallStatus.DECIDED
            r.next_stage = Stage.WRITE.value

        self.store.update(tenant.name, call_id, keep)
        self.review.keep(tenant.name, call_id, decision.case is Case.AMBIGUOUS, now)
        self._plan_refresh(tenant, call_id, started_at, decision, now)

    def decide_batch(self, tenant_name: str, call_ids: Sequence[str]) -> dict[str, Decision | None]:
        """`decide` for many calls of one tenant: one port, shared rounds of reads, each call decided as alone.

        None for a call that does not owe this stage or whose record is gone. Reads
        that fail (the CRM down, rate limited) raise before anything is kept: every
        call still owes its stage.
        """
        tenant = self.tenant(tenant_name)
        out: dict[str, Decision | None] = {}
        owed: list[tuple[str, CallEvent, CallRecord]] = []
        for call_id in dict.fromkeys(call_ids):
            try:
                record = self.store.require(tenant_name, call_id)
            except RecordNotFoundError:
                out[call_id] = None
                continue
            if record.decision is not None and record.next_stage != Stage.ASSOCIATE.value:
                out[call_id] = None
                continue
            owed.append((call_id, CallEvent.from_json(record.event), record))
        if not owed:
            return out
        port = self.crm_for(tenant)
        now = self.store.now()
        preferences_for = self._preferences_for(tenant, now)
        items = [
            BatchItem(event.to_call(), tenant.policy, _previous(record), preferences_for)
            for _, event, record in owed
        ]
        try:
            decisions = associate_many(items, port)
        finally:
            CRM_REQUESTS.labels(tenant=tenant.name, crm=tenant.crm.kind).inc(port.stats.requests)
        for (call_id, event, _), item, decision in zip(owed, items, decisions, strict=True):
            decision = with_fetch_notes(decision, event)
            self._keep_decision(tenant, call_id, item.call.started_at, decision, now)
            out[call_id] = decision
        return out

    def _plan_refresh(
        self, tenant: Tenant, call_id: str, started_at: dt.datetime, decision: Decision, now: dt.datetime
    ) -> None:
        """R5: without an opportunity, look again daily while S1.2 can still find one."""
        until = started_at + dt.timedelta(days=tenant.policy.windows.created_after_days)
        if decision.opportunity_id is None and now < until:
            self.store.schedule_refresh(tenant.name, call_id, min(now + dt.timedelta(days=1), until))
        else:
            self.store.unschedule_refresh(tenant.name, call_id)

    def write(self, tenant_name: str, call_id: str) -> WrittenActivity | None:
        """W1: the one activity of this call, created or updated, never duplicated.

        One writer per call at a time (a Redis lock), so two deliveries of the write
        message (a swept stall, a redelivery) never race to create two activities. None
        when the latest decision is already written (a duplicate message).
        """
        tenant = self.tenant(tenant_name)
        record = self.store.require(tenant_name, call_id)
        if record.decision is None:
            raise NotReadyError(f"call {call_id!r} has no decision to write")
        if record.next_stage != Stage.WRITE.value and record.status is CallStatus.WRITTEN:
            return None
        token = self.store.lock("write", tenant_name, call_id, self.write_lock_seconds)
        if token is None:
            wait = self.store.lock_ttl("write", tenant_name, call_id)
            raise BusyError(f"call {call_id!r} is being written by another worker", max(wait, 1.0))
        try:
            record = self.store.require(tenant_name, call_id)  # the latest decision, read under the lock
            assert record.decision is not None
            decided = (record.refreshes, record.decision)
            call = CallEvent.from_json(record.event).to_call()
            port = self.crm_for(tenant)
            try:
                written = port.upsert_activity(call, decision_from_json(record.decision))
            finally:
                CRM_REQUESTS.labels(tenant=tenant.name, crm=tenant.crm.kind).inc(port.stats.requests)
            return self._keep_written(tenant, call_id, decided, written, self.store.now())
        finally:
            self.store.unlock("write", tenant_name, call_id, token)

    def write_batch(
        self, tenant_name: str, call_ids: Sequence[str]
    ) -> dict[str, WrittenActivity | Exception | None]:
        """`write` for many calls of one tenant: one `upsert_activities` for every call that owes its write.

        Per call: None when already written (or the record is gone), the exception
        `write` would raise (NotReadyError, BusyError, the CRM's refusal of that one
        record), or what was written. An error that stops every write (credentials,
        the rate limit, the CRM down) is raised once the locks are released: nothing
        is kept, every call still owes its write.
        """
        tenant = self.tenant(tenant_name)
        out: dict[str, WrittenActivity | Exception | None] = {}
        locked: dict[str, str] = {}
        try:
            owed: list[tuple[str, tuple[int, dict[str, Any]], CallRecord]] = []
            for call_id in dict.fromkeys(call_ids):
                try:
                    record = self.store.require(tenant_name, call_id)
                except RecordNotFoundError:
                    out[call_id] = None
                    continue
                if record.decision is None:
                    out[call_id] = NotReadyError(f"call {call_id!r} has no decision to write")
                    continue
                if record.next_stage != Stage.WRITE.value and record.status is CallStatus.WRITTEN:
                    out[call_id] = None
                    continue
                token = self.store.lock("write", tenant_name, call_id, self.write_lock_seconds)
                if token is None:
                    wait = self.store.lock_ttl("write", tenant_name, call_id)
                    out[call_id] = BusyError(
                        f"call {call_id!r} is being written by another worker", max(wait, 1.0)
                    )
                    continue
                locked[call_id] = token
                record = self.store.require(tenant_name, call_id)  # the latest decision, read under the lock
                assert record.decision is not None
                owed.append((call_id, (record.refreshes, record.decision), record))
            if not owed:
                return out
            port = self.crm_for(tenant)
            writes = [
                (CallEvent.from_json(record.event).to_call(), decision_from_json(decided[1]))
                for _, decided, record in owed
            ]
            try:
                results = port.upsert_activities(writes)
            finally:
                CRM_REQUESTS.labels(tenant=tenant.name, crm=tenant.crm.kind).inc(port.stats.requests)
            now = self.store.now()
            for (call_id, decided, _), result in zip(owed, results, strict=True):
                if isinstance(result, ExternalError):
                    out[call_id] = result
                    continue
                out[call_id] = self._keep_written(tenant, call_id, decided, result, now)
            return out
        finally:
            for call_id, token in locked.items():
                self.store.unlock("write", tenant_name, call_id, token)

    def _keep_written(
        self,
        tenant: Tenant,
        call_id: str,
        decided: tuple[int, dict[str, Any]],
        written: WrittenActivity,
        now: dt.datetime,
    ) -> WrittenActivity:
        """What W1 left, kept; the call is written unless a newer decision still owes its stage."""
        WRITES.labels(tenant=tenant.name, created=str(written.created).lower()).inc()

        def keep(r: CallRecord) -> None:
            r.written = {"id": written.id, "kind": written.kind, "created": written.created}
            r.written_at = now.isoformat()
            r.error = None
            if (r.refreshes, r.decision) == decided and r.next_stage == Stage.WRITE.value:
                r.status = CallStatus.WRITTEN
                r.next_stage = None
            # else a newer decision (or a refresh asked for meanwhile) still owes its stage

        kept = self.store.update(tenant.name, call_id, keep)
        if kept.status is CallStatus.WRITTEN:
            self.store.forget(tenant.name, call_id)  # a dead letter its call got past is moot
        return written

    def override(
        self,
        tenant_name: str,
        call_id: str,
        *,
        account_id: str | None = None,
        opportunity_id: str | None = None,
        contact_ids: Sequence[str] | None = None,
        remove: Sequence[tuple[str, str]] = (),
        by: str = "unknown",
        how: str = "override",
    ) -> CallRecord:
        """A person's choice: lock those fields (R2, R4), unlink `remove` (R6), remember it (L1).

        Each matched contact of the call records a preference for the chosen account
        or opportunity, so the contact's next call follows this choice.
        """
        self.tenant(tenant_name)
        now = self.store.now()
        at = now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

        def lock(r: CallRecord) -> None:
            if account_id is not None:
                r.overrides["account_id"] = account_id
                r.locked = sorted({*r.locked, "account"})
                _unremove(r, "account", [account_id])
            if opportunity_id is not None:
                r.overrides["opportunity_id"] = opportunity_id
                r.locked = sorted({*r.locked, "opportunity"})
                _unremove(r, "opportunity", [opportunity_id])
            if contact_ids is not None:
                r.overrides["contact_ids"] = list(contact_ids)
                r.locked = sorted({*r.locked, "contacts"})
                _unremove(r, "contact", contact_ids)
            for kind, record_id in remove:
                if not any(x["type"] == kind and x["id"] == record_id for x in r.removed):
                    r.removed.append({"type": kind, "id": record_id, "by": by, "at": at})
                _unset(r, kind, record_id)
            change: dict[str, Any] = {"how": how, "by": by, "at": at}
            change.update(
                {
                    k: v
                    for k, v in (
                        ("account_id", account_id),
                        ("opportunity_id", opportunity_id),
                        ("contact_ids", list(contact_ids) if contact_ids is not None else None),
                    )
                    if v is not None
                }
            )
            if remove:
                change["removed"] = [{"type": k, "id": i} for k, i in remove]
            r.changes.append(change)
            r.next_stage = Stage.ASSOCIATE.value  # the refresh that applies it is owed from now on

        record = self.store.update(tenant_name, call_id, lock)
        matched = record.overrides.get("contact_ids") or (record.decision or {}).get("contact_ids") or []
        unlinked = {r["id"] for r in record.removed if r["type"] == "contact"}  # they learn nothing from it
        self.preferences.record(
            tenant_name,
            [c for c in matched if c not in unlinked],
            account_id=account_id,
            opportunity_id=opportunity_id,
            now=now,
            by=by,
            call_id=call_id,
        )
        return record

    def explain(self, tenant_name: str, call_id: str) -> CallRecord:
        return self.store.require(tenant_name, call_id)
