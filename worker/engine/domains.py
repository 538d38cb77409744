"""Rule M10: how M6, V2 and M7 compare domains (`exact`, `clean`, `registrable`).

CRMs store websites as URLs (`https://www.acme.com/about`), so `clean` is the
default: both sides are cleaned the same way before they compare. `registrable`
reduces a cleaned domain to its registrable domain by the Public Suffix List
(ICANN section only), from the snapshot bundled with tldextract: never fetched,
so a decision does not depend on the network or the day.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from worker.core.model import DomainMatch

if TYPE_CHECKING:
    import tldextract

_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*://")
_CUT = re.compile(r"[/?#]")


@cache
def _extractor() -> tldextract.TLDExtract:
    """The bundled snapshot alone: no suffix-list URL, no cache directory (so no fetch, no file).

    Imported on first use: it costs 40 ms at start-up, and only `registrable` needs it.
    """
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def clean(value: str) -> str | None:
    """M10 `clean`: trim, lower-case, scheme, path/query/fragment, user info, port, dots, one `www.`."""
    text = value.strip().lower()
    text = _SCHEME.sub("", text, count=1)
    text = _CUT.split(text, maxsplit=1)[0]
    text = text.rsplit("@", 1)[-1]
    text = text.split(":", 1)[0]
    text = text.rstrip(".")
    if text.startswith("www."):
        text = text[4:]
    return text or None


@lru_cache(maxsize=65536)
def domain_key(value: str | None, mode: DomainMatch) -> str | None:
    """What a domain (an account's, a policy list's, an email's part after `@`) compares as."""
    if value is None:
        return None
    if mode is DomainMatch.EXACT:
        return value.lower() or None
    cleaned = clean(value)
    if cleaned is None or mode is DomainMatch.CLEAN:
        return cleaned
    result = _extractor()(cleaned, include_psl_private_domains=False)
    return result.top_domain_under_public_suffix or cleaned


def email_domain_key(email: str | None, mode: DomainMatch) -> str | None:
    """The domain of an email (the part after its last `@`), compared as M10 says; None without `@`."""
    if email is None or "@" not in email:
        return None
    return domain_key(email.rsplit("@", 1)[1], mode)


@lru_cache(maxsize=4096)
def domain_keys(values: tuple[str, ...], mode: DomainMatch) -> frozenset[str]:
    """The keys of a list of domains (empty ones dropped); lists are the policy's and accounts' tuples."""
    return frozenset(key for key in (domain_key(v, mode) for v in values) if key)
