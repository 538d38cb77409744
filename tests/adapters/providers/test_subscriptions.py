"""Graph and Workspace Events subscription clients against the provider emulator, over HTTP."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.errors import FatalError
from adapters.providers.google_meet import subscriptions as workspace
from adapters.providers.teams import subscriptions as graph
from tests.adapters.providers import samples
from tests.emulators.providers.server import ProviderEmulator
from tests.worker.test_subscriptions import TARGET, TOPIC, tenants_document
from worker.config.tenants import parse_tenants
from worker.ingest.apiclient import ApiClient, FetchContext

T0 = samples.NOW
URL = "https://callmatch.example/webhooks/acme/teams"


@pytest.fixture()
def emulator() -> Iterator[ProviderEmulator]:
    emu = ProviderEmulator().start()
    emu.state.google_public_key = samples.public_pem(samples.OTHER_KEY)
    emu.state.google_client_email = "callmatch@acme-project.iam.gserviceaccount.com"
    emu.state.clock = lambda: T0
    yield emu
    emu.stop()


def _ctx(emu: ProviderEmulator, tmp_path: Any, provider: str) -> FetchContext:
    document, environ = tenants_document(emu.base_url, str(tmp_path))
    tenant = parse_tenants(document, "t.yaml", tmp_path, environ).tenants["acme"]
    return FetchContext(tenant=tenant, config=tenant.providers[provider], sleep=lambda _: None)


@pytest.fixture()
def graph_api(emulator: ProviderEmulator, tmp_path: Any) -> ApiClient:
    return graph.client(_ctx(emulator, tmp_path, "teams"))


@pytest.fixture()
def events_api(emulator: ProviderEmulator, tmp_path: Any) -> ApiClient:
    return workspace.client(_ctx(emulator, tmp_path, "google_meet"))


def test_graph_create_asks_for_under_4230_minutes_and_graph_refuses_more(graph_api, emulator):
    made = graph.create(graph_api, URL, samples.TEAMS_STATE, T0)
    assert made.resource == "communications/callRecords"
    assert T0 + dt.timedelta(minutes=4200) < made.expires_at <= T0 + graph.MAX_LIFETIME
    with pytest.raises(FatalError) as refused:
        graph_api.send(
            "PATCH",
            f"/v1.0/subscriptions/{made.id}",
            {"expirationDateTime": graph.iso(T0 + dt.timedelta(minutes=4231))},
        )
    assert refused.value.status == 400 and refused.value.code == "InvalidRequest"


def test_graph_refuses_plain_http_and_a_long_client_state(graph_api):
    with pytest.raises(FatalError, match="HTTP 400"):
        graph.create(graph_api, "http://callmatch.example/webhooks/acme/teams", samples.TEAMS_STATE, T0)
    with pytest.raises(FatalError, match="HTTP 400"):
        graph.create(graph_api, URL, "x" * 129, T0)


def test_graph_needs_call_records_permission_to_subscribe(graph_api, emulator):
    emulator.state.graph_roles = ("User.Read.All",)
    emulator.revoke_tokens()
    with pytest.raises(FatalError) as refused:
        graph.create(graph_api, URL, samples.TEAMS_STATE, T0)
    assert refused.value.status == 403 and refused.value.code == "ExtensionError"


def test_graph_renew_moves_the_expiry_and_delete_is_idempotent(graph_api, emulator):
    made = graph.create(graph_api, URL, samples.TEAMS_STATE, T0)
    later = T0 + dt.timedelta(hours=30)
    emulator.state.clock = lambda: later
    renewed = graph.renew(graph_api, made.id, later)
    assert renewed.id == made.id and renewed.expires_at > made.expires_at
    graph.delete(graph_api, made.id)
    graph.delete(graph_api, made.id)  # already gone: fine
    with pytest.raises(FatalError) as gone:
        graph.renew(graph_api, made.id, later)
    assert gone.value.status == 404


def test_records_between_filters_on_start_and_follows_next_links(graph_api, emulator):
    for index in range(75):  # more than one page of Graph's 60
        started = T0 + dt.timedelta(minutes=index)
        emulator.state.graph_records[f"r{index}"] = {
            "id": f"r{index}",
            "startDateTime": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ids = graph.records_between(graph_api, T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=70))
    assert ids == [f"r{index}" for index in range(5, 70)]
    listed = [c for c in emulator.calls("/v1.0/communications/callRecords") if c.startswith("GET")]
    assert len(listed) == 2


def test_workspace_create_answers_an_operation_with_the_subscription(events_api, emulator):
    made = workspace.create(events_api, TARGET, TOPIC)
    assert made.name.startswith("subscriptions/") and made.state == "ACTIVE"
    assert made.expires_at == T0 + workspace.MAX_LIFETIME and made.target == TARGET
    with pytest.raises(FatalError) as again:  # one subscription per target and event type
        workspace.create(events_api, TARGET, TOPIC)
    assert again.value.status == 409


def test_workspace_refuses_a_longer_ttl_or_a_bad_topic(events_api):
    with pytest.raises(FatalError, match="HTTP 400"):
        events_api.send(
            "POST",
            "/v1/subscriptions",
            {
                "targetResource": TARGET,
                "eventTypes": list(workspace.EVENT_TYPES),
                "notificationEndpoint": {"pubsubTopic": TOPIC},
                "ttl": f"{8 * 86400}s",
            },
        )
    with pytest.raises(FatalError, match="HTTP 400"):
        workspace.create(events_api, TARGET, "meet-events")


def test_workspace_renew_reactivate_get_delete(events_api, emulator):
    made = workspace.create(events_api, TARGET, TOPIC)
    later = T0 + dt.timedelta(days=4)
    emulator.state.clock = lambda: later
    assert workspace.renew(events_api, made.name).expires_at == later + workspace.MAX_LIFETIME
    sub_id = made.name.split("/")[1]
    emulator.state.workspace_subscriptions[sub_id].update(
        state="SUSPENDED", suspensionReason="USER_SCOPE_REVOKED"
    )
    emulator.state.workspace_blocked = "USER_SCOPE_REVOKED"
    with pytest.raises(FatalError) as refused:
        workspace.reactivate(events_api, made.name)
    assert refused.value.status == 400 and refused.value.code == "400"
    suspended = workspace.get(events_api, made.name)
    assert suspended is not None and suspended.state == "SUSPENDED"
    assert suspended.suspension_reason == "USER_SCOPE_REVOKED"
    emulator.state.workspace_blocked = None
    assert workspace.reactivate(events_api, made.name).state == "ACTIVE"
    workspace.delete(events_api, made.name)
    workspace.delete(events_api, made.name)
    assert workspace.get(events_api, made.name) is None


def test_workspace_operation_not_done_is_polled(events_api, emulator):
    made = workspace.create(events_api, TARGET, TOPIC)
    pending = {"name": "operations/op-1", "done": False}
    emulator.fail_next("/v1/subscriptions", 200, body=pending)
    emulator.fail_next(
        "/v1/operations/op-1",
        200,
        body={
            "name": "operations/op-1",
            "done": True,
            "response": json.loads(
                json.dumps(emulator.state.workspace_subscriptions[made.name.split("/")[1]])
            ),
        },
    )
    assert workspace.renew(events_api, made.name).name == made.name
    assert emulator.calls("/v1/operations/op-1") == ["GET /v1/operations/op-1"]


def test_workspace_subscriptions_need_only_the_meet_scope(emulator, tmp_path):
    emulator.state.google_delegated_scopes = frozenset(
        {"https://www.googleapis.com/auth/meetings.space.readonly"}
    )
    api = workspace.client(_ctx(emulator, tmp_path, "google_meet"))
    assert workspace.create(api, TARGET, TOPIC).state == "ACTIVE"


# -- the lists that let a subscription we have no state for be found ------------------------------


def test_workspace_list_needs_an_event_type_in_its_filter(events_api):
    for query in ({}, {"filter": f'target_resource="{TARGET}"'}, {"filter": "state=ACTIVE"}):
        with pytest.raises(FatalError) as refused:
            events_api.get("/v1/subscriptions", query)
        assert refused.value.status == 400


def test_workspace_find_lists_ours_on_the_target_with_its_topic(events_api, emulator):
    made = workspace.create(events_api, TARGET, TOPIC)
    other_target = "//meet.googleapis.com/spaces/other-space"
    workspace.create(events_api, other_target, TOPIC)
    [found] = workspace.find(events_api, TARGET)
    assert found.name == made.name and found.topic == TOPIC and found.target == TARGET
    assert emulator.calls("/v1/subscriptions").count("GET /v1/subscriptions") == 1  # one page
    assert workspace.list_filter(TARGET) == (
        f'event_types:"google.workspace.meet.conference.v2.ended" AND target_resource="{TARGET}"'
    )


def test_workspace_find_follows_next_page_tokens(events_api, emulator):
    made = workspace.create(events_api, TARGET, TOPIC)
    template = emulator.state.workspace_subscriptions[made.name.split("/")[1]]
    for index in range(120):  # seeded as other users would have them: more than one page of 100
        emulator.state.workspace_subscriptions[f"s{index}"] = {**template, "name": f"subscriptions/s{index}"}
    assert len(workspace.find(events_api, TARGET)) == 121
    assert emulator.calls("/v1/subscriptions").count("GET /v1/subscriptions") == 2


def test_a_second_workspace_subscription_on_a_target_is_refused_whatever_its_event_types(events_api):
    events_api.send(
        "POST",
        "/v1/subscriptions",
        {
            "targetResource": TARGET,
            "eventTypes": ["google.workspace.meet.participant.v2.joined"],
            "notificationEndpoint": {"pubsubTopic": TOPIC},
            "ttl": "3600s",
        },
    )
    with pytest.raises(FatalError) as again:
        workspace.create(events_api, TARGET, TOPIC)
    assert again.value.status == 409
    assert workspace.find(events_api, TARGET) == []  # filtered on our event type: not listed


def test_graph_list_is_the_apps_own_paged_and_without_client_state(graph_api, emulator):
    made = graph.create(graph_api, URL, samples.TEAMS_STATE, T0)
    template = emulator.state.graph_subscriptions[made.id]
    for index in range(120):
        url = f"https://other.example/webhooks/t{index}/teams"
        emulator.state.graph_subscriptions[f"g{index}"] = {
            **template,
            "id": f"g{index}",
            "notificationUrl": url,
        }
    emulator.state.graph_subscriptions["foreign"] = {
        **template,
        "id": "foreign",
        "applicationId": "other-app",
    }
    listed = graph.listed(graph_api)
    assert len(listed) == 121 and "foreign" not in {sub.id for sub in listed}
    assert emulator.calls("/v1.0/subscriptions").count("GET /v1.0/subscriptions") == 2
    assert graph.duplicates(graph_api, URL, made.id) == []
    emulator.state.graph_subscriptions["dup"] = {
        **template,
        "id": "dup",
        "resource": "/communications/callRecords",
    }
    assert [sub.id for sub in graph.duplicates(graph_api, URL, made.id)] == ["dup"]
    raw = graph_api.get("/v1.0/subscriptions")
    assert {row["clientState"] for row in raw["value"]} == {None}
    with pytest.raises(FatalError) as refused:
        graph_api.get("/v1.0/subscriptions", {"$select": "id"})
    assert refused.value.status == 400
