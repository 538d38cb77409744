"""The operations surface on the receiver: `/api/v1`, its old paths, console sign-in, and /readyz.

The routes are worker.ops.api's (the same functions as the CLI); who may call them is
worker.ops.auth's: tenants' viewer and admin tokens from the tenants file, and the global
CALLMATCH_ADMIN_TOKEN. With no token configured at all, every route answers 403 and says
how to turn the API on, so an exposed receiver never lets strangers rewrite activities.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from worker.config.settings import settings
from worker.config.tenants import Tenants
from worker.ops import actions as ops
from worker.ops.api import Operations, api_router, legacy_router, pipeline_factory, validation_answer
from worker.ops.auth import Authenticator, install, session_router
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.durability import durability
from worker.pipeline.service import Pipeline

__all__ = ["mount", "pipeline_factory"]


def _problem(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def mount(
    app: FastAPI,
    pipeline: Callable[[], Pipeline],
    redis_client: redis.Redis,
    token: str | None = None,
    send: ops.Sender | None = None,
    factory: Callable[[Pipeline], CrmFactory] = pipeline_factory,
) -> Operations:
    """The operations API (and its old paths), console sign-in/out and /readyz on the receiver.

    `token` stands for CALLMATCH_ADMIN_TOKEN (tests); the returned Operations is what the
    routes call, also kept as `app.state.callmatch_operations` for the console's pages.
    """
    configured = settings().admin_token
    global_token = token if token is not None else configured.get_secret_value() if configured else None

    def tenants() -> Tenants:
        pipe = pipeline()
        pipe.reload_tenants()
        return pipe.tenants

    install(
        app, Authenticator(tenants, redis_client, global_token or None, settings().console_session_seconds)
    )
    operations = Operations(pipeline, send, factory, redis_client)
    app.state.callmatch_operations = operations
    app.include_router(api_router(operations))
    app.include_router(legacy_router(operations))
    app.include_router(session_router())

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_answer(request, exc) or await request_validation_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, invalid)

    @app.get(
        "/readyz",
        summary="Ready to take webhooks: Redis answers and the tenants are loaded",
        description="`durability` says what a 2xx is worth: `fsync-always` survives any crash, "
        "`aof-everysec` a Redis crash, `none` nothing (see docs/reliability.md).",
    )
    def readyz() -> Any:
        try:
            redis_client.ping()
            count = len(pipeline().tenants)
            level = durability(redis_client)
        except redis.RedisError:
            return _problem(503, "redis unreachable")
        if not count:
            return _problem(503, "no tenant configured")
        return {"status": "ready", "tenants": count, "durability": level.value}

    return operations
