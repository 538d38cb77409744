"""Tenants' tokens: made and hashed by `callmatch access`, kept hashed in the tenants file, refused in clear."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.worker.ops.conftest import FAST_LN
from worker.config.tenants import TenantsError, parse_tenants
from worker.config.tokens import Credential, TokenHash, TokenHashError, hash_token
from worker.ops import cli

BIN = Path(sys.executable).parent
TOKEN = "a-long-enough-token-0123456789"


def document(access: Any) -> dict[str, Any]:
    return {"version": 1, "tenants": {"acme": {"crm": {"kind": "salesforce"}, "access": access}}}


def test_a_hash_matches_its_token_only_and_says_its_parameters() -> None:
    text = hash_token(TOKEN, ln=FAST_LN)
    scheme, parameters, _salt, _digest = text.split("$")
    assert (scheme, parameters) == ("scrypt", f"ln={FAST_LN},r=8,p=1") and TOKEN not in text
    parsed = TokenHash.parse(text)
    assert parsed.matches(TOKEN) and not parsed.matches(TOKEN + "x") and not parsed.matches("")
    assert parsed.text() == text and len(parsed.salt) == 16 and len(parsed.hash) == 32
    assert hash_token(TOKEN, ln=FAST_LN) != text  # a fresh salt each time


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("my-plain-admin-token", "not a token hash (expected scrypt$ln=15,r=8,p=1$SALT$HASH)"),
        ("scrypt$ln=10,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "ln=10 is outside 14..20"),
        ("scrypt$ln=15,r=8,p=1$AAAA$" + "A" * 43, "a salt of at least 16 bytes"),
        ("scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA", "a hash of 32"),
        ("scrypt$ln=15,r=8,p=1$A$" + "A" * 43, "not base64"),
        ("pbkdf2$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, "not a token hash"),
    ],
)
def test_what_is_not_a_usable_hash_is_refused_saying_why(text: str, words: str) -> None:
    with pytest.raises(TokenHashError) as refused:
        TokenHash.parse(text)
    assert words in str(refused.value) and "my-plain-admin-token" not in str(refused.value)


def test_the_tenants_file_keeps_hashes_and_reads_tokens_from_secrets(tmp_path: Path) -> None:
    (tmp_path / "viewer").write_text("viewer-token-from-a-file-0123\n")
    access = {
        "admins": [{"name": "jane", "token_hash": hash_token(TOKEN, ln=FAST_LN)}],
        "viewers": None,
        "admin_token_env": "ACME_ADMIN_TOKEN",
        "viewer_token_file": "viewer",
    }
    tenants = parse_tenants(
        document(access), base_dir=tmp_path, environ={"ACME_ADMIN_TOKEN": "admin-token-from-the-env-0123"}
    )
    credentials = tenants.tenants["acme"].access.credentials
    assert [(c.name, c.role) for c in credentials] == [
        ("jane", "admin"),
        ("admin_token", "admin"),
        ("viewer_token", "viewer"),
    ]
    assert credentials[0].matches(TOKEN) and not credentials[0].matches("admin-token-from-the-env-0123")
    assert credentials[1].matches("admin-token-from-the-env-0123")
    assert credentials[2].matches("viewer-token-from-a-file-0123") and not credentials[2].matches(TOKEN)
    assert "admin-token-from-the-env" not in repr(tenants) and TOKEN not in repr(tenants)
    assert not parse_tenants(document(None)).tenants["acme"].access


def test_a_hash_given_in_a_secret_is_used_as_a_hash() -> None:
    tenants = parse_tenants(document({"admin_token_env": "H"}), environ={"H": hash_token(TOKEN, ln=FAST_LN)})
    [credential] = tenants.tenants["acme"].access.credentials
    assert credential.token_hash is not None and credential.matches(TOKEN)


@pytest.mark.parametrize(
    ("access", "environ", "field", "words"),
    [
        (
            {"admins": [{"name": "jane", "token_hash": "plain-text-admin-token"}]},
            {},
            "access.admins[0].token_hash",
            "not a token hash (expected scrypt$ln=15,r=8,p=1$SALT$HASH); a token is never written in the file:"
            " make its hash with `callmatch access hash-token`",
        ),
        (
            {"admin_token": "plain-text-admin-token"},
            {},
            "access.admin_token",
            "use admin_token_env or admin_token_file",
        ),
        (
            {"viewer_token_env": "UNSET"},
            {},
            "access.viewer_token_env",
            "environment variable UNSET is not set",
        ),
        ({"viewer_token_env": "SHORT"}, {"SHORT": "short"}, "access.viewer_token_env", "shorter than 16"),
        ({"admins": [{"name": "jane"}]}, {}, "access.admins[0].token_hash", "missing"),
        ({"admins": "jane"}, {}, "access.admins", "expected a list of {name, token_hash}"),
        ({"owners": []}, {}, "access.owners", "unknown key (expected one of: admins, viewers, admin_token"),
        (
            {
                "admins": [{"name": "jane", "token_hash": "H"}],
                "viewers": [{"name": "jane", "token_hash": "H"}],
            },
            {},
            "access.viewers[0].name",
            "the name 'jane' is used twice",
        ),
    ],
)
def test_a_bad_access_section_is_refused_naming_the_field(
    access: dict[str, Any], environ: dict[str, str], field: str, words: str
) -> None:
    good = hash_token(TOKEN, ln=FAST_LN)
    for entries in (access.get("admins"), access.get("viewers")):
        for entry in entries if isinstance(entries, list) else ():
            if entry.get("token_hash") == "H":
                entry["token_hash"] = good
    with pytest.raises(TenantsError) as refused:
        parse_tenants(document(access), environ=environ)
    assert refused.value.tenant == "acme" and refused.value.path == field
    assert words in refused.value.reason
    assert "plain-text-admin-token" not in str(refused.value)


def test_a_secrets_token_is_kept_as_a_digest_only() -> None:
    credential = Credential.secret("ci", "viewer", "a-token-read-from-a-secret-0123")
    assert (
        credential.token_hash is None and credential.sha256 is not None and len(credential.fingerprint) == 16
    )
    assert "a-token-read-from-a-secret" not in repr(credential)


def test_callmatch_access_hash_token_reads_standard_input(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(TOKEN + "\n"))
    assert cli.main(["access", "hash-token"]) == 0
    printed = capsys.readouterr().out.strip()
    assert TokenHash.parse(printed).matches(TOKEN) and printed.startswith("scrypt$ln=15,r=8,p=1$")
    for given, words in (
        ("", "no token on standard input"),
        ("short\n", "shorter than 16"),
        (" " + TOKEN, "spaces"),
    ):
        monkeypatch.setattr(sys, "stdin", io.StringIO(given))
        assert cli.main(["access", "hash-token"]) == 2
        assert words in capsys.readouterr().err


def test_callmatch_access_new_token_prints_a_token_and_its_hash() -> None:
    done = subprocess.run(
        [str(BIN / "callmatch"), "access", "new-token"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token, hashed = done.stdout.splitlines()
    assert len(token) >= 40 and TokenHash.parse(hashed).matches(token)
    piped = subprocess.run(
        [str(BIN / "callmatch"), "access", "hash-token"],
        input=token,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0 and TokenHash.parse(piped.stdout.strip()).matches(token)
