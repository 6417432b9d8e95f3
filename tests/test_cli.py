"""The ``signals-crm`` command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pytest

from signals_crm.cli import main
from signals_crm.core.model import Conversation, Visitor
from signals_crm.ledger import SQLiteLedger


def test_demo_runs_the_main_job(capsys):
    """The demo syncs against the local Salesforce and explains a visitor that was not synced."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "c-1001: created" in out
    assert "c-1002: updated" in out
    assert "c-1003: attached_to_contact" in out
    assert "c-1004: skipped - criteria_not_met" in out
    assert "Manual sync of c-1004 (below the criteria): created" in out
    assert "[delay_pending]" in out


def test_python_dash_m_runs(tmp_path):
    """``python -m signals_crm validate`` works as a real process."""
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"criteria": "one_star"}))
    done = subprocess.run(
        [sys.executable, "-m", "signals_crm", "validate", str(settings)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout


def test_validate_lists_every_problem(tmp_path, capsys):
    """An invalid settings file exits 1 and names each problem's path."""
    settings = tmp_path / "s.toml"
    settings.write_text('criteria = "four_stars"\nsynchronization_delay = -5\nunknown_key = 1\n')
    assert main(["validate", str(settings)]) == 1
    err = capsys.readouterr().err
    assert "criteria" in err
    assert "synchronization_delay" in err
    assert "unknown_key" in err


def test_explain_reads_the_ledger_offline(tmp_path, capsys):
    """``explain`` answers from the ledger without any CRM."""
    ledger_path = tmp_path / "l.sqlite3"
    closed = datetime(2026, 11, 20, 12, tzinfo=UTC)
    with SQLiteLedger(ledger_path) as ledger:
        ledger.schedule(
            Conversation(
                id="c-9", closed_at=closed, lead_score=0, visitor=Visitor(email="x@y.test")
            ),
            closed,
        )
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"criteria": "two_stars"}))
    code = main(
        [
            "explain",
            "c-9",
            "--settings",
            str(settings),
            "--ledger",
            str(ledger_path),
            "--now",
            "2026-11-20T13:00:00+00:00",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "criteria_not_met" in out
    assert "scheduled for 2026-11-20T12:00:00+00:00" in out


def test_sync_refuses_without_token(tmp_path, capsys, monkeypatch):
    """``sync`` needs the token in the environment, never on the command line."""
    monkeypatch.delenv("SIGNALS_CRM_TOKEN", raising=False)
    settings = tmp_path / "s.json"
    settings.write_text("{}")
    code = main(
        [
            "sync",
            "--settings",
            str(settings),
            "--ledger",
            str(tmp_path / "l"),
            "--crm",
            "salesforce",
            "--url",
            "http://127.0.0.1:9",
        ]
    )
    assert code == 2
    assert "SIGNALS_CRM_TOKEN" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("crm", "path", "token_line"),
    [
        ("salesforce", "/services/data/v61.0/sobjects/Lead/describe", "access token: "),
        ("hubspot", "/crm/v3/properties/contacts", "bearer token: "),
    ],
)
def test_sandbox_command_serves_on_loopback(crm, path, token_line):
    """``signals-crm sandbox <crm> --port 0`` serves a local CRM any HTTP client can use."""
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "signals_crm", "sandbox", crm, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(token_line in ln for ln in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        url = re.search(r"http://127\.0\.0\.1:\d+", text).group(0)
        token = re.search(re.escape(token_line) + r"([^\s)]+)", text).group(1)
        response = httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 200
        assert response.json()
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()
