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

from _services import import_or_unavailable
from signals_crm.cli import main
from signals_crm.core.model import Conversation, Visitor
from signals_crm.ledger import SQLiteLedger
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor


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


# ------------------------------------------------------------------------------------------------
# Read-only commands never create or change a ledger


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "c-1", "--settings", "{settings}", "--ledger", "{ledger}"],
        ["stats", "--ledger", "{ledger}"],
        ["dead-letters", "list", "--ledger", "{ledger}"],
        ["dead-letters", "show", "c-1", "--ledger", "{ledger}"],
        ["dead-letters", "retry", "c-1", "--ledger", "{ledger}"],
    ],
)
def test_read_only_commands_never_create_a_ledger(tmp_path, capsys, argv):
    """A mistyped ledger path is an error (exit 1) and no file appears."""
    settings = tmp_path / "s.json"
    settings.write_text("{}")
    typo = tmp_path / "typo.sqlite3"
    args = [a.format(settings=settings, ledger=typo) for a in argv]
    assert main([*args, "--json"]) == 1
    assert not typo.exists()
    assert list(tmp_path.iterdir()) == [settings]
    out = json.loads(capsys.readouterr().out)
    assert out["exit_code"] == 1
    assert "no ledger" in out["error"]


def _closed(cid, email, *, score=3, at=datetime(2026, 11, 20, 12, tzinfo=UTC)):
    return Conversation(id=cid, closed_at=at, lead_score=score, visitor=Visitor(email=email))


def test_explain_and_stats_leave_the_file_unchanged(tmp_path, capsys):
    """Reading a ledger changes no byte of it."""
    path = tmp_path / "l.sqlite3"
    with SQLiteLedger(path) as ledger:
        ledger.schedule(_closed("c-1", "a@b.test"), datetime(2026, 11, 20, 12, tzinfo=UTC))
        ledger.schedule(_closed("c-2", "c@d.test"), datetime(2026, 11, 20, 12, tzinfo=UTC))
        ledger.dead_letter("c-2", "FIELD_CUSTOM_VALIDATION_EXCEPTION: Phone")
    before = path.read_bytes()
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"criteria": "two_stars"}))
    assert main(["stats", "--ledger", str(path), "--json", "--now", "2026-11-21T00:00:00Z"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["syncs"] == {"due": 1, "in_flight": 0, "scheduled": 0, "done": 0, "dead": 1}
    code = main(["explain", "c-1", "--settings", str(settings), "--ledger", str(path), "--json"])
    assert code == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["conversation_id"] == "c-1"
    assert explained["ledger"]["schedule_state"] == "pending"
    assert explained["status"] == "due"
    assert main(["explain", "nope", "--settings", str(settings), "--ledger", str(path)]) == 5
    assert path.read_bytes() == before


# ------------------------------------------------------------------------------------------------
# Credentials


def test_a_bad_url_is_named_not_a_traceback(tmp_path, capsys, monkeypatch):
    """``--url "http://[::1"`` exits 2 naming the option, with no traceback (issue 10.9)."""
    monkeypatch.setenv("SIGNALS_CRM_SALESFORCE_ACCESS_TOKEN", "tok-secret-123")
    settings = tmp_path / "s.json"
    settings.write_text("{}")
    argv = ["run", "--settings", str(settings), "--ledger", str(tmp_path / "l.sqlite3")]
    assert main([*argv, "--crm", "salesforce", "--url", "http://[::1"]) == 2
    err = capsys.readouterr().err
    assert "--url: not a valid URL" in err
    assert "Traceback" not in err
    assert "tok-secret-123" not in err


def test_credentials_come_from_a_file_and_variables_override_it(tmp_path, monkeypatch):
    """File values fill in; a set variable wins; the flow is inferred; nothing leaks in reprs."""
    from signals_crm.cli._credentials import load_credentials

    file = tmp_path / "creds.toml"
    file.write_text(
        '[salesforce]\nclient_id = "app"\nrefresh_token = "rt-from-file"\n'
        'login_url = "https://example.my.test"\n'
    )
    file.chmod(0o600)
    creds = load_credentials(
        "salesforce", file=file, environ={"SIGNALS_CRM_SALESFORCE_REFRESH_TOKEN": "rt-from-env"}
    )
    assert creds.flow == "refresh_token"
    assert creds.get("refresh_token") == "rt-from-env"
    assert creds.get("client_id") == "app"
    assert "rt-from" not in repr(creds)
    hubspot = load_credentials("hubspot", environ={"SIGNALS_CRM_TOKEN": "pat-1"})
    assert hubspot.flow == "static"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SIGNALS_CRM_SALESFORCE_AUTH": "jwt"}, "SIGNALS_CRM_SALESFORCE_USERNAME"),
        ({"SIGNALS_CRM_SALESFORCE_AUTH": "password"}, "unknown salesforce auth"),
        (
            {
                "SIGNALS_CRM_SALESFORCE_ACCESS_TOKEN": "t",
                "SIGNALS_CRM_SALESFORCE_INSTANCE_URL": "ftp://x",
            },
            "SIGNALS_CRM_SALESFORCE_INSTANCE_URL: must be an http(s) URL",
        ),
        ({}, "no salesforce credentials"),
    ],
)
def test_bad_credentials_name_what_to_set(environ, message):
    """Each credentials mistake is a usage error naming the variable."""
    from signals_crm.cli._common import CommandError
    from signals_crm.cli._credentials import load_credentials

    with pytest.raises(CommandError, match=re.escape(message)) as caught:
        load_credentials("salesforce", environ=environ)
    assert caught.value.code == 2


def test_a_shared_credentials_file_is_used_with_a_warning(tmp_path):
    """A credentials file others can read works, and says to chmod it."""
    from signals_crm.cli._credentials import load_credentials

    file = tmp_path / "creds.json"
    file.write_text(json.dumps({"hubspot": {"access_token": "pat-xyz"}}))
    file.chmod(0o644)
    warnings: list[str] = []
    creds = load_credentials("hubspot", file=file, environ={}, warn=warnings.append)
    assert creds.get("access_token") == "pat-xyz"
    assert any("chmod 600" in w for w in warnings)
    assert not any("pat-xyz" in w for w in warnings)


# ------------------------------------------------------------------------------------------------
# Operating against a local Salesforce on loopback


def _settings_file(tmp_path, mappings=None):
    settings = tmp_path / "settings.json"
    lead = [
        {"source": "contact.first_name", "target": "FirstName"},
        {"source": "contact.last_name", "target": "LastName"},
        {"source": "company.name", "target": "Company"},
    ]
    settings.write_text(
        json.dumps(
            {
                "criteria": "two_stars",
                "synchronization_delay": "0s",
                "task_events": ["chat_transcript"],
                "field_mappings": mappings or {"lead": lead},
            }
        )
    )
    return settings


def _envelope(i, *, score=3, closed="2026-11-20T12:00:00+00:00"):
    return json.dumps(
        {
            "conversation_id": f"c-{i}",
            "lead_score": score,
            "closed_at": closed,
            "company": {"name": f"Company {i}"},
            "payload": {
                "event": "conversation-closed",
                "chat": {"transcript": f"Visitor {i}: hello"},
                "contact": {"first_name": f"V{i}", "last_name": "Tester", "email": f"v{i}@x.test"},
            },
        }
    )


@pytest.fixture
def local_salesforce(monkeypatch):
    org = LocalSalesforce()
    with org.serve() as url:
        monkeypatch.setenv("SIGNALS_CRM_SALESFORCE_ACCESS_TOKEN", org.issue_token())
        monkeypatch.setenv("SIGNALS_CRM_SALESFORCE_INSTANCE_URL", url)
        yield org


def test_ingest_run_and_dead_letters_against_a_local_salesforce(tmp_path, capsys, local_salesforce):
    """Webhook lines become due syncs, ``run`` syncs them, a dead letter is retried and syncs."""
    settings = _settings_file(tmp_path)
    ledger = tmp_path / "ledger.sqlite3"
    lines = tmp_path / "hooks.jsonl"
    lines.write_text(
        "\n".join([_envelope(1), _envelope(2), "{not json", _envelope(3, score=1), ""]) + "\n"
    )
    code = main(
        ["ingest", str(lines), "--settings", str(settings), "--ledger", str(ledger), "--json"]
    )
    assert code == 3  # one rejected line
    ingest = json.loads(capsys.readouterr().out)
    assert ingest["scheduled"] == 3
    assert ingest["rejections"] == [{"line": 3, "reason": "line: not valid JSON (JSONDecodeError)"}]

    with SQLiteLedger(ledger) as open_ledger:  # c-2's sync was given up on earlier
        open_ledger.dead_letter("c-2", "UNABLE_TO_LOCK_ROW too many times")
    run = ["run", "--settings", str(settings), "--ledger", str(ledger), "--crm", "salesforce"]
    assert main([*run, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["counts"] == {"created": 1, "skipped": 1}

    assert main(["dead-letters", "list", "--ledger", str(ledger), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["conversation_id"] for d in listed["dead_letters"]] == ["c-2"]
    assert listed["dead_letters"][0]["last_error"] == "UNABLE_TO_LOCK_ROW too many times"

    assert main(["dead-letters", "retry", "c-2", "c-404", "--ledger", str(ledger), "--json"]) == 5
    retried = json.loads(capsys.readouterr().out)
    assert retried == {"retried": ["c-2"], "not_dead": ["c-404"]}
    assert main([*run, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"created": 1}
    door = SalesforceBackdoor(local_salesforce)
    assert [len(door.people_with_email(f"v{i}@x.test")) for i in (1, 2, 3)] == [1, 1, 0]


def test_retry_all_needs_yes_when_not_at_a_terminal(tmp_path, capsys, monkeypatch):
    """``dead-letters retry --all`` refuses to act unasked in a script."""
    ledger = tmp_path / "l.sqlite3"
    with SQLiteLedger(ledger) as open_ledger:
        for i in range(3):
            open_ledger.schedule(_closed(f"c-{i}", f"{i}@x.test"), datetime(2026, 1, 1, tzinfo=UTC))
            open_ledger.dead_letter(f"c-{i}", "bad")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    assert main(["dead-letters", "retry", "--all", "--ledger", str(ledger)]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert main(["dead-letters", "retry", "--all", "--yes", "--ledger", str(ledger), "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)["retried"]) == ["c-0", "c-1", "c-2"]
    with SQLiteLedger(ledger) as open_ledger:
        assert open_ledger.stats().syncs["pending"] == 3


def test_plain_progress_shows_rate_and_eta():
    """Without rich, progress lines still say done/total, rate and ETA."""
    import io

    from signals_crm.cli._progress import Progress

    now = [0.0]
    stream = io.StringIO()
    progress = Progress("backfill", 1000, stream, initial=100, interval=0, clock=lambda: now[0])
    now[0] = 10.0
    progress.update(300)  # 200 done in 10 s since the resume at 100
    assert progress.line() == "backfill: 300/1,000 (30%) 20.0/s ETA 0:00:35"
    assert stream.getvalue().splitlines() == [progress.line()]


def test_backfill_resumes_after_a_kill_without_duplicates(tmp_path, local_salesforce):
    """A backfill killed mid-way and run again ends with one Lead per visitor, and the second
    run starts after the lines the checkpoint says are done."""
    import os
    import signal

    settings = _settings_file(tmp_path)
    ledger = tmp_path / "ledger.sqlite3"
    source = tmp_path / "past.jsonl"
    count = 4000
    source.write_text("".join(_envelope(i) + "\n" for i in range(count)))
    checkpoint = tmp_path / "past.jsonl.checkpoint.json"
    argv = [
        sys.executable, "-m", "signals_crm", "backfill", str(source), "--settings", str(settings),
        "--ledger", str(ledger), "--crm", "salesforce", "--no-progress", "--json",
        "--batch-size", "1000",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    killed_at = None
    while time.monotonic() < deadline and first.poll() is None:
        if checkpoint.exists():
            state = json.loads(checkpoint.read_text())
            if 0 < state["lines_done"] < count:
                first.send_signal(signal.SIGKILL)
                killed_at = state["lines_done"]
                break
        time.sleep(0.005)
    first.communicate(timeout=60)
    assert killed_at is not None, "the backfill finished before it could be killed"
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stderr
    assert f"resuming {source} after line" in second.stderr
    summary = json.loads(second.stdout)
    assert summary["finished"] is True
    assert sum(summary["counts"].values()) == count  # each line counted once over both runs
    door = SalesforceBackdoor(local_salesforce)
    assert all(len(door.people_with_email(f"v{i}@x.test")) == 1 for i in range(count))
    third = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert json.loads(third.stdout)["already_done"] is True


def test_console_command_serves_on_loopback_behind_a_one_time_link(tmp_path):
    """``signals-crm console`` prints a sign-in link that works once, on 127.0.0.1 only."""
    import_or_unavailable("starlette", "console")
    ledger = tmp_path / "l.sqlite3"
    with SQLiteLedger(ledger) as open_ledger:
        open_ledger.schedule(_closed("c-1", "a@b.test"), datetime(2026, 1, 1, tzinfo=UTC))
        open_ledger.dead_letter("c-1", "bad phone")
    process = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "signals_crm",
            "console",
            "--ledger",
            str(ledger),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        link = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and link is None:
            line = process.stderr.readline()
            if not line:
                break
            found = re.search(r"(http://127\.0\.0\.1:\d+)/login\?token=\S+", line)
            link = found.group(0) if found else None
        assert link is not None, "no sign-in link printed"
        base = re.match(r"http://127\.0\.0\.1:\d+", link).group(0)
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/i/default/syncs?view=dead").status_code == 403
            page = client.get(link, follow_redirects=True)
            assert page.status_code == 200
            assert "c-1" in client.get("/i/default/syncs?view=dead").text
        assert httpx.get(link, timeout=10).status_code == 403  # spent
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()


def _connect_in_a_browser(argv, env):
    """Run ``connect`` as a process, open the address it prints as a browser would, and
    return (exit code, stdout, stderr, the address)."""
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        address = None
        for _ in range(50):  # the few lines connect prints before the address
            line = process.stderr.readline()
            assert line, "connect printed no address"
            if "authorize?" in line:
                address = line.strip()
                break
        assert address is not None
        answer = httpx.get(address, follow_redirects=True, timeout=30)
        assert answer.status_code == 200
        assert "Connected" in answer.text
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, stdout, stderr, address


def _ingest_and_run(tmp_path, settings, crm, credentials, env, visitor):
    """``ingest`` one webhook, then ``run --json`` with the saved credentials: the run."""
    ledger = tmp_path / "ledger.sqlite3"
    hooks = tmp_path / "hooks.jsonl"
    hooks.write_text(_envelope(visitor) + "\n")
    base = ["--settings", str(settings), "--ledger", str(ledger)]
    assert subprocess.run(
        [sys.executable, "-m", "signals_crm", "ingest", str(hooks), *base],
        env=env, capture_output=True, timeout=60, check=False,
    ).returncode == 0  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "signals_crm", "run", *base, "--crm", crm,
         "--credentials", str(credentials), "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run


def _free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connect_salesforce_on_loopback_then_run_with_the_saved_refresh_token(tmp_path):
    """``connect`` catches the authorization code on loopback, saves only the refresh token
    (mode 600, never printed), and ``run`` then syncs with it."""
    import os
    import socket

    org = LocalSalesforce()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redirect = f"http://127.0.0.1:{port}/callback"
    org.register_client("app-1", "shh-secret", redirect_uris=(redirect,))
    credentials = tmp_path / "creds.toml"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "SIGNALS_CRM_SALESFORCE_CLIENT_SECRET": "shh-secret",
    }
    with org.serve() as url:
        argv = [
            sys.executable, "-u", "-m", "signals_crm", "connect", "salesforce",
            "--client-id", "app-1", "--login-url", url, "--redirect-uri", redirect,
            "--credentials", str(credentials), "--no-browser", "--timeout", "60", "--json",
        ]  # fmt: skip
        returncode, stdout, stderr, address = _connect_in_a_browser(argv, env)
        assert "/services/oauth2/authorize?" in address
        assert "code_challenge_method=S256" in address
        assert returncode == 0, stderr
        result = json.loads(stdout)
        assert result["connected"] is True
        assert result["instance_url"] == url
        saved = credentials.read_text()
        assert "refresh_token" in saved
        assert "shh-secret" not in saved
        assert credentials.stat().st_mode & 0o777 == 0o600
        refresh = re.search(r'refresh_token = "([^"]+)"', saved).group(1)
        assert refresh not in stdout + stderr

        run = _ingest_and_run(tmp_path, _settings_file(tmp_path), "salesforce", credentials, env, 7)
        assert json.loads(run.stdout)["counts"] == {"created": 1}
        assert refresh not in run.stdout + run.stderr


def test_connect_hubspot_on_loopback_then_run_with_the_saved_refresh_token(tmp_path):
    """``connect hubspot`` installs the app through the portal's authorize page (state and
    PKCE), saves the refresh token and the portal's URL, never the secret, and ``run`` then
    syncs a contact with them."""
    import os

    from signals_crm.testing import LoopbackServer
    from signals_crm.testing.hubspot import LocalHubSpot

    portal = LocalHubSpot(burst_limit=None, search_per_second=None)
    redirect = f"http://127.0.0.1:{_free_port()}/callback"
    portal.add_oauth_client("hs-app", "hs-secret", redirect_uris=(redirect,))
    credentials = tmp_path / "creds.toml"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "SIGNALS_CRM_HUBSPOT_CLIENT_SECRET": "hs-secret",
    }
    with LoopbackServer(portal) as server:
        url = server.url
        argv = [
            sys.executable, "-u", "-m", "signals_crm", "connect", "hubspot",
            "--client-id", "hs-app", "--url", url, "--redirect-uri", redirect,
            "--credentials", str(credentials), "--no-browser", "--timeout", "60", "--json",
        ]  # fmt: skip
        returncode, stdout, stderr, address = _connect_in_a_browser(argv, env)
        assert address.startswith(f"{url}/oauth/authorize?")
        assert "code_challenge_method=S256" in address
        assert returncode == 0, stderr
        result = json.loads(stdout)
        assert result["connected"] is True
        assert result["base_url"] == url
        assert result["account_id"] == str(portal.portal_id)
        saved = credentials.read_text()
        assert "hs-secret" not in saved
        assert credentials.stat().st_mode & 0o777 == 0o600
        refresh = re.search(r'refresh_token = "([^"]+)"', saved).group(1)
        assert refresh not in stdout + stderr

        contact = [{"source": "contact.first_name", "target": "firstname"}]
        settings = _settings_file(tmp_path, {"contact": contact})
        run = _ingest_and_run(tmp_path, settings, "hubspot", credentials, env, 8)
        assert json.loads(run.stdout)["counts"] == {"created": 1}
        assert refresh not in run.stdout + run.stderr
    emails = [c.props.get("email") for c in portal.objects["contacts"].values()]
    assert emails == ["v8@x.test"]


def test_a_rotated_refresh_token_is_written_back_to_its_file(tmp_path):
    """When the CRM rotates the refresh token, the credentials file gets the new one."""
    from signals_crm.adapters import TokenSet
    from signals_crm.cli._context import RotatedTokenStore
    from signals_crm.cli._credentials import load_credentials

    file = tmp_path / "creds.toml"
    file.write_text('[hubspot]\nclient_id = "a"\nclient_secret = "s"\nrefresh_token = "old"\n')
    file.chmod(0o600)
    notes: list[str] = []
    store = RotatedTokenStore(load_credentials("hubspot", file=file, environ={}), notes.append)
    store.save(TokenSet(access_token="at-1", refresh_token="old"))
    assert 'refresh_token = "old"' in file.read_text()
    store.save(TokenSet(access_token="at-2", refresh_token="new-1"))
    assert load_credentials("hubspot", file=file, environ={}).get("refresh_token") == "new-1"
    assert load_credentials("hubspot", file=file, environ={}).get("client_secret") == "s"
    assert not any("new-1" in n or "at-2" in n for n in notes)
    from_env = load_credentials(
        "hubspot",
        environ={
            "SIGNALS_CRM_HUBSPOT_CLIENT_ID": "a",
            "SIGNALS_CRM_HUBSPOT_CLIENT_SECRET": "s",
            "SIGNALS_CRM_HUBSPOT_REFRESH_TOKEN": "old",
        },
    )
    warnings: list[str] = []
    RotatedTokenStore(from_env, warnings.append).save(TokenSet(access_token="x", refresh_token="n"))
    expected = (
        "warning: the CRM rotated the refresh token; SIGNALS_CRM_HUBSPOT_REFRESH_TOKEN now holds "
        "a spent one. Keep credentials in a file (see connect) to have it saved."
    )
    assert warnings == [expected]


def test_sandbox_external_id_option_gives_the_org_the_field(monkeypatch):
    """``signals-crm sandbox salesforce --external-id Lead.Signals_Sync_Key__c`` (repeatable)
    serves an org whose Lead and Task have the custom External ID + Unique field."""
    import signals_crm.testing.salesforce as local_salesforce

    served = []
    monkeypatch.setattr(local_salesforce, "serve", lambda *_a, **kw: served.append(kw["org"]))
    argv = ["sandbox", "salesforce", "--port", "0"]
    argv += [
        "--external-id",
        "Lead.Signals_Sync_Key__c",
        "--external-id",
        "Task.Signals_Sync_Key__c",
    ]
    assert main(argv) == 0
    (org,) = served
    for name in ("Lead", "Task"):
        field = org.data.object(name).field("Signals_Sync_Key__c")
        assert (field.external_id, field.unique, field.custom) == (True, True, True)
