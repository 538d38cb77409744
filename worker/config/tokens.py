"""Access tokens as the tenants file keeps them: salted scrypt hashes, never the tokens themselves.

The format is the PHC string format's scrypt entry without its leading `$`, so one line
carries everything needed to check a token again:

    scrypt$ln=15,r=8,p=1$<salt>$<hash>

`ln` is log2 of scrypt's cost N, `r` the block size, `p` the parallelism; salt (16 bytes) and
hash (32 bytes) are standard base64 without padding. `callmatch access hash-token` makes one
(hashlib.scrypt, Python's own OpenSSL binding). A token read from a secret (`*_env`/`*_file`)
is kept as its SHA-256 digest only. Every check ends in `hmac.compare_digest` on digests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field, replace
from typing import Literal

SCHEME = "scrypt"
DEFAULT_LN = 15  # N = 32768: ~0.1 s and 32 MiB per check; verified tokens are then cached per process
SALT_BYTES = 16
HASH_BYTES = 32
MIN_TOKEN_CHARS = 16
# Bounds on what a file may ask for: a weaker hash is refused, a huge one would stall every sign-in.
LN_RANGE = (14, 20)
R_RANGE = (1, 32)
P_RANGE = (1, 16)
FORMAT = "scrypt$ln=15,r=8,p=1$SALT$HASH"

Role = Literal["viewer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "admin")

_HASH = re.compile(
    r"^scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,2}),p=(?P<p>\d{1,2})\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)$"
)


class TokenHashError(ValueError):
    """A string that is not a usable token hash; the message says what to do instead."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def digest(token: str) -> bytes:
    """SHA-256 of a token: what is compared for a token read from a secret, and the caches' key."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class TokenHash:
    """A parsed `scrypt$...` line."""

    ln: int
    r: int
    p: int
    salt: bytes
    hash: bytes

    @classmethod
    def parse(cls, text: str) -> TokenHash:
        """The hash in `text`, or TokenHashError saying why it is not one (never echoing the text)."""
        match = _HASH.match(text.strip())
        if match is None:
            raise TokenHashError(
                f"not a token hash (expected {FORMAT}); a token is never written in the file:"
                " make its hash with `callmatch access hash-token`, or read the token with *_env / *_file"
            )
        ln, r, p = int(match["ln"]), int(match["r"]), int(match["p"])
        for name, value, (low, high) in (("ln", ln, LN_RANGE), ("r", r, R_RANGE), ("p", p, P_RANGE)):
            if not low <= value <= high:
                raise TokenHashError(f"token hash: {name}={value} is outside {low}..{high}")
        try:
            salt, hashed = _unb64(match["salt"]), _unb64(match["hash"])
        except (binascii.Error, ValueError):
            raise TokenHashError("token hash: salt or hash is not base64") from None
        if len(salt) < SALT_BYTES or len(hashed) != HASH_BYTES:
            raise TokenHashError(
                f"token hash: expected a salt of at least {SALT_BYTES} bytes and a hash of {HASH_BYTES}"
            )
        return cls(ln=ln, r=r, p=p, salt=salt, hash=hashed)

    def derive(self, token: str) -> bytes:
        n = 2**self.ln
        return hashlib.scrypt(
            token.encode("utf-8", "surrogatepass"),
            salt=self.salt,
            n=n,
            r=self.r,
            p=self.p,
            maxmem=129 * self.r * n * self.p + 1024 * 1024,
            dklen=len(self.hash),
        )

    def matches(self, token: str) -> bool:
        return hmac.compare_digest(self.derive(token), self.hash)

    def text(self) -> str:
        return f"{SCHEME}$ln={self.ln},r={self.r},p={self.p}${_b64(self.salt)}${_b64(self.hash)}"


def hash_token(token: str, ln: int = DEFAULT_LN, salt: bytes | None = None) -> str:
    """The `scrypt$...` line for `token`, with a fresh random salt."""
    shape = TokenHash(ln=ln, r=8, p=1, salt=salt or os.urandom(SALT_BYTES), hash=b"\0" * HASH_BYTES)
    return replace(shape, hash=shape.derive(token)).text()


@dataclass(frozen=True)
class Credential:
    """One token that may use a tenant's operations: who holds it, what it may do, how it is checked.

    Exactly one of `token_hash` (from the file) and `sha256` (of a token read from a secret) is set.
    `fingerprint` names the credential without revealing it, so a console session ends when its
    credential leaves the file.
    """

    name: str
    role: Role
    token_hash: TokenHash | None = field(default=None, repr=False)
    sha256: bytes | None = field(default=None, repr=False)
    fingerprint: str = field(default="", compare=False)

    @classmethod
    def hashed(cls, name: str, role: Role, text: str) -> Credential:
        parsed = TokenHash.parse(text)
        return cls(name, role, token_hash=parsed, fingerprint=hashlib.sha256(parsed.hash).hexdigest()[:16])

    @classmethod
    def secret(cls, name: str, role: Role, token: str) -> Credential:
        """A token read from the environment or a secret file; a `scrypt$...` value there is a hash."""
        if token.startswith(SCHEME + "$"):
            return cls.hashed(name, role, token)
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenHashError(
                f"the token is shorter than {MIN_TOKEN_CHARS} characters: use `callmatch access new-token`"
            )
        sha = digest(token)
        return cls(name, role, sha256=sha, fingerprint=hashlib.sha256(sha).hexdigest()[:16])

    def matches(self, token: str) -> bool:
        """Constant-time on digests: scrypt's output for a hash, SHA-256 for a secret's token."""
        if self.token_hash is not None:
            return self.token_hash.matches(token)
        assert self.sha256 is not None
        return hmac.compare_digest(digest(token), self.sha256)


@dataclass(frozen=True)
class Access:
    """A tenant's tokens: viewers read its calls, admins change them too. None: only the global admin."""

    credentials: tuple[Credential, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.credentials)
