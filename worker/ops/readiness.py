"""`callmatch setup` and `callmatch doctor` for one tenant: its CRM's admin, and its providers' checks.

Shared by the CLI and the admin HTTP API, so both say the same thing. `doctor`
never raises: a check that blows up becomes a `fail` line naming the error. Every
line is made safe before it leaves here: emails and phone numbers masked, and any
secret of the tenant (CRM credentials, webhook secrets, provider credentials)
replaced by `***`, whatever an API echoed back.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import redis
import requests

from adapters.crm.readiness import Check, Outcome, Status, Step, can_run
from adapters.providers.aircall import client as aircall
from adapters.providers.checks import ProviderCheck
from adapters.providers.google_meet import client as google_meet
from adapters.providers.ringover import client as ringover
from adapters.providers.teams import client as teams
from adapters.providers.zoom import client as zoom
from worker.config.tenants import ProviderConfig, Tenant
from worker.core.observability import redact
from worker.ingest.apiclient import FetchContext
from worker.ingest.subscriptions import ACTIVE, SubscriptionStore, status_rows
from worker.pipeline.clock import process_clock
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.durability import Durability, durability

PROVIDER_CHECKS: dict[str, ProviderCheck] = {
    "aircall": aircall.check,
    "ringover": ringover.check,
    "zoom": zoom.check,
    "google_meet": google_meet.check,
    "teams": teams.check,
}

# Graph's subscription.clientState (our Teams webhook secret) is at most this long.
GRAPH_CLIENT_STATE_MAX = 128

# What a provider without API credentials still gives (tenants allow it: the webhook alone).
WITHOUT_API: dict[str, str] = {
    "aircall": "participants come from the webhook alone (no conference participants)",
    "ringover": "the call's numbers come from the webhook alone",
    "zoom": "meeting.ended names no participant: meetings are associated from the host alone",
    "google_meet": "the push names no participant: meetings cannot be associated",
    "teams": "a callRecords notification carries only the record id: calls cannot be associated",
}


@dataclass(frozen=True)
class Report:
    """What `doctor` found for a tenant; `to_json` is the CLI's `--json` and the HTTP answer."""

    tenant: str
    checks: list[Check]

    @property
    def can_run(self) -> bool:
        return can_run(self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "can_run": self.can_run,
            "checks": [check.as_dict() for check in self.checks],
        }


@dataclass(frozen=True)
class SetupReport:
    """What `setup` did (or, dry, what an admin should do); `ok` unless a step failed."""

    tenant: str
    dry_run: bool
    steps: list[Step]

    @property
    def ok(self) -> bool:
        return all(step.outcome is not Outcome.FAILED for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "steps": [step.as_dict() for step in self.steps],
        }


def tenant_secrets(tenant: Tenant) -> list[str]:
    """Every secret value the tenant's configuration holds, longest first (so none is half-replaced)."""
    values: list[str] = [*tenant.crm.credentials.values()]
    for config in tenant.providers.values():
        values += [*config.webhook_secrets, *config.credentials.values()]
    for value in list(values):  # a JSON key (Google's service account): its private parts too
        if value.lstrip().startswith("{"):
            try:
                document = json.loads(value)
            except ValueError:
                continue
            if isinstance(document, dict):
                values += [
                    v for k, v in document.items() if k.startswith("private_key") and isinstance(v, str)
                ]
    return sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)


# Ids that `redact` would take for phones: a HubSpot portal, a Google user in a resource name.
_PORTAL_ID = re.compile(r"(?:(?<=\bportal )|(?<=\busers/))(\d+)\b")


def safe_text(text: str, secrets: Iterable[str]) -> str:
    """Secrets replaced by `***`, then emails and phone numbers masked.

    A HubSpot portal id or a Google user id (`users/1234567890`) is a long digit run that
    `redact` would take for a phone; ids are not personal data, and an admin needs them.
    """
    for secret in secrets:
        text = text.replace(secret, "***")
    kept: list[str] = []

    def hold(match: re.Match[str]) -> str:
        kept.append(match.group(1))
        return f"\x00{len(kept) - 1}\x00"

    text = redact(_PORTAL_ID.sub(hold, text))
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)


def _safe_check(check: Check, secrets: list[str]) -> Check:
    return replace(
        check,
        detail=safe_text(check.detail, secrets),
        fix=safe_text(check.fix, secrets) if check.fix is not None else None,
    )


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def guarded(name: str, run: Callable[[], list[Check]], fix: str | None = None) -> list[Check]:
    """The checks `run` returns, or one `fail` line naming the error it raised (never a traceback)."""
    try:
        return run()
    except Exception as exc:  # any failure of a check is a line of the report
        return [Check(name, Status.FAIL, f"check failed: {_error(exc)}", fix)]


def redis_check(client: redis.Redis) -> Check:
    """Redis answers (every stage keeps its progress there) and how it keeps what it acknowledged."""
    fix_down = "start Redis (`make run`) or set CALLMATCH_REDIS_URL to the one the workers use"
    try:
        client.ping()
        level = durability(client)
    except redis.RedisError as exc:
        return Check("redis", Status.FAIL, f"unreachable: {_error(exc)}", fix_down)
    if level is Durability.NONE:
        return Check(
            "redis",
            Status.WARN,
            "reachable, but without an append-only file: calls acknowledged to a provider are lost if Redis restarts",
            "run Redis with --appendonly yes --appendfsync always (docs/reliability.md)",
        )
    return Check("redis", Status.OK, f"reachable (durability: {level.value})")


def webhook_check(config: ProviderConfig) -> Check:
    """The provider's deliveries can be verified: a webhook secret, or (Google) the push token's issuer."""
    name = f"{config.name}.webhook"
    if config.name == "google_meet":
        audience = config.setting("audience")
        signer = config.setting("service_account")
        keys = "public_key" if config.public_key else ("jwks_url" if config.setting("jwks_url") else None)
        missing = [
            label
            for label, value in (("audience", audience), ("service_account", signer), ("jwks_url", keys))
            if not value
        ]
        if missing:
            return Check(
                name,
                Status.FAIL,
                f"push tokens cannot be verified: {', '.join(missing)} not set",
                f"set providers.google_meet.{missing[0]} in the tenants file",
            )
        return Check(
            name, Status.OK, f"push tokens verified: audience {audience}, signer {signer}, keys from {keys}"
        )
    count = len(config.webhook_secrets)
    if not count or not all(config.webhook_secrets):
        return Check(
            name,
            Status.FAIL,
            "no webhook secret: every delivery would be refused",
            f"set providers.{config.name}.webhook_secret_env (or webhook_secret_file) in the tenants file",
        )
    if config.name == "teams" and any(
        len(secret) > GRAPH_CLIENT_STATE_MAX for secret in config.webhook_secrets
    ):
        return Check(
            name,
            Status.FAIL,
            f"the secret is the subscription's clientState, which Graph caps at {GRAPH_CLIENT_STATE_MAX} characters:"
            " a subscription with it is refused, so no notification comes",
            f"set providers.teams.webhook_secret to at most {GRAPH_CLIENT_STATE_MAX} characters",
        )
    rotation = "; the previous one is still accepted (rotation)" if count > 1 else ""
    return Check(name, Status.OK, f"secret set{rotation}")


def provider_checks(
    tenant: Tenant,
    config: ProviderConfig,
    redis_client: redis.Redis | None = None,
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Check]:
    """Webhook verification, then the API credentials (one harmless GET) and what the provider grants."""
    checks = [webhook_check(config)]
    name = f"{config.name}.api"
    if not config.has_api():
        checks.append(
            Check(
                name,
                Status.WARN,
                f"no API credentials: {WITHOUT_API[config.name]}",
                f"set providers.{config.name}.credentials in the tenants file",
            )
        )
        return checks
    ctx = FetchContext(tenant=tenant, config=config, redis_client=redis_client, session=session, sleep=sleep)
    checks += guarded(name, lambda: PROVIDER_CHECKS[config.name](ctx))
    return checks


def subscription_checks(tenant: Tenant, redis_client: redis.Redis) -> list[Check]:
    """Teams and Google Meet deliver only while our subscription lives: one line each."""
    checks = []
    for row in status_rows(SubscriptionStore(redis_client), [tenant], process_clock()()):
        name = f"{row.provider}.subscription"
        fix = f"callmatch providers subscribe --tenant {tenant.name} --provider {row.provider}"
        sub = row.subscription
        if row.state == ACTIVE and sub is not None:
            left = sub.expires_at - row.now
            expires = sub.expires_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            detail = f"active: {sub.id} expires {expires} (in {left.total_seconds() / 3600:.0f} h)"
            checks.append(Check(name, Status.OK, detail))
            continue
        detail = {
            "missing": "no subscription: the provider sends no notification, so no call arrives",
            "expired": "expired: the provider stopped sending notifications",
        }.get(row.state, f"{row.state}: no notification arrives until it is active again")
        if sub is not None and sub.detail:
            detail += f" ({sub.detail})"
        checks.append(Check(name, Status.FAIL, detail, fix + " (docs/providers/subscriptions.md)"))
    return checks


def doctor(
    tenant: Tenant,
    factory: CrmFactory,
    *,
    redis_client: redis.Redis | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """One line per check: Redis (when given), the CRM's own checks, then each configured provider.

    With Redis down, providers are still checked (without the shared rate limiter).
    """
    checks: list[Check] = []
    redis_up = True
    if redis_client is not None:
        checks.append(redis_check(redis_client))
        redis_up = checks[-1].status is not Status.FAIL
    checks += guarded(
        f"crm.{tenant.crm.kind}",
        lambda: factory.admin_for(tenant).doctor(),
        "correct the tenant's crm settings and credentials in the tenants file",
    )
    limiter_client = redis_client if redis_up else None
    for config in tenant.providers.values():
        checks += provider_checks(tenant, config, limiter_client, session=session, sleep=sleep)
    if redis_client is not None and redis_up:
        checks += guarded("subscriptions", lambda: subscription_checks(tenant, redis_client))
    secrets = tenant_secrets(tenant)
    return Report(tenant.name, [_safe_check(check, secrets) for check in checks])


def setup(tenant: Tenant, factory: CrmFactory, *, dry_run: bool = False) -> SetupReport:
    """The CRM's setup steps (created, present, manual, failed); an exception is one failed step."""
    try:
        steps = factory.admin_for(tenant).setup(dry_run=dry_run)
    except Exception as exc:  # the admin could not even start: say why, as a step
        steps = [Step(f"crm.{tenant.crm.kind}", Outcome.FAILED, _error(exc))]
    secrets = tenant_secrets(tenant)
    return SetupReport(
        tenant.name,
        dry_run,
        [replace(step, detail=safe_text(step.detail, secrets)) for step in steps],
    )
