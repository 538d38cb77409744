"""Properties of the rules that must hold for every input (hypothesis)."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scenario_gen import generate_scenario
from worker.config.scenario import ScenarioError, parse_scenario
from worker.engine.rules import apply_rules
from worker.pipeline.association import decide_scenario

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def decided(document: dict[str, Any]) -> dict[str, Any]:
    return decide_scenario(parse_scenario(document)).to_json()


def shuffled(document: dict[str, Any], rng: random.Random, participants: bool) -> dict[str, Any]:
    copy = json.loads(json.dumps(document))
    crm = copy["crm"]
    for name in ("users", "accounts", "contacts", "leads", "opportunities", "activities"):
        rng.shuffle(crm[name])
    for record in crm["contacts"]:
        rng.shuffle(record["account_ids"])
        rng.shuffle(record["phones"])
    for record in crm["opportunities"]:
        rng.shuffle(record["contacts"])
    for record in crm["activities"]:
        rng.shuffle(record["contact_ids"])
        rng.shuffle(record["attendee_emails"])
    for record in crm["accounts"]:
        rng.shuffle(record["domains"])
    if participants:
        rng.shuffle(copy["call"]["participants"])
    return copy


@SETTINGS
@given(seed=seeds, order=seeds)
def test_shuffling_crm_lists_changes_nothing_not_even_the_trace(seed: int, order: int) -> None:
    document = generate_scenario(random.Random(seed))
    assert decided(shuffled(document, random.Random(order), participants=False)) == decided(document)


@SETTINGS
@given(seed=seeds, order=seeds)
def test_shuffling_participants_keeps_the_association(seed: int, order: int) -> None:
    document = generate_scenario(random.Random(seed))
    a, b = decided(document), decided(shuffled(document, random.Random(order), participants=True))
    assert (a["case"], a["account_id"], a["opportunity_id"]) == (
        b["case"],
        b["account_id"],
        b["opportunity_id"],
    )
    assert sorted(a["contact_ids"]) == sorted(b["contact_ids"])
    assert sorted(a["lead_ids"]) == sorted(b["lead_ids"])


@SETTINGS
@given(seed=seeds)
def test_every_returned_id_exists_in_the_scenario(seed: int) -> None:
    document = generate_scenario(random.Random(seed))
    result = decided(document)
    crm = document["crm"]
    ids = {
        name: {record["id"] for record in crm[name]}
        for name in ("contacts", "leads", "accounts", "opportunities")
    }
    assert set(result["contact_ids"]) <= ids["contacts"]
    assert set(result["lead_ids"]) <= ids["leads"]
    assert result["account_id"] is None or result["account_id"] in ids["accounts"]
    assert result["opportunity_id"] is None or result["opportunity_id"] in ids["opportunities"]
    assert len(result["contact_ids"]) == len(set(result["contact_ids"]))
    assert all(entry["rule"] and entry["message"] for entry in result["trace"])


@SETTINGS
@given(seed=seeds)
def test_owner_filter_outside_case_1_only_chooses_the_organizers_opportunity(seed: int) -> None:
    document = generate_scenario(random.Random(seed))
    document["policy"]["owner"] = "filter"
    previous = document.get("previous")
    result = decided(document)
    if result["case"].startswith("activity_") or result["opportunity_id"] is None:
        return
    if previous and "opportunity" in previous["locked"]:
        return
    organizer = document["call"]["organizer"]["email"]
    users = [u["id"] for u in document["crm"]["users"] if u["email"] == organizer]
    owner = next(
        o["owner_id"] for o in document["crm"]["opportunities"] if o["id"] == result["opportunity_id"]
    )
    assert users and owner == min(users)


@SETTINGS
@given(seed=seeds)
def test_reads_through_the_port_decide_like_the_whole_crm(seed: int) -> None:
    scenario = parse_scenario(generate_scenario(random.Random(seed)))
    whole = apply_rules(scenario.call, scenario.policy, scenario.crm, scenario.previous)
    assert decide_scenario(scenario) == whole


texts = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.sampled_from(["+33 6 12 34 56 78", "0033612345678", "a@b.example", "A@B.EXAMPLE "]),
)
instants = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
).map(lambda d: d.isoformat())
dates = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2100, 1, 1)).map(lambda d: d.isoformat())
small_ids = st.sampled_from(["1", "2", "10", "a", "B", "é", " x "])


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Schema-valid but otherwise arbitrary documents: odd strings, odd dates, dangling references."""

    def unique(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list({record["id"]: record for record in records}.values())

    person = st.fixed_dictionaries({"email": texts, "phone": texts, "name": texts})
    return {
        "version": 1,
        "policy": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "default_region": st.sampled_from(["US", "FR", "GB", "JP", "BR"]),
                    "timezone": st.sampled_from(
                        ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Paris"]
                    ),
                    "use_existing_activity": st.booleans(),
                    "match_by_domain": st.booleans(),
                    "opportunity_strategy": st.sampled_from(
                        [
                            "timeline",
                            "most_recently_created_open",
                            "most_recently_updated",
                            "oldest_created_open",
                            "most_recently_updated_open",
                        ]
                    ),
                    "owner": st.sampled_from(["off", "filter", "prefer"]),
                    "use_contact_roles": st.booleans(),
                    "activity_match_minutes": st.integers(0, 10080),
                    "free_mail_domains": st.lists(st.text(max_size=10), max_size=3),
                    "windows": st.fixed_dictionaries(
                        {
                            "created_after_days": st.integers(0, 400),
                            "closed_before_days": st.integers(0, 50),
                            "closed_before_max_days": st.integers(50, 400),
                        }
                    ),
                },
            )
        ),
        "call": {
            "id": draw(st.text(min_size=1, max_size=10).filter(str.strip)),
            "kind": draw(st.sampled_from(["call", "meeting"])),
            "started_at": draw(instants),
            "organizer": draw(person),
            "participants": draw(st.lists(person, max_size=4)),
        },
        "crm": {
            "users": unique(
                draw(st.lists(st.fixed_dictionaries({"id": small_ids, "email": texts}), max_size=3))
            ),
            "accounts": unique(
                draw(
                    st.lists(
                        st.fixed_dictionaries(
                            {"id": small_ids, "domains": st.lists(st.text(max_size=12), max_size=2)}
                        ),
                        max_size=3,
                    )
                )
            ),
            "contacts": unique(
                draw(
                    st.lists(
                        st.fixed_dictionaries(
                            {
                                "id": small_ids,
                                "email": texts,
                                "emails": st.lists(st.text(max_size=12), max_size=2),
                                "phones": st.lists(st.text(max_size=16), max_size=2),
                                "account_ids": st.lists(small_ids, max_size=2),
                            }
                        ),
                        max_size=4,
                    )
                )
            ),
            "leads": unique(
                draw(
                    st.lists(
                        st.fixed_dictionaries(
                            {
                                "id": small_ids,
                                "email": texts,
                                "phones": st.lists(st.text(max_size=16), max_size=2),
                            }
                        ),
                        max_size=3,
                    )
                )
            ),
            "opportunities": unique(
                draw(
                    st.lists(
                        st.fixed_dictionaries(
                            {"id": small_ids, "created_at": instants},
                            optional={
                                "updated_at": instants,
                                "account_id": st.one_of(st.none(), small_ids),
                                "owner_id": st.one_of(st.none(), small_ids),
                                "is_closed": st.booleans(),
                                "close_date": st.one_of(st.none(), dates),
                                "contacts": st.lists(
                                    st.fixed_dictionaries({"id": small_ids, "is_primary": st.booleans()}),
                                    max_size=2,
                                ),
                            },
                        ),
                        max_size=4,
                    )
                )
            ),
            "activities": unique(
                draw(
                    st.lists(
                        st.fixed_dictionaries(
                            {
                                "id": small_ids,
                                "type": st.sampled_from(["task", "event"]),
                                "call_id": st.one_of(st.none(), st.text(max_size=5)),
                                "start": st.one_of(st.none(), instants),
                                "attendee_emails": st.lists(
                                    texts.filter(lambda t: t is not None), max_size=2
                                ),
                                "contact_ids": st.lists(small_ids, max_size=2),
                                "account_id": st.one_of(st.none(), small_ids),
                                "opportunity_id": st.one_of(st.none(), small_ids),
                                "written_by_us": st.booleans(),
                            }
                        ),
                        max_size=3,
                    )
                )
            ),
        },
        "previous": draw(
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {
                        "contact_ids": st.lists(small_ids, max_size=2),
                        "account_id": st.one_of(st.none(), small_ids),
                        "opportunity_id": st.one_of(st.none(), small_ids),
                        "locked": st.lists(
                            st.sampled_from(["contacts", "leads", "account", "opportunity"]), max_size=2
                        ),
                    }
                ),
            )
        ),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents())
def test_decide_never_raises_on_a_schema_valid_document(document: dict[str, Any]) -> None:
    try:
        scenario = parse_scenario(document)
    except ScenarioError as exc:
        windows = document["policy"].get("windows")
        assert windows and windows["closed_before_max_days"] < windows["closed_before_days"], str(exc)
        return
    result = decide_scenario(scenario).to_json()
    assert json.loads(json.dumps(result)) == result
