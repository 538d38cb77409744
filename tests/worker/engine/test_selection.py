"""Rules S1-S6: choosing one opportunity, every timeline window boundary included."""

from __future__ import annotations

from typing import Any

import pytest

from tests.worker.builders import chosen, decide, doc, opp, rules_of


def one(
    *opportunities: dict[str, Any], policy: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    return doc(opportunities=list(opportunities), policy=policy, **kwargs)


def rule_for(result: dict[str, Any], opportunity_id: str) -> str:
    return next(e["rule"] for e in result["trace"] if e["message"].startswith(f"{opportunity_id} chosen"))


def test_s1_1_open_created_before_call_wins_over_every_other_tier() -> None:
    ladder = [
        opp("O1", -40),
        opp("O2", 5),
        opp("O3", -200, closed=True, close=-10),
        opp("O4", -200, closed=True, close=10),
        opp("O5", -200, closed=True, close=-60),
    ]
    for expected in ["O1", "O2", "O3", "O4", "O5"]:
        result = decide(one(*ladder))
        assert result["opportunity_id"] == expected
        assert rule_for(result, expected) == f"S1.{expected[-1]}"
        ladder = [o for o in ladder if o["id"] != expected]
    assert chosen(one(*ladder)) is None


def test_s1_1_created_exactly_at_call_start_counts_as_before() -> None:
    assert chosen(one(opp("O1", 0))) == "O1"
    assert rules_of(decide(one(opp("O1", 0))))[-2:] == ["S1.1", "V3"]


@pytest.mark.parametrize(
    ("created_after", "eligible"), [(30, True), (30.00001, False), (31, False), (0.0001, True)]
)
def test_s1_2_window_30_in_31_out(created_after: float, eligible: bool) -> None:
    result = decide(one(opp("O1", created_after)))
    assert result["opportunity_id"] == ("O1" if eligible else None)


def test_s1_2_window_follows_policy() -> None:
    policy = {"windows": {"created_after_days": 7}}
    assert chosen(one(opp("O1", 7), policy=policy)) == "O1"
    assert chosen(one(opp("O1", 8), policy=policy)) is None


@pytest.mark.parametrize(
    ("close", "tier"), [(-1, 3), (-30, 3), (-31, 5), (-90, 5), (-91, None), (0, 4), (15, 4)]
)
def test_s1_closed_windows_30_and_90_days(close: int, tier: int | None) -> None:
    result = decide(one(opp("O1", -300, closed=True, close=close)))
    if tier is None:
        assert result["opportunity_id"] is None
        assert any(e["rule"] == "S1" and "not eligible" in e["message"] for e in result["trace"])
    else:
        assert result["opportunity_id"] == "O1"
        assert rule_for(result, "O1") == f"S1.{tier}"


def test_s1_4_requires_creation_before_call() -> None:
    assert chosen(one(opp("O1", 40, closed=True, close=50))) is None
    assert chosen(one(opp("O1", 20, closed=True, close=50))) == "O1"


def test_s1_windows_custom_closed_before() -> None:
    policy = {"windows": {"closed_before_days": 10, "closed_before_max_days": 20}}
    assert rule_for(decide(one(opp("O1", -300, closed=True, close=-10), policy=policy)), "O1") == "S1.3"
    assert rule_for(decide(one(opp("O1", -300, closed=True, close=-11), policy=policy)), "O1") == "S1.5"
    assert chosen(one(opp("O1", -300, closed=True, close=-21), policy=policy)) is None


def test_s1_call_date_is_taken_in_policy_timezone() -> None:
    late = "2026-03-10T23:30:00Z"
    closing_that_day = opp("O1", -300, closed=True)
    closing_that_day["close_date"] = "2026-03-10"
    in_utc = decide(one(closing_that_day, started_at=late))
    in_tokyo = decide(one(closing_that_day, started_at=late, policy={"timezone": "Asia/Tokyo"}))
    assert rule_for(in_utc, "O1") == "S1.4"
    assert rule_for(in_tokyo, "O1") == "S1.3"


def test_s1_30_day_boundary_counts_days_in_policy_timezone() -> None:
    late = "2026-03-10T23:30:00Z"
    tokyo = {"timezone": "Asia/Tokyo"}
    boundary = opp("O1", -300, closed=True)
    expectations = {
        "2026-02-07": ("S1.5", "S1.5"),
        "2026-02-08": ("S1.3", "S1.5"),
        "2026-02-09": ("S1.3", "S1.3"),
    }
    for close_date, (utc_rule, tokyo_rule) in expectations.items():
        boundary["close_date"] = close_date
        assert rule_for(decide(one(boundary, started_at=late)), "O1") == utc_rule, close_date
        assert rule_for(decide(one(boundary, started_at=late, policy=tokyo)), "O1") == tokyo_rule, close_date


def test_s1_open_close_date_is_never_used() -> None:
    assert chosen(one(opp("O1", -10, close=-200))) == "O1"
    assert chosen(one(opp("O1", 60, close=-5))) is None


def test_s1_in_tier_closest_creation_then_latest_update_then_smallest_id() -> None:
    assert chosen(one(opp("O1", -40), opp("O2", -10))) == "O2"
    assert chosen(one(opp("O1", -10, updated=-1), opp("O2", -10, updated=-2))) == "O1"
    result = decide(one(opp("O2", -10, updated=-1), opp("O1", -10, updated=-1)))
    assert result["opportunity_id"] == "O1"
    assert any("smallest id" in e["message"] for e in result["trace"])


def test_s1_trace_names_runner_ups_with_tier_and_reason() -> None:
    result = decide(
        one(opp("O1", -40), opp("O2", -300, closed=True, close=-10), opp("O3", 90), opp("O4", -50))
    )
    messages = {
        e["message"].split(" ")[0]: (e["rule"], e["message"])
        for e in result["trace"]
        if e["rule"].startswith("S1")
    }
    assert messages["O2"][0] == "S1.3" and "runner-up in tier 3" in messages["O2"][1]
    assert messages["O3"][0] == "S1" and "not eligible" in messages["O3"][1]
    assert messages["O4"][0] == "S1.1" and "lost the tie-break to O1" in messages["O4"][1]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("most_recently_created_open", "O2"),
        ("most_recently_updated_open", "O1"),
        ("most_recently_updated", "O4"),
        ("oldest_created_open", "O3"),
    ],
)
def test_s2_to_s5_strategies(strategy: str, expected: str) -> None:
    opportunities = [
        opp("O1", -50, updated=-1),
        opp("O2", -5, updated=-4),
        opp("O3", -90, updated=-30),
        opp("O4", -100, closed=True, close=-200, updated=0),
    ]
    result = decide(one(*opportunities, policy={"opportunity_strategy": strategy}))
    assert result["opportunity_id"] == expected
    assert (
        rule_for(result, expected)
        == {
            "most_recently_created_open": "S2",
            "most_recently_updated_open": "S3",
            "most_recently_updated": "S4",
            "oldest_created_open": "S5",
        }[strategy]
    )


@pytest.mark.parametrize(
    "strategy", ["most_recently_created_open", "most_recently_updated_open", "oldest_created_open"]
)
def test_s2_s3_s5_open_only(strategy: str) -> None:
    assert (
        chosen(one(opp("O1", -5, closed=True, close=-1), policy={"opportunity_strategy": strategy})) is None
    )


def test_s2_to_s5_ties_by_smallest_id() -> None:
    for strategy in [
        "most_recently_created_open",
        "most_recently_updated_open",
        "most_recently_updated",
        "oldest_created_open",
    ]:
        assert chosen(one(opp("O7", -5), opp("O3", -5), policy={"opportunity_strategy": strategy})) == "O3"


def test_s4_ignores_creation_after_call() -> None:
    assert (
        chosen(one(opp("O1", 100, updated=101), policy={"opportunity_strategy": "most_recently_updated"}))
        == "O1"
    )


def test_s6_prefer_ranks_only_the_organizers_opportunities_when_any() -> None:
    users = [{"id": "U1", "email": "rep@ourco.example"}]
    opportunities = [opp("O1", -5, owner="U2"), opp("O2", -300, closed=True, close=-60, owner="U1")]
    assert chosen(one(*opportunities, users=users)) == "O1"
    result = decide(one(*opportunities, users=users, policy={"owner": "prefer"}))
    assert result["opportunity_id"] == "O2"
    assert "S6" in rules_of(result)
    assert any("set aside" in e["message"] and e["message"].startswith("O1") for e in result["trace"])


def test_s6_prefer_falls_back_to_all_when_organizer_owns_none_eligible() -> None:
    opportunities = [opp("O1", -5, owner="U2"), opp("O2", 300, owner="U1")]
    assert chosen(one(*opportunities, policy={"owner": "prefer"})) == "O1"


def test_s6_prefer_without_crm_user_changes_nothing() -> None:
    opportunities = [opp("O1", -5, owner="U2"), opp("O2", -50, owner="U1")]
    assert chosen(one(*opportunities, users=[], policy={"owner": "prefer"})) == "O1"
