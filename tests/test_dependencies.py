"""The declared dependencies are exactly what the package imports.

Rules, read from ``pyproject.toml`` and the import statements of ``src/signals_crm``:

1. Every runtime dependency is imported by the package (nothing declared and never used).
2. A module-level import outside ``signals_crm.testing`` is a runtime dependency.
3. A module-level import inside ``signals_crm.testing`` (the shipped kit) is a runtime
   dependency or a requirement of the ``testing`` extra; likewise inside any subpackage named
   after a feature extra (``signals_crm.console`` and the ``console`` extra).
4. An import inside a function (an optional feature, imported when used) is a runtime
   dependency or a requirement of a feature extra (any extra but the development ones).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "src" / "signals_crm"
DEVELOPMENT_EXTRAS = {"tests", "typing", "lint", "dev"}
# Where a distribution's import name differs from its name (lower case, dashes).
IMPORT_NAMES = {
    "jwt": "pyjwt",
    "tomli_w": "tomli-w",
    "pydantic_core": "pydantic-core",
    "psycopg_pool": "psycopg-pool",
    "yaml": "pyyaml",
    "multipart": "python-multipart",
}


def distribution(module: str) -> str:
    return IMPORT_NAMES.get(module, module.replace("_", "-").lower())


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    table = data["project"]
    assert isinstance(table, dict)
    return table


def runtime() -> set[str]:
    return {requirement_name(r) for r in project()["dependencies"]}  # type: ignore[attr-defined]


def extras() -> dict[str, set[str]]:
    table = project()["optional-dependencies"]
    assert isinstance(table, dict)
    return {
        name: {requirement_name(r) for r in reqs} - {"signals-crm"} for name, reqs in table.items()
    }


def imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(top-level third-party module, imported lazily inside a function) for each import."""
    tree = ast.parse(path.read_text(), str(path))
    lazy_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lazy_nodes.update(id(inner) for inner in ast.walk(node) if inner is not node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in {"signals_crm", "__future__"}:
                continue
            yield top, id(node) in lazy_nodes


def package_imports() -> list[tuple[Path, str, bool]]:
    return [
        (path.relative_to(PACKAGE), distribution(module), lazy)
        for path in sorted(PACKAGE.rglob("*.py"))
        for module, lazy in imports(path)
    ]


def test_every_runtime_dependency_is_imported():
    """Rule 1: no runtime dependency is declared and never imported."""
    used = {dist for _, dist, _ in package_imports()}
    assert runtime() - used == set()


def test_module_level_imports_are_declared_where_they_load():
    """Rules 2 and 3: what a module imports when it loads is installed with the package."""
    by_extra = extras()
    undeclared = []
    for path, dist, lazy in package_imports():
        own = path.parts[0] if len(path.parts) > 1 else ""
        feature = by_extra.get(own, set()) if own not in DEVELOPMENT_EXTRAS else set()
        allowed = runtime() | feature
        if not lazy and dist not in allowed:
            undeclared.append(f"{path}: {dist}")
    assert undeclared == []


def test_lazy_imports_belong_to_a_feature_extra():
    """Rule 4: an import made when a feature is used is declared by that feature's extra."""
    features = set().union(
        *(reqs for name, reqs in extras().items() if name not in DEVELOPMENT_EXTRAS)
    )
    undeclared = [
        f"{path}: {dist}"
        for path, dist, lazy in package_imports()
        if lazy and dist not in runtime() | features
    ]
    assert undeclared == []


def test_the_checker_sees_lazy_and_module_level_imports(tmp_path):
    """The import reader tells an import inside a function from one at module level."""
    source = tmp_path / "sample.py"
    source.write_text(
        "import attrs\nimport os\nfrom httpx import Client\nfrom . import sibling\n"
        "def load():\n    import jwt\n    from psycopg import connect\n"
    )
    assert sorted(imports(source)) == [
        ("attrs", False),
        ("httpx", False),
        ("jwt", True),
        ("psycopg", True),
    ]
    assert distribution("jwt") == "pyjwt"
    assert requirement_name("pyjwt[crypto]>=2.8") == "pyjwt"
    assert requirement_name("Tomli_W>=1") == "tomli-w"
