"""The code's layout by role holds: no import cycles, and adapters stay below the pipeline.

The graph is built from the source (every `import`, including those inside functions),
not from what happens to be imported at run time, so a cycle hidden in a rarely-run
function still fails here. Imports under `if TYPE_CHECKING:` are left out: they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("worker", "adapters")
# What adapters may not import: they are called by the pipeline and the operations, not the reverse.
ADAPTERS_MAY_NOT_IMPORT = ("worker.pipeline", "worker.ops", "worker.dev")


def module_name(root: Path, path: Path) -> str:
    """`worker/ops/cli.py` -> `worker.ops.cli`; a package's `__init__.py` is the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of `if TYPE_CHECKING:` (their `else:` does run)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """The project modules `name` imports; `from a import b` counts as `a.b` when that is a module."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` where only `a.b` is ours (or an attribute path): the longest known prefix.
            parts = target.split(".")
            while parts and ".".join(parts) not in known:
                parts.pop()
            if parts:
                found.add(".".join(parts))
    found.discard(name)
    return found


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports, for every module under `packages` in `root`."""
    files = {module_name(root, p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    known = set(files)
    return {
        name: imports_of(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", known)
        for name, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """`adapters.x -> worker.pipeline.y` and the like, one line each."""
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.split(".")[0] == "adapters"
        for target in targets
        if any(target == banned or target.startswith(banned + ".") for banned in ADAPTERS_MAY_NOT_IMPORT)
    )


def test_no_import_cycles() -> None:
    graph = import_graph(ROOT)
    assert "worker.ops.cli" in graph and "adapters.crm.salesforce.adapter" in graph  # the walk found the code
    assert cycles(graph) == []


def test_adapters_do_not_import_the_pipeline_operations_or_dev_tools() -> None:
    assert forbidden_imports(import_graph(ROOT)) == []


def test_the_layout_has_one_package_per_role() -> None:
    """The top of `worker/` is packages only (plus `__init__`): a new module goes into its role."""
    top = sorted(
        p.name for p in (ROOT / "worker").iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()
    )
    assert top == ["__init__.py", "config", "core", "dev", "engine", "ingest", "ops", "pipeline"]


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                "worker/a.py": "def f() -> None:\n    from worker import b\n",
                "worker/b.py": "import worker.a\n",
            },
            [["worker.a", "worker.b"]],
            id="function-level import closes a cycle",
        ),
        pytest.param(
            {
                "worker/p/__init__.py": "",
                "worker/p/a.py": "from . import b\n",
                "worker/p/b.py": "from .a import x\n",
            },
            [["worker.p.a", "worker.p.b"]],
            id="relative imports",
        ),
        pytest.param(
            {
                "worker/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from worker.b import B\n",
                "worker/b.py": "from worker.a import A\n",
            },
            [],
            id="TYPE_CHECKING import ignored",
        ),
    ],
)
def test_the_cycle_finder_sees_what_it_should(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    _write(tmp_path, {"worker/__init__.py": "", **files})
    assert cycles(import_graph(tmp_path, ["worker"])) == expected


def test_the_adapter_rule_catches_an_adapter_calling_up(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "worker/__init__.py": "",
            "worker/pipeline/__init__.py": "",
            "worker/pipeline/tasks.py": "",
            "worker/core/__init__.py": "",
            "worker/core/model.py": "",
            "adapters/__init__.py": "",
            "adapters/x.py": "from worker.core.model import M\n\ndef f() -> None:\n    from worker.pipeline import tasks\n",
        },
    )
    assert forbidden_imports(import_graph(tmp_path)) == ["adapters.x -> worker.pipeline.tasks"]
