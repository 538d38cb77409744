"""Every `CALLMATCH_*` environment variable in one declared place: name, type, default and meaning.

Modules ask `settings()` instead of reading `os.environ`, so a default is written once and a
bad value (or a combination that would make a stage run twice) stops the process at start
with one line naming the variable. `python -m worker.config.settings --markdown` prints the README's
table of variables (a test keeps the two equal). Tenants' secrets (`NAME_env` in the tenants
file) are not settings: worker/config/tenants.py reads those.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "CALLMATCH_"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEMO_RINGOVER_KEY = "demo-ringover-webhook-key-for-local-use-only-never-in-production-0123456789"


def _shown(text: str) -> dict[str, Any]:
    """The README's default column for a default that is not a plain value."""
    return {"shown_default": text}


def _visibility_default(data: dict[str, Any]) -> int:
    return int(data.get("max_retry_countdown_seconds", 3600)) * 2


def _stall_default(data: dict[str, Any]) -> int:
    return int(data.get("hard_time_limit_seconds", 150)) + 60


class SettingsError(ValueError):
    """A bad `CALLMATCH_*` value: one line per problem, naming the variable."""


class Settings(BaseSettings):
    """The process's configuration, read from `CALLMATCH_*` (an empty variable counts as unset)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, frozen=True, extra="forbid")

    redis_url: str = Field(default=DEFAULT_REDIS_URL, description="broker, call records, limiters, dedupe")
    tenants: Path | None = Field(
        default=None,
        description="the tenants file",
        json_schema_extra=_shown("`config/tenants.yaml`"),
    )
    host: str = Field(default="127.0.0.1", description="where the receiver listens")
    port: int = Field(default=8000, description="the receiver's port (also the one `make demo` posts to)")
    admin_token: SecretStr | None = Field(
        default=None,
        description="the global admin token of the operations API and console: reads and changes every tenant"
        " (tenants' own tokens: `access:` in the tenants file)",
        json_schema_extra=_shown("unset (only tenants' tokens)"),
    )
    console_session_seconds: int = Field(
        default=8 * 3600,
        ge=60,
        description="how long a console sign-in lasts before the token is asked again",
        json_schema_extra=_shown("`28800` (8 h)"),
    )
    log_level: str = Field(default="INFO", description="JSON logs on stderr")
    max_retries: int = Field(default=8, description="retries per stage before a dead letter")
    batch_size: int = Field(
        default=20,
        ge=1,
        description="calls of one tenant associated and written together (1: one call at a time)",
    )
    batch_wait_seconds: float = Field(
        default=1.0,
        gt=0,
        description="the longest a call waits for its batch to fill before it is associated anyway",
    )
    retry_base_seconds: float = Field(
        default=5.0, description="stage backoff: the first wait (exponential, jittered)"
    )
    retry_max_seconds: float = Field(default=600.0, description="stage backoff: the longest wait")
    max_retry_countdown_seconds: int = Field(
        default=3600,
        description="the longest wait a task may ask for; must stay below the visibility timeout",
    )
    visibility_timeout_seconds: int = Field(
        default_factory=_visibility_default,
        description="when Redis hands a dead worker's task to another;"
        " must exceed the countdown above and the hard time limit",
        json_schema_extra=_shown("2 × `CALLMATCH_MAX_RETRY_COUNTDOWN_SECONDS`"),
    )
    unacked_restore_interval_seconds: int = Field(
        default=10, description="how often workers look for such tasks"
    )
    hard_time_limit_seconds: int = Field(
        default=150, description="a stage running longer is stopped (soft limit 20% earlier) and retried"
    )
    stall_seconds: int = Field(
        default_factory=_stall_default,
        description="a call owing a stage with no progress for this long is re-enqueued by the sweep;"
        " must exceed the hard limit",
        json_schema_extra=_shown("`CALLMATCH_HARD_TIME_LIMIT_SECONDS` + 60"),
    )
    preference_days: int = Field(
        default=180,
        ge=1,
        description="a person's choice (rule L1) is followed for this many days, or until its opportunity closes",
    )
    sweep_interval_seconds: float = Field(
        default=60.0, description="how often the workers' sweep looks for stalled calls"
    )
    heartbeat_seconds: float = Field(
        default=10.0,
        description="how often each process reports its tenants digest (and re-reads a changed file)",
    )
    now: dt.datetime | None = Field(
        default=None,
        description='freezes the processes\' "now" (ISO-8601 with offset): for tests and replays of history',
        json_schema_extra=_shown("unset (the system clock)"),
    )
    refresh_interval_seconds: float = Field(
        default=3600.0, description="how often beat looks for calls due a refresh (R5)"
    )
    subscription_check_seconds: float = Field(
        default=3600.0,
        description="how often beat renews the providers' subscriptions (Graph, Workspace Events)",
    )
    public_url: str | None = Field(
        default=None,
        description="where Graph reaches the receiver, for tenants whose `providers.teams.public_url` is unset",
        json_schema_extra=_shown("unset"),
    )
    worker_metrics_port: int = Field(
        default=0,
        description="the worker's Prometheus endpoint (`make run` uses 9808)",
        json_schema_extra=_shown("`0` (off)"),
    )
    worker_metrics_host: str = Field(default="127.0.0.1", description="the address of that endpoint")
    demo_aircall_token: SecretStr = Field(
        default=SecretStr("demo-aircall-token"),
        description="the token `make demo` signs Aircall webhooks with (the embedded tenants file reads it too)",
        json_schema_extra=_shown("`demo-aircall-token`"),
    )
    demo_ringover_key: SecretStr = Field(
        default=SecretStr(DEMO_RINGOVER_KEY),
        description="the key `make demo` signs Ringover webhooks with (the embedded tenants file reads it too)",
        json_schema_extra=_shown("a local-only demo key"),
    )

    @field_validator("now", mode="before")
    @classmethod
    def _instant(cls, value: Any) -> Any:
        """The same parse as ever (fromisoformat, Z accepted), and an offset required."""
        if not isinstance(value, str):
            return value
        try:
            instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"CALLMATCH_NOW: not an ISO-8601 time: {value!r}") from None
        if instant.tzinfo is None:
            raise ValueError("CALLMATCH_NOW: give an offset (Z or +hh:mm)")
        return instant

    @model_validator(mode="after")
    def _no_double_runs(self) -> Settings:
        """Limits that would let Redis or the sweep run a stage twice are refused at start."""
        if (
            max(self.max_retry_countdown_seconds, self.hard_time_limit_seconds)
            >= self.visibility_timeout_seconds
        ):
            raise ValueError(
                "CALLMATCH_VISIBILITY_TIMEOUT_SECONDS must be longer than CALLMATCH_MAX_RETRY_COUNTDOWN_SECONDS and"
                " CALLMATCH_HARD_TIME_LIMIT_SECONDS, or Redis redelivers a task that is only waiting for its retry"
                " or still running, and the stage runs twice"
            )
        if self.stall_seconds <= self.hard_time_limit_seconds:
            raise ValueError(
                "CALLMATCH_STALL_SECONDS must be longer than CALLMATCH_HARD_TIME_LIMIT_SECONDS,"
                " or the sweep doubles stages that are still running"
            )
        return self

    @property
    def soft_time_limit_seconds(self) -> int:
        """20% before the hard limit (at least one second before it, and at least one second)."""
        hard = self.hard_time_limit_seconds
        return max(1, hard - max(1, hard // 5))


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def _message(error: Any) -> str:
    """One line per error: our own validators' text as written, else the variable and pydantic's reason."""
    text = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "value_error" and text.startswith(PREFIX):
        return text
    location = error["loc"]
    if not location:
        return text
    return f"{env_name(str(location[0]))}: {text}"


def _snapshot() -> tuple[tuple[str, str], ...]:
    """The variables Settings reads (names match case-insensitively), as a cache key."""
    return tuple(sorted((k, os.environ[k]) for k in os.environ if k[: len(PREFIX)].upper() == PREFIX))


@lru_cache(maxsize=8)
def _read(_environment: tuple[tuple[str, str], ...]) -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # A default computed from a bad variable is not a second problem: the bad variable is named.
        errors = [e for e in exc.errors() if e["type"] != "default_factory_not_called"]
        raise SettingsError("\n".join(_message(e) for e in errors)) from None


def settings() -> Settings:
    """The settings of the environment as it is now (cached per distinct set of `CALLMATCH_*` values)."""
    return _read(_snapshot())


def _default_text(name: str) -> str:
    field = Settings.model_fields[name]
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "shown_default" in extra:
        return str(extra["shown_default"])
    value = field.default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def markdown_table() -> str:
    """The README's table of variables, one row per setting, in the model's order."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        lines.append(f"| `{env_name(name)}` | {_default_text(name)} | {field.description} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.config.settings", description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="print the README's table of variables")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown_table())
        return 0
    try:
        current = settings()
    except SettingsError as exc:
        print(f"callmatch settings: {exc}", file=sys.stderr)
        return 2
    for name in Settings.model_fields:
        value = getattr(current, name)
        print(f"{env_name(name)}={'' if value is None else value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
