"""Tenants from YAML: CRM, policy, providers and their secrets, rate limits.

Secrets never sit in the file: a secret `name` is read from the environment
variable named by `name_env` or from the file named by `name_file`. A bad file
fails at start with the file, the tenant and the field named, so a typo never
turns into a silent 401 or a call linked with the wrong policy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import cache, partial
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from worker.config.documents import REFUSED, field_path, reason, refuse
from worker.config.scenario import ScenarioError, parse_policy
from worker.config.settings import settings
from worker.config.tokens import Access, Credential, Role, TokenHash, TokenHashError
from worker.core.model import Policy
from worker.core.normalize import norm_domain

PROVIDERS = ("aircall", "ringover", "zoom", "google_meet", "teams")
CRM_KINDS = ("scenario", "salesforce", "hubspot")
log = logging.getLogger("callmatch.tenants")
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class TenantsError(ValueError):
    """A tenants file that cannot be used; the message names file, tenant and field."""

    def __init__(self, source: str, tenant: str | None, path: str, reason: str):
        where = f"{source}: tenant {tenant}: {path}" if tenant else f"{source}: {path}"
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.tenant = tenant
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class RateLimit:
    """A token bucket (`per_second`, `burst`) and an optional daily budget."""

    per_second: float = 5.0
    burst: int = 10
    daily: int | None = None


@dataclass(frozen=True)
class CrmConfig:
    kind: str
    settings: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict)
    scenario_file: Path | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)


@dataclass(frozen=True)
class ProviderConfig:
    """One provider of one tenant. `webhook_secrets` is (current, previous) for rotation."""

    name: str
    webhook_secrets: tuple[str, ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict)
    api_base_url: str | None = None
    rate_limit: RateLimit = field(default_factory=RateLimit)
    public_key: str | None = None

    def setting(self, name: str, default: str | None = None) -> str | None:
        return self.settings.get(name, default)

    def has_api(self) -> bool:
        return all(self.credentials.get(name) for name in _PROVIDER_CREDENTIALS[self.name])


@dataclass(frozen=True)
class Tenant:
    name: str
    crm: CrmConfig
    policy: Policy = field(default_factory=Policy)
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    internal_domains: tuple[str, ...] = ()
    access: Access = field(default_factory=Access)
    unresolved: tuple[TenantsError, ...] = field(default=(), compare=False)
    """Secrets not found when the file was read leniently (ops commands that need none), each named."""

    def is_internal_email(self, email: str | None) -> bool:
        if not email or "@" not in email:
            return False
        domain = norm_domain(email.rsplit("@", 1)[1])
        return any(domain == d or domain.endswith("." + d) for d in self.internal_domains)


@dataclass(frozen=True)
class Tenants:
    tenants: Mapping[str, Tenant]
    source: str = "(memory)"
    digest: str = ""  # of the file's bytes: processes that run different files show it in `status`

    def get(self, name: str) -> Tenant | None:
        return self.tenants.get(name)

    def __len__(self) -> int:
        return len(self.tenants)


# --- The file as declared models -----------------------------------------------------------
#
# The models say what the file may hold (types, required keys, unknown keys refused); they
# are what `python -m worker.config.schema_export` publishes for editors. What depends on the
# machine (environment variables, secret files, the scenario file) is read afterwards by
# `_build`, which turns the validated models into the dataclasses above.

_REASONS: dict[str, str] = {
    "missing": "missing",
    "string_type": "expected a non-empty string",
    "string_too_short": "expected a non-empty string",
    "float_type": "expected a number",
    "int_type": "expected a whole number",
    "greater_than": "must be greater than 0",
    "model_type": "expected a mapping",
    "dict_type": "expected a mapping",
}
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Secret = Annotated[
    Text | None, Field(default=None, description="secret from this environment variable / file")
]
Default = Annotated[Any, Field(default=None, json_schema_extra={"type": "string"}, description="local use")]


def _secret_base(key: str) -> str:
    """`webhook_secret_env` -> `webhook_secret`: a secret's name without its suffix."""
    for suffix in ("_env", "_file", "_default"):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _mapping(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise refuse("expected a mapping")
    for key in data:
        if not isinstance(key, str):
            raise refuse(f"key {key!r} is not a string")
    return data


def _never(name: str) -> PydanticCustomError:
    return refuse(f"secrets are never read from this file: use {name}_env or {name}_file", (name,))


class _Section(BaseModel):
    """A mapping of the file: string keys, `null` as absent, unknown keys refused naming the known ones.

    A secret NAME is the fields NAME_env / NAME_file / NAME_default; NAME itself is refused.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    _null_is_absent: ClassVar[bool] = True

    @classmethod
    def secrets(cls) -> tuple[str, ...]:
        return _keys(cls).secrets

    @model_validator(mode="before")
    @classmethod
    def _screen(cls, data: object) -> object:
        data = _mapping(data)
        keys = _keys(cls)
        for key in data:
            if key not in keys.fields and key not in keys.secrets and keys.closed:
                raise refuse(f"unknown key (expected one of: {keys.expected})", (key,))
        for name in keys.secrets:
            if name in data:
                raise _never(name)
        if not cls._null_is_absent:
            return data
        return {k: v for k, v in data.items() if v is not None or k not in keys.fields}


@dataclass(frozen=True)
class _Keys:
    fields: frozenset[str]
    secrets: tuple[str, ...]
    expected: str
    """The keys an unknown key's error lists: plain keys, then secret names, as declared."""
    closed: bool


@cache
def _keys(section: type[_Section]) -> _Keys:
    """A section's keys, worked out once per class (the file is read before every task)."""
    secrets = tuple(dict.fromkeys(_secret_base(k) for k in section.model_fields if k.endswith("_env")))
    plain = [k for k in section.model_fields if _secret_base(k) not in secrets]
    return _Keys(
        fields=frozenset(section.model_fields),
        secrets=secrets,
        expected=", ".join((*plain, *secrets)),
        closed=section.model_config.get("extra") == "forbid",
    )


class RateLimitSection(_Section):
    """Our own token bucket in front of an API, and an optional daily budget."""

    per_second: Annotated[float, Field(gt=0)] = 5.0
    burst: Annotated[int, Field(gt=0)] = 10
    daily: Annotated[int, Field(gt=0)] | None = None

    def value(self) -> RateLimit:
        return RateLimit(per_second=float(self.per_second), burst=self.burst, daily=self.daily)


def _setting(value: object) -> object:
    """A CRM setting is a string; a number is read as its text."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise refuse("expected a string")
    return value


Setting = Annotated[str | int | float, BeforeValidator(_setting)]


class CrmSection(_Section):
    """The CRM: its kind, settings (any other plain key), secret credentials, a rate limit."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Setting] = Field(init=False)

    kind: Literal["scenario", "salesforce", "hubspot"]
    scenario_file: Text | None = None
    credentials: dict[str, Any] = Field(
        default_factory=dict,
        description="every key is a secret: NAME_env or NAME_file (NAME_default next to NAME_env)",
        json_schema_extra={
            "propertyNames": {"pattern": "_(env|file|default)$"},
            "additionalProperties": {"type": "string", "minLength": 1},
        },
    )
    rate_limit: RateLimitSection = RateLimitSection()

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise refuse("expected a non-empty string")
        if value.strip() not in CRM_KINDS:
            raise refuse(f"unknown value {value.strip()!r} (expected one of: {', '.join(CRM_KINDS)})")
        return value.strip()

    @field_validator("credentials", mode="before")
    @classmethod
    def check_credentials(cls, value: object) -> dict[str, Any]:
        data = _mapping(value)
        for name in sorted({_secret_base(key) for key in data}):
            if name in data:
                raise _never(name)
            for key in (f"{name}_env", f"{name}_file"):
                if data.get(key) is not None and (not isinstance(data[key], str) or not data[key].strip()):
                    raise refuse("expected a non-empty string", (key,))
        return {
            key: item.strip() if not key.endswith("_default") and item else item for key, item in data.items()
        }

    @model_validator(mode="before")
    @classmethod
    def _scenario_file(cls, data: object) -> object:
        if isinstance(data, dict) and "scenario_file" in data and data["scenario_file"] is None:
            raise refuse("missing", ("scenario_file",))
        return data


class _Provider(_Section):
    """What every provider takes: its webhook secrets, API base URL, rate limit."""

    api_base_url: Text | None = Field(default=None, description="the provider's API (an emulator in tests)")
    rate_limit: RateLimitSection = RateLimitSection()
    webhook_secret_env: Secret
    webhook_secret_file: Secret
    webhook_secret_default: Default
    previous_webhook_secret_env: Secret
    previous_webhook_secret_file: Secret
    previous_webhook_secret_default: Default
    public_key_env: Secret
    public_key_file: Secret
    public_key_default: Default

    @field_validator("api_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise refuse("expected an http(s) URL")
        return value


class AircallCredentials(_Section):
    api_id_env: Secret
    api_id_file: Secret
    api_id_default: Default
    api_token_env: Secret
    api_token_file: Secret
    api_token_default: Default


class RingoverCredentials(_Section):
    api_key_env: Secret
    api_key_file: Secret
    api_key_default: Default


class ZoomCredentials(_Section):
    account_id_env: Secret
    account_id_file: Secret
    account_id_default: Default
    client_id_env: Secret
    client_id_file: Secret
    client_id_default: Default
    client_secret_env: Secret
    client_secret_file: Secret
    client_secret_default: Default


class GoogleMeetCredentials(_Section):
    service_account_key_env: Secret
    service_account_key_file: Secret
    service_account_key_default: Default


class TeamsCredentials(_Section):
    client_id_env: Secret
    client_id_file: Secret
    client_id_default: Default
    client_secret_env: Secret
    client_secret_file: Secret
    client_secret_default: Default


class AircallSection(_Provider):
    credentials: AircallCredentials | None = None


class RingoverSection(_Provider):
    credentials: RingoverCredentials | None = None


class ZoomSection(_Provider):
    credentials: ZoomCredentials | None = None
    oauth_url: Text | None = None


class GoogleMeetSection(_Provider):
    """Google Meet: pushes are Pub/Sub OIDC tokens, verified by audience, account and key."""

    credentials: GoogleMeetCredentials | None = None
    audience: Text
    service_account: Text
    jwks_url: Text | None = None
    delegated_user: Text | None = None
    token_url: Text | None = None
    issuer: Text | None = None
    # Workspace Events subscription (worker/ingest/subscriptions.py): the Pub/Sub topic Meet events are
    # published to, the resource watched (a Meet space or a user), and whom the subscription acts as.
    pubsub_topic: Text | None = None
    events_target: Text | None = None
    events_subject: Text | None = None


class TeamsSection(_Provider):
    credentials: TeamsCredentials | None = None
    token_url: Text | None = None
    azure_tenant_id: Text | None = None
    # where Graph reaches the receiver (else CALLMATCH_PUBLIC_URL), for the callRecords subscription
    public_url: Text | None = None


_PROVIDER_SECTIONS: dict[str, type[_Provider]] = {
    "aircall": AircallSection,
    "ringover": RingoverSection,
    "zoom": ZoomSection,
    "google_meet": GoogleMeetSection,
    "teams": TeamsSection,
}
_CREDENTIALS_SECTIONS: dict[str, type[_Section]] = {
    "aircall": AircallCredentials,
    "ringover": RingoverCredentials,
    "zoom": ZoomCredentials,
    "google_meet": GoogleMeetCredentials,
    "teams": TeamsCredentials,
}
_PROVIDER_CREDENTIALS = {name: section.secrets() for name, section in _CREDENTIALS_SECTIONS.items()}


class ProvidersSection(_Section):
    """Only the providers listed get a webhook route; `zoom:` alone still needs its secret."""

    aircall: AircallSection | None = None
    ringover: RingoverSection | None = None
    zoom: ZoomSection | None = None
    google_meet: GoogleMeetSection | None = None
    teams: TeamsSection | None = None
    _order: tuple[str, ...] = PrivateAttr(default=())
    """The providers in the file's order (routes and reports list them so)."""

    @model_validator(mode="wrap")
    @classmethod
    def _listed(cls, data: object, handler: ModelWrapValidatorHandler[ProvidersSection]) -> ProvidersSection:
        providers = _mapping(data)
        for key in providers:
            if key not in PROVIDERS:
                raise refuse(f"unknown provider (expected one of: {', '.join(PROVIDERS)})", (key,))
        section = handler({key: {} if value is None else value for key, value in providers.items()})
        section._order = tuple(providers)
        return section

    def listed(self) -> dict[str, _Provider]:
        return {name: getattr(self, name) for name in self._order}


class TokenEntry(_Section):
    """One token of a person or a program, kept as its hash; `name` is recorded with every change it makes."""

    name: Text
    token_hash: Text = Field(
        description="scrypt$ln=15,r=8,p=1$SALT$HASH, from `callmatch access hash-token` (never the token)",
        json_schema_extra={"pattern": r"^scrypt\$"},
    )

    @field_validator("token_hash")
    @classmethod
    def _hashed(cls, value: str) -> str:
        try:
            TokenHash.parse(value)
        except TokenHashError as exc:
            raise refuse(str(exc)) from None
        return value


class AccessSection(_Section):
    """Who may use this tenant's operations API and console: viewers read, admins also change.

    Tokens are listed by hash (`admins`, `viewers`), or one of each role is read from a secret
    (`admin_token_env`/`_file`, `viewer_token_env`/`_file`). Without this section only
    CALLMATCH_ADMIN_TOKEN reaches the tenant.
    """

    admins: list[TokenEntry] = Field(default_factory=list, description="tokens that read and change")
    viewers: list[TokenEntry] = Field(default_factory=list, description="tokens that only read")
    admin_token_env: Secret
    admin_token_file: Secret
    viewer_token_env: Secret
    viewer_token_file: Secret

    @field_validator("admins", "viewers", mode="before")
    @classmethod
    def _listed(cls, value: object) -> object:
        if value is None:
            return []
        if not isinstance(value, list):
            raise refuse("expected a list of {name, token_hash}")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> AccessSection:
        seen: set[str] = set()
        for key in ("admins", "viewers"):
            for index, entry in enumerate(getattr(self, key)):
                if entry.name in seen:
                    raise refuse(f"the name {entry.name!r} is used twice", (key, index, "name"))
                seen.add(entry.name)
        return self


class TenantSection(_Section):
    """One tenant: its CRM, its policy (the scenario-v1 `policy` keys), providers, own domains, access."""

    crm: CrmSection
    policy: dict[str, Any] | None = Field(
        default=None, description="the scenario-v1 policy keys and defaults"
    )
    providers: ProvidersSection = ProvidersSection()
    internal_domains: list[Text] = Field(
        default_factory=list, description="emails here are our users (and rule M7 skips them)"
    )
    internal_phones: list[Text] = Field(
        default_factory=list,
        description="our own numbers (switchboard, desk lines): rule M7 never matches them to a contact",
    )
    access: AccessSection | None = None

    @field_validator("policy", mode="before")
    @classmethod
    def _policy(cls, value: object) -> object:
        return _mapping(value)

    @field_validator("providers", "internal_domains", "internal_phones", mode="before")
    @classmethod
    def _falsy_is_empty(cls, value: object, info: ValidationInfo) -> object:
        if not value:
            return {} if info.field_name == "providers" else []
        if info.field_name in ("internal_domains", "internal_phones") and (
            not isinstance(value, list) or not all(isinstance(d, str) and d.strip() for d in value)
        ):
            raise refuse(f"expected a list of {info.field_name.removeprefix('internal_')}")
        return value


class TenantsDocument(_Section):
    """A callmatch tenants file (config/tenants.yaml), version 1."""

    model_config = ConfigDict(title="callmatch tenants file", json_schema_extra={"required": ["tenants"]})
    _null_is_absent: ClassVar[bool] = False

    version: Literal[1] = 1
    tenants: dict[str, TenantSection] = Field(default=None, validate_default=True)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: object) -> object:
        if value != 1:
            raise refuse(f"unsupported version {value!r} (expected 1)")
        return 1

    @field_validator("tenants", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        tenants = _mapping(value)
        if not tenants:
            raise refuse("no tenant defined")
        for name in tenants:
            if not TENANT_NAME.match(name):
                raise refuse("tenant names are lower-case letters, digits, - and _", (name,))
        return tenants


def _tenants_error(error: ErrorDetails, source: str) -> TenantsError:
    """One pydantic error named by file, tenant and field; `(document)`/`(tenant)` for the mapping itself."""
    loc = tuple(error["loc"])
    at = tuple(error.get("ctx", {}).get("at", ())) if error["type"] == REFUSED else ()
    tenant: str | None = None
    scope = "(document)"
    if len(loc) >= 2 and loc[0] == "tenants":
        tenant, loc, scope = str(loc[1]), loc[2:], "(tenant)"
    path = field_path((*loc, *at)) if loc else field_path(at, scope)
    text = reason(error) if error["type"] == REFUSED else _REASONS.get(error["type"], error["msg"])
    return TenantsError(source, tenant, path, text)


def _first_error(
    exc: ValidationError, document: dict[str, Any], build: Callable[[str], _Build]
) -> TenantsError:
    """The error the file has always reported first: the models' and those of the sections that are valid.

    Within a tenant the file was checked section by section (crm, policy, each provider in the
    file's order), each section's secrets read as it was checked; so a section that validates
    alone is built too, and the first error in that order wins.
    """
    source = build("").source
    candidates = [_tenants_error(error, source) for error in exc.errors(include_url=False)]
    tenants = document.get("tenants")
    for name, raw in tenants.items() if isinstance(tenants, dict) else ():
        if isinstance(raw, dict):
            candidates.extend(_section_errors(build(name), raw))
    return min(candidates, key=lambda error: _checked_at(error, document))


def _section_errors(builder: _Build, raw: dict[str, Any]) -> Iterator[TenantsError]:
    """The errors of each section checked on its own: its shape, and its reading of secrets and files."""
    if raw.get("crm") is not None:
        yield from _attempt(builder, ("crm",), lambda: builder.crm(CrmSection.model_validate(raw["crm"])))
        credentials = raw["crm"].get("credentials") if isinstance(raw["crm"], dict) else None
        credentials = credentials if isinstance(credentials, dict) else {}
        for secret in sorted({_secret_base(key) for key in credentials if isinstance(key, str)}):
            yield from _attempt(builder, ("crm",), partial(_crm_secret, builder, credentials, secret))
    if isinstance(raw.get("policy"), dict):
        yield from _attempt(builder, ("policy",), lambda: builder.policy(raw["policy"]))
    providers = raw.get("providers")
    for name, data in providers.items() if isinstance(providers, dict) else ():
        if name not in _PROVIDER_SECTIONS:
            continue
        at = ("providers", name)
        yield from _attempt(builder, at, partial(_provider, builder, name, data or {}))
        if isinstance(data, dict):  # its secrets were read one by one, before its other keys were checked
            for secret in (
                ("public_key",) if name == "google_meet" else ("webhook_secret", "previous_webhook_secret")
            ):
                yield from _attempt(builder, at, partial(_secret, builder, _Provider, name, data, secret))
            if isinstance(data.get("credentials"), dict):
                for secret in _PROVIDER_CREDENTIALS[name]:
                    model = _CREDENTIALS_SECTIONS[name]
                    credentials = data["credentials"]
                    yield from _attempt(
                        builder,
                        (*at, "credentials"),
                        partial(_secret, builder, model, name, credentials, secret),
                    )


def _crm_secret(builder: _Build, credentials: dict[str, Any], secret: str) -> None:
    """One CRM credential read on its own (its shape errors are the whole section's)."""
    with suppress(PydanticCustomError):
        keys = CrmSection.check_credentials(
            {k: v for k, v in credentials.items() if isinstance(k, str) and _secret_base(k) == secret}
        )
        builder.secret(keys, secret, "crm.credentials", required=True)


def _provider(builder: _Build, name: str, data: object) -> None:
    builder.provider(name, _PROVIDER_SECTIONS[name].model_validate(data))


def _secret(builder: _Build, model: type[_Section], provider: str, data: dict[str, Any], secret: str) -> None:
    """One secret of a provider or of its credentials, read on its own."""
    keys = model.model_validate(
        {
            k: v
            for k, v in data.items()
            if k in _keys(model).fields and isinstance(k, str) and _secret_base(k) == secret
        }
    )
    if secret == "public_key":
        builder.webhook(provider, {**keys.model_dump(), "jwks_url": data.get("jwks_url")})
    elif model is _Provider:
        builder.secret(
            keys.model_dump(), secret, f"providers.{provider}", required=secret == "webhook_secret"
        )
    else:
        builder.secret(keys.model_dump(), secret, f"providers.{provider}.credentials", required=True)


def _attempt(builder: _Build, at: tuple[str, ...], step: Callable[[], object]) -> Iterator[TenantsError]:
    try:
        step()
    except TenantsError as error:
        yield error
    except ValidationError as exc:  # an unknown provider stops the models before the others' errors
        for detail in exc.errors(include_url=False):
            located = ErrorDetails(**{**detail, "loc": ("tenants", builder.tenant, *at, *detail["loc"])})
            yield _tenants_error(located, builder.source)


def _checked_at(error: TenantsError, document: dict[str, Any]) -> tuple[int, ...]:
    """Where the hand-written reader met this error, as a sort key (document, tenant, section, key)."""
    tenants: dict[str, Any] = document["tenants"] if isinstance(document.get("tenants"), dict) else {}
    names = list(tenants)
    parts = re.split(r"[.\[]", error.path)
    if error.tenant is None:
        if parts[0] == "tenants" and len(parts) > 1:
            return (names.index(".".join(parts[1:])) if ".".join(parts[1:]) in names else 0, -1)
        return (-3,) if parts[0] == "version" else (-2,) if parts[0] == "tenants" else (-4,)
    raw: dict[str, Any] = tenants[error.tenant] if isinstance(tenants.get(error.tenant), dict) else {}
    here = (names.index(error.tenant) if error.tenant in names else 0,)
    section = _SECTIONS.index(parts[0]) if parts[0] in _SECTIONS else 0
    if parts[0] == "crm" and len(parts) > 1:
        crm: dict[str, Any] = raw["crm"] if isinstance(raw.get("crm"), dict) else {}
        keys = [k for k in crm if k not in ("kind", "credentials", "rate_limit")]
        if parts[1] == "kind":
            return (*here, section, 1)
        if parts[1] == "scenario_file" and error.reason.startswith("missing ("):
            return (*here, section, 2 + len(keys))
        if parts[1] in keys:
            return (*here, section, 2 + keys.index(parts[1]))
        if parts[1] == "credentials":
            names = sorted(
                {_secret_base(k) for k in crm.get("credentials") or () if isinstance(k, str)}
                if isinstance(crm.get("credentials"), dict)
                else ()
            )
            base = _secret_base(parts[2]) if len(parts) > 2 else ""
            return (*here, section, 1001 + names.index(base) if base in names else 1000)
        return (*here, section, 2000)
    if parts[0] == "providers" and len(parts) > 1:
        providers: dict[str, Any] = raw["providers"] if isinstance(raw.get("providers"), dict) else {}
        index = list(providers).index(parts[1]) if parts[1] in providers else 0
        if len(parts) == 2:
            return (*here, section, 1 + index, 0)
        section_class = _PROVIDER_SECTIONS.get(parts[1], _Provider)
        name = _secret_base(parts[2])
        if name == "credentials" and len(parts) > 3:
            credentials = _PROVIDER_CREDENTIALS.get(parts[1], ())
            base = _secret_base(parts[3])
            return (*here, section, 1 + index, 51 + credentials.index(base) if base in credentials else 50)
        stage = _PROVIDER_STAGES.get(name)
        if name == "jwks_url" and error.reason.startswith("missing ("):
            stage = 4
        if stage is None:
            settings = [
                k for k in section_class.model_fields if k not in _COMMON_KEYS and k not in _SECRET_FIELDS
            ]
            stage = 10 + settings.index(parts[2]) if parts[2] in settings else 0
        return (*here, section, 1 + index, stage)
    return (*here, section)


_SECTIONS = ("(tenant)", "crm", "policy", "providers", "internal_domains", "internal_phones", "access")
_PROVIDER_STAGES = {
    "audience": 1,
    "service_account": 2,
    "webhook_secret": 3,
    "public_key": 3,
    "previous_webhook_secret": 4,
    "credentials": 50,
    "api_base_url": 60,
    "rate_limit": 70,
}


class _Build:
    """Validated sections -> the dataclasses, reading what lies outside the file (secrets, files)."""

    def __init__(
        self, source: str, tenant: str, base_dir: Path, environ: Mapping[str, str], lenient: bool = False
    ):
        self.source = source
        self.tenant = tenant
        self.base_dir = base_dir
        self.environ = environ
        self.lenient = lenient
        self.unresolved: list[TenantsError] = []

    def _missing(self, error: TenantsError, required: bool) -> str | None:
        """Strict: the error. Lenient: noted on the tenant and left empty, for commands needing no secret."""
        if not self.lenient:
            raise error
        self.unresolved.append(error)
        return "" if required else None

    def fail(self, path: str, reason: str) -> TenantsError:
        return TenantsError(self.source, self.tenant, path, reason)

    def secret(self, data: Mapping[str, Any], name: str, path: str, required: bool) -> str | None:
        """`name_env` (with an optional `name_default` for local use) or `name_file`."""
        env_name = data.get(f"{name}_env")
        file_name = data.get(f"{name}_file")
        default = data.get(f"{name}_default")
        if env_name and file_name:
            raise self.fail(f"{path}.{name}_env", f"give {name}_env or {name}_file, not both")
        if default is not None and not env_name:
            raise self.fail(f"{path}.{name}_default", f"only allowed with {name}_env")
        if env_name:
            value = self.environ.get(env_name, "").strip()
            if value:
                return value
            if isinstance(default, str) and default.strip():
                return default.strip()
            return self._missing(
                self.fail(f"{path}.{name}_env", f"environment variable {env_name} is not set"), required
            )
        if file_name:
            file_path = self.path(file_name)
            try:
                value = file_path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                error = self.fail(f"{path}.{name}_file", f"cannot read {file_path}: {exc.strerror}")
                return self._missing(error, required)
            if not value:
                return self._missing(self.fail(f"{path}.{name}_file", f"{file_path} is empty"), required)
            return value
        if required:
            raise self.fail(f"{path}.{name}_env", f"missing (give {name}_env or {name}_file)")
        return None

    def path(self, text: str) -> Path:
        """Paths in the file are relative to the file."""
        return Path(text) if Path(text).is_absolute() else self.base_dir / text

    def tenant_of(self, section: TenantSection) -> Tenant:
        crm = self.crm(section.crm)
        policy = Policy() if section.policy is None else self.policy(section.policy)
        # M7: the tenant's own domains and numbers join the policy's (the lists a scenario would carry)
        policy = replace(
            policy,
            internal_domains=tuple(dict.fromkeys((*policy.internal_domains, *section.internal_domains))),
            internal_phones=tuple(dict.fromkeys((*policy.internal_phones, *section.internal_phones))),
        )
        providers = {name: self.provider(name, p) for name, p in section.providers.listed().items()}
        return Tenant(
            name=self.tenant,
            crm=crm,
            policy=policy,
            providers=providers,
            internal_domains=tuple(sorted({norm_domain(d) for d in section.internal_domains})),
            access=Access() if section.access is None else self.access(section.access),
        )

    def access(self, section: AccessSection) -> Access:
        """The tenant's tokens: the hashes listed, then one per role read from a secret."""
        credentials: list[Credential] = []
        roles: tuple[tuple[Role, list[TokenEntry]], ...] = (
            ("admin", section.admins),
            ("viewer", section.viewers),
        )
        for role, entries in roles:
            credentials += [Credential.hashed(e.name, role, e.token_hash) for e in entries]
        data = section.model_dump()
        for role, _ in roles:
            token = self.secret(data, f"{role}_token", "access", required=False)
            if token is None:
                continue
            try:
                credentials.append(Credential.secret(f"{role}_token", role, token))
            except TokenHashError as exc:
                source = "env" if data.get(f"{role}_token_env") else "file"
                raise self.fail(f"access.{role}_token_{source}", str(exc)) from None
        return Access(tuple(credentials))

    def policy(self, document: Mapping[str, Any]) -> Policy:
        try:
            return parse_policy(document)
        except ScenarioError as exc:
            raise self.fail(exc.path, exc.reason) from None

    def crm(self, section: CrmSection) -> CrmConfig:
        scenario_file: Path | None = None
        if section.scenario_file is not None:
            scenario_file = self.path(section.scenario_file)
            if not scenario_file.is_file():
                raise self.fail("crm.scenario_file", f"no such file {scenario_file}")
        if section.kind == "scenario" and scenario_file is None:
            raise self.fail("crm.scenario_file", "missing (the scenario CRM reads its records from a file)")
        credentials: dict[str, str] = {}
        for name in sorted({_secret_base(key) for key in section.credentials}):
            value = self.secret(section.credentials, name, "crm.credentials", required=True)
            assert value is not None
            credentials[name] = value
        return CrmConfig(
            kind=section.kind,
            settings={key: str(value) for key, value in (section.model_extra or {}).items()},
            credentials=credentials,
            scenario_file=scenario_file,
            rate_limit=section.rate_limit.value(),
        )

    def provider(self, name: str, section: _Provider) -> ProviderConfig:
        data = section.model_dump()
        secrets, public_key = self.webhook(name, data)
        credentials = data.get("credentials")
        settings = {
            key: value
            for key, value in data.items()
            if key not in _COMMON_KEYS and key not in _SECRET_FIELDS and value is not None
        }
        return ProviderConfig(
            name=name,
            webhook_secrets=secrets,
            settings=settings,
            credentials=self.credentials(name, credentials) if credentials is not None else {},
            api_base_url=section.api_base_url.rstrip("/") if section.api_base_url else None,
            rate_limit=section.rate_limit.value(),
            public_key=public_key,
        )

    def webhook(self, name: str, data: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
        """How the provider's webhooks are verified: (current, previous) secrets, or Google's public key."""
        path = f"providers.{name}"
        if name == "google_meet":
            public_key = self.secret(data, "public_key", path, required=False)
            if public_key is None and data.get("jwks_url") is None:
                raise self.fail(f"{path}.jwks_url", "missing (give jwks_url or public_key_file)")
            return (), public_key
        current = self.secret(data, "webhook_secret", path, required=True)
        previous = self.secret(data, "previous_webhook_secret", path, required=False)
        assert current is not None
        return ((current, previous) if previous else (current,)), None

    def credentials(self, name: str, data: Mapping[str, Any]) -> dict[str, str]:
        credentials: dict[str, str] = {}
        for cred in _PROVIDER_CREDENTIALS[name]:
            value = self.secret(data, cred, f"providers.{name}.credentials", required=True)
            assert value is not None
            credentials[cred] = value
        return credentials


_COMMON_KEYS = ("api_base_url", "rate_limit", "credentials")
_SECRET_FIELDS = tuple(k for k in _Provider.model_fields if _secret_base(k) in _Provider.secrets())


def parse_tenants(
    document: object,
    source: str = "(memory)",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    lenient: bool = False,
) -> Tenants:
    """A decoded tenants document -> Tenants, or TenantsError naming the first bad field.

    `lenient`: a secret that cannot be read is noted in `Tenant.unresolved`, not an error.
    """
    env = os.environ if environ is None else environ
    base = base_dir or Path.cwd()
    try:
        parsed = TenantsDocument.model_validate(document)
    except ValidationError as exc:
        root = document if isinstance(document, dict) else {}
        raise _first_error(exc, root, lambda name: _Build(source, name, base, env)) from None

    def tenant(name: str, section: TenantSection) -> Tenant:
        builder = _Build(source, name, base, env, lenient)
        built = builder.tenant_of(section)
        return replace(built, unresolved=tuple(builder.unresolved)) if builder.unresolved else built

    return Tenants(tenants={name: tenant(name, t) for name, t in parsed.tenants.items()}, source=source)


def load_tenants(
    path: str | Path, environ: Mapping[str, str] | None = None, lenient: bool = False
) -> Tenants:
    """Read and validate a tenants YAML file; paths in it are relative to the file."""
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TenantsError(str(file_path), None, "(file)", f"cannot read: {exc.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark is not None else "(document)"
        raise TenantsError(str(file_path), None, where, "not valid YAML") from None
    parsed = parse_tenants(document, str(file_path), file_path.resolve().parent, environ, lenient)
    return replace(parsed, digest=file_digest(text))


def file_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class TenantsSource:
    """The tenants file as one process runs it: validated at start, reloaded when it changes.

    A change is noticed by the file's stat (cheap enough to check before every task);
    a new file that does not validate is refused with its error logged, and the
    process keeps the tenants it had (its digest in `callmatch status` shows it).
    """

    def __init__(self, path: str | Path, environ: Mapping[str, str] | None = None, lenient: bool = False):
        self.path = Path(path)
        self.environ = environ
        self.lenient = lenient
        self._signature = self._stat()
        self.current = load_tenants(self.path, environ, lenient)
        self.error: str | None = None
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def reload(self, force: bool = False) -> bool:
        """Read the file again if it changed (or when `force`); True when the tenants changed."""
        with self._lock:
            signature = self._stat()
            if not force and signature == self._signature:
                return False
            self._signature = signature
            try:
                fresh = load_tenants(self.path, self.environ, self.lenient)
            except TenantsError as exc:
                if self.error != str(exc):
                    log.error("tenants file not reloaded, keeping the previous one: %s", exc)
                self.error = str(exc)
                return False
            self.error = None
            if fresh.digest == self.current.digest:
                return False
            self.current = fresh
            log.info("tenants reloaded from %s (digest %s, %d tenants)", self.path, fresh.digest, len(fresh))
            return True


DEFAULT_TENANTS_FILE = Path(__file__).resolve().parents[2] / "config" / "tenants.yaml"


def default_tenants_path() -> Path:
    """$CALLMATCH_TENANTS, else the checkout's config/tenants.yaml, else ./config/tenants.yaml.

    The last one is for a plain (non-editable) install, where the package sits in
    site-packages, away from any config/ folder.
    """
    configured = settings().tenants
    if configured:
        return Path(configured)
    if DEFAULT_TENANTS_FILE.is_file():
        return DEFAULT_TENANTS_FILE
    return Path.cwd() / "config" / "tenants.yaml"
