"""The pipeline's service functions: one per stage, each idempotent on (tenant, call id).

Celery tasks call exactly one of these and own only retry and acknowledgement;
everything else (what to read, what to keep, what to write) happens here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from worker.association import associate
from worker.events import CallEvent
from worker.model import Case, Decision, Previous, TraceEntry
from worker.observability import ASSOCIATIONS, CRM_REQUESTS, WRITES
from worker.port import CrmPort, WrittenActivity
from worker.store import CallRecord, CallStatus, CallStore
from worker.tenants import Tenant, Tenants

CrmFactory = Callable[[Tenant], CrmPort]
ParticipantFetcher = Callable[[Tenant, CallEvent], CallEvent]


class UnknownTenantError(LookupError):
    pass


class NotReadyError(RuntimeError):
    """A stage was asked for before the one it needs (e.g. write before associate)."""


def decision_from_json(data: dict[str, Any]) -> Decision:
    return Decision(
        call_id=data["call_id"],
        case=Case(data["case"]),
        contact_ids=tuple(data["contact_ids"]),
        lead_ids=tuple(data["lead_ids"]),
        account_id=data["account_id"],
        opportunity_id=data["opportunity_id"],
        trace=tuple(TraceEntry(rule=e["rule"], message=e["message"]) for e in data["trace"]),
    )


def _previous(record: CallRecord) -> Previous | None:
    """What a refresh starts from: the stored result, with a person's overrides on top."""
    if record.decision is None and not record.overrides:
        return None
    base = record.decision or {}
    overrides = record.overrides
    return Previous(
        contact_ids=tuple(overrides.get("contact_ids", base.get("contact_ids", ()))),
        lead_ids=tuple(base.get("lead_ids", ())),
        account_id=overrides.get("account_id", base.get("account_id")),
        opportunity_id=overrides.get("opportunity_id", base.get("opportunity_id")),
        locked=frozenset(record.locked),
    )


@dataclass
class Pipeline:
    tenants: Tenants
    store: CallStore
    crm_for: CrmFactory
    fetch_participants: ParticipantFetcher | None = None

    def tenant(self, name: str) -> Tenant:
        tenant = self.tenants.get(name)
        if tenant is None:
            raise UnknownTenantError(f"unknown tenant {name!r}")
        return tenant

    def accept(self, event: CallEvent) -> tuple[CallRecord, bool]:
        """First sight of a call: its record, created once whatever the redeliveries."""
        self.tenant(event.tenant)
        return self.store.create(event.tenant, event.call_id, event.to_json())

    def fetch(self, tenant_name: str, call_id: str) -> CallRecord:
        """Participants from the provider's API when the webhook did not carry them."""
        tenant = self.tenant(tenant_name)
        record = self.store.require(tenant_name, call_id)
        event = CallEvent.from_json(record.event)
        if not event.complete and self.fetch_participants is not None:
            event = self.fetch_participants(tenant, event)

        def keep(r: CallRecord) -> None:
            r.event = event.to_json()
            if r.status is CallStatus.RECEIVED:
                r.status = CallStatus.FETCHED

        return self.store.update(tenant_name, call_id, keep)

    def decide(self, tenant_name: str, call_id: str) -> Decision:
        """The rules through the tenant's CRM; a refresh when a result is already stored (R1-R4)."""
        tenant = self.tenant(tenant_name)
        record = self.store.require(tenant_name, call_id)
        call = CallEvent.from_json(record.event).to_call()
        port = self.crm_for(tenant)
        try:
            decision = associate(call, tenant.policy, port, _previous(record))
        finally:
            CRM_REQUESTS.labels(tenant=tenant.name, crm=tenant.crm.kind).inc(port.stats.requests)
        ASSOCIATIONS.labels(tenant=tenant.name, case=decision.case.value).inc()
        now = self.store.now()

        def keep(r: CallRecord) -> None:
            if r.decision is not None:
                r.refreshes += 1
            r.decision = decision.to_json()
            r.decided_at = now.isoformat()
            r.status = CallStatus.DECIDED

        self.store.update(tenant_name, call_id, keep)
        self._plan_refresh(tenant, call_id, call.started_at, decision, now)
        return decision

    def _plan_refresh(
        self, tenant: Tenant, call_id: str, started_at: dt.datetime, decision: Decision, now: dt.datetime
    ) -> None:
        """R5: without an opportunity, look again daily while S1.2 can still find one."""
        until = started_at + dt.timedelta(days=tenant.policy.windows.created_after_days)
        if decision.opportunity_id is None and now < until:
            self.store.schedule_refresh(tenant.name, call_id, min(now + dt.timedelta(days=1), until))
        else:
            self.store.unschedule_refresh(tenant.name, call_id)

    def write(self, tenant_name: str, call_id: str) -> WrittenActivity:
        """W1: the one activity of this call, created or updated, never duplicated."""
        tenant = self.tenant(tenant_name)
        record = self.store.require(tenant_name, call_id)
        if record.decision is None:
            raise NotReadyError(f"call {call_id!r} has no decision to write")
        call = CallEvent.from_json(record.event).to_call()
        port = self.crm_for(tenant)
        try:
            written = port.upsert_activity(call, decision_from_json(record.decision))
        finally:
            CRM_REQUESTS.labels(tenant=tenant.name, crm=tenant.crm.kind).inc(port.stats.requests)
        WRITES.labels(tenant=tenant.name, created=str(written.created).lower()).inc()
        now = self.store.now()

        def keep(r: CallRecord) -> None:
            r.written = {"id": written.id, "kind": written.kind, "created": written.created}
            r.written_at = now.isoformat()
            r.status = CallStatus.WRITTEN
            r.error = None

        self.store.update(tenant_name, call_id, keep)
        return written

    def override(
        self,
        tenant_name: str,
        call_id: str,
        *,
        account_id: str | None = None,
        opportunity_id: str | None = None,
        contact_ids: Sequence[str] | None = None,
    ) -> CallRecord:
        """A person's choice: lock those fields (R2, R4) so no refresh ever undoes them."""
        self.tenant(tenant_name)

        def lock(r: CallRecord) -> None:
            if account_id is not None:
                r.overrides["account_id"] = account_id
                r.locked = sorted({*r.locked, "account"})
            if opportunity_id is not None:
                r.overrides["opportunity_id"] = opportunity_id
                r.locked = sorted({*r.locked, "opportunity"})
            if contact_ids is not None:
                r.overrides["contact_ids"] = list(contact_ids)
                r.locked = sorted({*r.locked, "contacts"})

        return self.store.update(tenant_name, call_id, lock)

    def explain(self, tenant_name: str, call_id: str) -> CallRecord:
        return self.store.require(tenant_name, call_id)
