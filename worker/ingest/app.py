"""The ASGI receiver: `POST /webhooks/{tenant}/{provider}` verifies, normalises, keeps, enqueues.

It answers well inside the senders' deadlines (Zoom and Graph 3 s, Aircall 5 s)
because it never calls a CRM or a provider API: the worker does that from the
queue. A 2xx means the call's record (with its event) and the de-duplication mark
were written in one Redis transaction (with the queue message too, in the same round trip,
when the broker is that Redis); the queue message only wakes a worker, and if it is lost
the sweep re-enqueues the call. Errors are JSON, with the field named
and nothing kept: 400 broken or incomplete payload, 401 bad signature, 404 unknown
tenant or provider, 413 body over the limit, 503 with Retry-After when Redis cannot
keep the event (the provider redelivers). No input gives a 5xx other than that 503.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from worker.config.tenants import Tenants, TenantsSource
from worker.core.observability import metrics_text
from worker.ingest import metrics
from worker.ingest.dedupe import DEFAULT_TTL_SECONDS, seen_key
from worker.ingest.enqueue import Enqueuer, MessagePreparer, QueuedMessage
from worker.ingest.events import CallEvent
from worker.ingest.logsafe import describe
from worker.ingest.providers import HANDLERS
from worker.ingest.webhook import Challenge, Delivery, Handler, WebhookError, WebhookRequest, check_event
from worker.ops.console import mount_console
from worker.pipeline.celery_app import STALL_SECONDS
from worker.pipeline.store import Accepted, CallStore

log = logging.getLogger("callmatch.ingest")

MAX_BODY_BYTES = 1024 * 1024
RETRY_AFTER_SECONDS = 30

# Handlers that may wait on the network: Google's signing keys, and a Graph or Workspace
# Events lifecycle notification queued for a worker (a Redis write). Run off the event loop.
# The others are a few microseconds of hashing and parsing, cheaper inline than a thread hop.
BLOCKING_VERIFIERS = frozenset({"google_meet", "teams"})

_ERRORS = {
    400: "broken JSON or a missing field (named in `field`)",
    401: "bad or missing signature or token, or a stale timestamp",
    404: "unknown tenant or provider",
    413: "body over 1 MiB",
    503: "Redis cannot keep the event now; redeliver after Retry-After seconds",
}


def _error(status: int, error: str, field: str | None = None, retry_after: bool = False) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if field is not None:
        body["field"] = field
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if retry_after else None
    return JSONResponse(body, status_code=status, headers=headers)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    tenants: Tenants | TenantsSource,
    enqueuer: Enqueuer,
    redis_client: redis.Redis,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    dedupe_ttl_seconds: int = DEFAULT_TTL_SECONDS,
    enqueue_threads: int = 4,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    one_round_trip: bool = True,
) -> FastAPI:
    """The receiver for `tenants`, enqueuing through `enqueuer`, keeping records in `redis_client`.

    Given a `TenantsSource`, a changed tenants file is picked up without a restart.
    `one_round_trip=False` keeps, then sends with `enqueuer.enqueue` (two round trips; the benchmark's before).
    """

    def current_tenants() -> Tenants:
        if isinstance(tenants, TenantsSource):
            tenants.reload()
            return tenants.current
        return tenants

    store = CallStore(redis_client, clock, stall_seconds=STALL_SECONDS)
    # A few threads own the blocking Redis and Celery calls: many threads would only fight for the GIL.
    enqueue_pool = ThreadPoolExecutor(max_workers=enqueue_threads, thread_name_prefix="callmatch-enqueue")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        enqueue_pool.shutdown(wait=True)

    app = FastAPI(
        lifespan=lifespan,
        title="callmatch webhook receiver",
        version="1",
        description="Verified call-ended webhooks from Aircall, Ringover, Zoom, Google Meet and Microsoft Teams, "
        "enqueued as `callmatch.process_call` Celery tasks.",
    )

    # One round trip per event when the broker is the records' Redis: the acceptance script pushes
    # the very message `send_task` would have sent. Otherwise (or if kombu cannot give it) the old
    # way: keep, then `enqueue`.
    preparer = (
        enqueuer
        if one_round_trip and isinstance(enqueuer, MessagePreparer) and enqueuer.same_redis(redis_client)
        else None
    )

    def prepare(event: CallEvent) -> QueuedMessage | None:
        if preparer is None:
            return None
        try:
            return preparer.prepare(event)
        except Exception as exc:  # Redis down on the first one, say: keep it the old way (or answer 503)
            log.warning("cannot prepare the queue message of %s (%s)", event.call_id, type(exc).__name__)
            return None

    def handle(handler: Handler, request: WebhookRequest, tenant: str, provider: str) -> Response | Delivery:
        try:
            outcome = handler(request)
        except WebhookError as exc:
            log.info("refused %s/%s: %s %s", tenant, provider, exc.status, exc)
            metrics.count(tenant, provider, f"refused_{exc.status}")
            return _error(exc.status, exc.reason, exc.field)
        except Exception as exc:  # a parser bug must still be a 4xx, never a 5xx with the body in a trace
            log.warning("refused %s/%s: unreadable payload (%s)", tenant, provider, type(exc).__name__)
            metrics.count(tenant, provider, "refused_400")
            return _error(400, "unreadable payload", "(body)")
        if isinstance(outcome, Challenge):
            metrics.count(tenant, provider, "challenge")
            if isinstance(outcome.content, str):
                return PlainTextResponse(outcome.content)
            return JSONResponse(outcome.content)
        return outcome

    def deliver(delivery: Delivery, tenant: str, provider: str) -> Response:
        """Keep every event of the delivery (record + mark, atomically), then wake a worker for each new one."""
        try:
            for event in delivery.events:
                check_event(event)
        except WebhookError as exc:
            log.info("refused %s/%s: %s %s", tenant, provider, exc.status, exc)
            metrics.count(tenant, provider, f"refused_{exc.status}")
            return _error(exc.status, exc.reason, exc.field)
        accepted: list[str] = []
        duplicates: list[str] = []
        for event in delivery.events:
            message = prepare(event)
            try:
                outcome = store.accept(
                    seen_key(tenant, provider, event.event_id),
                    dedupe_ttl_seconds,
                    tenant,
                    event.call_id,
                    event.to_json(),
                    push=(message.key, message.payload) if message is not None else None,
                )
            except redis.RedisError as exc:
                # Events before this one are kept and will be processed; the redelivery finds them seen.
                log.error("cannot keep %s/%s %s: %s", tenant, provider, event.call_id, type(exc).__name__)
                metrics.count(tenant, provider, "unavailable")
                return _error(503, "Redis cannot keep the event now; redeliver later", retry_after=True)
            if outcome is not Accepted.NEW:
                duplicates.append(event.call_id)
                log.info(
                    "duplicate %s/%s %s acknowledged (%s)", tenant, provider, event.call_id, outcome.value
                )
                continue
            accepted.append(event.call_id)
            if message is not None:  # pushed by the acceptance script itself
                log.info("enqueued %s/%s %s", tenant, provider, describe(event))
                continue
            try:
                enqueuer.enqueue(event)
            except Exception as exc:  # the record is kept: the sweep wakes a worker for it later
                log.warning(
                    "kept %s/%s %s but could not enqueue it (%s); the sweep will",
                    tenant,
                    provider,
                    event.call_id,
                    type(exc).__name__,
                )
            else:
                log.info("enqueued %s/%s %s", tenant, provider, describe(event))
        metrics.count(tenant, provider, "accepted", len(accepted))
        metrics.count(tenant, provider, "duplicate", len(duplicates))
        if not delivery.events:
            metrics.count(tenant, provider, "ignored")
        body: dict[str, Any] = {"accepted": accepted, "duplicates": duplicates}
        if delivery.ignored:
            body["ignored"] = delivery.ignored
        return JSONResponse(body)

    @app.post(
        "/webhooks/{tenant}/{provider}",
        summary="Receive one provider webhook delivery",
        description="`provider` is one of aircall, ringover, zoom, google_meet, teams, as configured for the "
        "tenant. Zoom's endpoint.url_validation and Graph's validationToken handshakes are answered here.",
        responses={
            200: {
                "description": "verified; events enqueued (or already seen, or nothing to do), or a handshake"
            },
            **{status: {"description": text} for status, text in _ERRORS.items()},
        },
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object"}}},
                "description": "The provider's payload, unchanged (verification needs the raw bytes).",
            },
            "parameters": [
                {
                    "name": "validationToken",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Microsoft Graph's subscription handshake (teams): echoed as text/plain.",
                }
            ],
        },
    )
    async def receive(tenant: str, provider: str, request: Request) -> Response:
        started = time.perf_counter()
        response = await _receive(tenant, provider, request)
        if provider in HANDLERS:
            metrics.WEBHOOK_SECONDS.labels(provider=provider).observe(time.perf_counter() - started)
        return response

    async def _receive(tenant: str, provider: str, request: Request) -> Response:
        tenant_config = current_tenants().get(tenant)
        if tenant_config is None:
            return _error(404, "unknown tenant", "tenant")
        handler = HANDLERS.get(provider)
        provider_config = tenant_config.providers.get(provider)
        if handler is None or provider_config is None:
            return _error(404, "unknown provider for this tenant", "provider")
        try:
            body = await _read_body(request, max_body_bytes)
        except _TooLarge:
            metrics.count(tenant, provider, "refused_413")
            return _error(413, f"body over {max_body_bytes} bytes")
        webhook_request = WebhookRequest(
            tenant=tenant_config,
            config=provider_config,
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
            url=str(request.url),
            now=clock(),
        )
        if provider in BLOCKING_VERIFIERS:
            outcome = await run_in_threadpool(handle, handler, webhook_request, tenant, provider)
        else:
            outcome = handle(handler, webhook_request, tenant, provider)
        if isinstance(outcome, Response):
            return outcome
        if not outcome.events:
            return deliver(outcome, tenant, provider)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(enqueue_pool, deliver, outcome, tenant, provider)

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    def metrics_endpoint() -> Response:
        return Response(metrics_text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Liveness and Redis reachability")
    def healthz() -> Response:
        try:
            redis_client.ping()
        except redis.RedisError:
            return _error(503, "redis unreachable")
        return JSONResponse({"status": "ok", "tenants": len(current_tenants())})

    @app.exception_handler(redis.RedisError)
    async def redis_down(request: Request, exc: redis.RedisError) -> Response:
        """Any route that needs Redis while it is down: JSON 503, the sender comes back later."""
        log.error("redis unavailable on %s: %s", request.url.path, type(exc).__name__)
        return _error(503, "redis unreachable; try again later", retry_after=True)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        """A bug of ours still answers JSON (and the webhook's sender redelivers on 5xx)."""
        log.error("internal error on %s: %s", request.url.path, type(exc).__name__)
        return _error(500, "internal error", retry_after=True)

    mount_console(app)  # the web console under /console; its pages use the operations API mounted on this app
    return app
