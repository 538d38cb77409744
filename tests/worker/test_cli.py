"""`callmatch decide` exactly as scenario-v1 specifies it, run as the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import example_dir

CALLMATCH = shutil.which("callmatch", path=str(Path(sys.executable).parent)) or "callmatch"


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([CALLMATCH, *args], input=stdin, capture_output=True, timeout=120, check=False)


def scenarios() -> list[Path]:
    return sorted(p for p in example_dir().glob("*.json") if not p.name.endswith(".expected.json"))


def test_every_contract_example_matches_its_expected_result() -> None:
    files = scenarios()
    assert len(files) >= 4
    proc = run("decide", *map(str, files))
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == len(files)
    for path, line in zip(files, lines, strict=True):
        result = json.loads(line)
        expected = json.loads(path.with_name(path.name.replace(".json", ".expected.json")).read_text())
        # v1.1: v1's decision plus `candidates`, always present and empty unless U1 abstained
        assert {k: v for k, v in result.items() if k not in ("trace", "candidates")} == expected, path.name
        assert result["candidates"] == [], path.name
        assert result["trace"] and all(set(entry) == {"rule", "message"} for entry in result["trace"])


def test_bundled_examples_are_the_contracts() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "examples"
    if not shared.is_dir():
        pytest.skip("shared/ is not beside this checkout")
    bundled = Path(__file__).resolve().parents[2] / "config" / "examples"
    for path in shared.iterdir():
        assert (bundled / path.name).read_bytes() == path.read_bytes(), (
            f"config/examples/{path.name} is stale"
        )


def test_invalid_file_is_named_others_still_decided_exit_2(tmp_path: Path) -> None:
    good = scenarios()[0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"call": {"id": "x", "started_at": "not a date"}}))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    proc = run("decide", str(bad), str(good), str(broken), str(tmp_path / "missing.json"), str(good))
    assert proc.returncode == 2
    assert len(proc.stdout.decode().splitlines()) == 2
    errors = proc.stderr.decode().splitlines()
    assert errors[0] == f"{bad}: call.started_at: not an ISO-8601 date-time"
    assert errors[1].startswith(f"{broken}: (document): not valid JSON")
    assert errors[2].startswith(f"{tmp_path / 'missing.json'}: cannot read")
    assert "Traceback" not in proc.stderr.decode()


def test_dash_reads_standard_input_in_argument_order() -> None:
    first, second = scenarios()[:2]
    proc = run("decide", str(first), "-", str(first), stdin=second.read_bytes())
    assert proc.returncode == 0
    ids = [json.loads(line)["call_id"] for line in proc.stdout.decode().splitlines()]
    first_id = json.loads(first.read_text())["call"]["id"]
    second_id = json.loads(second.read_text())["call"]["id"]
    assert ids == [first_id, second_id, first_id]


def test_bad_stdin_is_named() -> None:
    proc = run(
        "decide",
        "-",
        stdin=b'{"call": {"id": "x", "started_at": "2026-01-01T00:00:00Z"}, "policy": {"owner": "boss"}}',
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("<stdin>: policy.owner: unknown value 'boss'")


def test_text_format_shows_trace_for_people() -> None:
    proc = run("decide", "--format", "text", str(scenarios()[0]))
    assert proc.returncode == 0
    out = proc.stdout.decode()
    assert "opportunity:" in out and "why:" in out and "[S1.1]" in out


def test_no_arguments_is_a_usage_error() -> None:
    proc = run("decide")
    assert proc.returncode == 2
    assert b"usage" in proc.stderr


def test_a_lone_surrogate_in_an_echoed_id_is_named_and_the_others_still_decided(tmp_path: Path) -> None:
    """JSON may carry `\\ud800`, which no UTF-8 output can: one error line, never a traceback."""
    good = scenarios()[0]
    document = json.loads(good.read_text())
    document["call"]["id"] = "call-\ud800"
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(document))  # ensure_ascii: the surrogate travels as the escape \ud800
    proc = run("decide", str(odd), str(good))
    assert proc.returncode == 2
    assert len(proc.stdout.decode().splitlines()) == 1
    assert proc.stderr.decode().splitlines()[-1] == (
        f"{odd}: the decision would echo text that is not valid Unicode (a lone surrogate in an id)"
    )
    assert "Traceback" not in proc.stderr.decode()


@pytest.mark.parametrize(
    "text, said",
    [
        ("[" * 100_000 + "]" * 100_000, "(document): nested too deeply to read"),
        ('{"call": ' * 5_000 + "1" + "}" * 5_000, "(document): nested too deeply to read"),
        ('{"version": 1, "x": ' + "[" * 900 + "]" * 900 + "}", "call: missing"),
        (
            '{"version": ' + "9" * 5_000 + "}",
            "(document): not valid JSON: a number has more than 4300 digits",
        ),
    ],
)
def test_any_unreadable_document_is_exit_2_and_one_line_naming_the_file(
    tmp_path: Path, text: str, said: str
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(text)
    good = scenarios()[0]
    proc = run("decide", str(deep), str(good))
    assert proc.returncode == 2
    assert proc.stderr.decode() == f"{deep}: {said}\n"
    assert len(proc.stdout.decode().splitlines()) == 1, "the other file is still decided"
