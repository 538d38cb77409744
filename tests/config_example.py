"""`config/tenants.example.yaml` loaded as a deployment would: every `_env` set, every `_file` written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from worker.config.tenants import Tenants, load_tenants

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "tenants.example.yaml"


def load_example(directory: Path, google_push_pem: str = "unused") -> tuple[Tenants, dict[str, Any]]:
    """The example's tenants and its YAML document; `_env: X` reads `value-of-X`, files hold `secret-from-file`."""
    text = EXAMPLE.read_text()
    environ = {name: f"value-of-{name}" for name in re.findall(r"_env: (\w+)", text)}
    for path in re.findall(r"_file: (/\S+)", text):
        local = directory / Path(path).name
        local.write_text("secret-from-file\n")
        text = text.replace(path, str(local))
    (directory / "google-push.pem").write_text(google_push_pem)
    (directory / "tenants.yaml").write_text(text)
    return load_tenants(directory / "tenants.yaml", environ=environ), yaml.safe_load(text)
