"""What a CRM org offers callmatch, and the shapes `callmatch setup` and `callmatch doctor` print.

Every CRM tenant (Salesforce, HubSpot) discovers its org's capabilities (objects,
fields, properties, optional features), keeps them in Redis for a while so workers
do not describe the org on every call, and drops them the moment the API says a
field or object is not there (`INVALID_FIELD`, `INVALID_TYPE`,
`PROPERTY_DOESNT_EXIST`). `setup` creates what callmatch needs where the credentials
allow; `doctor` says, one line per check, whether the tenant can run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

import redis

from adapters.errors import FatalError

DEFAULT_CAPABILITY_TTL_SECONDS = 6 * 3600


class Status(StrEnum):
    """A doctor line: `fail` means the tenant cannot run; `warn` means it runs and loses something."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One doctor line. `fix` says what to do when the status is not ok (a command or an admin step)."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Status) else v) for k, v in asdict(self).items()}


class Outcome(StrEnum):
    """What a setup step did (or, with `--dry-run`, what an admin should do)."""

    PRESENT = "present"  # already there as needed: nothing done
    CREATED = "created"  # created or corrected now
    MANUAL = "manual"  # dry run, or the credentials do not allow it: `detail` holds the exact steps
    FAILED = "failed"  # tried and refused: `detail` holds the API's answer


@dataclass(frozen=True)
class Step:
    name: str
    outcome: Outcome
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": str(self.outcome), "detail": self.detail}


def can_run(checks: list[Check]) -> bool:
    """`doctor` exits 0 only when no line failed."""
    return all(check.status is not Status.FAIL for check in checks)


class CrmAdmin(Protocol):
    """What `callmatch setup` / `callmatch doctor` ask of a CRM tenant object."""

    def setup(self, *, dry_run: bool = False) -> list[Step]: ...

    def doctor(self) -> list[Check]: ...


class MissingRequirementError(FatalError):
    """The org lacks something callmatch cannot work without (the W1 external id, say).

    Fatal: the call becomes a dead letter whose reason names the object, the field and
    the fix, and is replayed once an admin ran `callmatch setup`.
    """

    def __init__(self, service: str, what: str, fix: str):
        super().__init__(service, f"{what} is missing: {fix}", code="MISSING_REQUIREMENT")
        self.what = what
        self.fix = fix


class CapabilityCache:
    """A tenant's discovered capabilities as JSON under one Redis key with a TTL.

    Without Redis (tests, `callmatch decide`) it keeps them in the process.
    """

    def __init__(
        self, client: redis.Redis | None, key: str, ttl: float = DEFAULT_CAPABILITY_TTL_SECONDS
    ) -> None:
        self.client = client
        self.key = key
        self.ttl = ttl
        self._local: dict[str, Any] | None = None

    def get(self) -> dict[str, Any] | None:
        if self.client is None:
            return self._local
        raw = self.client.get(self.key)
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    def put(self, value: dict[str, Any]) -> None:
        if self.client is None:
            self._local = value
            return
        self.client.set(self.key, json.dumps(value, sort_keys=True), ex=max(1, int(self.ttl)))

    def drop(self) -> None:
        """Forget them: the next read describes the org again (after INVALID_FIELD and the like)."""
        self._local = None
        if self.client is not None:
            self.client.delete(self.key)
