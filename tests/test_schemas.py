"""The published JSON Schemas (docs/schemas/) are what the models generate, and editors find them.

CI runs this: a model changed without `make schemas` fails here, naming the stale file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from worker.config import schema_export
from worker.config.scenario import ScenarioDocument

SCENARIO_SCHEMA = ROOT / "docs" / "schemas" / "scenario-v1.schema.json"
EXAMPLES = sorted(
    p for p in (ROOT / "config" / "examples").glob("*.json") if not p.name.endswith(".expected.json")
)


def test_schemas_are_up_to_date() -> None:
    assert schema_export.main(["--check"]) == 0, "a schema in docs/schemas is stale: run make schemas"
    assert schema_export.stale() == []


def test_a_changed_model_makes_its_schema_stale(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(schema_export, "SCHEMAS", tmp_path)
    assert len(schema_export.stale()) == len(schema_export.expected()[0]) > 0  # nothing written yet
    assert schema_export.main([]) == 0
    assert schema_export.stale() == []
    written = tmp_path / "scenario-v1.schema.json"
    written.write_text(written.read_text().replace('"call"', '"cal"', 1))
    assert schema_export.main(["--check"]) == 1
    assert schema_export.stale() == [written]


def _schema_keys(schema: dict[str, Any], node: dict[str, Any]) -> set[str] | None:
    """The property names an object node declares (following $ref and anyOf), None if not an object."""
    if "$ref" in node:
        return _schema_keys(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[1]])
    for option in node.get("anyOf", ()):
        keys = _schema_keys(schema, option)
        if keys is not None:
            return keys
    return set(node["properties"]) if "properties" in node else None


def _child(schema: dict[str, Any], node: dict[str, Any], key: str | None) -> dict[str, Any]:
    if "$ref" in node:
        return _child(schema, schema["$defs"][node["$ref"].rsplit("/", 1)[1]], key)
    for option in node.get("anyOf", ()):
        if option.get("type") != "null":
            return _child(schema, option, key)
    return dict(node["items"]) if key is None else dict(node["properties"][key])


def _unknown(schema: dict[str, Any], node: dict[str, Any], value: Any, path: str) -> list[str]:
    if isinstance(value, dict):
        keys = _schema_keys(schema, node) or set()
        found = [f"{path}.{k}" for k in value if k not in keys]
        for key, item in value.items():
            if key in keys:
                found += _unknown(schema, _child(schema, node, key), item, f"{path}.{key}")
        return found
    if isinstance(value, list):
        return [
            p
            for i, item in enumerate(value)
            for p in _unknown(schema, _child(schema, node, None), item, f"{path}[{i}]")
        ]
    return []


def test_the_schema_declares_every_key_of_the_contract_examples() -> None:
    schema = json.loads(SCENARIO_SCHEMA.read_text())
    assert schema["$id"].endswith("/scenario-v1.schema.json") and schema["required"] == ["call"]
    assert EXAMPLES
    for path in EXAMPLES:
        document = json.loads(path.read_bytes())
        assert _unknown(schema, schema, document, "") == [], path.name
        assert ScenarioDocument.model_validate(document).unknown_keys() == [], path.name


def test_the_schema_carries_the_contract_enums_and_v1_1_keys() -> None:
    schema = json.loads(SCENARIO_SCHEMA.read_text())
    policy = schema["$defs"]["PolicyDocument"]["properties"]
    assert schema["$defs"]["Strategy"]["enum"][0] == "timeline"
    assert policy["domain_match"]["enum"] == ["clean", "exact", "registrable", None]
    assert policy["activity_match_minutes"]["maximum"] == 10080
    assert {"internal_phones", "on_ambiguity", "use_preferences"} <= set(policy)
    assert schema["$defs"]["PreviousDocument"]["properties"]["locked"]["items"]["enum"] == [
        "contacts",
        "leads",
        "account",
        "opportunity",
    ]


def test_vscode_maps_the_examples_to_the_scenario_schema() -> None:
    """The examples stay byte-equal to the contract's, so the editor maps them rather than a `$schema` key."""
    settings = json.loads((ROOT / ".vscode" / "settings.json").read_text())
    mapping = {entry["url"]: entry["fileMatch"] for entry in settings["json.schemas"]}
    assert "config/examples/*.json" in mapping["./docs/schemas/scenario-v1.schema.json"]
    assert SCENARIO_SCHEMA.is_file()
