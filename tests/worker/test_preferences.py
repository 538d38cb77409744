"""Learned preferences (L1) and the review queue (U1), as kept in a real Redis."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from worker.config.settings import SettingsError, settings
from worker.core.model import Opportunity, Preference
from worker.pipeline.preferences import DEFAULT_PREFERENCE_DAYS, PreferenceStore, ReviewQueue

NOW = dt.datetime(2026, 3, 10, 10, 0, tzinfo=dt.UTC)
KEY = "callmatch:prefs:acme"


@pytest.fixture()
def prefs(redis_client: Any) -> PreferenceStore:
    return PreferenceStore(redis_client, days=180)


def opportunity(oid: str, *, closed: bool = False) -> Opportunity:
    return Opportunity(id=oid, created_at=NOW, updated_at=NOW, account_id="A1", is_closed=closed)


def test_a_choice_is_kept_per_contact_with_who_when_and_the_call(
    prefs: PreferenceStore, redis_client
) -> None:
    kept = prefs.record(
        "acme",
        ["C2", "C1", "C2"],
        account_id="A1",
        opportunity_id="O1",
        now=NOW,
        by="ann",
        call_id="aircall:1",
    )
    assert [p.contact_id for p in kept] == ["C2", "C1"], "one per contact, duplicates once"
    assert sorted(redis_client.hkeys(KEY)) == ["C1", "C2"]
    stored = json.loads(redis_client.hget(KEY, "C1"))
    assert stored == {
        "tenant": "acme",
        "contact_id": "C1",
        "account_id": "A1",
        "opportunity_id": "O1",
        "set_at": "2026-03-10T10:00:00Z",
        "set_by": "ann",
        "call_id": "aircall:1",
    }
    assert [p.contact_id for p in prefs.listing("acme")] == ["C1", "C2"], "listed by contact id"
    assert prefs.listing("acme", ["C2", "C9"]) == [kept[0]]
    assert prefs.listing("acme", []) == [] and prefs.listing("beta") == []
    assert kept[1].to_preference() == Preference("C1", "A1", "O1", NOW)


def test_a_later_choice_replaces_the_earlier_one_of_that_contact_only(prefs: PreferenceStore) -> None:
    prefs.record("acme", ["C1", "C2"], account_id=None, opportunity_id="O1", now=NOW, by="ann", call_id="a:1")
    later = NOW + dt.timedelta(days=2)
    prefs.record("acme", ["C1"], account_id="A2", opportunity_id=None, now=later, by="bob", call_id="a:2")
    by_contact = {p.contact_id: p for p in prefs.listing("acme")}
    assert (by_contact["C1"].account_id, by_contact["C1"].opportunity_id) == ("A2", None)
    assert (by_contact["C1"].set_by, by_contact["C1"].call_id) == ("bob", "a:2")
    assert by_contact["C1"].set_at == "2026-03-12T10:00:00Z"
    assert (by_contact["C2"].opportunity_id, by_contact["C2"].set_by) == ("O1", "ann")


def test_a_choice_of_nothing_records_nothing(prefs: PreferenceStore, redis_client) -> None:
    assert prefs.record("acme", ["C1"], account_id=None, opportunity_id=None, now=NOW, by="ann") == []
    assert prefs.record("acme", [], account_id="A1", opportunity_id=None, now=NOW, by="ann") == []
    assert redis_client.exists(KEY) == 0


def test_forget_some_contacts_or_all_of_a_tenant(prefs: PreferenceStore, redis_client) -> None:
    prefs.record("acme", ["C1", "C2", "C3"], account_id="A1", opportunity_id=None, now=NOW, by="ann")
    prefs.record("beta", ["C1"], account_id="B1", opportunity_id=None, now=NOW, by="ann")
    assert prefs.forget("acme", ["C2", "C9"]) == 1
    assert [p.contact_id for p in prefs.listing("acme")] == ["C1", "C3"]
    assert prefs.forget("acme", []) == 0
    assert prefs.forget("acme") == 2
    assert redis_client.exists(KEY) == 0 and prefs.listing("acme") == []
    assert [p.account_id for p in prefs.listing("beta")] == ["B1"], "another tenant's are untouched"
    assert prefs.forget("acme") == 0


def test_live_drops_for_good_the_too_old_and_those_whose_opportunity_closed(
    prefs: PreferenceStore, redis_client
) -> None:
    prefs.record(
        "acme", ["C-old"], account_id="A1", opportunity_id=None, now=NOW - dt.timedelta(days=181), by="a"
    )
    prefs.record(
        "acme", ["C-edge"], account_id="A1", opportunity_id=None, now=NOW - dt.timedelta(days=180), by="a"
    )
    prefs.record("acme", ["C-closed"], account_id=None, opportunity_id="O-closed", now=NOW, by="a")
    prefs.record("acme", ["C-open"], account_id=None, opportunity_id="O-open", now=NOW, by="a")
    prefs.record("acme", ["C-unread"], account_id=None, opportunity_id="O-unread", now=NOW, by="a")
    prefs.record("acme", ["C-other"], account_id="A1", opportunity_id=None, now=NOW, by="a")
    contacts = ["C-old", "C-edge", "C-closed", "C-open", "C-unread"]
    read = [opportunity("O-closed", closed=True), opportunity("O-open")]

    live = prefs.live("acme", contacts, read, NOW)

    assert sorted(p.contact_id for p in live) == ["C-edge", "C-open", "C-unread"]
    assert all(isinstance(p, Preference) and p.set_at is not None for p in live)
    assert sorted(redis_client.hkeys(KEY)) == ["C-edge", "C-open", "C-other", "C-unread"], (
        "the expired are deleted from Redis; contacts not asked about are not looked at"
    )
    assert prefs.live("acme", ["C-old", "C-closed"], read, NOW) == ()


def test_preference_days_is_the_age_limit(redis_client) -> None:
    short = PreferenceStore(redis_client, days=7)
    short.record("acme", ["C1"], account_id="A1", opportunity_id=None, now=NOW - dt.timedelta(days=8), by="a")
    short.record("acme", ["C2"], account_id="A1", opportunity_id=None, now=NOW - dt.timedelta(days=6), by="a")
    assert [p.contact_id for p in short.live("acme", ["C1", "C2"], [], NOW)] == ["C2"]
    assert PreferenceStore(redis_client).days == DEFAULT_PREFERENCE_DAYS == 180


def test_the_preference_days_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLMATCH_PREFERENCE_DAYS", raising=False)
    assert settings().preference_days == DEFAULT_PREFERENCE_DAYS
    monkeypatch.setenv("CALLMATCH_PREFERENCE_DAYS", "30")
    assert settings().preference_days == 30
    monkeypatch.setenv("CALLMATCH_PREFERENCE_DAYS", "0")
    with pytest.raises(SettingsError, match=r"^CALLMATCH_PREFERENCE_DAYS: "):
        settings()


def test_the_review_queue_holds_ambiguous_calls_newest_first(redis_client) -> None:
    queue = ReviewQueue(redis_client)
    queue.keep("acme", "aircall:1", True, NOW)
    queue.keep("beta", "aircall:2", True, NOW + dt.timedelta(minutes=1))
    queue.keep("acme", "aircall:3", True, NOW + dt.timedelta(minutes=2))
    assert queue.listing() == [("acme", "aircall:3"), ("beta", "aircall:2"), ("acme", "aircall:1")]
    assert queue.listing("acme") == [("acme", "aircall:3"), ("acme", "aircall:1")]
    assert queue.listing(limit=1) == [("acme", "aircall:3")]
    queue.keep("acme", "aircall:1", True, NOW + dt.timedelta(minutes=3))
    assert queue.listing()[0] == ("acme", "aircall:1") and queue.count() == 3, "decided again: once, newest"
    queue.keep("acme", "aircall:1", False, NOW + dt.timedelta(minutes=4))
    queue.keep("acme", "aircall:9", False, NOW)
    assert queue.listing("acme") == [("acme", "aircall:3")] and queue.count() == 2
