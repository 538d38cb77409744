"""scenario-v1 reading: defaults as documented, and one clear error naming the field."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.worker.builders import doc
from worker.config.scenario import ScenarioError, loads_scenario, parse_document, parse_policy, parse_scenario
from worker.core.model import DEFAULT_FREE_MAIL_DOMAINS, OwnerMode, Strategy
from worker.ops.cli import decide_files


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


# --- issue 12: the scenario as pydantic models ---


def test_v1_1_keys_are_accepted_with_their_defaults_and_carried() -> None:
    document = doc()
    plain = parse_scenario(copy.deepcopy(document))
    assert parse_document(copy.deepcopy(document)).policy is not None
    document["policy"].update(
        internal_phones=["+33100000000"],
        internal_domains=["ourco.example"],
        shared_phone_max_accounts=3,
        skip_converted_leads=True,
        domain_match="registrable",
        excluded_account_types=["Partner"],
        on_ambiguity="abstain",
        use_preferences=False,
    )
    document["crm"]["contacts"][0]["x"] = None
    document["crm"]["preferences"] = [
        {"contact_id": "C1", "account_id": "A1", "set_at": "2026-01-01T00:00:00Z"}
    ]
    document["previous"] = {"removed": [{"type": "account", "id": "A9"}]}
    parsed = parse_document(document)
    assert parsed.policy is not None and parsed.policy.on_ambiguity == "abstain"
    assert parsed.policy.domain_match == "registrable" and parsed.policy.shared_phone_max_accounts == 3
    assert parsed.crm is not None and parsed.crm.preferences is not None
    assert (
        parsed.crm.preferences[0].set_at is not None and parsed.crm.preferences[0].set_at.tzinfo is not None
    )
    assert parsed.previous is not None and parsed.previous.removed is not None
    assert parsed.previous.removed[0].type == "account"
    assert parsed.unknown_keys() == ["crm.contacts[0].x"]  # the v1.1 keys are known
    policy = parsed.to_scenario().policy
    assert policy != plain.policy  # read into the engine's policy
    assert policy.internal_phones == ("+33100000000",) and policy.internal_domains == ("ourco.example",)
    assert policy.shared_phone_max_accounts == 3 and policy.skip_converted_leads
    assert policy.domain_match == "registrable" and policy.on_ambiguity == "abstain"
    assert policy.excluded_account_types == ("Partner",) and not policy.use_preferences
    scenario = parsed.to_scenario()
    assert scenario.crm.preferences[0].account_id == "A1"
    assert scenario.previous is not None and scenario.previous.removed[0].id == "A9"
    defaults = parse_document({"call": {"id": "x", "started_at": "2026-01-01T00:00:00Z"}, "policy": {}})
    assert defaults.policy is not None and defaults.policy.on_ambiguity is None  # absent: the default applies


@pytest.mark.parametrize(
    ("path", "value", "field", "reason"),
    [
        (["policy", "domain_match"], "fuzzy", "policy.domain_match", "unknown value 'fuzzy'"),
        (["policy", "on_ambiguity"], 1, "policy.on_ambiguity", "expected a string, got a number"),
        (
            ["policy", "shared_phone_max_accounts"],
            -1,
            "policy.shared_phone_max_accounts",
            "must be at least 0",
        ),
        (["policy", "internal_domains"], "ourco.example", "policy.internal_domains", "expected a list"),
        (["policy", "prefer_primary"], "yes", "policy.prefer_primary", "expected true or false"),
        (["crm", "leads"], [{"id": "L1", "is_converted": 1}], "crm.leads[0].is_converted", "expected true"),
        (["crm", "preferences"], [{"account_id": "A1"}], "crm.preferences[0].contact_id", "missing"),
        (
            ["previous"],
            {"removed": [{"type": "deal", "id": "D1"}]},
            "previous.removed[0].type",
            "unknown value",
        ),
    ],
)
def test_bad_v1_1_values_are_named(path: list[str | int], value: Any, field: str, reason: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(mutate(path, value))
    assert raised.value.path == field and reason in raised.value.reason


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        # the call's organizer is checked right after started_at, before the id
        (
            {"call": {"started_at": "2026-01-01T00:00:00Z", "organizer": "rep"}},
            "call.organizer",
            "expected an object",
        ),
        ({"call": {"started_at": "soon", "organizer": "rep"}}, "call.started_at", "not an ISO-8601"),
        # the policy before the call, the call before the CRM
        ({"policy": {"owner": "x"}, "call": {}}, "policy.owner", "unknown value 'x'"),
        ({"version": 2, "call": 3}, "version", "unsupported version 2"),
        ({"call": 3, "policy": {"owner": "x"}}, "call", "expected an object, got a number"),
        # duplicates are looked for once every list is read
        (
            {"crm": {"users": [{"id": "U"}, {"id": "U"}], "activities": [{"id": "T", "type": "call"}]}},
            "crm.activities[0].type",
            "unknown value 'call'",
        ),
        # locked: every name a string, then each a lockable field
        ({"previous": {"locked": ["deal", 5]}}, "previous.locked[1]", "expected a string"),
        (
            {"policy": {"windows": {"closed_before_days": 100}}},
            "policy.windows.closed_before_max_days",
            "at least",
        ),
    ],
)
def test_the_first_error_is_the_one_the_reader_always_named(
    change: dict[str, Any], field: str, reason: str
) -> None:
    document: dict[str, Any] = {"call": {"id": "x", "started_at": "2026-01-01T00:00:00Z"}}
    document.update(change)
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(document)
    assert (raised.value.path, str(raised.value)) == (field, f"{field}: {raised.value.reason}")
    assert reason in raised.value.reason


def test_a_tenant_policy_names_its_fields_under_policy() -> None:
    with pytest.raises(
        ScenarioError, match=r"^policy\.windows\.created_after_days: must be between 0 and 36500"
    ):
        parse_policy({"windows": {"created_after_days": 40000}})
    with pytest.raises(ScenarioError, match=r"^policy: expected an object, got a list$"):
        parse_policy([])
    assert parse_policy({"default_region": " fr ", "crm": ""}).default_region == "FR"


def test_decide_warns_about_each_unknown_key_and_still_decides(tmp_path: Path) -> None:
    document = doc()
    reference = io.StringIO()
    assert decide_files([_write(tmp_path / "plain.json", document)], reference, io.StringIO()) == 0
    document["policy"]["use_existing_activty"] = False
    document["crm"]["contacts"][0]["nickname"] = "J"
    document["$schema"] = "../docs/schemas/scenario-v1.schema.json"  # naming the schema is not a typo
    name = _write(tmp_path / "typo.json", document)
    out, err = io.StringIO(), io.StringIO()
    assert decide_files([name], out, err) == 0
    assert err.getvalue() == (
        f"{name}: warning: policy.use_existing_activty: unknown key, ignored\n"
        f"{name}: warning: crm.contacts[0].nickname: unknown key, ignored\n"
    )
    assert out.getvalue() == reference.getvalue()


def test_an_invalid_file_gets_its_error_and_no_warning(tmp_path: Path) -> None:
    document = doc()
    document["policy"]["use_existing_activty"] = False
    document["call"]["kind"] = "webinar"
    name = _write(tmp_path / "bad.json", document)
    out, err = io.StringIO(), io.StringIO()
    assert decide_files([name], out, err) == 2
    assert err.getvalue() == f"{name}: call.kind: unknown value 'webinar' (expected one of: call, meeting)\n"
    assert out.getvalue() == ""


def _write(path: Path, document: dict[str, Any]) -> str:
    path.write_text(json.dumps(document))
    return str(path)
