"""The contract documents bundled in docs/contracts/ are the shared contracts, word for word.

The README links the bundled copies (a clone has no ../shared); when the shared
contracts sit beside the checkout, a copy that drifted from them fails here.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, SHARED

DOCUMENTS = ("association-rules.md", "association-rules-v1.1.md", "scenario-v1.md")


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_bundled_contract_is_the_shared_one(name: str) -> None:
    shared = SHARED / "contracts" / name
    if not shared.is_file():
        pytest.skip("../shared/contracts is not beside this checkout")
    assert (ROOT / "docs" / "contracts" / name).read_bytes() == shared.read_bytes(), (
        f"docs/contracts/{name} differs from {shared}: copy the shared one over it"
    )


def test_the_readme_links_only_files_inside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)", readme)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links its docs"
    for target in local:
        assert not target.startswith("../"), target
        assert (ROOT / target).exists(), f"README links {target}, which is not in the repository"
