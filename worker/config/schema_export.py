"""Writes (or, with --check, verifies) the published JSON Schemas under docs/schemas/.

The schemas are generated from the models that read the documents, so an editor
validates and completes a scenario or a tenants file exactly as callmatch reads it;
`--check` fails when a model changed and its schema was not regenerated (CI runs it
through tests/test_schemas.py).

    python -m worker.config.schema_export [--check]      # or: make schemas
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

# file name -> (module, root model); a model not yet written is skipped and named
DOCUMENTS: dict[str, tuple[str, str]] = {
    "scenario-v1.schema.json": ("worker.config.scenario", "ScenarioDocument"),
    "tenants.schema.json": ("worker.config.tenants", "TenantsDocument"),
}


def _model(module: str, name: str) -> type[BaseModel] | None:
    model = getattr(importlib.import_module(module), name, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def render(model: type[BaseModel]) -> str:
    """The schema file's text: stable key order, so a diff shows only what changed."""
    schema: dict[str, Any] = {"$schema": DIALECT, **model.model_json_schema(mode="validation")}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected() -> tuple[dict[Path, str], list[str]]:
    """The schema files as the models say they are, and the models that do not exist yet."""
    files: dict[Path, str] = {}
    missing: list[str] = []
    for filename, (module, name) in DOCUMENTS.items():
        model = _model(module, name)
        if model is None:
            missing.append(f"{module}.{name}")
            continue
        files[SCHEMAS / filename] = render(model)
    return files, missing


def stale() -> list[Path]:
    """Schema files that differ from what their models generate (or are absent)."""
    files, _ = expected()
    return [path for path, text in files.items() if not path.is_file() or path.read_text() != text]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker.config.schema_export", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a schema is stale")
    args = parser.parse_args(argv)
    files, missing = expected()
    for name in missing:
        print(f"skipped: {name} is not defined", file=sys.stderr)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"{_shown(path)} is stale: run make schemas", file=sys.stderr)
        return 1 if out_of_date else 0
    SCHEMAS.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {_shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
