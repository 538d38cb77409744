"""Properties of rules v1.1 that must hold for every input, with the new policy keys randomly on (hypothesis)."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scenario_gen import DOMAINS, PHONES, generate_scenario
from worker.config.scenario import parse_scenario
from worker.engine.rules import apply_rules
from worker.pipeline.association import decide_scenario

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(min_value=0, max_value=2**32 - 1)

RULE_IDS = re.compile(r"^(M([1-9]|1[01])|A[1-6]|C[1-4]|S1\.[1-5]|S[1-6]|V[1-3]|R[1-6]|X1|U1\.[12]|L1)$")
TYPES = [None, None, "Partner", "customer", " PARTNER "]


def _instant(rng: random.Random) -> str | None:
    if rng.random() < 0.2:
        return None
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=rng.choice([0, 0, 10, 40]))
    return moment.isoformat().replace("+00:00", "Z")


def _website_forms(domain: str) -> list[str]:
    """How CRMs store a domain (M10 `clean` reads them all as the domain; `exact` reads some differently)."""
    return [
        f"https://www.{domain}/about",
        domain.upper(),
        f"{domain}:443",
        f"www.{domain}.",
        f"http://{domain}",
    ]


def generate_v1_1(rng: random.Random) -> dict[str, Any]:
    """A generated v1 scenario with the v1.1 keys and fields set at random (defaults often)."""
    document = generate_scenario(rng)
    crm = document["crm"]
    contact_ids = [c["id"] for c in crm["contacts"]]
    account_ids = [a["id"] for a in crm["accounts"]]
    opportunity_ids = [o["id"] for o in crm["opportunities"]]
    region = document["policy"]["default_region"]

    def maybe(value: Any, chance: float = 0.5) -> Any:
        return value if rng.random() < chance else None

    extra = {
        "internal_domains": maybe(rng.sample(DOMAINS, 1), 0.2),
        "internal_phones": maybe([rng.choice(PHONES[region]), "garbage"], 0.2),
        "shared_phone_max_accounts": maybe(rng.choice([0, 1, 2])),
        "skip_converted_leads": maybe(rng.random() < 0.7),
        "prefer_primary": maybe(rng.random() < 0.7),
        "refresh_drops_stale": maybe(rng.random() < 0.7),
        "domain_match": maybe(rng.choice(["clean", "exact", "registrable"])),
        "excluded_account_types": maybe(["partner"], 0.4),
        "on_ambiguity": maybe(rng.choice(["pick", "abstain", "abstain"]), 0.7),
        "use_preferences": maybe(rng.random() < 0.8),
    }
    document["policy"].update({k: v for k, v in extra.items() if v is not None})
    for record in crm["accounts"]:
        record["type"] = rng.choice(TYPES)
        record["domains"] = [
            rng.choice(_website_forms(d)) if rng.random() < 0.3 else d for d in record["domains"]
        ]
    if crm["accounts"] and rng.random() < 0.2:  # M10 registrable: a subdomain of a real public suffix
        rng.choice(crm["accounts"])["domains"].append("acme.co.uk")
        document["call"]["participants"].append({"email": "p9@eu.acme.co.uk", "phone": None})
    for record in crm["leads"]:
        if rng.random() < 0.4:
            record["is_converted"] = True
            record["converted_contact_id"] = rng.choice([*contact_ids, "C99", None])
    for record in crm["contacts"]:
        if record["phones"] and rng.random() < 0.3:  # a later phone, for M11
            record["phones"].append(rng.choice(PHONES[region]))
    crm["preferences"] = [
        {
            "contact_id": rng.choice(contact_ids),
            "account_id": rng.choice([*account_ids, "A9"]) if rng.random() < 0.5 else None,
            "opportunity_id": rng.choice([*opportunity_ids, "O99"])
            if opportunity_ids and rng.random() < 0.6
            else None,
            "set_at": _instant(rng),
        }
        for _ in range(rng.choice([0, 0, 1, 2, 3]) if contact_ids else 0)
    ]
    if rng.random() < 0.4:
        previous = document.setdefault("previous", {"contact_ids": [], "locked": []})
        pool = [("contact", i) for i in contact_ids] + [("account", i) for i in account_ids]
        pool += [("opportunity", i) for i in opportunity_ids]
        previous["removed"] = [
            {"type": t, "id": i} for t, i in rng.sample(pool, min(len(pool), rng.randint(0, 3)))
        ]
        if rng.random() < 0.3:
            previous["contact_ids"] = [*previous.get("contact_ids", []), "C77"]  # stale
    return document


def decided(document: dict[str, Any]) -> dict[str, Any]:
    return decide_scenario(parse_scenario(document)).to_json()


def shuffled(document: dict[str, Any], rng: random.Random, participants: bool) -> dict[str, Any]:
    """Every list whose order means nothing, shuffled. Not contacts' `phones`: M11 reads the first one."""
    copy = json.loads(json.dumps(document))
    crm = copy["crm"]
    for name in ("users", "accounts", "contacts", "leads", "opportunities", "activities", "preferences"):
        rng.shuffle(crm[name])
    for record in crm["contacts"]:
        rng.shuffle(record["account_ids"])
        rng.shuffle(record["emails"])
    for record in crm["opportunities"]:
        rng.shuffle(record["contacts"])
    for record in crm["activities"]:
        rng.shuffle(record["contact_ids"])
        rng.shuffle(record["attendee_emails"])
    for record in crm["accounts"]:
        rng.shuffle(record["domains"])
    for key in ("internal_domains", "internal_phones", "excluded_account_types", "free_mail_domains"):
        if key in copy["policy"]:
            rng.shuffle(copy["policy"][key])
    if "previous" in copy:
        rng.shuffle(copy["previous"].get("removed", []))
        rng.shuffle(copy["previous"]["locked"])
    if participants:
        rng.shuffle(copy["call"]["participants"])
    return copy


@SETTINGS
@given(seed=seeds, order=seeds)
def test_shuffling_crm_lists_changes_nothing_not_even_the_trace(seed: int, order: int) -> None:
    document = generate_v1_1(random.Random(seed))
    assert decided(shuffled(document, random.Random(order), participants=False)) == decided(document)


@SETTINGS
@given(seed=seeds, order=seeds)
def test_shuffling_participants_keeps_the_association(seed: int, order: int) -> None:
    document = generate_v1_1(random.Random(seed))
    a, b = decided(document), decided(shuffled(document, random.Random(order), participants=True))
    for key in ("case", "account_id", "opportunity_id", "candidates"):
        assert a[key] == b[key], key
    assert sorted(a["contact_ids"]) == sorted(b["contact_ids"])
    assert sorted(a["lead_ids"]) == sorted(b["lead_ids"])


@SETTINGS
@given(seed=seeds)
def test_candidates_only_when_abstaining_and_then_the_case_is_ambiguous(seed: int) -> None:
    document = generate_v1_1(random.Random(seed))
    result = decided(document)
    abstain = document["policy"].get("on_ambiguity") == "abstain"
    assert (result["case"] == "ambiguous") is bool(result["candidates"])
    if result["candidates"]:
        assert abstain
        kinds = [c["type"] for c in result["candidates"]]
        assert kinds == sorted(kinds, key=lambda kind: kind != "opportunity")  # opportunities, then accounts
        accounts = [c["id"] for c in result["candidates"] if c["type"] == "account"]
        assert accounts == sorted(accounts) and len(accounts) != 1
        assert all(c["reason"] for c in result["candidates"])
        if "opportunity" in kinds:
            assert result["opportunity_id"] is None
        if "account" in kinds:
            assert result["account_id"] is None


@SETTINGS
@given(seed=seeds)
def test_a_preference_never_beats_a_lock(seed: int) -> None:
    rng = random.Random(seed)
    document = generate_v1_1(rng)
    crm = document["crm"]
    if not crm["contacts"]:
        return
    locked = rng.sample(["account", "opportunity"], rng.choice([1, 2]))
    previous = document.setdefault("previous", {"contact_ids": []})
    previous["locked"] = locked
    previous["account_id"] = rng.choice([None, *[a["id"] for a in crm["accounts"]]])
    previous["opportunity_id"] = rng.choice([None, *[o["id"] for o in crm["opportunities"]]])
    document["policy"]["use_preferences"] = True
    crm["preferences"] = [  # every contact prefers every other record, lately
        {
            "contact_id": c["id"],
            "account_id": a["id"],
            "opportunity_id": o["id"],
            "set_at": "2026-06-01T00:00:00Z",
        }
        for c in crm["contacts"]
        for a in crm["accounts"]
        for o in crm["opportunities"]
        if a["id"] != previous["account_id"] and o["id"] != previous["opportunity_id"]
    ]
    removed = {(r["type"], r["id"]) for r in previous.get("removed", [])}
    result = decided(document)
    if "opportunity" in locked:
        kept = (
            previous["opportunity_id"] if ("opportunity", previous["opportunity_id"]) not in removed else None
        )
        assert result["opportunity_id"] == kept
        assert not [c for c in result["candidates"] if c["type"] == "opportunity"]
    if "account" in locked:
        kept = previous["account_id"] if ("account", previous["account_id"]) not in removed else None
        assert result["account_id"] == kept
        assert not [c for c in result["candidates"] if c["type"] == "account"]


@SETTINGS
@given(seed=seeds)
def test_a_removed_record_never_appears_in_the_result(seed: int) -> None:
    rng = random.Random(seed)
    document = generate_v1_1(rng)
    crm = document["crm"]
    pool = [("contact", c["id"]) for c in crm["contacts"]] + [("account", a["id"]) for a in crm["accounts"]]
    pool += [("opportunity", o["id"]) for o in crm["opportunities"]]
    previous = document.setdefault("previous", {"contact_ids": [], "locked": []})
    previous["removed"] = [
        {"type": t, "id": i} for t, i in rng.sample(pool, min(len(pool), rng.randint(1, 4)))
    ]
    removed = {(r["type"], r["id"]) for r in previous["removed"]}
    result = decided(document)
    linked = {("contact", cid) for cid in result["contact_ids"]}
    linked |= {("account", result["account_id"]), ("opportunity", result["opportunity_id"])}
    linked |= {(c["type"], c["id"]) for c in result["candidates"]}
    assert not linked & removed


@SETTINGS
@given(seed=seeds)
def test_reads_through_the_port_decide_like_the_whole_crm(seed: int) -> None:
    scenario = parse_scenario(generate_v1_1(random.Random(seed)))
    whole = apply_rules(scenario.call, scenario.policy, scenario.crm, scenario.previous)
    assert decide_scenario(scenario) == whole


@SETTINGS
@given(seed=seeds)
def test_every_decision_has_a_trace_citing_rule_ids(seed: int) -> None:
    result = decided(generate_v1_1(random.Random(seed)))
    assert result["trace"]
    for entry in result["trace"]:
        assert RULE_IDS.match(entry["rule"]), entry
        assert entry["message"]
