"""What the console makes of a stored record: the trace's timeline, the runner-ups and why they lost, the log."""

from __future__ import annotations

from pathlib import Path

from worker.config.scenario import loads_scenario
from worker.engine.rules import apply_rules
from worker.ops.console import views

ROOT = Path(__file__).resolve().parents[4]


def _trace(name: str) -> list[dict[str, str]]:
    scenario = loads_scenario((ROOT / "config" / "examples" / name).read_bytes())
    decision = apply_rules(scenario.call, scenario.policy, scenario.crm, scenario.previous)
    return decision.to_json()["trace"]


def test_the_runner_up_of_a_real_decision_is_named_with_the_rule_and_why_it_lost() -> None:
    trace = _trace("domain-fallback.json")
    [lost] = views.runner_ups(trace)
    assert (lost.opportunity_id, lost.rule, lost.outcome) == ("006won", "S1.3", "runner-up")
    assert lost.why == "in tier 3 (closed 21 days before the call (within 30)); lost to tier 1"
    steps = views.timeline(trace)
    assert [s.rule for s in steps] == [e["rule"] for e in trace]
    assert [s.lost for s in steps if s.rule == "S1.3"] == [True]
    assert {s.family for s in steps if s.rule.startswith("M")} == {"matching"}


def test_each_way_of_losing_is_read_and_each_opportunity_listed_once() -> None:
    trace = [
        {"rule": "S1", "message": "O2 not eligible: closed 252 days before the call (beyond 90)"},
        {"rule": "S2", "message": "O3 set aside: owned by U9, not the organizer (open)"},
        {"rule": "S1", "message": "O4 runner-up (open at the call); lost the tie-break to O1"},
        {
            "rule": "R6",
            "message": "not a candidate opportunity: O5 (removed by a person), O6 (removed by a person)",
        },
        {"rule": "X1", "message": "not a candidate opportunity: O7 (account A7: type excluded)"},
        {"rule": "S1", "message": "O2 runner-up again"},
        {"rule": "S1.1", "message": "O1 chosen: open at the call"},
    ]
    lost = views.runner_ups(trace)
    assert [(r.opportunity_id, r.outcome, r.rule) for r in lost] == [
        ("O2", "not eligible", "S1"),
        ("O3", "set aside", "S2"),
        ("O4", "runner-up", "S1"),
        ("O5", "not a candidate", "R6"),
        ("O6", "not a candidate", "R6"),
        ("O7", "not a candidate", "X1"),
    ]
    assert lost[0].why == "closed 252 days before the call (beyond 90)"
    assert lost[6 - 1].why == "account A7: type excluded"
    assert not views.timeline(trace)[-1].lost


def test_a_locked_opportunity_is_no_runner_up_and_the_rules_pick_lost_to_the_lock() -> None:
    trace = [
        {"rule": "S1.1", "message": "O1 chosen: open at the call and created 37 days before the call"},
        {"rule": "S1", "message": "O9 not eligible: closed 252 days before the call (beyond 90)"},
        {"rule": "R4", "message": "opportunity O9 was locked by a person and stays"},
    ]
    lost = views.runner_ups(trace, current="O9")
    assert [(r.opportunity_id, r.rule, r.outcome, r.why) for r in lost] == [
        ("O1", "R4", "the rules' pick", "a person locked O9")
    ]
    assert [r.opportunity_id for r in views.runner_ups(trace, current="O1")] == ["O9"]


def test_the_change_log_is_newest_first_and_says_what_changed() -> None:
    changes = views.changes(
        [
            {"how": "override", "by": "ana", "at": "2026-03-10T10:00:00Z", "opportunity_id": "O2"},
            {"how": "unlock", "by": "bo", "at": "2026-03-11T08:00:00Z", "unlocked": ["opportunity"]},
            {
                "how": "override",
                "by": "ana",
                "at": "2026-03-10T11:00:00Z",
                "contact_ids": ["C1", "C2"],
                "removed": [{"type": "account", "id": "A9"}],
            },
        ]
    )
    assert [(c.by, c.how) for c in changes] == [("bo", "unlock"), ("ana", "override"), ("ana", "override")]
    assert changes[0].what == "unlocked opportunity"
    assert changes[1].what == "contacts → C1, C2; removed account A9"
    assert changes[2].what == "opportunity → O2"


def test_small_helpers() -> None:
    assert views.attempts({"write": 2, "fetch": 1}) == [("fetch", 1), ("associate", 0), ("write", 2)]
    assert views.short_time("2026-03-10T09:30:00+01:00") == "2026-03-10 08:30 UTC"
    assert views.short_time(None) == "" and views.short_time("soon") == "soon"
    assert views.parse_ids(" C1, C2;C1\nC3 ") == ["C1", "C2", "C3"]
    assert views.path_part("aircall:812731") == "aircall:812731"
    assert views.path_part("zoom:a/b?c") == "zoom:a%2Fb%3Fc"
