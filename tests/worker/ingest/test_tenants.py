"""Tenants YAML: the shipped files load, and every mistake names the file, the tenant and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.adapters.providers import samples
from tests.config_example import load_example
from worker.config.tenants import TenantsDocument, TenantsError, load_tenants, parse_tenants
from worker.core.model import Strategy

ROOT = Path(__file__).resolve().parents[3]


def test_the_shipped_demo_tenant_loads_with_its_local_defaults():
    tenants = load_tenants(ROOT / "config" / "tenants.yaml", environ={})
    demo = tenants.tenants["demo"]
    assert demo.crm.kind == "scenario"
    assert demo.crm.scenario_file == ROOT / "config" / "examples" / "basic.json"
    assert set(demo.providers) == {"aircall", "ringover", "zoom"}
    assert demo.providers["aircall"].webhook_secrets == ("demo-aircall-token",)
    assert demo.policy.default_region == "FR"
    assert demo.is_internal_email("Rep@OurCo.com") and not demo.is_internal_email("jane@acme.com")


def test_the_demo_secrets_come_from_the_environment_when_set():
    tenants = load_tenants(ROOT / "config" / "tenants.yaml", environ={"CALLMATCH_DEMO_ZOOM_SECRET": "s3cret"})
    assert tenants.tenants["demo"].providers["zoom"].webhook_secrets == ("s3cret",)


def test_the_documented_example_loads_with_every_option(tmp_path):
    tenants, document = load_example(tmp_path, samples.public_pem(samples.GOOGLE_KEY))
    acme = tenants.tenants["acme"]
    assert document["tenants"]["acme"]["crm"]["kind"] == acme.crm.kind == "salesforce"
    assert acme.crm.credentials["client_secret"] == "secret-from-file"
    assert acme.crm.credentials["client_id"] == "value-of-ACME_SF_CLIENT_ID"
    assert acme.crm.rate_limit.daily == 90000
    assert set(acme.providers) == {"aircall", "ringover", "zoom", "google_meet", "teams"}
    assert acme.providers["zoom"].webhook_secrets == (
        "value-of-ACME_ZOOM_SECRET_TOKEN",
        "value-of-ACME_ZOOM_SECRET_TOKEN_OLD",
    )
    assert all(p.has_api() for p in acme.providers.values())
    assert acme.policy.opportunity_strategy == Strategy.TIMELINE
    assert acme.providers["aircall"].rate_limit.per_second == 1


def _load(tmp_path: Path, document: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    file = tmp_path / "tenants.yaml"
    file.write_text(yaml.safe_dump(document))
    return load_tenants(file, environ=samples.ENVIRON if environ is None else environ)


def _error(tmp_path: Path, document: dict[str, Any], environ: dict[str, str] | None = None) -> TenantsError:
    with pytest.raises(TenantsError) as info:
        _load(tmp_path, document, environ)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "tenants.yaml"))
    return info.value


def test_rotation_keeps_the_current_and_the_previous_secret(tmp_path):
    tenants = _load(tmp_path, samples.tenant_document(str(tmp_path)))
    assert tenants.tenants["acme"].providers["teams"].webhook_secrets == (
        samples.TEAMS_STATE,
        samples.TEAMS_STATE_OLD,
    )


@pytest.mark.parametrize(
    "change, field, reason",
    [
        (lambda t: t["crm"].update(kind="dynamics"), "crm.kind", "unknown value"),
        (lambda t: t.pop("crm"), "crm", "missing"),
        (
            lambda t: t["policy"].update(opportunity_strategy="newest"),
            "policy.opportunity_strategy",
            "unknown",
        ),
        (lambda t: t["policy"].update(default_region="XX"), "policy.default_region", "unknown region"),
        (
            lambda t: t["providers"]["zoom"].update(webhook_secret="inline"),
            "providers.zoom.webhook_secret",
            "never",
        ),
        (
            lambda t: t["providers"]["zoom"].update(webhok_secret_env="X"),
            "providers.zoom.webhok_secret_env",
            "unknown key",
        ),
        (lambda t: t["providers"].update(webex={}), "providers.webex", "unknown provider"),
        (
            lambda t: t["providers"]["aircall"].pop("webhook_secret_env"),
            "providers.aircall.webhook_secret_env",
            "missing",
        ),
        (
            lambda t: t["providers"]["google_meet"].pop("audience"),
            "providers.google_meet.audience",
            "missing",
        ),
        (
            lambda t: t["providers"]["google_meet"].pop("public_key_env"),
            "providers.google_meet.jwks_url",
            "missing",
        ),
        (
            lambda t: t["providers"]["zoom"].update(rate_limit={"per_second": -1}),
            "providers.zoom.rate_limit.per_second",
            "greater than 0",
        ),
        (
            lambda t: t["providers"]["zoom"].update(api_base_url="ftp://x"),
            "providers.zoom.api_base_url",
            "http",
        ),
        (lambda t: t["crm"].update(kind="scenario"), "crm.scenario_file", "missing"),
        (
            lambda t: t["crm"].update(kind="scenario", scenario_file="nope.json"),
            "crm.scenario_file",
            "no such file",
        ),
        (lambda t: t.update(internal_domains="ourco.com"), "internal_domains", "list"),
        (
            lambda t: t.update(internal_phones="+33 1 23 45 67 89"),
            "internal_phones",
            "expected a list of phones",
        ),
        (lambda t: t.update(internal_phones=["+33 1 23 45 67 89", " "]), "internal_phones", "list of phones"),
        (lambda t: t.update(internal_phones=[33123456789]), "internal_phones", "list of phones"),
    ],
)
def test_a_bad_field_fails_naming_file_tenant_and_field(tmp_path, change, field, reason):
    document = samples.tenant_document(str(tmp_path))
    change(document["tenants"]["acme"])
    error = _error(tmp_path, document)
    assert error.tenant == "acme" and error.path == field
    assert reason in error.reason
    assert f"tenant acme: {field}:" in str(error)


def test_internal_phones_and_domains_join_the_policy_for_m7(tmp_path):
    document = samples.tenant_document(str(tmp_path), internal_phones=["+33 1 23 45 67 89", "not a number"])
    document["tenants"]["acme"]["policy"].update(
        internal_phones=["+1 650 555 0100"], internal_domains=["ourco.io"]
    )
    policy = _load(tmp_path, document).tenants["acme"].policy
    assert policy.internal_phones == ("+1 650 555 0100", "+33 1 23 45 67 89", "not a number"), (
        "M2 reads them; an unparseable one is ignored by M7, not refused here"
    )
    assert policy.internal_domains == ("ourco.io", "ourco.com")
    document["tenants"]["acme"].update(internal_phones=None, internal_domains=[])
    policy = _load(tmp_path, document).tenants["acme"].policy
    assert (policy.internal_phones, policy.internal_domains) == (("+1 650 555 0100",), ("ourco.io",))


def test_a_bad_internal_phones_is_one_error_on_one_line(tmp_path):
    document = samples.tenant_document(str(tmp_path), internal_phones={"desk": "+33 1 23 45 67 89"})
    error = _error(tmp_path, document)
    assert (
        str(error) == f"{tmp_path / 'tenants.yaml'}: tenant acme: internal_phones: expected a list of phones"
    )


def test_an_unset_environment_variable_is_named(tmp_path):
    environ = {k: v for k, v in samples.ENVIRON.items() if k != "T_RINGOVER"}
    error = _error(tmp_path, samples.tenant_document(str(tmp_path)), environ)
    assert error.path == "providers.ringover.webhook_secret_env"
    assert "T_RINGOVER is not set" in error.reason


def test_a_secret_file_is_read_relative_to_the_tenants_file(tmp_path):
    (tmp_path / "zoom.secret").write_text("from-a-file\n")
    document = samples.tenant_document(str(tmp_path))
    zoom = document["tenants"]["acme"]["providers"]["zoom"]
    zoom.pop("webhook_secret_env")
    zoom["webhook_secret_file"] = "zoom.secret"
    tenants = _load(tmp_path, document)
    assert tenants.tenants["acme"].providers["zoom"].webhook_secrets[0] == "from-a-file"


def test_an_unreadable_secret_file_is_named(tmp_path):
    document = samples.tenant_document(str(tmp_path))
    document["tenants"]["acme"]["crm"]["credentials"] = {"client_secret_file": "missing.txt"}
    error = _error(tmp_path, document)
    assert error.path == "crm.credentials.client_secret_file" and "cannot read" in error.reason


def test_bad_tenant_names_and_bad_yaml_are_named(tmp_path):
    document = samples.tenant_document(str(tmp_path))
    document["tenants"]["Bad Name"] = document["tenants"].pop("acme")
    assert _error(tmp_path, document).path == "tenants.Bad Name"
    (tmp_path / "tenants.yaml").write_text("tenants: [unclosed\n")
    with pytest.raises(TenantsError, match=r"tenants.yaml: line 2"):
        load_tenants(tmp_path / "tenants.yaml")


def test_secrets_never_appear_in_error_messages(tmp_path):
    document = samples.tenant_document(str(tmp_path))
    document["tenants"]["acme"]["policy"]["timezone"] = "Mars/Olympus"
    error = _error(tmp_path, document)
    assert error.path == "policy.timezone"
    assert all(value not in str(error) for value in samples.ENVIRON.values())


def test_parse_tenants_refuses_an_empty_document(tmp_path):
    with pytest.raises(TenantsError, match="tenants: expected a mapping"):
        parse_tenants({"version": 1}, "x.yaml", tmp_path, {})


def test_the_demo_tenant_accepts_the_make_demo_deliveries(redis_url, redis_client):
    """`make demo` posts worker.dev.demo's signed Aircall and Ringover samples to the demo tenant."""
    import redis as redis_lib
    from fastapi.testclient import TestClient

    from tests.worker.ingest.conftest import queued_events
    from worker.dev import demo
    from worker.ingest.app import create_app
    from worker.ingest.enqueue import CeleryEnqueuer
    from worker.pipeline.celery_app import create_celery

    tenants = load_tenants(ROOT / "config" / "tenants.yaml")  # the same environment worker.dev.demo reads
    app = create_app(tenants, CeleryEnqueuer(create_celery(redis_url)), redis_lib.Redis.from_url(redis_url))
    with TestClient(app) as client:
        for provider, (body, headers) in (
            ("aircall", demo.aircall_delivery()),
            ("ringover", demo.ringover_delivery()),
        ):
            response = client.post(f"/webhooks/demo/{provider}", content=body, headers=headers)
            assert response.status_code == 200, response.text
    assert [m["call_id"] for m in queued_events(redis_client)] == ["aircall:812731", "ringover:8391047621"]


# --- The declared model (issue #12) -----------------------------------------------------------


def test_the_shipped_files_validate_against_the_declared_model_and_name_its_schema():
    """`TenantsDocument` is what docs/schemas/tenants.schema.json is made from; editors find it by the first line."""
    for name in ("tenants.yaml", "tenants.example.yaml"):
        text = (ROOT / "config" / name).read_text()
        assert text.splitlines()[0] == "# yaml-language-server: $schema=../docs/schemas/tenants.schema.json"
        TenantsDocument.model_validate(yaml.safe_load(text))  # shape only: no secret is read
    schema = TenantsDocument.model_json_schema()
    assert schema["additionalProperties"] is False and schema["required"] == ["tenants"]
    zoom = schema["$defs"]["ZoomSection"]
    assert zoom["additionalProperties"] is False and "webhook_secret_env" in zoom["properties"]
    assert "webhook_secret" not in zoom["properties"]


def _error_in_order(tmp_path: Path, document: dict[str, Any]) -> TenantsError:
    """The error of the document written in its own key order (safe_dump would sort the keys)."""
    (tmp_path / "tenants.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(TenantsError) as info:
        load_tenants(tmp_path / "tenants.yaml", environ=samples.ENVIRON)
    return info.value


def test_the_first_error_in_the_file_is_reported_whatever_the_model_checks_first(tmp_path):
    """The reader checked tenants in order, each section in order, reading secrets as it went."""
    document = samples.tenant_document(str(tmp_path))
    acme = document["tenants"]["acme"]
    acme["crm"]["credentials"] = {"client_id_env": "UNSET_VARIABLE"}  # a secret of the first section
    acme["providers"]["zoom"]["rate_limit"] = {"burst": 1.5}  # a shape error further down
    acme["providers"] = {"teams": acme["providers"].pop("teams"), **acme["providers"]}
    acme["providers"]["teams"]["webhok"] = "x"
    error = _error_in_order(tmp_path, document)
    assert (error.path, error.reason) == (
        "crm.credentials.client_id_env",
        "environment variable UNSET_VARIABLE is not set",
    )
    acme["crm"].pop("credentials")
    assert (
        _error_in_order(tmp_path, document).path == "providers.teams.webhok"
    )  # teams comes first in this file
    acme["providers"]["teams"].pop("webhok")
    assert _error_in_order(tmp_path, document).path == "providers.zoom.rate_limit.burst"
    document["tenants"] = {
        "zeta": {"crm": {"kind": "hubspot"}, "internal_domains": "x"},
        **document["tenants"],
    }
    assert _error_in_order(tmp_path, document).tenant == "zeta"


@pytest.mark.parametrize(
    "change, field, reason",
    [
        (
            lambda t: t["providers"]["zoom"].update(rate_limit={"burst_env": "X"}),
            "providers.zoom.rate_limit.burst_env",
            "unknown key",
        ),
        (
            lambda t: t["providers"]["google_meet"].update(audience_env="X"),
            "providers.google_meet.audience_env",
            "unknown key",
        ),
        (lambda t: t["providers"]["zoom"].update({5: "x"}), "providers.zoom", "key 5 is not a string"),
        (lambda t: t["crm"].update(timeout=True), "crm.timeout", "expected a string"),
        (lambda t: t["crm"].update(credentials={"token": "inline"}), "crm.credentials.token", "never read"),
        (
            lambda t: t["providers"]["zoom"].update(rate_limit={"burst": 2.0}),
            "providers.zoom.rate_limit.burst",
            "whole number",
        ),
    ],
)
def test_the_declared_model_refuses_what_no_reader_should_pass(tmp_path, change, field, reason):
    """A suffix (`_env`) on a key that is not a secret used to pass unnoticed; now it is an unknown key."""
    document = samples.tenant_document(str(tmp_path))
    change(document["tenants"]["acme"])
    error = _error_in_order(tmp_path, document)
    assert (error.tenant, error.path) == ("acme", field) and reason in error.reason


def test_providers_keep_the_file_order_and_settings_keep_their_text(tmp_path):
    document = samples.tenant_document(str(tmp_path))
    acme = document["tenants"]["acme"]
    acme["providers"] = dict(reversed(list(acme["providers"].items())))
    acme["crm"].update(timeout=30, reserve_fraction=0.1)
    tenants = parse_tenants(document, "t.yaml", tmp_path, samples.ENVIRON)
    assert list(tenants.tenants["acme"].providers) == ["teams", "google_meet", "zoom", "ringover", "aircall"]
    assert tenants.tenants["acme"].crm.settings["timeout"] == "30"
    assert tenants.tenants["acme"].crm.settings["reserve_fraction"] == "0.1"
