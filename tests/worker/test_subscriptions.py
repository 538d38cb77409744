"""Provider subscriptions end to end: the service, the real receiver and the provider emulator over HTTP.

Time is an injected clock shared by the service and the emulator (never a sleep):
subscribe, beat's renewal pass, and each lifecycle notification (Graph
reauthorizationRequired / subscriptionRemoved / missed; Workspace expirationReminder /
suspended / expired) posted to the receiver, queued, then acted on by the task's function.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from tests.adapters.providers import samples
from tests.emulators.providers.server import ProviderEmulator, graph_lifecycle, workspace_lifecycle
from worker.config.tenants import Tenants, parse_tenants
from worker.ingest.app import create_app
from worker.ingest.enqueue import CeleryEnqueuer
from worker.ingest.subscriptions import KEY, LIFECYCLE_TASK, SubscriptionError, Subscriptions, digest
from worker.ops.cli import main
from worker.pipeline.celery_app import PROCESS_CALL_TASK, QUEUE, create_celery

T0 = samples.NOW
AZURE_TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
SA_EMAIL = "callmatch@acme-project.iam.gserviceaccount.com"
PUBLIC = "https://callmatch.example"
TOPIC = "projects/acme-project/topics/meet-events"
TARGET = "//cloudidentity.googleapis.com/users/110000000000000000001"


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture()
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture()
def emulator(clock: Clock) -> Iterator[ProviderEmulator]:
    emu = ProviderEmulator().start()
    emu.state.google_public_key = samples.public_pem(samples.OTHER_KEY)
    emu.state.google_client_email = SA_EMAIL
    emu.state.clock = clock
    yield emu
    emu.stop()


def tenants_document(base: str, tmp_dir: str) -> tuple[dict[str, Any], dict[str, str]]:
    document = samples.tenant_document(tmp_dir)
    providers = document["tenants"]["acme"]["providers"]
    environ = dict(samples.ENVIRON)
    sa_key = {
        "type": "service_account",
        "client_email": SA_EMAIL,
        "private_key": samples.private_pem(samples.OTHER_KEY),
        "token_uri": f"{base}/token",
    }
    environ.update(
        {
            "C_GOOGLE_KEY": json.dumps(sa_key),
            "C_GRAPH_CLIENT": "graph-client",
            "C_GRAPH_SECRET": "graph-secret",
        }
    )
    providers["google_meet"].update(
        api_base_url=base,
        delegated_user="admin@ourco.com",
        pubsub_topic=TOPIC,
        events_target=TARGET,
        credentials={"service_account_key_env": "C_GOOGLE_KEY"},
    )
    providers["teams"].update(
        api_base_url=base,
        azure_tenant_id=AZURE_TENANT,
        token_url=f"{base}/{{azure_tenant_id}}/oauth2/v2.0/token",
        public_url=PUBLIC,
        credentials={"client_id_env": "C_GRAPH_CLIENT", "client_secret_env": "C_GRAPH_SECRET"},
    )
    return document, environ


@pytest.fixture()
def tenants(emulator: ProviderEmulator, tmp_path: Any) -> Tenants:
    document, environ = tenants_document(emulator.base_url, str(tmp_path))
    return parse_tenants(document, "t.yaml", tmp_path, environ)


@pytest.fixture()
def service(tenants: Tenants, redis_client: Any, redis_url: str, clock: Clock) -> Subscriptions:
    enqueuer = CeleryEnqueuer(create_celery(redis_url))
    return Subscriptions(tenants, redis_client, enqueuer, clock, sleep=lambda _: None)


@pytest.fixture()
def receiver(
    tenants: Tenants, redis_url: str, emulator: ProviderEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The real receiver; lifecycle notifications go to the test Redis like every Celery message."""
    monkeypatch.setenv("CALLMATCH_REDIS_URL", redis_url)
    app = create_app(
        tenants, CeleryEnqueuer(create_celery(redis_url)), redis.Redis.from_url(redis_url), clock=lambda: T0
    )
    with TestClient(app, raise_server_exceptions=False) as client:

        def validate(url: str, token: str) -> bool:
            """Graph's handshake against the receiver: the token must come back as text/plain."""
            path = url.removeprefix(PUBLIC)
            answer = client.post(path, params={"validationToken": token})
            return answer.status_code == 200 and answer.text == token

        emulator.state.graph_validate = validate
        yield client


def messages(client: Any) -> list[tuple[str, Any]]:
    """(task name, first argument) of every message waiting on the callmatch queue, oldest first."""
    out = []
    for raw in reversed(client.lrange(QUEUE, 0, -1)):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], args[0]))
    return out


def lifecycle_notices(client: Any) -> list[dict[str, Any]]:
    return [arg for task, arg in messages(client) if task == LIFECYCLE_TASK]


def processed_calls(client: Any) -> list[str]:
    return [arg["call_id"] for task, arg in messages(client) if task == PROCESS_CALL_TASK]


def push(message: dict[str, Any]) -> samples.Post:
    return samples.google({"message": message, "subscription": "projects/acme-project/subscriptions/push"})


# -- subscribe -------------------------------------------------------------------------------


def test_subscribe_creates_both_and_stores_ids_and_expiry(service, emulator, receiver, redis_client):
    made = {sub.provider: sub for sub in service.subscribe("acme")}
    assert set(made) == {"teams", "google_meet"}
    [graph] = emulator.state.graph_subscriptions.values()
    assert graph["id"] == made["teams"].id
    assert graph["resource"] == "communications/callRecords" and graph["changeType"] == "created"
    assert graph["notificationUrl"] == graph["lifecycleNotificationUrl"] == f"{PUBLIC}/webhooks/acme/teams"
    assert graph["clientState"] == samples.TEAMS_STATE
    # Under Graph's 4230 minutes (the emulator refuses more), renewed at half of it.
    assert dt.timedelta(minutes=4200) < made["teams"].expires_at - T0 <= dt.timedelta(minutes=4230)
    [workspace] = emulator.state.workspace_subscriptions.values()
    assert workspace["name"] == made["google_meet"].id
    assert workspace["targetResource"] == TARGET
    assert workspace["eventTypes"] == ["google.workspace.meet.conference.v2.ended"]
    assert workspace["notificationEndpoint"] == {"pubsubTopic": TOPIC}
    assert made["google_meet"].expires_at == T0 + dt.timedelta(days=7)
    stored = {row.provider: row for row in service.status("acme")}
    assert stored["teams"].state == stored["google_meet"].state == "active"
    assert stored["teams"].subscription == made["teams"]
    # The client state is kept as a digest, never the secret itself.
    dumped = json.dumps(redis_client.hgetall(KEY))
    assert samples.TEAMS_STATE not in dumped and digest(samples.TEAMS_STATE) in dumped


def test_graph_refuses_a_notification_url_that_does_not_echo_its_token(service, emulator, receiver):
    emulator.state.graph_validate = lambda url, token: False
    with pytest.raises(Exception, match="HTTP 400"):
        service.subscribe("acme", "teams")
    assert emulator.state.graph_subscriptions == {}
    assert [row.state for row in service.status("acme") if row.provider == "teams"] == ["missing"]


def test_subscribe_again_renews_rather_than_doubling(service, emulator, clock):
    first = {sub.provider: sub for sub in service.subscribe("acme")}
    clock.advance(hours=1)
    again = {sub.provider: sub for sub in service.subscribe("acme")}
    assert {p: s.id for p, s in again.items()} == {p: s.id for p, s in first.items()}
    assert all(again[p].expires_at > first[p].expires_at for p in again)
    assert len(emulator.state.graph_subscriptions) == len(emulator.state.workspace_subscriptions) == 1


# -- subscriptions we have no state for: adopted (Google) or replaced (Graph) ---------------------------


def test_google_state_lost_then_subscribe_adopts_the_existing_one(service, emulator, clock, redis_client):
    made = service.subscribe("acme", "google_meet")[0]
    redis_client.delete(KEY)  # our Redis state lost; Google still has it
    clock.advance(hours=1)
    [adopted] = service.subscribe("acme", "google_meet")
    assert adopted.id == made.id and adopted.expires_at == made.expires_at  # 6 days 23 h left: not due
    assert adopted.renewed_at is None and adopted.state == "active"
    assert adopted.created_at == T0  # Google's createTime, so it is due when it really is
    assert (adopted.detail or "").startswith(f"adopted {made.id}: it already existed on {TARGET}")
    assert list(emulator.state.workspace_subscriptions) == [made.id.split("/")[1]]  # no second one
    [row] = [r for r in service.status("acme") if r.provider == "google_meet"]
    assert row.state == "active" and row.subscription == adopted
    # From then on it is ours like any other: beat renews it at half its lifetime.
    clock.advance(days=3, hours=12)
    assert [o for _, _, o in service.renew_due()] == ["renewed"]
    assert service.store.get("acme", "google_meet").expires_at == clock.now + dt.timedelta(days=7)


def test_an_adopted_subscription_close_to_expiry_is_renewed_at_once(service, emulator, clock, redis_client):
    made = service.subscribe("acme", "google_meet")[0]
    redis_client.delete(KEY)
    clock.advance(days=4)  # 3 days left: past half of Google's 7
    [adopted] = service.subscribe("acme", "google_meet")
    assert adopted.id == made.id and adopted.renewed_at == clock.now
    assert adopted.expires_at == clock.now + dt.timedelta(days=7)
    stored = emulator.state.workspace_subscriptions[made.id.split("/")[1]]
    assert stored["expireTime"].startswith((clock.now + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"))
    assert "renewed at once" in (adopted.detail or "")


def test_an_adopted_subscription_whose_renewal_fails_is_kept_for_beat(service, emulator, clock, redis_client):
    made = service.subscribe("acme", "google_meet")[0]
    redis_client.delete(KEY)
    clock.advance(days=4)
    emulator.fail_next("/v1/subscriptions/", 503, times=20)  # the PATCH only (create and list have no slash)
    with pytest.raises(Exception, match="HTTP 503"):
        service.subscribe("acme", "google_meet")
    emulator._faults.clear()
    kept = service.store.get("acme", "google_meet")
    assert kept is not None and kept.id == made.id and kept.failures == 1
    assert (kept.detail or "").endswith("renewal failed: google_meet: HTTP 503")
    assert [o for _, _, o in service.renew_due()] == ["renewed"]
    assert service.store.get("acme", "google_meet").expires_at == clock.now + dt.timedelta(days=7)


def test_a_suspended_subscription_is_adopted_as_suspended(service, emulator, redis_client):
    made = service.subscribe("acme", "google_meet")[0]
    emulator.state.workspace_subscriptions[made.id.split("/")[1]].update(
        state="SUSPENDED", suspensionReason="ENDPOINT_PERMISSION_DENIED"
    )
    redis_client.delete(KEY)
    [adopted] = service.subscribe("acme", "google_meet")
    assert adopted.id == made.id and adopted.state == "suspended"
    assert (adopted.detail or "").endswith("suspended: ENDPOINT_PERMISSION_DENIED")
    assert [o for _, _, o in service.renew_due()] == ["reactivated"]


def test_an_existing_subscription_on_another_topic_is_not_adopted(
    cli_env, service, emulator, redis_client, capsys
):
    made = service.subscribe("acme", "google_meet")[0]
    other = "projects/acme-project/topics/hand-made"
    emulator.state.workspace_subscriptions[made.id.split("/")[1]]["notificationEndpoint"] = {
        "pubsubTopic": other
    }
    redis_client.delete(KEY)
    assert main(["providers", "subscribe", "--tenant", "acme", "--provider", "google_meet"]) == 1
    err = capsys.readouterr().err
    assert f"{made.id} already watches //cloudidentity.googleapis.com/users/" in err  # the id is masked
    assert f"but publishes to {other}, not to {TOPIC} (providers.google_meet.pubsub_topic)" in err
    assert f"DELETE https://workspaceevents.googleapis.com/v1/{made.id}" in err
    assert service.store.get("acme", "google_meet") is None
    assert [r.state for r in service.status("acme") if r.provider == "google_meet"] == ["missing"]
    assert emulator.state.workspace_subscriptions[made.id.split("/")[1]]["notificationEndpoint"] == {
        "pubsubTopic": other
    }  # left as it was


def test_already_exists_for_other_event_types_names_the_manual_fix(service, emulator):
    api_body = {
        "targetResource": TARGET,
        "eventTypes": ["google.workspace.meet.participant.v2.joined"],
        "notificationEndpoint": {"pubsubTopic": TOPIC},
        "ttl": "3600s",
    }
    from adapters.providers.google_meet import subscriptions as workspace_client

    api = workspace_client.client(service._ctx(service.tenant("acme"), "google_meet"))
    api.send("POST", "/v1/subscriptions", api_body)
    with pytest.raises(
        SubscriptionError, match=r"ALREADY_EXISTS for .* but lists no subscription"
    ) as refused:
        service.subscribe("acme", "google_meet")
    assert "authorized by the user in providers.google_meet.delegated_user" in str(refused.value)
    assert "admin@ourco.com" not in str(refused.value)  # the setting is named, never the email
    assert len(emulator.state.workspace_subscriptions) == 1


def test_graph_state_lost_then_subscribe_replaces_the_unknown_one(service, emulator, clock, redis_client):
    made = service.subscribe("acme", "teams")[0]
    redis_client.delete(KEY)
    clock.advance(hours=1)
    [again] = service.subscribe("acme", "teams")
    # Its clientState cannot be read back: ours (the configured secret) is created, then the unknown one deleted.
    [graph] = emulator.state.graph_subscriptions.values()
    assert graph["id"] == again.id != made.id and graph["clientState"] == samples.TEAMS_STATE
    assert (again.detail or "").startswith(
        f"replaced 1 subscription(s) on {PUBLIC}/webhooks/acme/teams that callmatch had no state for ({made.id})"
    )
    assert again.client_state_digest == digest(samples.TEAMS_STATE)
    calls = emulator.calls("/v1.0/subscriptions")
    assert calls[-3:] == [
        "POST /v1.0/subscriptions",
        "GET /v1.0/subscriptions",
        f"DELETE /v1.0/subscriptions/{made.id}",
    ]


def test_graph_leaves_the_apps_subscriptions_on_other_urls_alone(service, emulator):
    made = service.subscribe("acme", "teams")[0]
    template = emulator.state.graph_subscriptions[made.id]
    elsewhere = {
        **template,
        "id": "elsewhere",
        "notificationUrl": "https://staging.example/webhooks/acme/teams",
    }
    emulator.state.graph_subscriptions["elsewhere"] = elsewhere
    service.create("acme", "teams")
    assert "elsewhere" in emulator.state.graph_subscriptions and len(emulator.state.graph_subscriptions) == 2
    assert service.store.get("acme", "teams").detail is None


def test_a_failed_look_for_unknown_graph_subscriptions_keeps_ours_and_says_so(service, emulator):
    def validate(url: str, token: str) -> bool:
        """Graph's handshake, during the POST: the requests after it (the list) answer 503."""
        emulator.fail_next("/v1.0/subscriptions", 503, times=20)
        return True

    emulator.state.graph_validate = validate
    made = service.subscribe("acme", "teams")[0]
    emulator._faults.clear()
    assert list(emulator.state.graph_subscriptions) == [made.id]
    assert service.store.get("acme", "teams") == made
    assert (
        made.detail
        == f"could not look for unknown subscriptions on {PUBLIC}/webhooks/acme/teams: teams: HTTP 503"
    )


# -- beat's renewal pass -----------------------------------------------------------------------


def test_beat_renews_each_subscription_at_half_its_lifetime_and_not_before(service, emulator, clock):
    made = {sub.provider: sub for sub in service.subscribe("acme")}
    clock.advance(hours=30)
    assert sorted(outcome for _, _, outcome in service.renew_due()) == ["not due", "not due"]
    clock.advance(hours=6)  # 36 h: past half of Graph's ~70 h, far from half of Google's 7 days
    assert dict((p, o) for _, p, o in service.renew_due()) == {"teams": "renewed", "google_meet": "not due"}
    graph = emulator.state.graph_subscriptions[made["teams"].id]
    assert graph["expirationDateTime"].startswith(
        (clock.now + dt.timedelta(minutes=4220)).strftime("%Y-%m-%dT%H:%M")
    )
    clock.advance(days=2)  # 84 h = 3.5 days: Google's half
    assert dict((p, o) for _, p, o in service.renew_due()) == {"teams": "renewed", "google_meet": "renewed"}
    workspace = next(iter(emulator.state.workspace_subscriptions.values()))
    assert workspace["expireTime"].startswith((clock.now + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"))
    rows = {row.provider: row.to_json() for row in service.status("acme")}
    assert (
        rows["teams"]["renewed_at"]
        == rows["google_meet"]["renewed_at"]
        == clock.now.isoformat().replace("+00:00", "Z")
    )


def test_a_failed_renewal_never_raises_and_the_next_run_renews(service, emulator, clock):
    service.subscribe("acme", "teams")
    clock.advance(hours=40)
    emulator.fail_next("/v1.0/subscriptions/", 503, times=20)
    [(_, _, outcome)] = service.renew_due()
    assert outcome.startswith("failed: teams: HTTP 503")
    [row] = [r for r in service.status("acme") if r.provider == "teams"]
    assert row.state == "active" and "last renewal failed" in (row.subscription.detail or "")
    emulator.fail_next("/v1.0/subscriptions/", 503, times=0)
    emulator._faults.clear()
    assert [o for _, _, o in service.renew_due()] == ["renewed"]
    assert service.store.get("acme", "teams").failures == 0


def test_a_subscription_the_provider_lost_is_recreated_on_renewal(service, emulator, clock):
    old = service.subscribe("acme", "teams")[0]
    emulator.state.graph_subscriptions.clear()
    clock.advance(hours=40)
    assert [o for _, _, o in service.renew_due()] == ["renewed"]
    [graph] = emulator.state.graph_subscriptions.values()
    assert graph["id"] != old.id and service.store.get("acme", "teams").id == graph["id"]


def test_an_expired_subscription_is_recreated_by_beat(service, emulator, clock):
    old = service.subscribe("acme", "google_meet")[0]
    clock.advance(days=8)
    emulator.state.workspace_subscriptions.clear()  # Google deleted it at expiry
    assert [o for _, _, o in service.renew_due()] == ["recreated (had expired)"]
    assert service.store.get("acme", "google_meet").id != old.id


def test_a_rotated_teams_secret_recreates_the_subscription_with_the_new_one(
    service, emulator, clock, tenants
):
    old = service.subscribe("acme", "teams")[0]
    teams = tenants.tenants["acme"].providers["teams"]
    rotated = type(teams)(
        **{**teams.__dict__, "webhook_secrets": ("graph-client-state-next", samples.TEAMS_STATE)}
    )
    providers = {**tenants.tenants["acme"].providers, "teams": rotated}
    acme = type(tenants.tenants["acme"])(**{**tenants.tenants["acme"].__dict__, "providers": providers})
    service._tenants = Tenants({"acme": acme})
    service.renew("acme", "teams")
    [graph] = emulator.state.graph_subscriptions.values()
    assert graph["id"] != old.id and graph["clientState"] == "graph-client-state-next"


# -- Graph lifecycle notifications through the receiver ---------------------------------------------


def _lifecycle(
    receiver, redis_client, emulator, sub_id: str, event: str, remove: bool = False
) -> dict[str, Any]:
    body = graph_lifecycle(emulator, sub_id, event, remove=remove)
    response = receiver.post("/webhooks/acme/teams", content=samples.dumps(body))
    assert response.status_code == 200, response.text
    assert response.json()["ignored"] == "lifecycle notification queued"
    [notice] = lifecycle_notices(redis_client)
    redis_client.delete(QUEUE)
    assert notice == {"tenant": "acme", "provider": "teams", "event": event, "subscription_id": sub_id}
    return notice


def test_a_lifecycle_notification_with_a_wrong_client_state_is_refused(
    service, emulator, receiver, redis_client
):
    sub = service.subscribe("acme", "teams")[0]
    body = graph_lifecycle(emulator, sub.id, "reauthorizationRequired")
    body["value"][0]["clientState"] = "forged"
    assert receiver.post("/webhooks/acme/teams", content=samples.dumps(body)).status_code == 401
    assert lifecycle_notices(redis_client) == []


def test_reauthorization_required_renews(service, emulator, receiver, redis_client, clock):
    sub = service.subscribe("acme", "teams")[0]
    clock.advance(hours=2)
    notice = _lifecycle(receiver, redis_client, emulator, sub.id, "reauthorizationRequired")
    assert service.lifecycle(notice).startswith("renewed until")
    renewed = service.store.get("acme", "teams")
    assert renewed.id == sub.id and renewed.expires_at == sub.expires_at + dt.timedelta(hours=2)
    assert renewed.renewed_at == clock.now


def test_subscription_removed_recreates(service, emulator, receiver, redis_client):
    sub = service.subscribe("acme", "teams")[0]
    notice = _lifecycle(receiver, redis_client, emulator, sub.id, "subscriptionRemoved", remove=True)
    assert service.lifecycle(notice).startswith("recreated as ")
    [graph] = emulator.state.graph_subscriptions.values()
    assert graph["id"] != sub.id and service.store.get("acme", "teams").id == graph["id"]
    # A late notification about the old subscription changes nothing.
    assert service.lifecycle({**notice, "event": "subscriptionRemoved"}).endswith("ignored")
    assert list(emulator.state.graph_subscriptions) == [graph["id"]]


def _record(record_id: str, started: dt.datetime) -> dict[str, Any]:
    return {
        "id": record_id,
        "type": "groupCall",
        "startDateTime": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endDateTime": (started + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_missed_enqueues_the_gaps_call_records_exactly_once_each(
    service, emulator, receiver, redis_client, clock
):
    sub = service.subscribe("acme", "teams")[0]
    emulator.state.graph_records["before"] = _record("before", T0 - dt.timedelta(hours=3))
    for index in range(5):
        emulator.state.graph_records[f"r{index}"] = _record(f"r{index}", T0 + dt.timedelta(hours=index + 1))
    clock.advance(hours=8)
    # r0 was notified normally before Graph started missing notifications.
    assert receiver.post("/webhooks/acme/teams", content=samples.teams("r0").body).json()["accepted"] == [
        "teams:r0"
    ]
    assert processed_calls(redis_client) == ["teams:r0"]
    redis_client.delete(QUEUE)
    notice = _lifecycle(receiver, redis_client, emulator, sub.id, "missed")
    assert service.lifecycle(notice) == "gap closed: 4 call record(s) enqueued, 1 already kept"
    assert sorted(processed_calls(redis_client)) == ["teams:r1", "teams:r2", "teams:r3", "teams:r4"]
    listed = [c for c in emulator.calls("/v1.0/communications/callRecords") if c.startswith("GET")]
    assert len(listed) == 1
    # The same gap again (a redelivered `missed`), or a late notification of a listed record: nothing twice.
    redis_client.delete(QUEUE)
    assert service.lifecycle(notice) == "gap closed: 0 call record(s) enqueued, 0 already kept"
    assert receiver.post("/webhooks/acme/teams", content=samples.teams("r3").body).json()["duplicates"] == [
        "teams:r3"
    ]
    assert processed_calls(redis_client) == []
    assert "gap since" in (service.store.get("acme", "teams").detail or "")


# -- Workspace Events lifecycle through the receiver --------------------------------------------------


def _google_lifecycle(
    receiver, redis_client, emulator, name: str, kind: str, reason: str | None = None
) -> dict[str, Any]:
    message = workspace_lifecycle(emulator, name, kind, reason)
    response = receiver.post(
        "/webhooks/acme/google_meet", content=push(message).body, headers=push(message).headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["ignored"] == "lifecycle event queued"
    [notice] = lifecycle_notices(redis_client)
    redis_client.delete(QUEUE)
    assert notice["event"] == kind and notice["subscription_id"] == name
    return notice


def test_expiration_reminder_renews(service, emulator, receiver, redis_client, clock):
    sub = service.subscribe("acme", "google_meet")[0]
    clock.advance(days=6, hours=12)
    notice = _google_lifecycle(receiver, redis_client, emulator, sub.id, "expirationReminder")
    assert service.lifecycle(notice).startswith("renewed until")
    assert service.store.get("acme", "google_meet").expires_at == clock.now + dt.timedelta(days=7)


def test_suspended_shows_in_status_until_reactivated(
    service, emulator, receiver, redis_client, clock, capsys
):
    sub = service.subscribe("acme", "google_meet")[0]
    emulator.state.workspace_blocked = "ENDPOINT_PERMISSION_DENIED"
    notice = _google_lifecycle(
        receiver, redis_client, emulator, sub.id, "suspended", "ENDPOINT_PERMISSION_DENIED"
    )
    assert notice["reason"] == "ENDPOINT_PERMISSION_DENIED"
    done = service.lifecycle(notice)
    assert done.startswith("suspended (ENDPOINT_PERMISSION_DENIED); reactivation refused")
    [row] = [r for r in service.status("acme") if r.provider == "google_meet"]
    assert row.state == "suspended" and row.subscription.detail == "suspended: ENDPOINT_PERMISSION_DENIED"
    # Beat keeps trying; once the topic's permission is fixed the subscription is active again.
    assert next(o for _, _, o in service.renew_due()).startswith("failed:")
    emulator.state.workspace_blocked = None
    assert [o for _, _, o in service.renew_due()] == ["reactivated"]
    [row] = [r for r in service.status("acme") if r.provider == "google_meet"]
    assert (
        row.state == "active"
        and emulator.state.workspace_subscriptions[sub.id.split("/")[1]]["state"] == "ACTIVE"
    )


def test_expired_recreates(service, emulator, receiver, redis_client):
    sub = service.subscribe("acme", "google_meet")[0]
    notice = _google_lifecycle(receiver, redis_client, emulator, sub.id, "expired")
    assert service.lifecycle(notice).startswith("recreated as subscriptions/")
    [workspace] = emulator.state.workspace_subscriptions.values()
    assert workspace["name"] != sub.id and service.store.get("acme", "google_meet").id == workspace["name"]


def test_a_conference_ended_event_still_becomes_a_call(service, receiver, redis_client):
    response = receiver.post(
        "/webhooks/acme/google_meet", content=samples.google().body, headers=samples.google().headers
    )
    assert response.json()["accepted"] == ["google_meet:abc-123"]
    assert lifecycle_notices(redis_client) == []


# -- callmatch providers status / subscribe -----------------------------------------------------------


@pytest.fixture()
def cli_env(emulator, tmp_path, redis_url, monkeypatch, clock) -> None:
    document, environ = tenants_document(emulator.base_url, str(tmp_path))
    path = tmp_path / "tenants.yaml"
    path.write_text(json.dumps(document))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CALLMATCH_TENANTS", str(path))
    monkeypatch.setenv("CALLMATCH_REDIS_URL", redis_url)
    monkeypatch.setenv("CALLMATCH_NOW", clock.now.isoformat())


def test_status_lists_each_subscription_and_exits_non_zero_when_one_is_missing_or_expired(
    cli_env, redis_client, capsys, monkeypatch, clock
):
    assert main(["providers", "status", "--tenant", "acme"]) == 1
    out = capsys.readouterr().out
    assert "missing    acme/teams" in out and "missing    acme/google_meet" in out
    assert main(["providers", "subscribe", "--tenant", "acme"]) == 0
    out = capsys.readouterr().out
    assert out.count("subscribed  acme/") == 2
    assert main(["providers", "status", "--json"]) == 0
    rows = {row["provider"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["google_meet"]["state"] == "active" and rows["google_meet"]["seconds_left"] == 7 * 86400
    assert rows["teams"]["resource"] == "communications/callRecords" and rows["teams"]["id"]
    assert main(["providers", "status"]) == 0
    text = capsys.readouterr().out
    assert "active     acme/google_meet  expires " in text and "(7d0h0m left)" in text
    assert "2 subscription(s), 0 not active" in text
    monkeypatch.setenv("CALLMATCH_NOW", (clock.now + dt.timedelta(days=3)).isoformat())
    assert main(["providers", "status"]) == 1
    text = capsys.readouterr().out
    assert "expired    acme/teams" in text and "1 not active" in text


def test_subscribe_without_a_public_url_names_the_setting(cli_env, tmp_path, capsys, monkeypatch):
    document = json.loads((tmp_path / "tenants.yaml").read_text())
    del document["tenants"]["acme"]["providers"]["teams"]["public_url"]
    (tmp_path / "tenants.yaml").write_text(json.dumps(document))
    monkeypatch.delenv("CALLMATCH_PUBLIC_URL", raising=False)
    assert main(["providers", "subscribe", "--tenant", "acme", "--provider", "teams"]) == 1
    err = capsys.readouterr().err
    assert "providers.teams.public_url (or CALLMATCH_PUBLIC_URL)" in err
    assert "graph-secret" not in err


# -- the Celery side: beat's schedule, the lifecycle task's retries --------------------------------


class _Task:
    """What run_lifecycle uses of a bound Celery task: its retry count, and `retry` raising `Retry`."""

    class request:
        retries = 0

    def __init__(self) -> None:
        self.retried: list[dict[str, Any]] = []

    def retry(self, **options: Any) -> Exception:
        from celery.exceptions import Retry

        self.retried.append(options)
        return Retry("retry", when=options.get("countdown"))


def test_beat_schedules_the_renewal_pass() -> None:
    from worker.pipeline.celery_app import app
    from worker.pipeline.tasks import SUBSCRIPTION_CHECK_SECONDS

    entry = app.conf.beat_schedule["renew-provider-subscriptions"]
    assert (
        entry["task"] == "callmatch.renew_subscriptions" and entry["schedule"] == SUBSCRIPTION_CHECK_SECONDS
    )


def test_the_renewal_pass_survives_redis_going_away(service, clock, redis_url) -> None:
    from worker.pipeline.tasks import renew_subscriptions_once

    service.subscribe("acme", "teams")
    clock.advance(hours=40)
    gone = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    service.store.client = gone
    assert renew_subscriptions_once(service) == []
    service.store.client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert renew_subscriptions_once(service) == [["acme", "teams", "renewed"]]


def test_a_lifecycle_notification_the_provider_cannot_take_now_is_retried(service, emulator) -> None:
    from celery.exceptions import Retry

    from worker.pipeline.tasks import run_lifecycle

    sub = service.subscribe("acme", "teams")[0]
    notice = {
        "tenant": "acme",
        "provider": "teams",
        "event": "reauthorizationRequired",
        "subscription_id": sub.id,
    }
    emulator.fail_next("/v1.0/subscriptions/", 503, times=20)
    task = _Task()
    with pytest.raises(Retry):
        run_lifecycle(task, service, notice)
    assert task.retried and task.retried[0]["max_retries"] is not None
    emulator._faults.clear()
    assert run_lifecycle(task, service, notice).startswith("renewed until")
    # A refusal no retry can pass is logged and reported, not raised (beat's pass catches up).
    emulator.fail_next("/v1.0/subscriptions/", 403, times=1)
    assert run_lifecycle(task, service, notice) == "failed: teams: HTTP 403"


def test_subscribe_after_the_state_was_lost_adopts_and_status_says_so(
    cli_env, emulator, redis_client, capsys
) -> None:
    assert main(["providers", "subscribe", "--tenant", "acme", "--provider", "google_meet"]) == 0
    [first] = emulator.state.workspace_subscriptions.values()
    redis_client.delete(KEY)
    capsys.readouterr()
    assert main(["providers", "subscribe", "--tenant", "acme", "--provider", "google_meet"]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"subscribed  acme/google_meet  {first['name']}  expires ")
    assert f"(adopted {first['name']}: it already existed on " in said
    assert len(emulator.state.workspace_subscriptions) == 1
    assert main(["providers", "status", "--tenant", "acme", "--json"]) == 1  # teams was never subscribed
    [row] = [r for r in json.loads(capsys.readouterr().out) if r["provider"] == "google_meet"]
    assert row["state"] == "active" and row["id"] == first["name"]
    assert row["detail"].startswith(f"adopted {first['name']}: it already existed on ")
