"""Teams through the provider emulator: people from participants_v2 first, `/users/{id}` best effort.

participants_v2 carries `userPrincipalName`: the client reads emails from it and
asks `GET /users/{id}` only for a user the record names by id alone. A 403 there
(User.Read.All not granted) or a 404 (a deleted user) is noted on the event and
the person kept by name; the call record itself stays the call (unreadable: fatal).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from adapters.crm.readiness import Status
from adapters.errors import FatalError
from adapters.providers.teams import client as teams
from tests.adapters.providers import samples_teams as st
from tests.adapters.providers.api_tenant import api_tenant, provider_emulator
from tests.emulators.providers.server import ProviderEmulator
from worker.config.tenants import Tenant
from worker.core.model import CallKind, Direction, Person
from worker.ingest.apiclient import FetchContext
from worker.ingest.enrich import complete_event
from worker.ingest.events import CallEvent

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


@pytest.fixture()
def emulator() -> Iterator[ProviderEmulator]:
    with provider_emulator() as emu:
        yield emu


@pytest.fixture()
def tenant(emulator: ProviderEmulator, tmp_path: Path) -> Tenant:
    """`acme` whose five providers read the emulator (Teams in Entra tenant OUR_TENANT; Meet through a delegated admin)."""
    return api_tenant(emulator, tmp_path)


def _event(record_id: str = st.RECORD_ID) -> CallEvent:
    return CallEvent(
        tenant="acme",
        provider="teams",
        call_id=f"teams:{record_id}",
        event_id=f"callRecords/{record_id}",
        kind=CallKind.MEETING,
        received_at=T0,
        source_ref=record_id,
    )


def _seed(emu: ProviderEmulator, rows: list[dict[str, Any]], record: dict[str, Any] | None = None) -> None:
    body = record or st.record()
    emu.state.graph_records[body["id"]] = body
    emu.state.graph_participants[body["id"]] = rows


def test_upns_in_participants_v2_name_everyone_without_a_users_lookup(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(
        emulator,
        [
            st.rep(),
            st.colleague(),
            st.partner(),
            st.b2b_guest(),
            st.anonymous_guest(),
            st.phone("+442079460000"),
            st.acs_user(),
            st.bot(),
        ],
    )
    done = complete_event(_event(), tenant, redis_client)
    assert done.complete and done.kind == CallKind.MEETING and done.direction is None
    assert done.started_at == dt.datetime(2026, 3, 10, 9, 0, 0, 123456, tzinfo=dt.UTC)
    # organizer_v2 names the organizer by id only: its UPN comes from the participants' rows.
    assert done.organizer == Person(email="rep.one@ourco.com", name="Rep One")
    assert done.internal == (Person(email="colleague@ourco.com", name="Colleague"),)
    assert done.participants == (
        Person(email="partner.person@partner.test", name="Partner Person"),
        Person(email="jane.doe@acme.com", name="Jane Doe (Guest)"),
        Person(name="Visitor From Lobby"),
        Person(phone="+442079460000"),
        Person(name="Web Widget Caller"),
    )
    assert emulator.calls("/v1.0/users/") == []
    assert done.notes == ()
    # 8 rows, two a page: the client followed every @odata.nextLink.
    assert len(emulator.calls(f"/v1.0/communications/callRecords/{st.RECORD_ID}/participants_v2")) == 4


def test_a_user_named_by_id_only_is_looked_up_once(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator, [st.rep(), st.member_without_upn(), st.member_without_upn(), st.partner()])
    emulator.state.graph_users[st.NO_UPN_ID] = {
        "mail": "Quiet.Member@OurCo.com",
        "userPrincipalName": "qm@ourco.com",
    }
    done = complete_event(_event(), tenant, redis_client)
    assert done.internal == (Person(email="quiet.member@ourco.com", name="Quiet Member"),)
    assert emulator.calls("/v1.0/users/") == [f"GET /v1.0/users/{st.NO_UPN_ID}"]
    assert done.notes == ()


def test_without_user_read_all_a_403_is_noted_and_the_call_kept(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    """The issue: /users answered 403 and the whole fetch was fatal. Now: noted, asked once, kept."""
    emulator.state.graph_roles = ("CallRecords.Read.All",)
    no_upn_rep = st.participant("user", st.user(st.REP_ID, "Rep One"))
    _seed(emulator, [no_upn_rep, st.member_without_upn(), st.partner(), st.phone()])
    done = complete_event(_event(), tenant, redis_client)
    assert done.complete
    assert done.notes == (teams.USERS_DENIED_NOTE,)
    assert done.notes[0].startswith("teams: GET /users/{id} answered 403")
    # Asked once (for the organizer), then not again for this call.
    assert emulator.calls("/v1.0/users/") == [f"GET /v1.0/users/{st.REP_ID}"]
    assert done.organizer == Person(name="Rep One")
    assert done.internal == (Person(name="Quiet Member"),)
    assert done.participants == (
        Person(email="partner.person@partner.test", name="Partner Person"),
        Person(phone="+33612345678"),
    )
    assert "@" not in " ".join(done.notes)
    # The note travels with the event (the worker's trace starts with it, M3).
    assert CallEvent.from_json(json.loads(json.dumps(done.to_json()))).notes == done.notes


def test_a_deleted_user_404_is_noted_and_kept_by_name(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator, [st.rep(), st.member_without_upn()])
    done = complete_event(_event(), tenant, redis_client)
    assert done.notes == (teams.USER_GONE_NOTE,)
    assert done.internal == (Person(name="Quiet Member"),)


def test_a_5xx_on_users_is_still_retried_not_swallowed(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator, [st.rep(), st.member_without_upn()])
    emulator.state.graph_users[st.NO_UPN_ID] = {"mail": "qm@ourco.com"}
    emulator.fail_next("/v1.0/users/", 503)
    done = complete_event(_event(), tenant, redis_client, sleep=lambda _: None)
    assert done.internal == (Person(email="qm@ourco.com", name="Quiet Member"),)
    assert len(emulator.calls("/v1.0/users/")) == 2 and done.notes == ()


def test_an_unreadable_call_record_stays_fatal(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    with pytest.raises(FatalError) as refused:
        complete_event(_event("gone-record"), tenant, redis_client)
    assert refused.value.status == 404


def test_a_pstn_caller_who_rang_us_is_an_inbound_call_taken_by_our_user(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator, [st.phone("+33612345678", "+33 6 12 34 56 78"), st.rep()], st.pstn_inbound_record("p1"))
    done = complete_event(_event("p1"), tenant, redis_client)
    assert done.kind == CallKind.CALL and done.direction == Direction.INBOUND
    assert done.organizer == Person(email="rep.one@ourco.com", name="Rep One")
    assert done.participants == (Person(phone="+33612345678", name="+33 6 12 34 56 78"),)
    assert done.internal == ()


def test_our_user_calling_a_number_is_outbound(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator, [st.rep(), st.phone("+14155550100")], st.pstn_outbound_record("p2"))
    done = complete_event(_event("p2"), tenant, redis_client)
    assert done.kind == CallKind.CALL and done.direction == Direction.OUTBOUND
    assert done.organizer.email == "rep.one@ourco.com"
    assert done.participants == (Person(phone="+14155550100"),)


def test_a_teams_to_teams_call_has_no_direction(
    emulator: ProviderEmulator, tenant: Tenant, redis_client: redis.Redis
) -> None:
    _seed(emulator, [st.rep(), st.partner()], st.record("p3", "peerToPeer"))
    done = complete_event(_event("p3"), tenant, redis_client)
    assert done.kind == CallKind.CALL and done.direction is None
    assert done.participants == (Person(email="partner.person@partner.test", name="Partner Person"),)


@pytest.mark.parametrize(
    "upn, expected",
    [
        ("Jane.Doe@Acme.com", ("jane.doe@acme.com", False)),
        ("jane.doe_acme.com#EXT#@ourco.onmicrosoft.com", ("jane.doe@acme.com", True)),
        ("first_last_acme.co.uk#EXT#@ourco.onmicrosoft.com", ("first_last@acme.co.uk", True)),
        ("nodomain#EXT#@ourco.onmicrosoft.com", (None, True)),
        ("not-an-address", (None, False)),
        (None, (None, False)),
    ],
)
def test_upn_email(upn: str | None, expected: tuple[str | None, bool]) -> None:
    assert teams.upn_email(upn) == expected


def _ctx(tenant: Tenant) -> FetchContext:
    return FetchContext(tenant=tenant, config=tenant.providers["teams"], sleep=lambda _: None)


def test_doctor_warns_when_only_call_records_are_granted(emulator: ProviderEmulator, tenant: Tenant) -> None:
    emulator.state.graph_roles = ("CallRecords.Read.All",)
    checks = {c.name: c for c in teams.check(_ctx(tenant))}
    assert checks["teams.api"].status is Status.OK
    permissions = checks["teams.permissions"]
    assert permissions.status is Status.WARN
    assert "User.ReadBasic.All or User.Read.All" in permissions.detail
    assert "participants_v2 only" in permissions.detail
    assert permissions.fix is not None and "User.ReadBasic.All" in permissions.fix


def test_doctor_still_fails_without_call_records(emulator: ProviderEmulator, tenant: Tenant) -> None:
    emulator.state.graph_roles = ("User.Read.All",)
    checks = {c.name: c for c in teams.check(_ctx(tenant))}
    assert checks["teams.permissions"].status is Status.FAIL
    assert checks["teams.api"].status is Status.FAIL
