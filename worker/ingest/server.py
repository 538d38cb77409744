"""Running the receiver: `uvicorn --factory worker.ingest.server:build_app` or `python -m worker.ingest.server`."""

from __future__ import annotations

import sys

import redis
from fastapi import FastAPI

from worker.config.settings import settings
from worker.config.tenants import TenantsError, TenantsSource, default_tenants_path
from worker.core.observability import add_collector, before_scrape, configure_logging, logging_config
from worker.ingest.app import create_app
from worker.ingest.enqueue import CeleryEnqueuer
from worker.pipeline.celery_app import create_celery, redis_url
from worker.pipeline.clock import process_clock
from worker.pipeline.durability import warn_if_weak
from worker.pipeline.heartbeat import start_heartbeat


def build_app(one_round_trip: bool = True) -> FastAPI:
    """The receiver for $CALLMATCH_TENANTS on $CALLMATCH_REDIS_URL; a bad tenants file stops it here."""
    url = redis_url()
    source = TenantsSource(default_tenants_path())
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    app = create_app(
        source,
        CeleryEnqueuer(create_celery(url)),
        client,
        clock=process_clock(),
        one_round_trip=one_round_trip,
    )
    from worker.pipeline.gauges import RedisGauges, zero_counters

    add_collector("redis", RedisGauges(client, lambda: source.current))
    before_scrape("zero", lambda: zero_counters(source.current, receiver=True))
    start_heartbeat("receiver", source, url)
    warn_if_weak(client)
    from worker.ops.admin import mount
    from worker.pipeline.tasks import pipeline

    mount(app, pipeline, client)
    return app


def main() -> None:
    """Serve the receiver; a bad tenants file is one line naming file, tenant and field, and exit 2."""
    import uvicorn

    configure_logging()
    try:
        app = build_app()
    except TenantsError as exc:
        print(f"callmatch: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    # uvicorn's own lines (start-up, errors, one per request) go through the same JSON handler.
    uvicorn.run(
        app,
        host=settings().host,
        port=settings().port,
        log_config=logging_config(),
        log_level=settings().log_level.lower(),
        access_log=True,
    )


if __name__ == "__main__":
    main()
