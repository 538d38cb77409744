"""One Salesforce org as the worker sees it: a shared client per tenant and a fresh port per call.

Built from a tenant's `crm` settings and credentials (worker.config.tenants.CrmConfig):

- credentials: `client_id`, `client_secret` and `refresh_token` (OAuth), or `client_id`,
  `client_secret`, `username` and `password` (login); `access_token` optionally, to
  start without a token request;
- settings (all optional but `instance_url` when no login is configured): `instance_url`,
  `login_url` (https://login.salesforce.com), `api_version`, `reserve_fraction` (0.1),
  `connect_timeout` (3.05), `read_timeout` (30), `ca_file`, and the field names of
  SalesforceSettings (`extra_email_fields` comma-separated, `account_domain_field`,
  `task_call_id_field`, `event_call_id_field`, `external_id_field`,
  `attendee_emails_field`, `task_start_field`), `capabilities_ttl` (seconds the
  org's discovered capabilities are kept in Redis, 21600) and `users_ttl` (seconds the
  org's users, by email, are kept in the process for every port of the tenant, 300).
The tenant's `rate_limit` becomes a Redis-shared limiter (`burst` requests per
`burst / per_second` seconds) so all workers together stay under it; the daily
budget Salesforce reports is shared under `salesforce:<tenant>:daily`, the
session under `salesforce:<tenant>` (adapters.sessions: one refresh at a time), and
the org's capabilities under `salesforce:<tenant>:capabilities` (what the org has:
optional features and fields; see capabilities.py). `setup()` and `doctor()` make it
a `CrmAdmin` for `callmatch setup` / `callmatch doctor`. The tenant's policy says
which rules v1.1 fields the ports select (M9's Lead conversion, X1's Account Type)
and doctor checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import redis

from adapters.crm.readiness import DEFAULT_CAPABILITY_TTL_SECONDS, CapabilityCache, Check, Step
from adapters.crm.salesforce.adapter import SalesforceCrm
from adapters.crm.salesforce.capabilities import Capabilities, local_capabilities
from adapters.crm.salesforce.client import Credentials, RetrySettings, SalesforceClient
from adapters.crm.salesforce.doctor import run_doctor
from adapters.crm.salesforce.mapping import SalesforceSettings
from adapters.crm.salesforce.setup import run_setup
from adapters.ratelimit import ApiBudget, RedisRateLimiter
from adapters.sessions import RedisSessions, SessionSettings
from worker.config.tenants import Tenant
from worker.core.model import Policy

_TEXT_FIELDS = tuple(
    f.name
    for f in fields(SalesforceSettings)
    if f.name not in ("extra_email_fields", "event_minutes_default")
)


class SalesforceConfigError(ValueError):
    """A tenant's Salesforce settings that cannot work; names the setting, never a secret."""


def _number(raw: Mapping[str, str], name: str, default: float) -> float:
    if name not in raw:
        return default
    try:
        return float(raw[name])
    except ValueError:
        raise SalesforceConfigError(f"crm.{name}: not a number") from None


def settings_from(raw: Mapping[str, str]) -> SalesforceSettings:
    values: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        if name in raw:
            values[name] = raw[name] or None
    if "users_ttl" in raw:
        values["users_ttl"] = _number(raw, "users_ttl", SalesforceSettings.users_ttl)
    if "extra_email_fields" in raw:
        values["extra_email_fields"] = tuple(
            p.strip() for p in raw["extra_email_fields"].split(",") if p.strip()
        )
    return SalesforceSettings(**values)


def credentials_from(raw: Mapping[str, str], settings: Mapping[str, str]) -> Credentials | None:
    if not (raw.get("client_id") and raw.get("client_secret")):
        return None
    if not (raw.get("refresh_token") or (raw.get("username") and raw.get("password"))):
        raise SalesforceConfigError("crm.credentials: need refresh_token, or username and password")
    login_url = settings.get("login_url", "https://login.salesforce.com").rstrip("/")
    return Credentials(
        token_url=f"{login_url}/services/oauth2/token",
        client_id=raw["client_id"],
        client_secret=raw["client_secret"],
        refresh_token=raw.get("refresh_token"),
        username=raw.get("username"),
        password=raw.get("password"),
    )


@dataclass
class SalesforceTenant:
    """The long-lived part (session, limiter, budget, capabilities) of one org; `port()` for each association."""

    name: str
    client: SalesforceClient
    settings: SalesforceSettings
    default_region: str
    capabilities: Capabilities | None = None
    reserve_fraction: float = 0.1
    policy: Policy = field(default_factory=Policy)
    """The tenant's rules policy: what rules v1.1 read only when asked (M9, X1), and what doctor checks."""

    def __post_init__(self) -> None:
        if self.capabilities is None:
            self.capabilities = local_capabilities(self.client)

    @classmethod
    def from_config(
        cls, tenant: Tenant, redis_client: redis.Redis | None = None, *, retry: RetrySettings | None = None
    ) -> SalesforceTenant:
        crm = tenant.crm
        if crm.kind != "salesforce":
            raise SalesforceConfigError(f"crm.kind: {crm.kind!r} is not salesforce")
        raw = crm.settings
        credentials = credentials_from(crm.credentials, raw)
        instance_url = raw.get("instance_url")
        access_token = crm.credentials.get("access_token")
        if credentials is None and not (instance_url and access_token):
            raise SalesforceConfigError(
                "crm.credentials: need OAuth or login credentials, or an access_token"
            )
        limiter = budget = sessions = None
        timeout = (_number(raw, "connect_timeout", 3.05), _number(raw, "read_timeout", 30.0))
        if redis_client is not None:
            rate = crm.rate_limit
            burst = max(1, int(rate.burst))
            limiter = RedisRateLimiter(
                redis_client, f"salesforce:{tenant.name}:requests", burst, burst / max(rate.per_second, 1e-3)
            )
            budget = ApiBudget(redis_client, f"salesforce:{tenant.name}:daily")
            # The lock outlives the slowest token request, so a slow refresh is never joined by a second.
            lock_ttl = max(SessionSettings.lock_ttl, sum(timeout) + 5.0)
            sessions = RedisSessions(
                redis_client, f"salesforce:{tenant.name}", SessionSettings(lock_ttl=lock_ttl)
            )
        settings = settings_from(raw)
        reserve_fraction = _number(raw, "reserve_fraction", 0.1)
        client = SalesforceClient(
            tenant=tenant.name,
            instance_url=instance_url,
            access_token=access_token,
            credentials=credentials,
            api_version=settings.api_version,
            timeout=timeout,
            verify=raw.get("ca_file") or True,
            limiter=limiter,
            budget=budget,
            reserve_fraction=reserve_fraction,
            retry=retry,
            sessions=sessions,
        )
        cache = CapabilityCache(
            redis_client,
            f"salesforce:{tenant.name}:capabilities",
            _number(raw, "capabilities_ttl", DEFAULT_CAPABILITY_TTL_SECONDS),
        )
        return cls(
            tenant.name,
            client,
            settings,
            tenant.policy.default_region,
            Capabilities(client, cache),
            reserve_fraction,
            tenant.policy,
        )

    def _capabilities(self) -> Capabilities:
        assert self.capabilities is not None  # set in __post_init__
        return self.capabilities

    def port(self, policy: Policy | None = None) -> SalesforceCrm:
        """A port for one association; `policy` (the tenant's as of now, else the one it was built with)
        says which v1.1 fields its queries select."""
        return SalesforceCrm(
            self.client,
            self.settings,
            self.default_region,
            capabilities=self._capabilities(),
            policy=policy or self.policy,
        )

    def setup(self, *, dry_run: bool = False) -> list[Step]:
        """`callmatch setup`: the W1 field, the Callmatch permission set and its grants (idempotent)."""
        return run_setup(self.client, self.settings, self._capabilities(), dry_run=dry_run)

    def doctor(self) -> list[Check]:
        """`callmatch doctor`: one check per need (fail) or optional gain (warn); see doctor.py."""
        return run_doctor(
            self.client, self.settings, self._capabilities(), self.reserve_fraction, self.policy
        )

    @property
    def remaining(self) -> int | None:
        """The org's daily API calls left, as Salesforce last reported to this process."""
        return self.client.remaining
