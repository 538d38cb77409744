"""The operations commands need Redis, not the tenants' secrets, unless they call a CRM.

Tenant `acme` reads its CRM key and its Aircall webhook secret from environment variables
that are not set where the commands run; `beta` needs none. What only reads or writes
Redis runs; what calls acme's CRM says which variable is missing; beta is unaffected.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.worker.test_opscli import queued_tasks
from tests.worker.test_service_review import JANE, PAUL, call_event, decided, write_world
from worker.config.tenants import TenantsError, load_tenants
from worker.pipeline.crm_factory import CrmFactory
from worker.pipeline.service import Pipeline
from worker.pipeline.store import CallStore, Stage
from worker.pipeline.tasks import REFRESH_TASK, WRITE_TASK

CALLMATCH = str(Path(sys.executable).parent / "callmatch")
CRM_KEY = "CM_TEST_UNSET_CRM_KEY"
WEBHOOK = "CM_TEST_UNSET_AIRCALL_TOKEN"


@pytest.fixture()
def tenants_path(tmp_path: Path) -> Path:
    path = write_world(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["tenants"]["beta"] = copy.deepcopy(document["tenants"]["beta"])
    acme = document["tenants"]["acme"]
    acme["crm"]["credentials"] = {"api_key_env": CRM_KEY}
    acme["providers"] = {"aircall": {"webhook_secret_env": WEBHOOK}}
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture()
def pipeline(redis_client: Any, tenants_path: Path) -> Pipeline:
    """Calls of both tenants, decided in this process (whose file reading is lenient too)."""
    tenants = load_tenants(tenants_path, environ={}, lenient=True)
    pipe = Pipeline(tenants, CallStore(redis_client), CrmFactory(redis_client).crm_for)
    decided(pipe, "aircall:1", JANE, PAUL)
    pipe.override("acme", "aircall:1", opportunity_id="O1", by="ann")
    decided(pipe, "aircall:2", PAUL)
    pipe.store.bury("acme", "aircall:2", Stage.WRITE, "crm: 503", "retry")
    decided(pipe, "aircall:3", PAUL, tenant="beta")
    return pipe


@pytest.fixture()
def cli(redis_url: str, redis_client: Any, tenants_path: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if k not in (CRM_KEY, WEBHOOK)}
    env.update({"CALLMATCH_REDIS_URL": redis_url, "CALLMATCH_TENANTS": str(tenants_path)})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CALLMATCH, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    return run


def test_the_file_read_strictly_still_refuses_a_missing_secret(tenants_path: Path) -> None:
    with pytest.raises(TenantsError, match=f"environment variable {CRM_KEY} is not set"):
        load_tenants(tenants_path, environ={})
    lenient = load_tenants(tenants_path, environ={}, lenient=True)
    assert [e.path for e in lenient.tenants["acme"].unresolved] == [
        "crm.credentials.api_key_env",
        "providers.aircall.webhook_secret_env",
    ]
    assert lenient.tenants["beta"].unresolved == ()


@pytest.mark.parametrize(
    "args, said",
    [
        (("status", "--json"), '"tenant": "acme"'),
        (("status", "--tenant", "acme"), "calls of tenant acme:"),
        (("explain", "aircall:1", "--tenant", "acme"), "call aircall:1 (tenant acme): decided"),
        (("calls", "list", "--tenant", "acme"), "2 call(s)"),
        (("dead-letters", "list"), "1 dead letter(s)"),
        (("review", "list", "--tenant", "acme"), "call(s) waiting for review"),
        (("preferences", "list", "--tenant", "acme"), "2 preference(s)"),
        (("preferences", "forget", "--tenant", "acme", "--contact", "C2"), "1 preference(s) forgotten"),
        (("refresh", "aircall:1", "--tenant", "acme"), "refresh of aircall:1 (tenant acme) enqueued"),
        (("unlock", "aircall:1", "--tenant", "acme", "--opportunity"), "unlocked opportunity on aircall:1"),
        (("dead-letters", "replay", "aircall:2"), "replayed aircall:2 (tenant acme) from write"),
    ],
)
def test_what_needs_only_redis_runs_without_the_tenants_secrets(
    cli: Any, pipeline: Pipeline, args: tuple[str, ...], said: str
) -> None:
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert said in proc.stdout and proc.stderr == ""


def test_what_calls_the_crm_names_the_missing_variable(
    cli: Any, pipeline: Pipeline, redis_client: Any, tmp_path: Path
) -> None:
    before = pipeline.store.require("acme", "aircall:1")
    override = cli("override", "aircall:1", "--tenant", "acme", "--opportunity", "O2")
    assert (override.returncode, override.stdout) == (2, "")
    assert override.stderr == (
        "callmatch override: checking the ids in the CRM needs tenant acme's secrets: "
        f"crm.credentials.api_key_env: environment variable {CRM_KEY} is not set\n"
    )
    after = pipeline.store.require("acme", "aircall:1")
    assert (after.overrides, after.changes) == (before.overrides, before.changes)
    assert queued_tasks(redis_client) == []

    event = tmp_path / "event.json"
    event.write_text(json.dumps(call_event("aircall:sim", JANE).to_json()))
    simulate = cli("simulate", "--tenant", "acme", str(event))
    assert simulate.returncode == 2 and simulate.stdout == ""
    assert f"environment variable {CRM_KEY} is not set" in simulate.stderr
    assert WEBHOOK not in simulate.stderr, "a webhook secret is not what simulate needs"

    doctor = cli("doctor", "--tenant", "acme")
    assert doctor.returncode == 2 and doctor.stdout == ""
    source = pipeline.tenants.source
    assert doctor.stderr.splitlines() == [
        f"callmatch doctor: {source}: tenant acme: crm.credentials.api_key_env: "
        f"environment variable {CRM_KEY} is not set",
        f"callmatch doctor: {source}: tenant acme: providers.aircall.webhook_secret_env: "
        f"environment variable {WEBHOOK} is not set",
    ]


def test_a_tenant_with_its_secrets_runs_whatever_another_lacks(
    cli: Any, pipeline: Pipeline, redis_client: Any
) -> None:
    override = cli("override", "aircall:3", "--tenant", "beta", "--opportunity", "O1")
    assert override.returncode == 0, override.stderr
    assert queued_tasks(redis_client) == [REFRESH_TASK]
    doctor = cli("doctor", "--tenant", "beta")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "tenant beta can run" in doctor.stdout
    replay = cli("dead-letters", "replay", "--all")
    assert replay.returncode == 0, replay.stderr
    assert sorted(queued_tasks(redis_client)) == sorted([REFRESH_TASK, WRITE_TASK])
