"""Learned preferences (L1) and the review queue (U1), kept in Redis per tenant.

A person's fix is remembered: every override or review choice records, for each
contact the call matched, the account and opportunity that person chose (who and
when). The next call of that contact follows it (rule L1) until its opportunity
closes or the preference is older than `preference_days`. Calls the rules would
not guess on (`ambiguous`) wait in the review queue with their candidates until a
person chooses.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis

from worker.core.model import Opportunity, Preference
from worker.pipeline.store import PREFIX

DEFAULT_PREFERENCE_DAYS = 180
"""How long a preference lasts when its opportunity does not close first."""


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class StoredPreference:
    """One contact's preference, as kept: the rule's fields plus where it came from."""

    tenant: str
    contact_id: str
    account_id: str | None
    opportunity_id: str | None
    set_at: str
    set_by: str
    call_id: str | None = None

    def to_preference(self) -> Preference:
        return Preference(
            contact_id=self.contact_id,
            account_id=self.account_id,
            opportunity_id=self.opportunity_id,
            set_at=dt.datetime.fromisoformat(self.set_at),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredPreference:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})  # type: ignore[arg-type]


class PreferenceStore:
    """`callmatch:prefs:<tenant>`: a hash of contact id -> its latest preference (one per contact)."""

    def __init__(self, client: redis.Redis, days: int = DEFAULT_PREFERENCE_DAYS):
        self.redis = client
        self.days = days

    @staticmethod
    def key(tenant: str) -> str:
        return f"{PREFIX}:prefs:{tenant}"

    def record(
        self,
        tenant: str,
        contact_ids: Iterable[str],
        *,
        account_id: str | None,
        opportunity_id: str | None,
        now: dt.datetime,
        by: str,
        call_id: str | None = None,
    ) -> list[StoredPreference]:
        """A person's choice, for each contact; a later choice for a contact replaces the earlier one."""
        if account_id is None and opportunity_id is None:
            return []
        kept = [
            StoredPreference(tenant, cid, account_id, opportunity_id, _iso(now), by, call_id)
            for cid in dict.fromkeys(contact_ids)
        ]
        if kept:
            self.redis.hset(self.key(tenant), mapping={p.contact_id: json.dumps(p.to_json()) for p in kept})
        return kept

    def listing(self, tenant: str, contact_ids: Sequence[str] | None = None) -> list[StoredPreference]:
        """A tenant's preferences (of these contacts), by contact id."""
        key = self.key(tenant)
        if contact_ids is None:
            raw = self.redis.hgetall(key)
            values = [raw[k] for k in sorted(raw)]
        else:
            wanted = sorted(set(contact_ids))
            values = [v for v in self.redis.hmget(key, wanted) if v is not None] if wanted else []
        return [StoredPreference.from_json(json.loads(v)) for v in values]

    def forget(self, tenant: str, contact_ids: Sequence[str] | None = None) -> int:
        """Drop these contacts' preferences (all of the tenant's when None); how many were dropped."""
        if contact_ids is None:
            count = int(self.redis.hlen(self.key(tenant)))
            self.redis.delete(self.key(tenant))
            return count
        return int(self.redis.hdel(self.key(tenant), *contact_ids)) if contact_ids else 0

    def live(
        self,
        tenant: str,
        contact_ids: Sequence[str],
        opportunities: Iterable[Opportunity],
        now: dt.datetime,
    ) -> tuple[Preference, ...]:
        """The preferences L1 may use: expired ones (too old, or their opportunity closed) are dropped for good."""
        closed = {o.id for o in opportunities if o.is_closed}
        oldest = now - dt.timedelta(days=self.days)
        usable: list[Preference] = []
        expired: list[str] = []
        for stored in self.listing(tenant, contact_ids):
            preference = stored.to_preference()
            too_old = preference.set_at is not None and preference.set_at < oldest
            if too_old or (stored.opportunity_id is not None and stored.opportunity_id in closed):
                expired.append(stored.contact_id)
            else:
                usable.append(preference)
        if expired:
            self.forget(tenant, expired)
        return tuple(usable)


class ReviewQueue:
    """`callmatch:review`: the calls U1 left `ambiguous`, newest first, until a person chooses."""

    def __init__(self, client: redis.Redis):
        self.redis = client
        self.key = f"{PREFIX}:review"

    @staticmethod
    def _member(tenant: str, call_id: str) -> str:
        return json.dumps([tenant, call_id])

    def keep(self, tenant: str, call_id: str, ambiguous: bool, now: dt.datetime) -> None:
        """In the queue while the call's latest decision is ambiguous; out once it is not."""
        if ambiguous:
            self.redis.zadd(self.key, {self._member(tenant, call_id): now.timestamp()})
        else:
            self.redis.zrem(self.key, self._member(tenant, call_id))

    def listing(self, tenant: str | None = None, limit: int = 1000) -> list[tuple[str, str]]:
        """(tenant, call id) of the calls waiting for a person, newest first."""
        out = []
        for raw in cast(list[bytes], self.redis.zrevrange(self.key, 0, -1)):
            member_tenant, call_id = json.loads(raw)
            if tenant is None or member_tenant == tenant:
                out.append((str(member_tenant), str(call_id)))
                if len(out) >= limit:
                    break
        return out

    def count(self) -> int:
        return int(self.redis.zcard(self.key))
