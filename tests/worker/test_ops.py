"""Replays keep the dead letter until the stage's message is safely queued."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kombu.exceptions import OperationalError

from tests.worker.test_opscli import CALL, ROOT
from tests.worker.test_service import NOW, event
from worker.config.tenants import load_tenants
from worker.ops import actions as ops
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStatus, CallStore, Stage


@pytest.fixture()
def buried(redis_client: Any) -> Pipeline:
    tenants = load_tenants(ROOT / "config" / "tenants.yaml")
    pipeline = Pipeline(tenants, CallStore(redis_client, clock=lambda: NOW), CrmFactory(redis_client).crm_for)
    pipeline.accept(event())
    pipeline.decide("demo", CALL)
    pipeline.store.bury("demo", CALL, Stage.WRITE, "salesforce: FIELD_CUSTOM_VALIDATION_EXCEPTION", "fatal")
    return pipeline


def test_a_replay_whose_message_cannot_be_sent_keeps_the_letter_and_the_call_owes_its_stage(
    buried: Pipeline, redis_client: Any
) -> None:
    def broker_down(task: str, args: list[Any]) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with pytest.raises(OperationalError):
        ops.replay(buried, [CALL], send=broker_down)
    assert [d.call_id for d in buried.store.dead_letters()] == [CALL], "the letter is kept"
    record = buried.store.require("demo", CALL)
    assert record.status is CallStatus.DECIDED and record.next_stage == "write"
    assert redis_client.zscore("callmatch:progress", json.dumps(["demo", CALL])) is not None

    sent: list[tuple[str, list[Any]]] = []
    replayed = ops.replay(buried, [CALL], send=lambda task, args: sent.append((task, args)))
    assert [d.call_id for d in replayed] == [CALL] and sent == [("callmatch.write", ["demo", CALL])]
    assert buried.store.dead_letters() == []


def test_replay_all_sends_each_letter_to_the_stage_it_owes(buried: Pipeline) -> None:
    buried.accept(event("aircall:2"))
    buried.store.bury("demo", "aircall:2", Stage.FETCH, "unknown tenant 'demo'", "fatal")
    sent: list[tuple[str, list[Any]]] = []
    replayed = ops.replay(buried, [], everything=True, send=lambda task, args: sent.append((task, args)))
    assert sorted(d.call_id for d in replayed) == ["aircall:2", CALL]
    assert sorted(sent) == [("callmatch.fetch", ["demo", "aircall:2"]), ("callmatch.write", ["demo", CALL])]
    assert buried.store.dead_letters() == [] and buried.store.owed() == 2
