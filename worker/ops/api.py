"""The operations API, `/api/v1`: the same actions as the CLI (worker.ops.actions), per tenant, as JSON.

The console and other programs use nothing else. Every route takes a bearer token or the
console's session cookie (worker.ops.auth): a viewer token reads, an admin token changes,
a tenant's token reaches only its tenant, CALLMATCH_ADMIN_TOKEN every tenant. Refusals
are `{"error": ..., "field": ...}` with a 4xx, worded for the API (never a CLI flag).

`Operations` holds the routes' work as plain methods, so a server-rendered page can call
exactly what the JSON route calls once it has checked the caller with `auth.check`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

import redis
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from worker.config.tokens import Role
from worker.core.model import Case
from worker.ops import actions as ops
from worker.ops import doctor_log, readiness
from worker.ops.auth import (
    CSRF_HEADER,
    ERROR_RESPONSES,
    ApiError,
    ErrorBody,
    Principal,
    SessionInfo,
    check,
    principal,
)
from worker.ops.crm_records import (
    CallRecords,
    CrmRecord,
    call_records,
    open_opportunities_of_accounts,
    record_url,
)
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline, UnknownTenantError
from worker.pipeline.store import RecordNotFoundError

PREFIX = "/api/v1"
# calls shown per group of the review queue's details (the console's review page)
REVIEW_SIZE = 25
T = TypeVar("T")

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Ids = Annotated[list[Id], Field(max_length=200)]
By = Annotated[
    str | None,
    Field(
        default=None,
        description="who makes this change, kept with it (default: the token's name)",
        min_length=1,
        max_length=120,
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OverrideBody(_Body):
    """A person's fix: each field given is locked against every later refresh (R2, R4); removals stay removed (R6)."""

    account_id: Id | None = Field(default=None, description="lock the account")
    opportunity_id: Id | None = Field(default=None, description="lock the opportunity")
    contact_ids: Ids | None = Field(default=None, description="lock the contacts")
    remove_contact_ids: Ids = Field(default_factory=list, description="unlink these contacts")
    remove_account_ids: Ids = Field(default_factory=list, description="unlink this account")
    remove_opportunity_ids: Ids = Field(default_factory=list, description="unlink this opportunity")
    by: By = None

    def removals(self) -> list[tuple[str, str]]:
        return [
            *(("contact", i) for i in self.remove_contact_ids),
            *(("account", i) for i in self.remove_account_ids),
            *(("opportunity", i) for i in self.remove_opportunity_ids),
        ]


class ChooseBody(_Body):
    """One of the candidates the review queue offers for the call: an opportunity or an account."""

    opportunity_id: Id | None = None
    account_id: Id | None = None
    by: By = None


class UnlockBody(_Body):
    """Fields a person locked, given back to the rules; the refresh and write-back follow."""

    fields: Annotated[list[Literal["account", "opportunity", "contacts"]], Field(min_length=1, max_length=3)]
    by: By = None


class ReplayBody(_Body):
    call_ids: Ids = Field(default_factory=list, description="the dead letters to replay")
    all: bool = Field(default=False, description="replay every dead letter of the tenant")


class ReassociateBody(_Body):
    """A re-association run in the background: the rules again on the tenant's recent calls."""

    since: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16)] = Field(
        description="how far back the calls started or ended: 30d, 12h, 90m, 2w"
    )
    dry_run: bool = Field(default=False, description="decide and report what would change, write nothing")


class LegacyReplayBody(ReplayBody):
    tenant: str | None = Field(default=None, description="only this tenant's (a tenant's token: its own)")


class CallFilters(BaseModel):
    """The calls list's filters, as query parameters."""

    status: str | None = Field(default=None, description="received, decided, written, dead, ...")
    case: str | None = Field(default=None, description="the decision's case, e.g. activity_contact")
    since: str | None = Field(default=None, description="received at or after (ISO-8601 date or time)")
    until: str | None = Field(default=None, description="received before (a date includes that day)")
    has_opportunity: bool | None = Field(default=None, description="the latest decision has an opportunity")
    provider: str | None = Field(default=None, description="aircall, ringover, zoom, google_meet, teams")
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, description="`next_cursor` of the previous page")


class TenantInfo(BaseModel):
    name: str
    role: Role = Field(description="what the caller may do there")
    crm: str
    providers: list[str]


class Enqueued(BaseModel):
    """The change is kept in the call's record; the refresh and write-back that apply it are queued."""

    tenant: str
    call_id: str
    status: str = "enqueued"
    locked: list[str] | None = None
    removed: list[dict[str, str]] | None = None


class Forgotten(BaseModel):
    tenant: str
    forgotten: int


class Replayed(BaseModel):
    replayed: list[dict[str, Any]]


@dataclass(frozen=True)
class CallCrm:
    """A call's CRM records as a person recognises them (names, details, links) and its activity's link."""

    tenant: str
    call_id: str
    records: CallRecords
    activity_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "call_id": self.call_id,
            "error": self.records.error,
            "records": [_record_json(r) for _key, r in sorted(self.records.records.items())],
            "choices": {
                "opportunities": [r.id for r in self.records.opportunities],
                "accounts": [r.id for r in self.records.accounts],
                "contacts": [r.id for r in self.records.contacts],
            },
            "activity_url": self.activity_url,
        }


def _record_json(record: CrmRecord) -> dict[str, Any]:
    return {**asdict(record), "label": record.label}


@dataclass(frozen=True)
class ReviewQueue:
    """The review queue as a person works it: ambiguous calls, calls without an opportunity, calls matching nothing.

    `candidates` names the ambiguous calls' candidates; `choices` holds the open opportunities of
    each account of the calls without one (their one-click links).
    """

    tenant: str
    ambiguous: list[dict[str, Any]]
    candidates: CallRecords
    without: list[dict[str, Any]]
    choices: dict[str, list[CrmRecord]]
    unmatched: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "ambiguous": self.ambiguous,
            "error": self.candidates.error,
            "candidates": [_record_json(r) for _key, r in sorted(self.candidates.records.items())],
            "without": self.without,
            "choices": {
                account: [_record_json(r) for r in records]
                for account, records in sorted(self.choices.items())
            },
            "unmatched": self.unmatched,
        }


def _ids(*values: object) -> list[str]:
    return [str(v) for v in values if v]


@lru_cache(maxsize=1)
def _own_factory() -> CrmFactory:
    from worker.pipeline.celery_app import redis_url

    return CrmFactory(redis.Redis.from_url(redis_url(), decode_responses=True, socket_timeout=10))


def pipeline_factory(pipeline: Pipeline) -> CrmFactory:
    """The CrmFactory behind the pipeline's ports (same cached clients), else one kept for these routes."""
    owner = getattr(pipeline.crm_for, "__self__", None)
    return owner if isinstance(owner, CrmFactory) else _own_factory()


# What the receiver cannot do now (the CRM did not answer, its secrets are not here): 503, not the caller's fault.
_UNAVAILABLE: tuple[type[Exception], ...] = tuple(
    error
    for error in (getattr(ops, "CrmUnavailableError", None), getattr(ops, "MissingSecretError", None))
    if isinstance(error, type)
)

# CLI flags an action's message may name, as the API's fields.
_FLAGS = {
    "--tenant": "tenant",
    "--account": "account_id",
    "--opportunity": "opportunity_id",
    "--contact": "contact_ids",
    "--remove-contact": "remove_contact_ids",
    "--remove-account": "remove_account_ids",
    "--remove-opportunity": "remove_opportunity_ids",
    "--all": "all",
    "--by": "by",
}
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def unflagged(message: str) -> tuple[str, str | None]:
    """An action's message in the API's words (`--opportunity` -> `opportunity_id`) and the first field named."""
    named: list[str] = []

    def field(match: re.Match[str]) -> str:
        name = _FLAGS.get(match[0], match[0].lstrip("-").replace("-", "_"))
        named.append(name)
        return name

    text = _FLAG.sub(field, message)
    text = re.sub(r"(remove_\w+?)_ids/-(\w+)/-(\w+)", r"\1_ids, remove_\2_ids, remove_\3_ids", text)
    return text, named[0] if named else None


@dataclass
class Operations:
    """What each route does once the caller is allowed; raises ApiError with the answer to give."""

    pipeline: Callable[[], Pipeline]
    send: ops.Sender | None = None
    factory: Callable[[Pipeline], CrmFactory] | None = None
    redis_client: redis.Redis | None = None

    def run(self, action: Callable[[], T]) -> T:
        """`action`, its failures as the API's answers."""
        try:
            return action()
        except (RecordNotFoundError, UnknownTenantError) as exc:
            raise ApiError(404, str(exc)) from None
        except ops.OpsError as exc:
            text, flag = unflagged(str(exc))
            if isinstance(exc, _UNAVAILABLE):
                raise ApiError(503, text) from None
            raise ApiError(400, text, getattr(exc, "field", None) or flag) from None
        except redis.RedisError:
            raise ApiError(503, "redis unreachable; try again later") from None

    def _pipe(self, tenant: str) -> Pipeline:
        pipe = self.pipeline()
        pipe.tenant(tenant)  # UnknownTenantError: 404
        return pipe

    def tenants(self, who: Principal) -> list[TenantInfo]:
        pipe = self.pipeline()
        pipe.reload_tenants()
        return [
            TenantInfo(name=name, role=who.role, crm=t.crm.kind, providers=list(t.providers))
            for name, t in sorted(pipe.tenants.tenants.items())
            if who.tenant is None or who.tenant == name
        ]

    def calls(self, tenant: str, filters: CallFilters) -> dict[str, Any]:
        return self.run(
            lambda: ops.calls_list(
                self._pipe(tenant),
                tenant,
                status=filters.status,
                case=filters.case,
                since=filters.since,
                until=filters.until,
                has_opportunity=filters.has_opportunity,
                provider=filters.provider,
                limit=filters.limit,
                cursor=filters.cursor,
            ).to_json()
        )

    def unlock(self, who: Principal, tenant: str, call_id: str, body: UnlockBody) -> Enqueued:
        def run() -> Enqueued:
            record = ops.unlock(
                self._pipe(tenant),
                call_id,
                body.fields,
                tenant=tenant,
                by=body.by or who.name,
                send=self.send,
            )
            return Enqueued(tenant=tenant, call_id=call_id, locked=record.locked)

        return self.run(run)

    def records(self, tenant: str, call_id: str, record: dict[str, Any] | None = None) -> CallCrm:
        """The CRM records the call names (result, overrides, candidates, runner-ups) with names and links.

        `record` is the call's `explain` when the caller already read it. A CRM that cannot be
        read gives the ids with the reason (`records.error`), never a failure.
        """
        # the console's trace reading (pure functions); imported here as the console imports this module
        from worker.ops.console.views import runner_ups

        def run() -> CallCrm:
            pipe = self._pipe(tenant)
            shown = record if record is not None else ops.explain(pipe, call_id, tenant).to_json()
            decision = shown.get("decision") or {}
            overrides = shown.get("overrides") or {}
            candidates = [c for c in decision.get("candidates") or [] if isinstance(c, dict)]
            lost = runner_ups(list(decision.get("trace") or []), decision.get("opportunity_id"))
            found = call_records(
                pipe,
                tenant,
                contact_ids=_ids(*(decision.get("contact_ids") or []), *(overrides.get("contact_ids") or [])),
                lead_ids=_ids(*(decision.get("lead_ids") or [])),
                account_ids=_ids(
                    decision.get("account_id"),
                    overrides.get("account_id"),
                    *(c.get("id") for c in candidates if c.get("type") == "account"),
                ),
                opportunity_ids=_ids(
                    decision.get("opportunity_id"),
                    overrides.get("opportunity_id"),
                    *(r.opportunity_id for r in lost),
                    *(c.get("id") for c in candidates if c.get("type") == "opportunity"),
                ),
            )
            written = shown.get("written") or None
            activity_url = (
                record_url(pipe.tenant(tenant), str(written.get("kind", "")), str(written["id"]))
                if written and written.get("id")
                else None
            )
            return CallCrm(tenant, call_id, found, activity_url)

        return self.run(run)

    def status(self, tenant: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            pipe = self._pipe(tenant)
            return ops.status(pipe, pipe.store.redis, tenant=tenant).to_json()

        return self.run(run)

    def explain(self, tenant: str, call_id: str) -> dict[str, Any]:
        return self.run(lambda: ops.explain(self._pipe(tenant), call_id, tenant).to_json())

    def refresh(self, tenant: str, call_id: str) -> Enqueued:
        def run() -> Enqueued:
            pipe = self._pipe(tenant)
            pipe.store.require(tenant, call_id)
            ops.refresh(pipe, call_id, tenant, self.send)
            return Enqueued(tenant=tenant, call_id=call_id)

        return self.run(run)

    def override(self, who: Principal, tenant: str, call_id: str, body: OverrideBody) -> Enqueued:
        removals = body.removals()
        if (
            body.account_id is None
            and body.opportunity_id is None
            and body.contact_ids is None
            and not removals
        ):
            raise ApiError(
                400,
                "nothing to override: give account_id, opportunity_id, contact_ids or remove_*_ids",
                "account_id",
            )
        for kind, record_id in removals:
            if (kind == "account" and record_id == body.account_id) or (
                kind == "opportunity" and record_id == body.opportunity_id
            ):
                raise ApiError(400, f"{kind} {record_id} is both set and removed", f"remove_{kind}_ids")
            if kind == "contact" and record_id in (body.contact_ids or ()):
                raise ApiError(400, f"contact {record_id} is both set and removed", "remove_contact_ids")

        def run() -> Enqueued:
            record = ops.override(
                self._pipe(tenant),
                call_id,
                tenant=tenant,
                account_id=body.account_id,
                opportunity_id=body.opportunity_id,
                contact_ids=body.contact_ids,
                remove=removals,
                by=body.by or who.name,
                send=self.send,
            )
            return Enqueued(tenant=tenant, call_id=call_id, locked=record.locked, removed=record.removed)

        return self.run(run)

    def review(self, tenant: str) -> list[dict[str, Any]]:
        return self.run(lambda: [item.to_json() for item in ops.review_list(self._pipe(tenant), tenant)])

    def review_queue(self, tenant: str, size: int = REVIEW_SIZE) -> ReviewQueue:
        """`review` with the calls decided without an opportunity or matching nothing, and the CRM's names.

        Each group keeps its newest `size` calls (of the newest `size * 4` without an opportunity).
        A CRM that cannot be read gives the ids (`candidates.error`) and no choices, never a failure.
        """
        ambiguous = self.review(tenant)
        no_opportunity = self.calls(tenant, CallFilters(has_opportunity=False, limit=size * 4))["items"]
        waiting = {item["call_id"] for item in ambiguous}
        decided = [c for c in no_opportunity if c.get("case")]
        unmatched = [c for c in decided if c["case"] == Case.NONE.value][:size]
        without = [
            c
            for c in decided
            if c["case"] not in (Case.NONE.value, Case.AMBIGUOUS.value) and c["call_id"] not in waiting
        ][:size]
        offered = [c for item in ambiguous for c in item["candidates"]]

        def run() -> ReviewQueue:
            pipe = self._pipe(tenant)
            accounts = [str(c["account_id"]) for c in without if c.get("account_id")]
            choices = open_opportunities_of_accounts(pipe, tenant, accounts)
            candidates = call_records(
                pipe,
                tenant,
                opportunity_ids=[str(c["id"]) for c in offered if c.get("type") == "opportunity"],
                account_ids=[str(c["id"]) for c in offered if c.get("type") == "account"],
            )
            return ReviewQueue(tenant, ambiguous, candidates, without, choices, unmatched)

        return self.run(run)

    def choose(self, who: Principal, tenant: str, call_id: str, body: ChooseBody) -> Enqueued:
        if (body.opportunity_id is None) == (body.account_id is None):
            raise ApiError(400, "give one of opportunity_id or account_id", "opportunity_id")

        def run() -> Enqueued:
            record = ops.review_choose(
                self._pipe(tenant),
                call_id,
                tenant=tenant,
                opportunity_id=body.opportunity_id,
                account_id=body.account_id,
                by=body.by or who.name,
                send=self.send,
            )
            return Enqueued(tenant=tenant, call_id=call_id, locked=record.locked)

        return self.run(run)

    def preferences(self, tenant: str, contact_ids: list[str] | None) -> list[dict[str, Any]]:
        return self.run(
            lambda: [p.to_json() for p in ops.preferences_list(self._pipe(tenant), tenant, contact_ids)]
        )

    def forget(self, tenant: str, contact_ids: list[str], everything: bool) -> Forgotten:
        if bool(contact_ids) == everything:
            raise ApiError(
                400, "give contact_id (repeatable) or all=true, not both and not neither", "contact_id"
            )
        return self.run(
            lambda: Forgotten(
                tenant=tenant,
                forgotten=ops.preferences_forget(self._pipe(tenant), tenant, contact_ids, everything),
            )
        )

    def dead_letters(self, tenant: str | None) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            pipe = self._pipe(tenant) if tenant is not None else self.pipeline()
            return [letter.__dict__ for letter in ops.dead_letters(pipe, tenant)]

        return self.run(run)

    def replay(self, tenant: str | None, body: ReplayBody) -> Replayed:
        if not body.call_ids and not body.all:
            raise ApiError(400, "give call_ids or all=true", "call_ids")

        def run() -> Replayed:
            pipe = self._pipe(tenant) if tenant is not None else self.pipeline()
            try:
                done = ops.replay(pipe, body.call_ids, tenant, everything=body.all, send=self.send)
            except ops.OpsError as exc:
                raise ApiError(400, unflagged(str(exc))[0], "call_ids") from None
            return Replayed(replayed=[letter.__dict__ for letter in done])

        return self.run(run)

    def reassociate(self, who: Principal, tenant: str, body: ReassociateBody) -> dict[str, Any]:
        """A run started in the background (one Celery task per part, behind live calls)."""
        from worker.pipeline import reassociate

        def run() -> dict[str, Any]:
            pipe = self._pipe(tenant)
            try:
                since = reassociate.parse_since(body.since)
                ops.require_secrets(pipe.tenant(tenant), "re-association")
            except reassociate.ReassociateError as exc:
                raise ApiError(400, f"since: {exc}", exc.field) from None
            started = reassociate.start(pipe, tenant, since, dry_run=body.dry_run, by=who.name)
            if not started.finished:
                (self.send or ops.celery_sender())(reassociate.REASSOCIATE_TASK, [tenant, started.run_id])
            return started.to_json()

        return self.run(run)

    def reassociation(self, tenant: str, run_id: str) -> dict[str, Any]:
        from worker.pipeline import reassociate

        def run() -> dict[str, Any]:
            try:
                return reassociate.load(self._pipe(tenant), tenant, run_id).to_json()
            except reassociate.ReassociateError as exc:
                raise ApiError(404, str(exc), exc.field) from None

        return self.run(run)

    def _crm_factory(self, pipe: Pipeline) -> CrmFactory:
        return (self.factory or pipeline_factory)(pipe)

    def doctor(self, tenant: str) -> tuple[dict[str, Any], int]:
        """The report, and 200 when the tenant can run, else 503."""

        def run() -> tuple[dict[str, Any], int]:
            pipe = self._pipe(tenant)
            report = readiness.doctor(
                pipe.tenant(tenant), self._crm_factory(pipe), redis_client=self.redis_client
            ).to_json()
            if self.redis_client is not None:  # the tenant's last report, shown on the console's Health
                doctor_log.keep(self.redis_client, report, dt.datetime.now(dt.UTC))
            return report, 200 if report["can_run"] else 503

        return self.run(run)

    def setup(self, tenant: str, dry_run: bool) -> tuple[dict[str, Any], int]:
        """The steps, and 200 unless one failed (502: the CRM refused it)."""

        def run() -> tuple[dict[str, Any], int]:
            pipe = self._pipe(tenant)
            report = readiness.setup(pipe.tenant(tenant), self._crm_factory(pipe), dry_run=dry_run)
            return report.to_json(), 200 if report.ok else 502

        return self.run(run)


# --- who may call a route ---------------------------------------------------------------------


async def reader(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    """Reads the route's tenant: any of its tokens, or the global admin."""
    tenant = request.path_params.get("tenant")
    check(who, tenant if isinstance(tenant, str) else None, "viewer")
    return who


def csrf_header(
    _csrf: Annotated[
        str | None,
        Header(
            alias=CSRF_HEADER,
            description="the session's CSRF token: required with the session cookie (or the `csrf_token` "
            "form field), not with a bearer token",
        ),
    ] = None,
) -> None:
    """Declares the CSRF header in OpenAPI; `auth.principal` checks it."""


async def changer(
    request: Request,
    who: Annotated[Principal, Depends(principal)],
    _: Annotated[None, Depends(csrf_header)],
) -> Principal:
    """Changes the route's tenant: its admin token, or the global admin."""
    tenant = request.path_params.get("tenant")
    check(who, tenant if isinstance(tenant, str) else None, "admin")
    return who


Reader = Annotated[Principal, Depends(reader)]
Changer = Annotated[Principal, Depends(changer)]
CallId = Annotated[str, Field(description="the call id, e.g. aircall:812731 (may contain '/')")]


def _json(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status)


def api_router(operations: Operations) -> APIRouter:
    """`/api/v1`: per tenant, every operation the CLI has on live calls."""
    router = APIRouter(prefix=PREFIX, tags=["operations API"], responses=ERROR_RESPONSES)
    tenant_routes = APIRouter(
        prefix="/tenants/{tenant}",
        responses={404: {"model": ErrorBody, "description": "unknown tenant or call"}},
    )

    @router.get("/me", summary="Who the token or session is", response_model=SessionInfo)
    def me(who: Annotated[Principal, Depends(principal)]) -> Any:
        return who.to_json()

    @router.get("/tenants", summary="The tenants the caller may see", response_model=list[TenantInfo])
    def tenants(who: Annotated[Principal, Depends(principal)]) -> Any:
        return operations.run(lambda: operations.tenants(who))

    @tenant_routes.get("/calls", summary="The tenant's calls, newest first, filtered, a page at a time")
    def calls(tenant: str, _: Reader, filters: Annotated[CallFilters, Query()]) -> Any:
        return operations.calls(tenant, filters)

    @tenant_routes.get(
        "/status", summary="The tenant's calls per status, rates, dead letters, budgets, queue"
    )
    def status(tenant: str, _: Reader) -> Any:
        return operations.status(tenant)

    @tenant_routes.get(
        "/calls/{call_id:path}/records",
        summary="The CRM records a call names: names, details and links into the CRM",
        description="From the tenant's CRM (read now): the call's contacts, leads, account and "
        "opportunity, its overrides, candidates and runner-ups, and the choices around them. "
        "A CRM that cannot be read gives the ids, `found: false`, and the reason in `error`.",
    )
    def records(tenant: str, call_id: str, _: Reader) -> Any:
        return operations.records(tenant, call_id).to_json()

    # after GET .../records: the path converter would take "/records" as part of the call id
    @tenant_routes.get(
        "/calls/{call_id:path}", summary="A call's stored result, trace, status, attempts and changes"
    )
    def explain(tenant: str, call_id: str, _: Reader) -> Any:
        return operations.explain(tenant, call_id)

    @tenant_routes.post(
        "/calls/{call_id:path}/refresh",
        status_code=202,
        summary="Run the rules again (R1-R4), then write back",
        response_model=Enqueued,
        response_model_exclude_none=True,
    )
    def refresh(tenant: str, call_id: str, _: Changer) -> Any:
        return operations.refresh(tenant, call_id)

    @tenant_routes.post(
        "/calls/{call_id:path}/override",
        status_code=202,
        summary="Lock account, opportunity or contacts, or unlink some, then write back",
        response_model=Enqueued,
        response_model_exclude_none=True,
    )
    def override(tenant: str, call_id: str, body: OverrideBody, who: Changer) -> Any:
        return operations.override(who, tenant, call_id, body)

    @tenant_routes.post(
        "/calls/{call_id:path}/unlock",
        status_code=202,
        summary="Give locked fields back to the rules, then refresh and write back",
        response_model=Enqueued,
        response_model_exclude_none=True,
    )
    def unlock(tenant: str, call_id: str, body: UnlockBody, who: Changer) -> Any:
        return operations.unlock(who, tenant, call_id, body)

    @tenant_routes.get(
        "/review", summary="Ambiguous calls waiting for a person, newest first, with candidates"
    )
    def review(tenant: str, _: Reader) -> Any:
        return operations.review(tenant)

    @tenant_routes.get(
        "/review/details",
        summary="The review queue as the console shows it, with the CRM's names and one-click choices",
        description="`ambiguous` (as GET /review) with its `candidates` named from the tenant's CRM "
        "(read now), the newest decided calls `without` an opportunity with the open opportunities "
        "of their accounts (`choices`, by account id), and calls that matched nothing (`unmatched`). "
        "A CRM that cannot be read gives the ids, `found: false`, and the reason in `error`.",
    )
    def review_details(tenant: str, _: Reader) -> Any:
        return operations.review_queue(tenant).to_json()

    @tenant_routes.post(
        "/review/{call_id:path}/choose",
        status_code=202,
        summary="Choose a waiting call's opportunity or account (applied like an override)",
        response_model=Enqueued,
        response_model_exclude_none=True,
    )
    def choose(tenant: str, call_id: str, body: ChooseBody, who: Changer) -> Any:
        return operations.choose(who, tenant, call_id, body)

    @tenant_routes.get("/preferences", summary="What people chose for contacts (L1), by contact")
    def preferences(
        tenant: str,
        _: Reader,
        contact_id: Annotated[list[str] | None, Query(description="only these contacts")] = None,
    ) -> Any:
        return operations.preferences(tenant, contact_id)

    @tenant_routes.delete("/preferences", summary="Forget contacts' preferences", response_model=Forgotten)
    def forget(
        tenant: str,
        _: Changer,
        contact_id: Annotated[list[str] | None, Query(description="these contacts")] = None,
        all: Annotated[bool, Query(description="every preference of the tenant")] = False,
    ) -> Any:
        return operations.forget(tenant, contact_id or [], all)

    @tenant_routes.get("/dead-letters", summary="Calls kept after a fatal error or the last retry")
    def dead_letters(tenant: str, _: Reader) -> Any:
        return operations.dead_letters(tenant)

    @tenant_routes.post(
        "/dead-letters/replay",
        summary="Send dead letters back to the stage where they stopped",
        response_model=Replayed,
    )
    def replay(tenant: str, body: ReplayBody, _: Changer) -> Any:
        return operations.replay(tenant, body)

    @tenant_routes.get(
        "/doctor",
        summary="Can the tenant run: one check per line (ok / warn / fail) with the fix",
        description="200 when no check failed, 503 when one did.",
    )
    def doctor(tenant: str, _: Reader) -> Any:
        return _json(*operations.doctor(tenant))

    @tenant_routes.post(
        "/setup",
        summary="Create what callmatch needs in the tenant's CRM (or, dry, list the steps for an admin)",
        description="200 unless a step failed (502: the CRM refused it; its answer is in the step).",
    )
    def setup(
        tenant: str,
        _: Changer,
        dry_run: Annotated[bool, Query(description="change nothing: the steps for an admin")] = False,
    ) -> Any:
        return _json(*operations.setup(tenant, dry_run))

    @tenant_routes.post(
        "/reassociate",
        status_code=202,
        summary="Re-associate the tenant's calls of the last `since` in the background (admin)",
        description="The rules again on each call that started or ended within `since`, people's locks "
        "kept; changed calls are written back unless `dry_run`. Answers the run (its `run_id`); its "
        "progress and summary at GET .../reassociate/{run_id}.",
    )
    def reassociate(tenant: str, body: ReassociateBody, who: Changer) -> Any:
        return _json(operations.reassociate(who, tenant, body), 202)

    @tenant_routes.get(
        "/reassociate/{run_id}",
        summary="A re-association run: state, progress and what changed per case and field",
    )
    def reassociation(tenant: str, run_id: str, _: Reader) -> Any:
        return operations.reassociation(tenant, run_id)

    router.include_router(tenant_routes)
    return router


def legacy_router(operations: Operations) -> APIRouter:
    """The paths before /api/v1, kept as aliases with the same access rules (deprecated in OpenAPI)."""
    router = APIRouter(tags=["operations (old paths)"], deprecated=True, responses=ERROR_RESPONSES)

    @router.get("/calls/{tenant}/{call_id:path}", summary="= GET /api/v1/tenants/{tenant}/calls/{call_id}")
    def explain(tenant: str, call_id: str, _: Reader) -> Any:
        return operations.explain(tenant, call_id)

    @router.post(
        "/calls/{tenant}/{call_id:path}/refresh",
        status_code=202,
        summary="= POST /api/v1/tenants/{tenant}/calls/{call_id}/refresh",
    )
    def refresh(tenant: str, call_id: str, _: Changer) -> Any:
        return operations.refresh(tenant, call_id).model_dump(exclude_none=True)

    @router.post(
        "/calls/{tenant}/{call_id:path}/override",
        status_code=202,
        summary="= POST /api/v1/tenants/{tenant}/calls/{call_id}/override",
    )
    def override(tenant: str, call_id: str, body: OverrideBody, who: Changer) -> Any:
        return operations.override(who, tenant, call_id, body).model_dump(exclude_none=True)

    @router.get("/dead-letters", summary="= GET /api/v1/tenants/{tenant}/dead-letters, every visible tenant")
    def dead_letters(who: Annotated[Principal, Depends(principal)], tenant: str | None = None) -> Any:
        if tenant is not None:
            check(who, tenant, "viewer")
        return operations.dead_letters(tenant if tenant is not None else who.tenant)

    @router.post("/dead-letters/replay", summary="= POST /api/v1/tenants/{tenant}/dead-letters/replay")
    def replay(
        body: LegacyReplayBody,
        who: Annotated[Principal, Depends(principal)],
        _: Annotated[None, Depends(csrf_header)],
    ) -> Any:
        tenant = body.tenant if body.tenant is not None else who.tenant
        check(who, tenant, "admin")
        return operations.replay(tenant, body).model_dump()

    @router.get("/tenants/{tenant}/doctor", summary="= GET /api/v1/tenants/{tenant}/doctor")
    def doctor(tenant: str, _: Reader) -> Any:
        return _json(*operations.doctor(tenant))

    @router.post("/tenants/{tenant}/setup", summary="= POST /api/v1/tenants/{tenant}/setup")
    def setup(
        tenant: str,
        _: Changer,
        dry_run: Annotated[bool, Query(description="change nothing: the steps for an admin")] = False,
    ) -> Any:
        return _json(*operations.setup(tenant, dry_run))

    return router


API_PREFIXES = (PREFIX + "/", "/calls/", "/dead-letters", "/tenants/", "/console/session")


def _where(loc: tuple[Any, ...]) -> str:
    """A request field's name as the caller wrote it: `body.contact_ids.0` -> `contact_ids[0]`."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(body)"


def validation_answer(request: Request, exc: RequestValidationError) -> Response | None:
    """A refused request body or query of these routes, as `{"error", "field"}` (None: not one of ours)."""
    if not request.url.path.startswith(API_PREFIXES):
        return None
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _where(tuple(first.get("loc", ())))
    reason = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        reason = "unknown field"
    return JSONResponse({"error": f"{field}: {reason}", "field": field}, status_code=422)
