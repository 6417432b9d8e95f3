"""Development sessions: ``nox`` runs them all (tests, typing, lint)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "typing", "lint"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite (unit, properties, adapters, conformance, engine)."""
    session.install("-e", ".[tests]")
    session.run("pytest", *session.posargs)


@nox.session
def typing(session: nox.Session) -> None:
    """``mypy --strict`` over the package, the typing tests and this file."""
    session.install("-e", ".[typing]")
    session.run("mypy", "--strict", "src", "tests/typing", "noxfile.py")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "src", "tests", "benchmarks", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "examples", "noxfile.py")
