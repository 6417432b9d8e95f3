"""The declared dependencies are exactly what the package imports.

Rules, read from ``pyproject.toml`` and the import statements of ``src/signals_crm``:

1. Every runtime dependency is imported by the package (nothing declared and never used).
2. A module-level import is a runtime dependency, except in two kinds of subpackage:
   ``signals_crm.testing`` (the shipped kit) may also import the ``testing`` extra, and a
   feature package (``signals_crm.console``, which needs the ``console`` extra to import at
   all) may also import its own extra.
3. No module outside a feature package imports it when loading: ``import signals_crm`` and
   everything but the feature itself work without the extra.
4. An import inside a function (an optional feature, imported when used) is a runtime
   dependency or a requirement of a feature extra (any extra but the development ones).
5. Every requirement of a feature extra is imported by the package.
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
# Subpackages that are an optional feature as a whole: importing them needs the extra.
FEATURE_PACKAGES = {"console": "console"}
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


def feature_imports(path: Path) -> Iterator[str]:
    """The feature packages a module imports when it loads (not inside a function)."""
    tree = ast.parse(path.read_text(), str(path))
    lazy: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lazy.update(id(inner) for inner in ast.walk(node) if inner is not node)
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        found = {
            parts[1]
            for parts in (name.split(".") for name in names)
            if parts[0] == "signals_crm" and len(parts) > 1 and parts[1] in FEATURE_PACKAGES
        }
        yield from sorted(found)


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
    """Rule 2: what a module imports when it loads is installed with what it belongs to."""
    all_extras = extras()
    undeclared = []
    for path, dist, lazy in package_imports():
        allowed = set(runtime())
        if path.parts[0] == "testing":
            allowed |= all_extras.get("testing", set())
        if path.parts[0] in FEATURE_PACKAGES:
            allowed |= all_extras.get(FEATURE_PACKAGES[path.parts[0]], set())
        if not lazy and dist not in allowed:
            undeclared.append(f"{path}: {dist}")
    assert undeclared == []


def test_only_the_feature_itself_loads_a_feature_package():
    """Rule 3: the rest of the package imports a feature package only inside functions."""
    loaded = [
        f"{path.relative_to(PACKAGE)}: {feature}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in FEATURE_PACKAGES
        for feature in feature_imports(path)
    ]
    assert loaded == []
    assert set(FEATURE_PACKAGES.values()) <= set(extras())


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


def test_every_feature_extra_is_used():
    """Rule 5: each requirement of a feature extra is imported somewhere in the package."""
    used = {dist for _, dist, _ in package_imports()}
    unused = {
        f"{name}: {dist}"
        for name, reqs in extras().items()
        if name not in DEVELOPMENT_EXTRAS
        for dist in reqs - used
    }
    assert unused == set()


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
    assert list(feature_imports(source)) == []
    source.write_text(
        "from signals_crm.console import app\nfrom signals_crm import console\n"
        "def later():\n    import signals_crm.console\n"
    )
    assert list(feature_imports(source)) == ["console", "console"]
    assert distribution("jwt") == "pyjwt"
    assert requirement_name("pyjwt[crypto]>=2.8") == "pyjwt"
    assert requirement_name("Tomli_W>=1") == "tomli-w"
