"""Real orgs: a plain one (no optional feature, no custom field), `setup` turning it into a working one,
`doctor` saying what is missing, and fields that change while the worker runs."""

from __future__ import annotations

import dataclasses

import pytest

from adapters.crm.readiness import MissingRequirementError, Outcome, Status, can_run
from adapters.crm.salesforce.doctor import run_doctor
from adapters.crm.salesforce.setup import run_setup
from adapters.errors import FatalError
from tests.adapters.crm.salesforce.conftest import SalesforceEnv
from tests.adapters.crm.salesforce.test_writeback import CALL, CRM, MEETING, decision
from tests.emulators.salesforce.profile import CALL_ID_FIELD, OrgProfile
from worker.core.model import Case, Decision, Policy
from worker.core.port import Lookup
from worker.pipeline.association import associate

FIELD = "Callmatch_Call_Id__c"


def _setup(env: SalesforceEnv, *, dry_run: bool = False) -> dict[str, tuple[Outcome, str]]:
    steps = run_setup(env.client(), env.settings, env.capabilities, dry_run=dry_run)
    return {s.name: (s.outcome, s.detail) for s in steps}


def _doctor(env: SalesforceEnv) -> dict[str, tuple[Status, str, str | None]]:
    assert env.capabilities is not None
    return {
        c.name: (c.status, c.detail, c.fix) for c in run_doctor(env.client(), env.settings, env.capabilities)
    }


def _tasks(env: SalesforceEnv) -> list[dict[str, object]]:
    return [r for r in env.emulator.org.records["Task"].values() if not r["IsDeleted"]]


def test_a_plain_org_decides_but_refuses_the_write_naming_the_field_and_the_fix(salesforce) -> None:
    env = salesforce(CRM, profile=OrgProfile.plain())
    port = env.port()
    chosen = associate(CALL, Policy(), port)
    assert chosen.case is Case.CONTACTS and chosen.contact_ids == ("C1", "C2")
    reads = dict(env.emulator.stats.by_path)
    with pytest.raises(MissingRequirementError) as caught:
        port.upsert_activity(CALL, chosen)
    assert caught.value.what == f"Task.{FIELD}"
    assert "callmatch setup --tenant tenant-a" in str(caught.value)
    assert caught.value.code == "MISSING_REQUIREMENT"
    # refused before any request: never a half-written activity
    assert env.emulator.stats.by_path == reads
    assert _tasks(env) == []


def test_doctor_on_a_plain_org_fails_with_clear_lines(salesforce) -> None:
    env = salesforce(CRM, profile=OrgProfile.plain())
    checks = _doctor(env)
    assert not can_run(run_doctor(env.client(), env.settings, env.capabilities))
    status, detail, fix = checks[f"field Task.{FIELD}"]
    assert status is Status.FAIL and "absent from the org" in detail
    assert fix is not None and "callmatch setup --tenant tenant-a" in fix
    assert checks[f"field Event.{FIELD}"][0] is Status.FAIL
    assert checks[f"external id Activity.{FIELD}"][0] is Status.FAIL
    assert checks["credentials"][0] is Status.OK
    assert checks["object Task"] == (Status.OK, "read, create, edit", None)
    for feature in ("feature Shared Activities", "feature Contacts to Multiple Accounts"):
        status, detail, fix = checks[feature]
        assert status is Status.WARN and detail.startswith("off:") and fix
    status, detail, _ = checks["field Account.Domains__c"]
    assert status is Status.WARN and "Website alone" in detail
    assert checks["daily API budget"][0] is Status.OK
    assert all(fix for status, _, fix in checks.values() if status is not Status.OK)


def test_setup_turns_a_plain_org_into_a_working_one_and_twice_changes_nothing(salesforce) -> None:
    env = salesforce(CRM, profile=OrgProfile.plain())
    first = _setup(env)
    assert [outcome for outcome, _ in first.values()] == [Outcome.CREATED] * 5
    assert first[f"Activity.{FIELD}"][1] == "Text(255), External ID, Unique (case-insensitive)"
    again = _setup(env)
    assert [outcome for outcome, _ in again.values()] == [Outcome.PRESENT] * 5
    assert set(again) == set(first)
    assert can_run(run_doctor(env.client(), env.settings, env.capabilities))
    checks = _doctor(env)
    assert checks[f"field Task.{FIELD}"][0] is Status.OK
    assert checks[f"external id Activity.{FIELD}"] == (Status.OK, "External ID, Unique", None)

    # W1 on the org setup made: written twice (two workers' ports), one Task
    chosen = associate(CALL, Policy(), env.port())
    first_write = env.port().upsert_activity(CALL, chosen)
    second_write = env.port().upsert_activity(CALL, chosen)
    assert first_write.created and not second_write.created and first_write.id == second_write.id
    assert [t["Id"] for t in env.emulator.org.find_by("Task", FIELD, CALL.id)] == [first_write.id]
    assert env.emulator.org.records["Task"][first_write.id]["WhoId"] == "C1"


def test_dry_run_changes_nothing_and_says_what_an_admin_does(salesforce) -> None:
    env = salesforce(CRM, profile=OrgProfile.plain())
    before = env.emulator.org.profile
    steps = _setup(env, dry_run=True)
    assert {outcome for outcome, _ in steps.values()} == {Outcome.MANUAL}
    assert steps[f"Activity.{FIELD}"][1].startswith(
        "Setup > Object Manager > Activity > Fields & Relationships > New"
    )
    assert "'Unique'" in steps[f"Activity.{FIELD}"][1] and "'External ID'" in steps[f"Activity.{FIELD}"][1]
    assert "Permission Sets > New" in steps["permission set Callmatch"][1]
    assert "Manage Assignments" in steps["assignment Callmatch"][1]
    assert env.emulator.org.profile == before
    assert not env.emulator.org.profile.has_field("Task", FIELD)
    assert not env.emulator.org.records.get("PermissionSet", {}) or all(
        r["Name"] != "Callmatch" for r in env.emulator.org.records["PermissionSet"].values()
    )
    with pytest.raises(MissingRequirementError):
        env.port().upsert_activity(CALL, decision(contact_ids=("C1",)))


def test_a_dry_run_after_setup_finds_everything_present(salesforce) -> None:
    env = salesforce(CRM, profile=OrgProfile.plain())
    _setup(env)
    steps = _setup(env, dry_run=True)
    assert {outcome for outcome, _ in steps.values()} == {Outcome.PRESENT}


def test_setup_without_customize_application_gives_the_admin_steps(salesforce) -> None:
    env = salesforce(CRM, profile=dataclasses.replace(OrgProfile.plain(), customize_application=False))
    steps = _setup(env)
    outcome, detail = steps[f"Activity.{FIELD}"]
    assert outcome is Outcome.MANUAL
    assert detail.startswith("Setup > Object Manager > Activity") and "these credentials may not" in detail
    assert Outcome.FAILED not in {outcome for outcome, _ in steps.values()}
    assert not env.emulator.org.profile.has_field("Task", FIELD)


def test_a_field_hidden_by_field_level_security_is_named_and_setup_grants_it(salesforce) -> None:
    hidden = OrgProfile(custom_fields=frozenset({CALL_ID_FIELD}), hidden_fields=frozenset({CALL_ID_FIELD}))
    env = salesforce(CRM, profile=hidden)
    status, detail, _ = _doctor(env)[f"field Task.{FIELD}"]
    assert status is Status.FAIL and "field-level security hides it" in detail
    with pytest.raises(MissingRequirementError, match=f"Task.{FIELD}"):
        env.port().upsert_activity(CALL, decision(contact_ids=("C1",)))
    steps = _setup(env)
    assert steps[f"Activity.{FIELD}"][0] is Outcome.PRESENT
    assert steps[f"field permission Task.{FIELD}"][0] is Outcome.CREATED
    written = env.port().upsert_activity(CALL, decision(contact_ids=("C1",)))
    assert written.created and _doctor(env)[f"field Task.{FIELD}"][0] is Status.OK


def test_an_external_id_that_is_not_unique_is_fatal_with_the_fix(salesforce) -> None:
    profile = dataclasses.replace(OrgProfile.after_setup(), external_id_unique=False)
    env = salesforce(CRM, profile=profile)
    for record_id in ("00T000000000901AAA", "00T000000000902AAA"):
        env.emulator.org.insert("Task", {"Id": record_id, "Subject": "dup", FIELD: CALL.id})
    with pytest.raises(FatalError) as caught:
        env.port().upsert_activity(CALL, decision(contact_ids=("C1",)))
    assert caught.value.status == 300 and caught.value.code == "MULTIPLE_RECORDS"
    message = str(caught.value)
    assert "00T000000000901AAA" in message and "00T000000000902AAA" in message
    assert "callmatch setup --tenant tenant-a" in message and "not Unique" in message
    assert len(env.emulator.org.find_by("Task", FIELD, CALL.id)) == 2
    status, detail, fix = _doctor(env)[f"external id Activity.{FIELD}"]
    assert status is Status.FAIL and "not Unique" in detail and fix


def test_object_permissions_the_user_lacks_refuse_the_write_before_it(salesforce) -> None:
    profile = dataclasses.replace(
        OrgProfile.after_setup(), denied=frozenset({"Event.create", "Opportunity.read"})
    )
    env = salesforce(CRM, profile=profile)
    chosen = Decision(call_id=MEETING.id, case=Case.CONTACTS, contact_ids=("C1",))
    with pytest.raises(MissingRequirementError, match="create access to Event"):
        env.port().upsert_activity(MEETING, chosen)
    with pytest.raises(MissingRequirementError, match="read access to Opportunity"):
        env.port().lookup(Lookup(account_ids=frozenset({"A1"})))
    checks = _doctor(env)
    assert checks["object Event"][0] is Status.FAIL and "create" in checks["object Event"][1]
    assert checks["object Opportunity"][0] is Status.FAIL
    assert checks["object Task"][0] is Status.OK


def test_a_field_deleted_at_run_time_refreshes_the_capabilities_and_the_read_succeeds(salesforce) -> None:
    env = salesforce(CRM, profile=OrgProfile.full())
    full = env.emulator.org.profile
    env.emulator.org.set_profile(
        dataclasses.replace(full, custom_fields=full.custom_fields - {"Contact.Secondary_Email__c"})
    )
    port = env.port()
    found = port.lookup(Lookup(emails=frozenset({"jane@acme.example"})))
    assert [c.id for c in found.contacts] == ["C1"]
    assert port.stats.by_method["capabilities"] == 1  # described again once, then the round again
    assert env.capabilities is not None and env.capabilities.discoveries == 2
    assert not env.capabilities.get().has_field("Contact", "Secondary_Email__c")
    assert port.stats.requests == env.emulator.stats.api_calls


def test_the_external_id_deleted_at_run_time_makes_the_write_a_clear_dead_letter(salesforce) -> None:
    env = salesforce(CRM, profile=OrgProfile.after_setup())
    env.emulator.org.set_profile(OrgProfile.plain())
    port = env.port()
    with pytest.raises(MissingRequirementError, match=f"Task.{FIELD}"):
        port.upsert_activity(CALL, decision(contact_ids=("C1", "C2")))
    assert _tasks(env) == []
    assert port.stats.by_method["capabilities"] == 1


def test_a_field_refused_again_after_a_fresh_describe_is_retried_later(salesforce, monkeypatch) -> None:
    """An org whose metadata is changing: SOQL refuses a field its describe still shows.

    The stand-in is the emulator's SOQL (the vendor's side), answering INVALID_FIELD for
    a field that stays in the describe: once refreshed and refused again, the call is a
    RetryableError and the cached capabilities are dropped, so the next attempt describes again.
    """
    from adapters.errors import RetryableError
    from tests.emulators.salesforce.org import OrgError

    env = salesforce(CRM, profile=OrgProfile.full())
    org = env.emulator.org

    def refuse(text: str, include_deleted: bool = False) -> list[dict[str, object]]:
        raise OrgError(400, "INVALID_FIELD", "No such column 'Secondary_Email__c' on entity 'Contact'.")

    monkeypatch.setattr(org, "query", refuse)
    port = env.port()
    with pytest.raises(RetryableError) as caught:
        port.lookup(Lookup(emails=frozenset({"jane@acme.example"})))
    assert caught.value.code == "INVALID_FIELD"
    assert env.capabilities is not None and env.capabilities.discoveries == 2
    assert env.capabilities.cache.get() is None
    assert port.stats.by_method["capabilities"] == 1
