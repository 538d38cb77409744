"""`callmatch access`: make tenants' tokens and the hashes the tenants file keeps of them.

    callmatch access new-token                 # a fresh random token, then its hash
    callmatch access hash-token < token.txt    # the hash of a token read from standard input

The hash goes under `access.admins` or `access.viewers` of a tenant (see worker/config/tokens.py
for its format); the token itself is handed to the person or program and never written in the file.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any, TextIO

from worker.config.tokens import MIN_TOKEN_CHARS, hash_token
from worker.ops.output import EXIT_INVALID, EXIT_OK


def add_access_parser(commands: Any) -> None:
    """The `access` command and its actions, on the CLI's subcommands."""
    access = commands.add_parser(
        "access",
        help="tenants' viewer and admin tokens for the operations API and console",
        description="Tokens are kept hashed in the tenants file (access.admins / access.viewers).",
    )
    actions = access.add_subparsers(dest="access_command", required=True, metavar="ACTION")
    actions.add_parser(
        "hash-token",
        help="read a token on standard input, print the hash to put in the tenants file",
        description="Reads one token from standard input (a trailing newline is dropped) and prints "
        "its scrypt hash. Exits 2 when the token is empty or too short.",
    )
    actions.add_parser(
        "new-token",
        help="print a fresh random token, then its hash on the next line",
        description="Line 1: the token, to hand to its user. Line 2: its hash, for the tenants file.",
    )


def run_access(args: argparse.Namespace, out: TextIO, err: TextIO, stdin: TextIO | None = None) -> int:
    if args.access_command == "new-token":
        token = secrets.token_urlsafe(32)
        out.write(f"{token}\n{hash_token(token)}\n")
        return EXIT_OK
    token = (stdin or sys.stdin).read().rstrip("\r\n")
    if not token.strip():
        err.write("callmatch access hash-token: no token on standard input\n")
        return EXIT_INVALID
    if token != token.strip():
        err.write("callmatch access hash-token: the token starts or ends with spaces; remove them\n")
        return EXIT_INVALID
    if len(token) < MIN_TOKEN_CHARS:
        err.write(
            f"callmatch access hash-token: the token is shorter than {MIN_TOKEN_CHARS} characters;"
            " make one with `callmatch access new-token`\n"
        )
        return EXIT_INVALID
    out.write(hash_token(token) + "\n")
    return EXIT_OK
