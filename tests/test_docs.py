"""The README and docs/ stand on their own in a clone: every relative link resolves inside it.

A clone has no `../shared` beside it, so a link out of the repository is a broken link for
every reader. Each relative link of README.md and docs/**/*.md must name a file or folder of
the repository, and an anchor into a markdown page must name one of its headings (GitHub's
slugs). The commands shown in the docs' code blocks must exist in the CLI, with their flags,
so that an operator copying one never meets "invalid choice".
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from worker.ops.cli import build_parser

DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
SCHEMES = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_HTML_ANCHOR = re.compile(r"""<a\s+(?:name|id)=["']([^"']+)["']""")
_COMMAND = re.compile(r"^\s*(?:\$\s+)?(?:\S*/)?callmatch\s+(.*)$")


@dataclass(frozen=True)
class Link:
    line: int
    target: str


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines outside fenced code blocks, with their numbers: a link inside code is an example."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)[0] * 3
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            yield number, line


def _code_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines inside fenced code blocks."""
    prose = {number for number, _ in _prose_lines(text)}
    for number, line in enumerate(text.splitlines(), 1):
        if number not in prose and not _FENCE.match(line):
            yield number, line


def markdown_links(text: str) -> list[Link]:
    """Inline links, images and reference definitions outside code, as written."""
    links: list[Link] = []
    for number, line in _prose_lines(text):
        reference = _REFERENCE.match(line)
        if reference:
            links.append(Link(number, reference.group(1).strip("<>")))
            continue
        for match in _INLINE.finditer(_CODE_SPAN.sub("", line)):
            links.append(Link(number, match.group(1).strip("<>")))
    return links


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, punctuation dropped, spaces as dashes."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs (repeats numbered as GitHub does) and HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _number, line in _prose_lines(text):
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(_HTML_ANCHOR.findall(line))
    return found


def broken_links(document: Path, text: str | None = None) -> list[str]:
    """What is wrong with each relative link of one page (its text, else the file's), as `file:line: target: why`."""
    problems: list[str] = []
    name = document.relative_to(ROOT)
    page = document.read_text(encoding="utf-8") if text is None else text
    for link in markdown_links(page):
        if SCHEMES.match(link.target) or link.target.startswith("//"):
            continue
        path, _, anchor = link.target.partition("#")

        def problem(why: str, link: Link = link) -> None:
            problems.append(f"{name}:{link.line}: {link.target}: {why}")

        if path.startswith("/"):
            problem("an absolute path; link relative to this page")
            continue
        if not path:
            if anchor not in anchors(page):
                problem(f"no heading of this page has the anchor #{anchor}")
            continue
        target = (document.parent / path).resolve()
        if not target.is_relative_to(ROOT):
            problem("points outside the repository (a clone has nothing there)")
            continue
        if not target.exists():
            problem(f"{target.relative_to(ROOT)} does not exist")
            continue
        if anchor and target.suffix == ".md" and anchor not in anchors(target.read_text(encoding="utf-8")):
            problem(f"no heading of {target.relative_to(ROOT)} has the anchor #{anchor}")
    return problems


def test_the_link_reader_skips_code_and_reads_every_link_form() -> None:
    text = "\n".join(
        [
            "See [the rules](docs/association-rules.md#m-matching) and ![shot](docs/a.png).",
            'Code `[not](a-link.md)` is skipped, [`code` text](b.md "title") is read.',
            "```sh",
            "echo [nor](this.md)",
            "```",
            "[ref]: ../outside.md",
            "A [link with (parens)](c_(d).md) and <https://example.com>.",
        ]
    )
    assert markdown_links(text) == [
        Link(1, "docs/association-rules.md#m-matching"),
        Link(1, "docs/a.png"),
        Link(2, "b.md"),
        Link(6, "../outside.md"),
        Link(7, "c_(d).md"),
    ]


def test_slugs_follow_github() -> None:
    page = "# Title\n## Replaying a call: `callmatch decide`\n### S: choosing (`policy.opportunity_strategy`)\n## Title\n"
    assert anchors(page) == {
        "title",
        "replaying-a-call-callmatch-decide",
        "s-choosing-policyopportunity_strategy",
        "title-1",
    }


def test_a_link_out_of_the_repository_or_to_nothing_is_reported() -> None:
    page = "\n".join(
        [
            "[a](../../shared/contracts/scenario-v1.md) [b](missing.md) [c](operations.md#no-such-part)",
            "[d](operations.md#backups-of-redis) [e](/etc/passwd) [f](#here) [g](#not-here) [h](schemas/)",
            "## Here",
        ]
    )
    problems = broken_links(ROOT / "docs" / "probe.md", page)
    assert [p.split(": ", 2)[1] for p in problems] == [
        "../../shared/contracts/scenario-v1.md",
        "missing.md",
        "operations.md#no-such-part",
        "/etc/passwd",
        "#not-here",
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(document: Path) -> None:
    assert broken_links(document) == []


def test_the_readme_links_the_docs_a_user_needs() -> None:
    targets = {link.target.partition("#")[0] for link in markdown_links((ROOT / "README.md").read_text())}
    for page in ("docs/association-rules.md", "docs/scenario-format.md", "docs/operations.md"):
        assert page in targets, f"README.md does not link {page}"
        assert (ROOT / page).is_file()


def test_the_rules_page_covers_every_rule_group_of_the_contracts() -> None:
    """docs/association-rules.md is the rules for a reader: each rule id of the contracts appears in it."""
    page = (ROOT / "docs" / "association-rules.md").read_text(encoding="utf-8")
    contracts = "".join(
        (ROOT / "docs" / "contracts" / name).read_text(encoding="utf-8")
        for name in ("association-rules.md", "association-rules-v1.1.md")
    )
    ids = set(re.findall(r"\*\*([MACSVRWXUL]\d+(?:\.\d+)?)\b", contracts))
    assert len(ids) > 30, ids
    missing = sorted(rule for rule in ids if not re.search(rf"\b{re.escape(rule)}\b", page))
    assert missing == []


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def documented_commands() -> Iterator[tuple[str, str]]:
    """`(where, command line)` for every `callmatch ...` line in the docs' code blocks."""
    for document in DOCUMENTS:
        for number, line in _code_lines(document.read_text(encoding="utf-8")):
            command = _COMMAND.match(line)
            if command:
                words = re.split(r"\s#", command.group(1), maxsplit=1)[0]
                yield f"{document.relative_to(ROOT)}:{number}", words


def command_problem(words: str) -> str | None:
    """Why `callmatch WORDS` would be refused by the CLI (unknown command, action or flag), else None."""
    parser = build_parser()
    tokens = words.split()
    chain = ["callmatch"]
    for token in tokens:
        choices = _subcommands(parser)
        if not choices or token.startswith("-"):
            break
        if token not in choices:
            return f"{' '.join(chain)} has no command {token!r} (it has: {', '.join(sorted(choices))})"
        chain.append(token)
        parser = choices[token]
    known = parser._option_string_actions
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", words):
        if flag not in known:
            return f"{' '.join(chain)} has no option {flag}"
    return None


def test_the_command_checker_refuses_unknown_commands_and_flags() -> None:
    assert command_problem("dead-letters replay --all --tenant acme") is None
    assert command_problem("decide - < my-call.json") is None
    assert "no command 'flush'" in (command_problem("dead-letters flush") or "")
    assert "no option --everything" in (command_problem("dead-letters replay --everything") or "")


def test_every_documented_command_exists_with_its_flags() -> None:
    commands = list(documented_commands())
    assert len(commands) > 20, commands
    problems = [f"{where}: {problem}" for where, words in commands if (problem := command_problem(words))]
    assert problems == []
