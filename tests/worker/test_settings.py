"""The settings object: every CALLMATCH_* variable declared once, its rules checked at start, the README in step."""

from __future__ import annotations

import ast
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from worker.config.settings import PREFIX, Settings, SettingsError, env_name, markdown_table, settings

SOURCES = ("worker", "adapters")
TABLE_HEADER = "| variable | default | meaning |"


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(PREFIX):
            monkeypatch.delenv(name)


def test_the_defaults_are_the_ones_every_module_used(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    current = settings()
    assert current.redis_url == "redis://127.0.0.1:6379/0"
    assert (current.host, current.port) == ("127.0.0.1", 8000)
    assert current.max_retry_countdown_seconds == 3600 and current.visibility_timeout_seconds == 7200
    assert current.hard_time_limit_seconds == 150 and current.soft_time_limit_seconds == 120
    assert current.stall_seconds == 210
    assert (current.retry_base_seconds, current.retry_max_seconds, current.max_retries) == (5.0, 600.0, 8)
    assert current.worker_metrics_port == 0 and current.admin_token is None and current.now is None
    assert current.demo_aircall_token.get_secret_value() == "demo-aircall-token"


def test_derived_defaults_follow_the_variables_they_derive_from(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("CALLMATCH_MAX_RETRY_COUNTDOWN_SECONDS", "5")
    monkeypatch.setenv("CALLMATCH_HARD_TIME_LIMIT_SECONDS", "8")
    current = settings()
    assert current.visibility_timeout_seconds == 10
    assert current.stall_seconds == 68
    assert current.soft_time_limit_seconds == 7


def test_settings_follow_the_environment_within_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests (and the CLI's) change variables between calls: settings() must not serve a stale copy."""
    monkeypatch.setenv("CALLMATCH_REDIS_URL", "redis://one:6379/0")
    assert settings().redis_url == "redis://one:6379/0"
    monkeypatch.setenv("CALLMATCH_REDIS_URL", "redis://two:6379/0")
    assert settings().redis_url == "redis://two:6379/0"
    monkeypatch.delenv("CALLMATCH_REDIS_URL")
    assert settings().redis_url == "redis://127.0.0.1:6379/0"


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("CALLMATCH_NOW", "")
    monkeypatch.setenv("CALLMATCH_PORT", "")
    assert settings().now is None and settings().port == 8000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CALLMATCH_VISIBILITY_TIMEOUT_SECONDS": "100"},
            "CALLMATCH_VISIBILITY_TIMEOUT_SECONDS must be longer than CALLMATCH_MAX_RETRY_COUNTDOWN_SECONDS and"
            " CALLMATCH_HARD_TIME_LIMIT_SECONDS, or Redis redelivers a task that is only waiting for its retry"
            " or still running, and the stage runs twice",
        ),
        (
            {"CALLMATCH_MAX_RETRY_COUNTDOWN_SECONDS": "2", "CALLMATCH_VISIBILITY_TIMEOUT_SECONDS": "100"},
            "CALLMATCH_VISIBILITY_TIMEOUT_SECONDS must be longer than CALLMATCH_MAX_RETRY_COUNTDOWN_SECONDS and"
            " CALLMATCH_HARD_TIME_LIMIT_SECONDS, or Redis redelivers a task that is only waiting for its retry"
            " or still running, and the stage runs twice",
        ),
        (
            {"CALLMATCH_STALL_SECONDS": "150"},
            "CALLMATCH_STALL_SECONDS must be longer than CALLMATCH_HARD_TIME_LIMIT_SECONDS,"
            " or the sweep doubles stages that are still running",
        ),
        ({"CALLMATCH_NOW": "yesterday"}, "CALLMATCH_NOW: not an ISO-8601 time: 'yesterday'"),
        ({"CALLMATCH_NOW": "2026-06-01T00:00:00"}, "CALLMATCH_NOW: give an offset (Z or +hh:mm)"),
        (
            {"CALLMATCH_PORT": "eighty"},
            "CALLMATCH_PORT: Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            {"CALLMATCH_HARD_TIME_LIMIT_SECONDS": "soon"},
            "CALLMATCH_HARD_TIME_LIMIT_SECONDS: Input should be a valid integer, unable to parse string as an integer",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    _clear(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        settings()
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_frozen_now_is_the_same_instant_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.pipeline.clock import process_clock

    monkeypatch.setenv("CALLMATCH_NOW", "2026-06-01T00:00:00Z")
    assert process_clock()() == dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    monkeypatch.setenv("CALLMATCH_NOW", "2026-06-01T02:00:00+02:00")
    assert process_clock()() == dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    monkeypatch.delenv("CALLMATCH_NOW")
    assert process_clock()().tzinfo is not None


def test_a_bad_limit_stops_the_worker_at_start(tmp_path: Path) -> None:
    """The rule lives in the model, and importing the Celery app (every process does) applies it."""
    env = {"PATH": "/usr/bin:/bin", "CALLMATCH_STALL_SECONDS": "100"}
    done = subprocess.run(
        [sys.executable, "-c", "import worker.pipeline.celery_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "CALLMATCH_STALL_SECONDS must be longer than CALLMATCH_HARD_TIME_LIMIT_SECONDS" in done.stderr


def test_secrets_do_not_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLMATCH_ADMIN_TOKEN", "very-secret-admin-token")
    current = settings()
    assert "very-secret-admin-token" not in repr(current) and "very-secret-admin-token" not in str(current)
    assert current.admin_token is not None
    assert current.admin_token.get_secret_value() == "very-secret-admin-token"


def _readme_table() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(TABLE_HEADER)
    end = readme.index("\n\n", start)
    return readme[start : end + 1]


def test_the_readme_table_is_the_model() -> None:
    """Regenerate with `python -m worker.config.settings --markdown` when this fails."""
    assert _readme_table() == markdown_table()


def test_every_setting_has_a_meaning_and_the_table_a_row_for_it() -> None:
    table = _readme_table()
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert f"| `{env_name(name)}` |" in table


def test_the_markdown_command_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.config.settings", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == markdown_table()


def _reads(path: Path) -> list[tuple[int, str]]:
    """The CALLMATCH_* variables `path` reads from the environment itself (os.environ, os.getenv, env.get)."""
    tree = ast.parse(path.read_text(), str(path))
    constants = {
        target.id: node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def text(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        if isinstance(node, ast.JoinedStr):
            return "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
        return None

    def environ_like(node: ast.AST) -> bool:
        source = ast.unparse(node)
        return "environ" in source or source in {"env", "os.getenv", "getenv"}

    found = []
    for node in ast.walk(tree):
        name: str | None = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in {"get", "pop", "setdefault"}:
                if environ_like(func.value):
                    name = text(node.args[0])
            elif (
                environ_like(func) or "env" in ast.unparse(func).lower()
            ):  # also helpers like _env_float(NAME)
                name = text(node.args[0])
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and environ_like(node.value):
            name = text(node.slice)
        elif isinstance(node, ast.Compare) and any(environ_like(c) for c in node.comparators):
            name = text(node.left)
        if name and name.upper().startswith(PREFIX):
            found.append((getattr(node, "lineno", 0), name))
    return found


# Reads still to move into worker.config.settings, owned by another change: keep this list shrinking.
PENDING: dict[str, set[str]] = {}


def test_the_scan_sees_a_direct_read(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\n"
        "NAME = 'CALLMATCH_X'\n"
        "a = os.environ.get('CALLMATCH_A', '1')\n"
        "b = os.getenv('CALLMATCH_B')\n"
        "c = os.environ['CALLMATCH_C']\n"
        "d = os.environ.get(NAME)\n"
        "e = 'CALLMATCH_E' in os.environ\n"
        "f = {'CALLMATCH_F': '1'}\n"
        "g = _env_float('CALLMATCH_G', 1.0)\n"
    )
    assert sorted(name for _, name in _reads(probe)) == [
        "CALLMATCH_A",
        "CALLMATCH_B",
        "CALLMATCH_C",
        "CALLMATCH_E",
        "CALLMATCH_G",
        "CALLMATCH_X",
    ]


def test_no_module_reads_a_setting_from_the_environment_itself() -> None:
    offenders = []
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative == "worker/config/settings.py":
                continue
            allowed = PENDING.get(relative, set())
            offenders += [f"{relative}:{line}: {name}" for line, name in _reads(path) if name not in allowed]
    assert offenders == [], "read these through worker.config.settings.settings(): " + ", ".join(offenders)
