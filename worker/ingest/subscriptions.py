"""Provider subscriptions that stay alive: Graph callRecords and Google Workspace Events.

Teams and Google Meet only notify us while a subscription of ours lives (Graph: under
3 days; Workspace Events for Meet: 7 days). `callmatch providers subscribe` creates
them; beat's `callmatch.renew_subscriptions` renews each one once half its lifetime
has passed or less than a day is left, recreates one that is gone, and retries a
failure on its next run (it never raises); lifecycle notifications, queued by the
receiver as `callmatch.subscription_lifecycle`, are acted on here:

- Graph `reauthorizationRequired` -> PATCH (renews and reauthorizes);
  `subscriptionRemoved` -> a new subscription; `missed` -> the call records that
  started since the gap was last closed are listed and kept and enqueued exactly as
  the receiver keeps a notification (same event id, same de-duplication mark).
- Workspace `expirationReminder` -> renew; `suspended` -> state shown by `status`,
  reactivated as soon as Google accepts it (here, then on every beat run);
  `expired` -> a new subscription.

A subscription that exists at the provider but not in our state (made by hand, or our
Redis state lost) is taken over on creation: Workspace Events answers 409 ALREADY_EXISTS
and the existing one, when it publishes to our topic, is adopted (stored, renewed at once
when due); Graph cannot give a clientState back, so ours is created with the configured
secret and the app's other subscriptions on our notification URL are deleted after it.

State lives in Redis, one JSON value per tenant and provider under
`callmatch:subscriptions`: id, resource, expiry, last renewal and a digest of the
client state (never the secret: a changed digest means the secret was rotated, and
the next renewal recreates the subscription with the new one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

import redis
import requests

from adapters.errors import ExternalError, FatalError
from adapters.providers.google_meet import subscriptions as workspace
from adapters.providers.teams import subscriptions as graph
from worker.config.settings import settings
from worker.config.tenants import ProviderConfig, Tenant, Tenants
from worker.core.model import CallKind
from worker.ingest.apiclient import ApiClient, FetchContext
from worker.ingest.dedupe import DEFAULT_TTL_SECONDS, seen_key
from worker.ingest.enqueue import Enqueuer
from worker.ingest.events import CallEvent
from worker.pipeline.celery_app import QUEUE, create_celery, redis_url, sent_now
from worker.pipeline.store import Accepted, CallStore

log = logging.getLogger("callmatch.subscriptions")

KEY = "callmatch:subscriptions"
LIFECYCLE_TASK = "callmatch.subscription_lifecycle"
RENEW_TASK = "callmatch.renew_subscriptions"
PROVIDERS = ("teams", "google_meet")
RENEW_WHEN_LEFT = dt.timedelta(hours=24)
PUBLIC_URL_ENV = "CALLMATCH_PUBLIC_URL"

# Lifecycle events as the receiver queues them (Google's ce-types shortened to their last word).
REAUTHORIZATION_REQUIRED = "reauthorizationRequired"
SUBSCRIPTION_REMOVED = "subscriptionRemoved"
MISSED = "missed"
EXPIRATION_REMINDER = "expirationReminder"
SUSPENDED = "suspended"
EXPIRED = "expired"
LIFECYCLE_EVENTS = {
    "teams": (REAUTHORIZATION_REQUIRED, SUBSCRIPTION_REMOVED, MISSED),
    "google_meet": (EXPIRATION_REMINDER, SUSPENDED, EXPIRED),
}

ACTIVE = "active"
SUSPENDED_STATE = "suspended"
MISSING = "missing"
EXPIRED_STATE = "expired"


class SubscriptionError(Exception):
    """A tenant or provider that cannot be subscribed as configured; the message says what to set."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def _time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Subscription:
    """What we know of one provider subscription of one tenant."""

    tenant: str
    provider: str
    id: str
    resource: str
    expires_at: dt.datetime
    created_at: dt.datetime
    renewed_at: dt.datetime | None = None
    state: str = ACTIVE
    detail: str | None = None  # a suspension reason, the last renewal error, a closed gap
    client_state_digest: str | None = None
    gap_closed_at: dt.datetime | None = None
    failures: int = 0

    @property
    def lifetime(self) -> dt.timedelta:
        return self.expires_at - (self.renewed_at or self.created_at)

    def due(self, now: dt.datetime) -> bool:
        """Half the lifetime gone, or less than a day left: renewals start long before expiry."""
        left = self.expires_at - now
        return left <= self.lifetime / 2 or left < RENEW_WHEN_LEFT

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("expires_at", "created_at", "renewed_at", "gap_closed_at"):
            data[name] = _iso(getattr(self, name))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Subscription:
        expires, created = _time(data.get("expires_at")), _time(data.get("created_at"))
        assert expires is not None and created is not None
        return cls(
            tenant=str(data["tenant"]),
            provider=str(data["provider"]),
            id=str(data["id"]),
            resource=str(data["resource"]),
            expires_at=expires,
            created_at=created,
            renewed_at=_time(data.get("renewed_at")),
            state=str(data.get("state") or ACTIVE),
            detail=data.get("detail"),
            client_state_digest=data.get("client_state_digest"),
            gap_closed_at=_time(data.get("gap_closed_at")),
            failures=int(data.get("failures") or 0),
        )


@dataclass(frozen=True)
class StatusRow:
    tenant: str
    provider: str
    state: str  # active, suspended, missing, expired
    subscription: Subscription | None = None
    now: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def healthy(self) -> bool:
        return self.state == ACTIVE

    def to_json(self) -> dict[str, Any]:
        sub = self.subscription
        return {
            "tenant": self.tenant,
            "provider": self.provider,
            "state": self.state,
            "id": sub.id if sub else None,
            "resource": sub.resource if sub else None,
            "expires_at": _iso(sub.expires_at) if sub else None,
            "seconds_left": int((sub.expires_at - self.now).total_seconds()) if sub else None,
            "renewed_at": _iso(sub.renewed_at or sub.created_at) if sub else None,
            "detail": sub.detail if sub else None,
        }


class SubscriptionStore:
    """One JSON value per tenant and provider in a Redis hash."""

    def __init__(self, client: redis.Redis, key: str = KEY):
        self.client = client
        self.key = key

    def get(self, tenant: str, provider: str) -> Subscription | None:
        raw = self.client.hget(self.key, f"{tenant}:{provider}")
        return Subscription.from_json(json.loads(raw)) if raw else None

    def put(self, sub: Subscription) -> None:
        self.client.hset(self.key, f"{sub.tenant}:{sub.provider}", json.dumps(sub.to_json()))

    def drop(self, tenant: str, provider: str) -> None:
        self.client.hdel(self.key, f"{tenant}:{provider}")

    def all(self) -> list[Subscription]:
        raw: dict[Any, Any] = self.client.hgetall(self.key)
        return sorted(
            (Subscription.from_json(json.loads(value)) for value in raw.values()),
            key=lambda s: (s.tenant, s.provider),
        )


def public_url(config: ProviderConfig) -> str | None:
    """The tenant's `providers.teams.public_url`, else $CALLMATCH_PUBLIC_URL."""
    return config.setting("public_url") or settings().public_url or None


def subscribable(tenant: Tenant) -> list[str]:
    """The providers of `tenant` that notify through a subscription of ours (configured with API credentials)."""
    return [name for name in PROVIDERS if name in tenant.providers and tenant.providers[name].has_api()]


def status_rows(store: SubscriptionStore, tenants: Iterable[Tenant], now: dt.datetime) -> list[StatusRow]:
    """Every subscribable provider of these tenants with its state (what `providers status` and doctor show)."""
    rows = []
    for tenant in sorted(tenants, key=lambda t: t.name):
        for provider in subscribable(tenant):
            sub = store.get(tenant.name, provider)
            if sub is None:
                rows.append(StatusRow(tenant.name, provider, MISSING, None, now))
            elif sub.expires_at <= now:
                rows.append(StatusRow(tenant.name, provider, EXPIRED_STATE, sub, now))
            else:
                rows.append(StatusRow(tenant.name, provider, sub.state, sub, now))
    return rows


class Subscriptions:
    """Create, renew, recreate and report the tenants' provider subscriptions."""

    def __init__(
        self,
        tenants: Tenants | Callable[[], Tenants],
        redis_client: redis.Redis,
        enqueuer: Enqueuer,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        store: SubscriptionStore | None = None,
        call_store: CallStore | None = None,
    ):
        self._tenants = tenants
        self.redis = redis_client
        self.enqueuer = enqueuer
        self.clock = clock
        self.session = session
        self.sleep = sleep
        self.store = store or SubscriptionStore(redis_client)
        self.calls = call_store or CallStore(redis_client, clock)

    # -- plumbing ---------------------------------------------------------------------

    def tenants(self) -> Tenants:
        return self._tenants() if callable(self._tenants) else self._tenants

    def tenant(self, name: str) -> Tenant:
        tenant = self.tenants().get(name)
        if tenant is None:
            raise SubscriptionError(f"unknown tenant {name!r}")
        return tenant

    def _ctx(self, tenant: Tenant, provider: str) -> FetchContext:
        config = tenant.providers.get(provider)
        if config is None or not config.has_api():
            raise SubscriptionError(f"tenant {tenant.name}: providers.{provider} has no API credentials")
        extra: dict[str, Any] = {"sleep": self.sleep} if self.sleep is not None else {}
        return FetchContext(
            tenant=tenant, config=config, redis_client=self.redis, session=self.session, **extra
        )

    # -- create / renew ---------------------------------------------------------------

    def subscribe(self, tenant_name: str, provider: str | None = None) -> list[Subscription]:
        """Each subscribable provider (or `provider`): renewed when ours still lives, else created."""
        tenant = self.tenant(tenant_name)
        names = [provider] if provider else subscribable(tenant)
        if not names:
            raise SubscriptionError(
                f"tenant {tenant.name}: no provider to subscribe (teams or google_meet with credentials)"
            )
        done = []
        for name in names:
            if name not in PROVIDERS:
                raise SubscriptionError(f"{name} has no subscription (only teams and google_meet)")
            current = self.store.get(tenant.name, name)
            if current is not None and current.state == ACTIVE and current.expires_at > self.clock():
                done.append(self.renew(tenant.name, name))
            else:
                done.append(self.create(tenant.name, name))
        return done

    def create(self, tenant_name: str, provider: str) -> Subscription:
        """A new subscription; the previous one deleted (Graph: after, so none is missing meanwhile;
        Google: before, as it refuses a second subscription on the same target with ALREADY_EXISTS)."""
        tenant = self.tenant(tenant_name)
        ctx = self._ctx(tenant, provider)
        now = self.clock()
        previous = self.store.get(tenant.name, provider)
        if provider == "teams":
            url = public_url(ctx.config)
            if not url:
                raise SubscriptionError(
                    f"tenant {tenant.name}: set providers.teams.public_url (or {PUBLIC_URL_ENV}) to the"
                    " receiver's public https base URL"
                )
            api = graph.client(ctx)
            target_url = graph.notification_url(url, tenant.name)
            made = graph.create(api, target_url, ctx.config.webhook_secrets[0], now)
            if previous is not None and previous.id != made.id:  # after: never a moment without one
                try:
                    graph.delete(api, previous.id)
                except ExternalError as exc:  # it expires by itself; a double notification is deduplicated
                    log.warning("previous teams subscription not deleted (%s)", _reason(exc))
            detail = self._replace_unknown_graph(api, tenant.name, target_url, made.id)
            sub = Subscription(
                tenant.name,
                provider,
                made.id,
                made.resource,
                made.expires_at,
                now,
                detail=detail,
                client_state_digest=digest(ctx.config.webhook_secrets[0]),
                gap_closed_at=previous.gap_closed_at if previous else now,
            )
        else:
            topic, target = ctx.config.setting("pubsub_topic"), ctx.config.setting("events_target")
            if not topic or not target:
                raise SubscriptionError(
                    f"tenant {tenant.name}: set providers.google_meet.pubsub_topic (projects/P/topics/T) and"
                    " events_target (//cloudidentity.googleapis.com/users/ID or //meet.googleapis.com/spaces/ID)"
                )
            api = workspace.client(ctx)
            if previous is not None:
                workspace.delete(api, previous.id)
            try:
                made_ws = workspace.create(api, target, topic)
                sub = Subscription(
                    tenant.name,
                    provider,
                    made_ws.name,
                    made_ws.target,
                    made_ws.expires_at,
                    now,
                    state=SUSPENDED_STATE if made_ws.state == "SUSPENDED" else ACTIVE,
                )
            except FatalError as exc:
                if exc.status != 409:  # ALREADY_EXISTS: one per user, app and target
                    raise
                sub = self._adopt_workspace(api, tenant.name, ctx.config, target, topic, now)
        self.store.put(sub)
        log.info(
            "subscription adopted" if (sub.detail or "").startswith("adopted") else "subscription created",
            extra={
                "tenant": tenant.name,
                "provider": provider,
                "subscription": sub.id,
                "expires": _iso(sub.expires_at),
            },
        )
        return sub

    def _replace_unknown_graph(self, api: ApiClient, tenant: str, url: str, ours: str) -> str | None:
        """Delete the app's other callRecords subscriptions on `url`, after ours exists.

        Not adopted: Graph never gives a clientState back and cannot change it in place, so an
        unknown one may carry a secret the receiver refuses (every notification lost, silently).
        Ours carries the configured secret; a notification sent twice meanwhile is deduplicated.
        """
        try:
            found = graph.duplicates(api, url, ours)
            for dup in found:
                graph.delete(api, dup.id)
        except ExternalError as exc:  # ours exists; an unknown one expires within 3 days
            log.warning(
                "unknown teams subscriptions not checked (%s)", _reason(exc), extra={"tenant": tenant}
            )
            return f"could not look for unknown subscriptions on {url}: {_reason(exc)}"
        if not found:
            return None
        ids = ", ".join(dup.id for dup in found)
        log.info("unknown teams subscriptions replaced", extra={"tenant": tenant, "subscriptions": ids})
        return (
            f"replaced {len(found)} subscription(s) on {url} that callmatch had no state for ({ids}):"
            " Graph does not give their clientState back, so ours with the configured secret is kept"
        )

    def _adopt_workspace(
        self,
        api: ApiClient,
        tenant: str,
        config: ProviderConfig,
        target: str,
        topic: str,
        now: dt.datetime,
    ) -> Subscription:
        """Google's ALREADY_EXISTS: the subscription on `target` is ours to keep when it publishes to `topic`."""
        found = workspace.find(api, target)
        subject = (  # named by its setting: the user's email never goes into a message that may be logged
            "events_subject" if config.setting("events_subject") else "delegated_user"
        )
        if not found:
            raise SubscriptionError(
                f"tenant {tenant}: Google answered ALREADY_EXISTS for {target} but lists no subscription on it"
                f" for {', '.join(workspace.EVENT_TYPES)} authorized by the user in"
                f" providers.google_meet.{subject}: it was made for other event types or by another user."
                " List and delete it as its owner"
                " (GET https://workspaceevents.googleapis.com/v1/subscriptions?filter=..., then DELETE"
                " .../v1/subscriptions/ID) and subscribe again"
            )
        mine = sorted(
            (sub for sub in found if sub.topic == topic),
            key=lambda sub: (sub.state != "ACTIVE", -sub.expires_at.timestamp()),
        )
        if not mine:
            other = found[0]
            raise SubscriptionError(
                f"tenant {tenant}: {other.name} already watches {target} but publishes to {other.topic},"
                f" not to {topic} (providers.google_meet.pubsub_topic), and its topic cannot be changed."
                f" Delete it (DELETE https://workspaceevents.googleapis.com/v1/{other.name}) and subscribe again,"
                f" or set pubsub_topic to {other.topic} if that topic pushes to callmatch"
            )
        pick = mine[0]
        adopted = f"adopted {pick.name}: it already existed on {target} (ALREADY_EXISTS)"
        # Google's own times, so its lifetime (and when it is due) is what it really is.
        created = min(now, pick.created_at or pick.expires_at - workspace.MAX_LIFETIME)
        updated = pick.updated_at if pick.updated_at and created < pick.updated_at <= now else None
        sub = Subscription(
            tenant,
            "google_meet",
            pick.name,
            pick.target,
            pick.expires_at,
            created,
            renewed_at=updated,
            state=SUSPENDED_STATE if pick.state == "SUSPENDED" else ACTIVE,
            detail=adopted,
        )
        if pick.state == "SUSPENDED":  # beat reactivates it once Google accepts
            return replace(sub, detail=f"{adopted}; suspended: {pick.suspension_reason or 'unknown reason'}")
        if not sub.due(now):
            return sub
        try:
            renewed = workspace.renew(api, pick.name)
        except ExternalError as exc:  # kept, so beat's next run renews it; this run still fails
            self.store.put(replace(sub, failures=1, detail=f"{adopted}; renewal failed: {_reason(exc)}"))
            raise
        return replace(
            sub,
            expires_at=renewed.expires_at,
            renewed_at=now,
            detail=f"{adopted}; renewed at once (it was to expire {_iso(pick.expires_at)})",
        )

    def renew(self, tenant_name: str, provider: str) -> Subscription:
        """A new expiry for ours; recreated when the provider no longer has it or the secret was rotated."""
        tenant = self.tenant(tenant_name)
        current = self.store.get(tenant.name, provider)
        if current is None or current.expires_at <= self.clock():
            return self.create(tenant.name, provider)
        ctx = self._ctx(tenant, provider)
        now = self.clock()
        try:
            if provider == "teams":
                if current.client_state_digest != digest(ctx.config.webhook_secrets[0]):
                    log.info("teams webhook secret rotated: new subscription", extra={"tenant": tenant.name})
                    return self.create(tenant.name, provider)
                expires = graph.renew(graph.client(ctx), current.id, now).expires_at
                state = ACTIVE
            else:
                renewed = workspace.renew(workspace.client(ctx), current.id)
                expires = renewed.expires_at
                state = SUSPENDED_STATE if renewed.state == "SUSPENDED" else ACTIVE
        except FatalError as exc:
            if exc.status == 404:
                log.warning("subscription gone: new one", extra={"tenant": tenant.name, "provider": provider})
                return self.create(tenant.name, provider)
            raise
        sub = replace(current, expires_at=expires, renewed_at=now, state=state, failures=0)
        if state == ACTIVE and current.state == ACTIVE:
            sub = replace(sub, detail=None)
        self.store.put(sub)
        log.info(
            "subscription renewed",
            extra={
                "tenant": tenant.name,
                "provider": provider,
                "subscription": sub.id,
                "expires": _iso(expires),
            },
        )
        return sub

    def reactivate(self, tenant_name: str) -> Subscription:
        """A suspended Workspace subscription active again; refused (raised) while its cause remains."""
        tenant = self.tenant(tenant_name)
        current = self.store.get(tenant.name, "google_meet")
        if current is None:
            return self.create(tenant.name, "google_meet")
        made = workspace.reactivate(workspace.client(self._ctx(tenant, "google_meet")), current.id)
        sub = replace(
            current,
            state=ACTIVE,
            expires_at=made.expires_at,
            renewed_at=self.clock(),
            detail=f"reactivated after {current.detail or 'a suspension'}",
            failures=0,
        )
        self.store.put(sub)
        return sub

    def renew_due(self) -> list[tuple[str, str, str]]:
        """Beat's pass: (tenant, provider, outcome) for every stored subscription; never raises."""
        results = []
        names = set(self.tenants().tenants)
        try:
            stored = self.store.all()
        except redis.RedisError as exc:
            log.warning("cannot read subscriptions (%s); next run retries", type(exc).__name__)
            return []
        for sub in stored:
            if sub.tenant not in names:
                results.append((sub.tenant, sub.provider, "tenant gone: left alone"))
                continue
            now = self.clock()
            try:
                if sub.state == SUSPENDED_STATE:
                    self.reactivate(sub.tenant)
                    outcome = "reactivated"
                elif sub.expires_at <= now:
                    self.create(sub.tenant, sub.provider)
                    outcome = "recreated (had expired)"
                elif sub.due(now):
                    self.renew(sub.tenant, sub.provider)
                    outcome = "renewed"
                else:
                    outcome = "not due"
            except Exception as exc:  # the next run tries again; the error is shown by `status`
                outcome = f"failed: {_reason(exc)}"
                log.warning(
                    "subscription not renewed; next run retries",
                    extra={"tenant": sub.tenant, "provider": sub.provider, "error": _reason(exc)},
                )
                self._failed(sub, exc)
            results.append((sub.tenant, sub.provider, outcome))
        return results

    def _failed(self, sub: Subscription, exc: BaseException) -> None:
        try:
            latest = self.store.get(sub.tenant, sub.provider) or sub
            self.store.put(
                replace(latest, failures=latest.failures + 1, detail=f"last renewal failed: {_reason(exc)}")
            )
        except redis.RedisError:
            pass

    # -- status -----------------------------------------------------------------------

    def status(self, tenant_name: str | None = None) -> list[StatusRow]:
        """Every subscribable provider of each tenant (or of `tenant_name`), with its state."""
        tenants = [self.tenant(tenant_name)] if tenant_name else list(self.tenants().tenants.values())
        return status_rows(self.store, tenants, self.clock())

    # -- lifecycle --------------------------------------------------------------------

    def lifecycle(self, notice: dict[str, Any]) -> str:
        """Act on one lifecycle notification queued by the receiver; returns what was done."""
        tenant_name, provider = str(notice["tenant"]), str(notice["provider"])
        event, sub_id = str(notice["event"]), str(notice.get("subscription_id") or "")
        tenant = self.tenant(tenant_name)
        current = self.store.get(tenant.name, provider)
        if current is not None and sub_id and current.id != sub_id:
            return f"{event} for {sub_id}, not our current subscription {current.id}: ignored"
        if event in (REAUTHORIZATION_REQUIRED, EXPIRATION_REMINDER):
            return f"renewed until {_iso(self.renew(tenant.name, provider).expires_at)}"
        if event in (SUBSCRIPTION_REMOVED, EXPIRED):
            return f"recreated as {self.create(tenant.name, provider).id}"
        if event == MISSED:
            accepted, duplicates = self.close_gap(tenant.name)
            return f"gap closed: {accepted} call record(s) enqueued, {duplicates} already kept"
        if event == SUSPENDED:
            reason = str(notice.get("reason") or "unknown reason")
            if current is not None:
                self.store.put(replace(current, state=SUSPENDED_STATE, detail=f"suspended: {reason}"))
            try:
                self.reactivate(tenant.name)
            except ExternalError as exc:
                return f"suspended ({reason}); reactivation refused for now: {_reason(exc)}"
            return f"suspended ({reason}); reactivated"
        return f"{event}: not a lifecycle event we act on"

    def close_gap(self, tenant_name: str) -> tuple[int, int]:
        """Graph `missed`: the call records started since the gap was last closed, kept and enqueued once each."""
        tenant = self.tenant(tenant_name)
        ctx = self._ctx(tenant, "teams")
        now = self.clock()
        current = self.store.get(tenant.name, "teams")
        since = (current.gap_closed_at or current.created_at) if current else now - graph.RECORDS_KEPT
        ids = graph.records_between(graph.client(ctx), since - dt.timedelta(minutes=5), now)
        accepted = duplicates = 0
        for record_id in ids:
            if self.keep(record_event(tenant.name, record_id, now)):
                accepted += 1
            else:
                duplicates += 1
        if current is not None:
            self.store.put(
                replace(
                    current,
                    gap_closed_at=now,
                    detail=f"missed notifications: gap since {_iso(since)} closed ({accepted} enqueued)",
                )
            )
        return accepted, duplicates

    def keep(self, event: CallEvent) -> bool:
        """What the receiver does with a notification: record and de-duplication mark together, then a worker."""
        outcome = self.calls.accept(
            seen_key(event.tenant, event.provider, event.event_id),
            DEFAULT_TTL_SECONDS,
            event.tenant,
            event.call_id,
            event.to_json(),
        )
        if outcome is not Accepted.NEW:
            return False
        try:
            self.enqueuer.enqueue(event)
        except Exception as exc:  # kept: the sweep wakes a worker for it
            log.warning(
                "kept %s but could not enqueue it (%s); the sweep will", event.call_id, type(exc).__name__
            )
        return True


def record_event(tenant: str, record_id: str, now: dt.datetime) -> CallEvent:
    """A call record as the Teams webhook turns its notification into an event (same ids, so one dedupe)."""
    return CallEvent(
        tenant=tenant,
        provider="teams",
        call_id=f"teams:{record_id}",
        event_id=f"callRecords/{record_id}",
        kind=CallKind.MEETING,
        received_at=now,
        source_ref=record_id,
    )


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ExternalError | SubscriptionError) else type(exc).__name__


# -- the receiver's side: queue a lifecycle notification for a worker ------------------


@lru_cache(maxsize=4)
def _producer(url: str) -> Any:
    return create_celery(url)


def queue_lifecycle(notices: Iterable[dict[str, Any]]) -> int:
    """Send each notice as `callmatch.subscription_lifecycle`: the receiver answers at once, a worker acts."""
    producer = _producer(redis_url())
    count = 0
    for notice in notices:
        producer.send_task(
            LIFECYCLE_TASK,
            args=[notice],
            queue=QUEUE,
            retry=False,
            ignore_result=True,
            argsrepr=f"[<{notice.get('tenant')}/{notice.get('provider')} {notice.get('event')}>]",
            kwargsrepr="{}",
            headers=sent_now(),
        )
        count += 1
    return count
