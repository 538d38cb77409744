"""HTTP operations on calls (explain, refresh, override, dead letters), tenant setup/doctor, and /readyz.

The same functions as the CLI (`worker.ops.actions`, `worker.ops.readiness`). Every route needs
`Authorization: Bearer $CALLMATCH_ADMIN_TOKEN`; with no token configured the
routes answer 403, so an exposed receiver never lets strangers rewrite activities.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, FastAPI, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from worker.config.settings import settings
from worker.config.tenants import Tenant
from worker.ops import actions as ops
from worker.ops import readiness
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.durability import durability
from worker.pipeline.service import Pipeline, UnknownTenantError
from worker.pipeline.store import RecordNotFoundError


class OverrideBody(BaseModel):
    """Fields a person sets; each one given is locked against every later refresh (R2, R4)."""

    account_id: str | None = Field(default=None, description="lock the account")
    opportunity_id: str | None = Field(default=None, description="lock the opportunity")
    contact_ids: list[str] | None = Field(default=None, description="lock the contacts")


class ReplayBody(BaseModel):
    call_ids: list[str] = Field(default_factory=list)
    all: bool = False
    tenant: str | None = None


def _problem(status: int, reason: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": reason}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def admin_router(
    pipeline: Callable[[], Pipeline], token: str | None = None, send: ops.Sender | None = None
) -> APIRouter:
    configured = settings().admin_token
    expected = token if token is not None else configured.get_secret_value() if configured else None

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        from fastapi import HTTPException

        if not expected:
            raise HTTPException(403, "admin routes are off: set CALLMATCH_ADMIN_TOKEN to use them")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(401, "missing or wrong bearer token")

    router = APIRouter(prefix="/calls", tags=["operations"], dependencies=[Depends(authorised)])

    def guarded(action: Callable[[], Any]) -> Any:
        try:
            return action()
        except (RecordNotFoundError, UnknownTenantError, ops.OpsError) as exc:
            return _problem(404 if not isinstance(exc, ops.OpsError) else 400, str(exc))
        except redis.RedisError:
            return _problem(503, "redis unreachable")

    @router.get("/{tenant}/{call_id:path}", summary="A call's stored result, trace, status and attempts")
    def explain(tenant: str, call_id: str) -> Any:
        return guarded(lambda: ops.explain(pipeline(), call_id, tenant).to_json())

    @router.post(
        "/{tenant}/{call_id:path}/refresh",
        status_code=202,
        summary="Run the rules again (R1-R4), then write back",
    )
    def refresh(tenant: str, call_id: str) -> Any:
        return guarded(
            lambda: {
                "call_id": call_id,
                "tenant": ops.refresh(pipeline(), call_id, tenant, send),
                "status": "enqueued",
            }
        )

    @router.post(
        "/{tenant}/{call_id:path}/override",
        status_code=202,
        summary="Lock account, opportunity or contacts, then write back",
    )
    def override(tenant: str, call_id: str, body: OverrideBody) -> Any:
        def run() -> dict[str, Any]:
            record = ops.override(
                pipeline(),
                call_id,
                tenant=tenant,
                account_id=body.account_id,
                opportunity_id=body.opportunity_id,
                contact_ids=body.contact_ids,
                send=send,
            )
            return {"call_id": call_id, "locked": record.locked, "status": "enqueued"}

        return guarded(run)

    return router


def dead_letter_router(
    pipeline: Callable[[], Pipeline], token: str | None = None, send: ops.Sender | None = None
) -> APIRouter:
    calls = admin_router(pipeline, token, send)
    router = APIRouter(prefix="/dead-letters", tags=["operations"], dependencies=calls.dependencies)

    @router.get("", summary="Calls kept after a fatal error or the last retry")
    def listing(tenant: str | None = None) -> Any:
        return [letter.__dict__ for letter in ops.dead_letters(pipeline(), tenant)]

    @router.post("/replay", summary="Send dead letters back to the stage where they stopped")
    def replay(body: ReplayBody) -> Any:
        try:
            replayed = ops.replay(pipeline(), body.call_ids, body.tenant, everything=body.all, send=send)
        except ops.OpsError as exc:
            return _problem(400, str(exc), "call_ids")
        return {"replayed": [letter.__dict__ for letter in replayed]}

    return router


@lru_cache(maxsize=1)
def _own_factory() -> CrmFactory:
    from worker.pipeline.celery_app import redis_url

    return CrmFactory(redis.Redis.from_url(redis_url(), decode_responses=True, socket_timeout=10))


def pipeline_factory(pipeline: Pipeline) -> CrmFactory:
    """The CrmFactory behind the pipeline's ports (same cached clients), else one kept for these routes."""
    owner = getattr(pipeline.crm_for, "__self__", None)
    return owner if isinstance(owner, CrmFactory) else _own_factory()


def tenant_router(
    pipeline: Callable[[], Pipeline],
    token: str | None = None,
    factory: Callable[[Pipeline], CrmFactory] = pipeline_factory,
    redis_client: redis.Redis | None = None,
) -> APIRouter:
    """`doctor` and `setup` of one tenant: what `callmatch doctor` / `callmatch setup` print, as JSON."""
    calls = admin_router(pipeline, token)
    router = APIRouter(prefix="/tenants", tags=["readiness"], dependencies=calls.dependencies)

    def resolve(tenant: str) -> tuple[Pipeline, Tenant] | JSONResponse:
        """The pipeline and the tenant, or the problem answer (404 unknown, 503 Redis away)."""
        try:
            pipe = pipeline()
            return pipe, pipe.tenant(tenant)
        except UnknownTenantError as exc:
            return _problem(404, str(exc))
        except redis.RedisError:
            return _problem(503, "redis unreachable")

    @router.get(
        "/{tenant}/doctor",
        summary="Can the tenant run: one check per line (ok / warn / fail) with the fix",
        description="200 when no check failed, 503 when one did; 404 for an unknown tenant.",
    )
    def doctor(tenant: str) -> Any:
        found = resolve(tenant)
        if isinstance(found, JSONResponse):
            return found
        pipe, config = found
        report = readiness.doctor(config, factory(pipe), redis_client=redis_client)
        return JSONResponse(report.to_json(), status_code=200 if report.can_run else 503)

    @router.post(
        "/{tenant}/setup",
        summary="Create what callmatch needs in the tenant's CRM (or, dry, list the steps for an admin)",
        description="200 unless a step failed (502: the CRM refused it; its answer is in the step); "
        "404 for an unknown tenant.",
    )
    def setup(
        tenant: str,
        dry_run: Annotated[bool, Query(description="change nothing: the steps for an admin")] = False,
    ) -> Any:
        found = resolve(tenant)
        if isinstance(found, JSONResponse):
            return found
        pipe, config = found
        report = readiness.setup(config, factory(pipe), dry_run=dry_run)
        return JSONResponse(report.to_json(), status_code=200 if report.ok else 502)

    return router


def mount(
    app: FastAPI,
    pipeline: Callable[[], Pipeline],
    redis_client: redis.Redis,
    token: str | None = None,
    send: ops.Sender | None = None,
    factory: Callable[[Pipeline], CrmFactory] = pipeline_factory,
) -> None:
    """Operations routes, tenant setup/doctor and /readyz on the receiver."""
    app.include_router(admin_router(pipeline, token, send))
    app.include_router(dead_letter_router(pipeline, token, send))
    app.include_router(tenant_router(pipeline, token, factory, redis_client))

    @app.get(
        "/readyz",
        summary="Ready to take webhooks: Redis answers and the tenants are loaded",
        description="`durability` says what a 2xx is worth: `fsync-always` survives any crash, "
        "`aof-everysec` a Redis crash, `none` nothing (see docs/reliability.md).",
    )
    def readyz() -> Any:
        try:
            redis_client.ping()
            tenants = len(pipeline().tenants)
            level = durability(redis_client)
        except redis.RedisError:
            return _problem(503, "redis unreachable")
        if not tenants:
            return _problem(503, "no tenant configured")
        return {"status": "ready", "tenants": tenants, "durability": level.value}
