"""scenario-v1 reading: defaults as documented, and one clear error naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.worker.builders import doc
from worker.model import DEFAULT_FREE_MAIL_DOMAINS, OwnerMode, Strategy
from worker.scenario import ScenarioError, loads_scenario, parse_scenario


def test_defaults_when_policy_and_lists_are_absent() -> None:
    scenario = parse_scenario({"call": {"id": "x:1", "started_at": "2026-01-01T00:00:00Z"}})
    policy = scenario.policy
    assert (policy.crm, policy.default_region, policy.timezone) == ("generic", "US", "UTC")
    assert policy.use_existing_activity is True and policy.match_by_domain is False
    assert policy.opportunity_strategy is Strategy.TIMELINE and policy.owner is OwnerMode.OFF
    assert policy.activity_match_minutes == 15
    assert (
        policy.windows.created_after_days,
        policy.windows.closed_before_days,
        policy.windows.closed_before_max_days,
    ) == (30, 30, 90)
    assert policy.free_mail_domains == DEFAULT_FREE_MAIL_DOMAINS
    assert scenario.crm.contacts == () and scenario.previous is None
    assert scenario.call.kind.value == "call"


def test_unknown_keys_are_ignored() -> None:
    document = doc()
    document["extra"] = {"anything": 1}
    document["call"]["vendor_field"] = [1, 2]
    document["crm"]["contacts"][0]["x"] = None
    parse_scenario(document)


def test_offsets_are_converted_to_utc() -> None:
    scenario = parse_scenario({"call": {"id": "x", "started_at": "2026-03-10T10:30:00+01:00"}})
    assert scenario.call.started_at.isoformat() == "2026-03-10T09:30:00+00:00"


def mutate(path: list[str | int], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(doc())
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (["call", "id"], _DELETE, "call.id", "missing"),
        (["call", "id"], 12, "call.id", "expected a string"),
        (["call", "started_at"], _DELETE, "call.started_at", "missing"),
        (["call", "started_at"], "yesterday", "call.started_at", "not an ISO-8601 date-time"),
        (["call", "started_at"], "2026-03-10T09:30:00", "call.started_at", "offset"),
        (["call", "kind"], "webinar", "call.kind", "unknown value 'webinar'"),
        (["call", "participants"], {"email": "x"}, "call.participants", "expected a list"),
        (["call", "participants", 0, "email"], 5, "call.participants[0].email", "expected a string"),
        (
            ["policy", "opportunity_strategy"],
            "newest",
            "policy.opportunity_strategy",
            "unknown value 'newest'",
        ),
        (["policy", "owner"], "always", "policy.owner", "unknown value 'always'"),
        (["policy", "timezone"], "Mars/Olympus", "policy.timezone", "unknown time zone"),
        (["policy", "default_region"], "XX", "policy.default_region", "unknown region"),
        (
            ["policy", "use_existing_activity"],
            "yes",
            "policy.use_existing_activity",
            "expected true or false",
        ),
        (["policy", "activity_match_minutes"], -1, "policy.activity_match_minutes", "between"),
        (["policy", "activity_match_minutes"], 1.5, "policy.activity_match_minutes", "whole number"),
        (["policy", "crm"], "pipedrive", "policy.crm", "unknown value"),
        (["policy"], [], "policy", "expected an object"),
        (["crm", "contacts", 0, "id"], _DELETE, "crm.contacts[0].id", "missing"),
        (["crm", "contacts", 0, "phones"], "0612", "crm.contacts[0].phones", "expected a list"),
        (["crm", "users"], [{"id": "U1"}, {"id": "U1"}], "crm.users[1].id", "duplicate id"),
        (["version"], 2, "version", "unsupported version"),
    ],
)
def test_bad_fields_are_named(path: list[str | int], value: Any, field: str, words: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(mutate(path, value))
    assert raised.value.path == field
    assert words in str(raised.value)
    assert str(raised.value).startswith(f"{field}: ")


def test_bad_dates_in_crm_records() -> None:
    document = doc(opportunities=[{"id": "O1", "created_at": "2026-13-01T00:00:00Z"}])
    with pytest.raises(ScenarioError, match=r"crm\.opportunities\[0\]\.created_at: not an ISO-8601"):
        parse_scenario(document)
    document = doc(
        opportunities=[{"id": "O1", "created_at": "2026-01-01T00:00:00Z", "close_date": "2026-02-30"}]
    )
    with pytest.raises(ScenarioError, match=r"crm\.opportunities\[0\]\.close_date: not a YYYY-MM-DD date"):
        parse_scenario(document)


def test_previous_locked_values_checked() -> None:
    with pytest.raises(ScenarioError, match=r"previous\.locked\[1\]: unknown value 'deal'"):
        parse_scenario(doc(previous={"locked": ["account", "deal"]}))


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", '"text"', b"\xff\xfe"])
def test_broken_documents(text: str | bytes) -> None:
    with pytest.raises(ScenarioError):
        loads_scenario(text)
