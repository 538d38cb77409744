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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from worker.model import Policy
from worker.normalize import norm_domain
from worker.scenario import ScenarioError, parse_policy

PROVIDERS = ("aircall", "ringover", "zoom", "google_meet", "teams")
CRM_KINDS = ("scenario", "salesforce", "hubspot")
log = logging.getLogger("callmatch.tenants")
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

# Settings each provider needs to verify its webhooks; API credentials are optional
# (without them the event keeps what the webhook carried).
_PROVIDER_SETTINGS: dict[str, tuple[str, ...]] = {
    "aircall": (),
    "ringover": (),
    "zoom": ("oauth_url",),
    "google_meet": (
        "audience",
        "service_account",
        "jwks_url",
        "delegated_user",
        "token_url",
        "issuer",
        # Workspace Events subscription (worker/subscriptions.py): the Pub/Sub topic Meet events are
        # published to, the resource watched (a Meet space or a user), and whom the subscription acts as.
        "pubsub_topic",
        "events_target",
        "events_subject",
    ),
    # public_url: where Graph reaches the receiver (else CALLMATCH_PUBLIC_URL), for the callRecords subscription.
    "teams": ("token_url", "azure_tenant_id", "public_url"),
}
_PROVIDER_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "aircall": ("api_id", "api_token"),
    "ringover": ("api_key",),
    "zoom": ("account_id", "client_id", "client_secret"),
    "google_meet": ("service_account_key",),
    "teams": ("client_id", "client_secret"),
}
_COMMON_PROVIDER_KEYS = ("api_base_url", "rate_limit", "credentials")


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


class _Reader:
    """Walks one tenant's mapping; every error names source, tenant and field path."""

    def __init__(self, source: str, tenant: str | None, base_dir: Path, environ: Mapping[str, str]):
        self.source = source
        self.tenant = tenant
        self.base_dir = base_dir
        self.environ = environ

    def fail(self, path: str, reason: str) -> TenantsError:
        return TenantsError(self.source, self.tenant, path, reason)

    def mapping(self, value: object, path: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "expected a mapping")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(path, f"key {key!r} is not a string")
        return value

    def string(self, data: Mapping[str, Any], key: str, path: str, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(f"{path}.{key}", "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{path}.{key}", "expected a non-empty string")
        return value.strip()

    def number(self, data: Mapping[str, Any], key: str, path: str, default: float, integer: bool) -> float:
        value = data.get(key)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (integer and isinstance(value, float))
        ):
            raise self.fail(f"{path}.{key}", f"expected a {'whole ' if integer else ''}number")
        if value <= 0:
            raise self.fail(f"{path}.{key}", "must be greater than 0")
        return float(value)

    def secret(self, data: Mapping[str, Any], name: str, path: str, required: bool) -> str | None:
        """`name_env` (with an optional `name_default` for local use) or `name_file`; never `name`."""
        if name in data:
            raise self.fail(
                f"{path}.{name}", f"secrets are never read from this file: use {name}_env or {name}_file"
            )
        env_name = self.string(data, f"{name}_env", path)
        file_name = self.string(data, f"{name}_file", path)
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
            raise self.fail(f"{path}.{name}_env", f"environment variable {env_name} is not set")
        if file_name:
            file_path = Path(file_name)
            if not file_path.is_absolute():
                file_path = self.base_dir / file_path
            try:
                value = file_path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise self.fail(f"{path}.{name}_file", f"cannot read {file_path}: {exc.strerror}") from None
            if not value:
                raise self.fail(f"{path}.{name}_file", f"{file_path} is empty")
            return value
        if required:
            raise self.fail(f"{path}.{name}_env", f"missing (give {name}_env or {name}_file)")
        return None

    def rate_limit(self, data: Mapping[str, Any], path: str, default: RateLimit) -> RateLimit:
        raw = data.get("rate_limit")
        if raw is None:
            return default
        obj = self.mapping(raw, f"{path}.rate_limit")
        where = f"{path}.rate_limit"
        self.unknown(obj, ("per_second", "burst", "daily"), where)
        daily = obj.get("daily")
        return RateLimit(
            per_second=self.number(obj, "per_second", where, default.per_second, integer=False),
            burst=int(self.number(obj, "burst", where, default.burst, integer=True)),
            daily=int(self.number(obj, "daily", where, 1, integer=True)) if daily is not None else None,
        )

    def unknown(self, data: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
        """Unknown keys are refused: a misspelt secret name must not pass as absent."""
        for key in data:
            base = key
            for suffix in ("_env", "_file", "_default"):
                if key.endswith(suffix):
                    base = key[: -len(suffix)]
                    break
            if key not in allowed and base not in allowed:
                raise self.fail(f"{path}.{key}", f"unknown key (expected one of: {', '.join(allowed)})")


def _policy(reader: _Reader, raw: object) -> Policy:
    if raw is None:
        return Policy()
    reader.mapping(raw, "policy")
    try:
        return parse_policy(raw)
    except ScenarioError as exc:
        raise reader.fail(exc.path, exc.reason) from None


def _crm(reader: _Reader, raw: object) -> CrmConfig:
    obj = reader.mapping(raw, "crm")
    kind = reader.string(obj, "kind", "crm", required=True)
    if kind not in CRM_KINDS:
        raise reader.fail("crm.kind", f"unknown value {kind!r} (expected one of: {', '.join(CRM_KINDS)})")
    settings: dict[str, str] = {}
    scenario_file: Path | None = None
    for key, value in obj.items():
        if key in ("kind", "credentials", "rate_limit"):
            continue
        if key == "scenario_file":
            text = reader.string(obj, key, "crm", required=True)
            assert text is not None
            scenario_file = Path(text) if Path(text).is_absolute() else reader.base_dir / text
            if not scenario_file.is_file():
                raise reader.fail("crm.scenario_file", f"no such file {scenario_file}")
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise reader.fail(f"crm.{key}", "expected a string")
        settings[key] = str(value)
    if kind == "scenario" and scenario_file is None:
        raise reader.fail("crm.scenario_file", "missing (the scenario CRM reads its records from a file)")
    credentials: dict[str, str] = {}
    raw_credentials = obj.get("credentials")
    if raw_credentials is not None:
        creds = reader.mapping(raw_credentials, "crm.credentials")
        names = sorted({_secret_base(key) for key in creds})
        for name in names:
            value = reader.secret(creds, name, "crm.credentials", required=True)
            assert value is not None
            credentials[name] = value
    return CrmConfig(
        kind=kind,
        settings=settings,
        credentials=credentials,
        scenario_file=scenario_file,
        rate_limit=reader.rate_limit(obj, "crm", RateLimit()),
    )


def _secret_base(key: str) -> str:
    for suffix in ("_env", "_file", "_default"):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _provider(reader: _Reader, name: str, raw: object) -> ProviderConfig:
    path = f"providers.{name}"
    obj = reader.mapping(raw if raw is not None else {}, path)
    allowed = (
        *_COMMON_PROVIDER_KEYS,
        *_PROVIDER_SETTINGS[name],
        "webhook_secret",
        "previous_webhook_secret",
        "public_key",
    )
    reader.unknown(obj, allowed, path)
    secrets: tuple[str, ...] = ()
    public_key: str | None = None
    if name == "google_meet":
        for key in ("audience", "service_account"):
            reader.string(obj, key, path, required=True)
        public_key = reader.secret(obj, "public_key", path, required=False)
        if public_key is None and obj.get("jwks_url") is None:
            raise reader.fail(f"{path}.jwks_url", "missing (give jwks_url or public_key_file)")
    else:
        current = reader.secret(obj, "webhook_secret", path, required=True)
        previous = reader.secret(obj, "previous_webhook_secret", path, required=False)
        assert current is not None
        secrets = (current, previous) if previous else (current,)
    settings: dict[str, str] = {}
    for key in _PROVIDER_SETTINGS[name]:
        value = reader.string(obj, key, path)
        if value is not None:
            settings[key] = value
    credentials: dict[str, str] = {}
    raw_credentials = obj.get("credentials")
    if raw_credentials is not None:
        where = f"{path}.credentials"
        creds = reader.mapping(raw_credentials, where)
        reader.unknown(creds, _PROVIDER_CREDENTIALS[name], where)
        for cred in _PROVIDER_CREDENTIALS[name]:
            value = reader.secret(creds, cred, where, required=True)
            assert value is not None
            credentials[cred] = value
    base_url = reader.string(obj, "api_base_url", path)
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise reader.fail(f"{path}.api_base_url", "expected an http(s) URL")
    return ProviderConfig(
        name=name,
        webhook_secrets=secrets,
        settings=settings,
        credentials=credentials,
        api_base_url=base_url.rstrip("/") if base_url else None,
        rate_limit=reader.rate_limit(obj, path, RateLimit()),
        public_key=public_key,
    )


def _tenant(reader: _Reader, name: str, raw: object) -> Tenant:
    obj = reader.mapping(raw, "(tenant)")
    reader.unknown(obj, ("crm", "policy", "providers", "internal_domains"), "(tenant)")
    if obj.get("crm") is None:
        raise reader.fail("crm", "missing")
    crm = _crm(reader, obj["crm"])
    policy = _policy(reader, obj.get("policy"))
    providers_raw = reader.mapping(obj.get("providers") or {}, "providers")
    providers: dict[str, ProviderConfig] = {}
    for provider_name, provider_raw in providers_raw.items():
        if provider_name not in PROVIDERS:
            raise reader.fail(
                f"providers.{provider_name}", f"unknown provider (expected one of: {', '.join(PROVIDERS)})"
            )
        providers[provider_name] = _provider(reader, provider_name, provider_raw)
    domains_raw = obj.get("internal_domains") or []
    if not isinstance(domains_raw, list) or not all(isinstance(d, str) and d.strip() for d in domains_raw):
        raise reader.fail("internal_domains", "expected a list of domains")
    return Tenant(
        name=name,
        crm=crm,
        policy=policy,
        providers=providers,
        internal_domains=tuple(sorted({norm_domain(d) for d in domains_raw})),
    )


def parse_tenants(
    document: object,
    source: str = "(memory)",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Tenants:
    """A decoded tenants document -> Tenants, or TenantsError naming the first bad field."""
    env = os.environ if environ is None else environ
    base = base_dir or Path.cwd()
    top = _Reader(source, None, base, env)
    root = top.mapping(document, "(document)")
    top.unknown(root, ("version", "tenants"), "(document)")
    version = root.get("version", 1)
    if version != 1:
        raise top.fail("version", f"unsupported version {version!r} (expected 1)")
    raw_tenants = top.mapping(root.get("tenants"), "tenants")
    if not raw_tenants:
        raise top.fail("tenants", "no tenant defined")
    tenants: dict[str, Tenant] = {}
    for name, raw in raw_tenants.items():
        if not TENANT_NAME.match(name):
            raise top.fail(f"tenants.{name}", "tenant names are lower-case letters, digits, - and _")
        tenants[name] = _tenant(_Reader(source, name, base, env), name, raw)
    return Tenants(tenants=tenants, source=source)


def load_tenants(path: str | Path, environ: Mapping[str, str] | None = None) -> Tenants:
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
    parsed = parse_tenants(document, str(file_path), file_path.resolve().parent, environ)
    return replace(parsed, digest=file_digest(text))


def file_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class TenantsSource:
    """The tenants file as one process runs it: validated at start, reloaded when it changes.

    A change is noticed by the file's stat (cheap enough to check before every task);
    a new file that does not validate is refused with its error logged, and the
    process keeps the tenants it had (its digest in `callmatch status` shows it).
    """

    def __init__(self, path: str | Path, environ: Mapping[str, str] | None = None):
        self.path = Path(path)
        self.environ = environ
        self._signature = self._stat()
        self.current = load_tenants(self.path, environ)
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
                fresh = load_tenants(self.path, self.environ)
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


DEFAULT_TENANTS_FILE = Path(__file__).resolve().parent.parent / "config" / "tenants.yaml"


def default_tenants_path() -> Path:
    """$CALLMATCH_TENANTS, else the checkout's config/tenants.yaml, else ./config/tenants.yaml.

    The last one is for a plain (non-editable) install, where the package sits in
    site-packages, away from any config/ folder.
    """
    configured = os.environ.get("CALLMATCH_TENANTS")
    if configured:
        return Path(configured)
    if DEFAULT_TENANTS_FILE.is_file():
        return DEFAULT_TENANTS_FILE
    return Path.cwd() / "config" / "tenants.yaml"
