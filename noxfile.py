"""Development sessions: ``nox`` runs them all, in this order; ``nox -l`` lists them.

- ``tests-3.X``: the whole suite on every Python from 3.11 up that this machine has (on PATH,
  or installed by pyenv), under coverage on the Python running nox. A version the machine
  lacks is left out and named in the log, so a machine with only one of them still runs
  green; the interpreter running nox is always among them.
- ``tests_without_extras``: the suite with none of the package's feature extras installed
  (``jwt``, ``sandbox``, ...; the test tools are): the library must import and work without
  them; the tests that need one are skipped there, and only there
  (``SIGNALS_CRM_TESTS_WITHOUT_EXTRAS``).
- ``coverage``: reports the coverage measured above (lines and branches).
- ``docs``: runs the Python code in ``README.md`` and ``docs/*.md`` (``tests/test_docs.py``).
- ``typing``: ``mypy --strict``; ``lint``: ruff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nox

# The default run (the README's test command, and CI) is every session: the suite on each
# Python the machine has (under coverage on the one running nox, so that figure is measured
# once and the other runs stay quick), the suite without feature extras, the coverage report,
# the docs' code, typing and lint.
RUNNING = "{}.{}".format(*sys.version_info[:2])
nox.options.reuse_existing_virtualenvs = True
# The interpreters are found below, and a missing one is never requested: nothing is missing.
nox.options.error_on_missing_interpreters = False
nox.options.download_python = "never"

OLDEST = 3, 11
NEWEST_TRIED = 3, 16
PYTEST = ("-p", "no:cacheprovider")
DOCS_TESTS = "tests/test_docs.py"


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(  # noqa: S603  # an interpreter found on this machine
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            check=True,
            text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None  # e.g. a pyenv shim for a version that is installed but not enabled
    major, minor = out.split()
    return int(major), int(minor)


def _pyenv_pythons(minor: int) -> list[Path]:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = (root / "versions").glob(f"3.{minor}.*/bin/python3.{minor}")

    def patch(path: Path) -> int:
        last = path.parent.parent.name.split(".")[-1]
        return int(last) if last.isdigit() else -1

    return sorted(found, key=patch, reverse=True)


def find_pythons() -> dict[str, str]:
    """Each Python 3.11+ on this machine: ``{"3.12": "/path/to/python3.12", ...}``."""
    found = {"{}.{}".format(*sys.version_info[:2]): sys.executable}
    for minor in range(OLDEST[1], NEWEST_TRIED[1] + 1):
        version = f"3.{minor}"
        if version in found:
            continue
        candidates = [shutil.which(f"python{version}"), *map(str, _pyenv_pythons(minor))]
        for candidate in filter(None, candidates):
            if _version_of(candidate) == (3, minor):
                found[version] = candidate
                break
    return dict(sorted(found.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


PYTHONS = find_pythons()
MISSING = [f"3.{m}" for m in range(OLDEST[1], 14) if f"3.{m}" not in PYTHONS]


DEVELOPMENT_EXTRAS = frozenset({"testing", "tests", "typing", "lint", "dev"})


def test_tools() -> list[str]:
    """The ``tests`` extra's own tools, without the package's feature extras or their deps."""
    extras = tomllib.loads(Path("pyproject.toml").read_text())["project"]["optional-dependencies"]
    features = {
        requirement
        for name, requirements in extras.items()
        if name not in DEVELOPMENT_EXTRAS
        for requirement in requirements
    }
    return [
        requirement
        for requirement in extras["tests"]
        if not requirement.startswith("signals-crm[") and requirement not in features
    ]


def _coverage_env(session: nox.Session) -> dict[str, str]:
    label = "".join(c if c.isalnum() else "-" for c in session.name).strip("-")
    return {"COVERAGE_FILE": str(Path.cwd() / f".coverage.{label}")}


def _run_suite(session: nox.Session, env: dict[str, str], *, coverage: bool = False) -> None:
    """The suite on all cores (pytest-xdist); with ``coverage``, measured into this session's
    data file and with hypothesis's full example count, else with fewer examples."""
    measure = ("--cov", "--cov-report=") if coverage else ()
    # The other runs hunt for what differs there, not for new examples: fewer of them.
    quick = {} if coverage else {"SIGNALS_CRM_HYPOTHESIS": "quick"}
    session.run(
        "pytest",
        *PYTEST,
        "--numprocesses=auto",
        *measure,
        f"--ignore={DOCS_TESTS}",
        *session.posargs,
        env={**_coverage_env(session), **env} if coverage else {**quick, **env},
    )


@nox.session
@nox.parametrize("python", [nox.param(path, id=version) for version, path in PYTHONS.items()])
def tests(session: nox.Session) -> None:
    """The whole suite (under coverage on the Python running nox; the docs' code runs in the
    ``docs`` session)."""
    if MISSING:
        session.log(f"not on this machine, so not tested: Python {', '.join(MISSING)}")
    session.install(".[tests]")
    _run_suite(session, {}, coverage=session.python == PYTHONS[RUNNING])


@nox.session
def tests_without_extras(session: nox.Session) -> None:
    """The suite with no feature extra: the runtime, the ``testing`` extra, the test tools."""
    session.install(".[testing]", *test_tools())
    _run_suite(session, {"SIGNALS_CRM_TESTS_WITHOUT_EXTRAS": "1"})


@nox.session
def coverage(session: nox.Session) -> None:
    """Combine the test sessions' coverage and report it (lines and branches)."""
    session.install("coverage[toml]>=7.6")
    data = sorted(Path.cwd().glob(".coverage.tests*"))
    if not data:
        session.error("no coverage data: run the tests sessions first")
    session.run("coverage", "combine", "--keep", *map(str, data))
    session.run("coverage", "report", "--skip-covered", "--sort=cover")


@nox.session
def docs(session: nox.Session) -> None:
    """Run every Python block of README.md and docs/*.md (a block may opt out, with a reason)."""
    session.install(".[tests]")
    session.run("pytest", *PYTEST, DOCS_TESTS, *session.posargs)


@nox.session
def typing(session: nox.Session) -> None:
    """``mypy --strict`` over the package, the typing tests and this file."""
    session.install(".[typing]")
    session.run("mypy", "--strict", "src", "tests/typing", "noxfile.py")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    paths = ("src", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
