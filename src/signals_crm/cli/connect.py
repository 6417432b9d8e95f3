"""``connect``: an OAuth authorization-code connect on this machine, for a first try.

What it does, in order:

1. Listens on the loopback redirect URI (default ``http://localhost:1717/OauthRedirect``; only
   ``localhost``, ``127.0.0.1`` or ``[::1]`` are accepted) for exactly one answer.
2. Prints the CRM's authorize URL (and opens it in the browser unless ``--no-browser``), with
   a random ``state`` and, for Salesforce, a PKCE ``S256`` challenge.
3. Takes the redirect's ``code`` (refusing a wrong ``state`` or an ``error``), exchanges it at
   the token endpoint, and reads one page of the CRM's users to prove the token works.
4. Saves the refresh token (and the client id, URLs and flow) into the ``[salesforce]`` or
   ``[hubspot]`` table of the credentials file (``--credentials``, else
   ``$SIGNALS_CRM_CREDENTIALS``, else ``./signals-crm-credentials.toml``), written atomically
   with mode 600; other tables are kept. The client secret is read from
   ``SIGNALS_CRM_<CRM>_CLIENT_SECRET`` or that file and is **not** copied into it. No token is
   ever printed.

Later ``run``/``backfill``/``preflight`` use those credentials; a refresh token the CRM
rotates is written back to the same file.
"""

from __future__ import annotations

import argparse
import hmac
import http.server
import os
import socket
import threading
import tomllib
import webbrowser
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import httpx
import tomli_w

from signals_crm.cli._common import CommandError, ExitCode, Output, add_json_flag, positive_float
from signals_crm.cli._credentials import CREDENTIAL_FILE_VARIABLE, variable
from signals_crm.connect import (
    HUBSPOT_AUTHORIZE_URL,
    HUBSPOT_SCOPES,
    SALESFORCE_SCOPES,
    Connection,
    Connector,
    HubSpotConnect,
    SalesforceConnect,
)
from signals_crm.exceptions import AuthenticationError, ConfigurationError, SignalsCRMError

__all__ = ["register", "save_credentials"]

DEFAULT_REDIRECT = "http://localhost:1717/OauthRedirect"
DEFAULT_FILE = "signals-crm-credentials.toml"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_SF_LOGIN = "https://login.salesforce.com"
_HS_API = "https://api.hubapi.com"


def _check_url(value: str, name: str) -> httpx.URL:
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise CommandError(f"{name}: not a valid URL", ExitCode.USAGE) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise CommandError(f"{name}: must be an http(s) URL with a host", ExitCode.USAGE)
    return url


def save_credentials(path: Path, crm: str, values: dict[str, str]) -> None:
    """Merge ``values`` into the ``[crm]`` table of the TOML file at ``path`` (mode 600,
    written atomically; other tables and keys are kept)."""
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise CommandError(
                f"{os.fspath(path)!r} exists and is not a TOML credentials file; "
                "name another with --credentials",
                ExitCode.USAGE,
            ) from None
    table = data.get(crm)
    data[crm] = {**(table if isinstance(table, dict) else {}), **values}
    tmp = path.with_name(path.name + ".tmp")
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        tomli_w.dump(data, stream)
        stream.flush()
        os.fsync(stream.fileno())
    tmp.replace(path)
    path.chmod(0o600)


class _Callback:
    """One redirect caught on the loopback URI (then the server stops); the library's
    ``finish`` checks it again and exchanges its code."""

    def __init__(self, redirect: httpx.URL, state: str) -> None:
        self.redirect = redirect
        self.state = state
        self.params: dict[str, str] = {}
        self.done = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                split = urlsplit(self.path)
                if split.path != outer.redirect.path:
                    self.send_error(404)
                    return
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                if not hmac.compare_digest(query.get("state", "").encode(), outer.state.encode()):
                    # Not this connect's answer: refused, and the command keeps waiting.
                    self._answer(400, "This answer does not belong to this connect.")
                    return
                outer.params = query
                if "error" in query:
                    self._answer(400, "The CRM refused the connection. See the terminal.")
                else:
                    self._answer(200, "Connected. You can close this tab.")
                outer.done.set()

            def _answer(self, status: int, text: str) -> None:
                body = f"<!DOCTYPE html><title>signals-crm connect</title><p>{text}</p>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:  # quiet: the terminal is the command's
                return

        host = "::1" if redirect.host in ("::1", "[::1]") else "127.0.0.1"

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if host == "::1" else socket.AF_INET
            daemon_threads = True

        try:
            self.server = Server((host, redirect.port or 80), Handler)
        except OSError as error:
            raise CommandError(
                f"cannot listen on {redirect} ({error.strerror}); pass another --redirect-uri "
                "registered with the app",
                ExitCode.ERROR,
            ) from None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _secret(crm: str, args: argparse.Namespace) -> str | None:
    from signals_crm.cli._credentials import load_credentials

    env = os.environ.get(variable(crm, "client_secret"))
    if env:
        return env
    path = _credentials_path(args)
    if path.exists():
        try:
            return load_credentials(crm, file=path, environ={}).get("client_secret")
        except CommandError:
            return None
    return None


def _credentials_path(args: argparse.Namespace) -> Path:
    if args.credentials is not None:
        return Path(args.credentials)
    if os.environ.get(CREDENTIAL_FILE_VARIABLE):
        return Path(os.environ[CREDENTIAL_FILE_VARIABLE])
    return Path(DEFAULT_FILE)


def _connector(
    args: argparse.Namespace, client_id: str, secret: str | None, redirect: str
) -> Connector:
    """The library's connect flow for the command's options (``signals_crm.connect``)."""
    from signals_crm.adapters.hubspot import HubSpotAPI

    scopes = args.scope.split() if args.scope else None
    try:
        if args.crm == "salesforce":
            login = str(_check_url(args.login_url or _SF_LOGIN, "--login-url")).rstrip("/")
            return SalesforceConnect(
                client_id=client_id,
                client_secret=secret,
                redirect_uri=redirect,
                login_url=login,
                scopes=scopes or SALESFORCE_SCOPES,
            )
        api = str(_check_url(args.url or _HS_API, "--url")).rstrip("/")
        page = args.authorize_url or (f"{api}/oauth/authorize" if args.url else None)
        if page is not None:
            _check_url(page, "--authorize-url")
        return HubSpotConnect(
            client_id=client_id,
            client_secret=secret or "",
            redirect_uri=redirect,
            scopes=scopes or HUBSPOT_SCOPES,
            api=HubSpotAPI(base_url=api),
            authorize_url=page or HUBSPOT_AUTHORIZE_URL,
        )
    except ConfigurationError as error:
        raise CommandError(f"connect: {error}", ExitCode.USAGE) from None


def _connect(args: argparse.Namespace, out: Output) -> ExitCode:
    crm = args.crm
    redirect = _check_url(args.redirect_uri, "--redirect-uri")
    if redirect.host not in _LOOPBACK or redirect.scheme != "http":
        raise CommandError(
            "--redirect-uri must be http:// on localhost, 127.0.0.1 or [::1]", ExitCode.USAGE
        )
    client_id = args.client_id or os.environ.get(variable(crm, "client_id"))
    if not client_id:
        raise CommandError(
            f"--client-id (or {variable(crm, 'client_id')}) is required", ExitCode.USAGE
        )
    secret = _secret(crm, args)
    if crm == "hubspot" and not secret:
        raise CommandError(
            f"HubSpot's code exchange needs the app's secret: set {variable(crm, 'client_secret')}",
            ExitCode.USAGE,
        )
    flow = _connector(args, client_id, secret, str(redirect))
    started = flow.start()
    with _Callback(redirect, started.state) as callback:
        out.note(f"Open this address to connect {crm} (it expires when this command ends):")
        out.note(f"  {started.url}")
        if not args.no_browser:
            webbrowser.open(started.url)
        out.note(f"waiting up to {args.timeout:.0f} s for the CRM to answer on {redirect} ...")
        if not callback.done.wait(args.timeout):
            raise CommandError("no answer came back in time; nothing was saved", ExitCode.ERROR)
    timeout = httpx.Timeout(30.0, connect=10.0)
    try:
        with httpx.Client(timeout=timeout) as http:
            connection = flow.finish(
                http, callback.params, state=started.state, code_verifier=started.code_verifier
            )
            users = _check_token(flow, http, connection)
    except (AuthenticationError, ConfigurationError) as error:
        raise CommandError(f"the connect failed: {error}"[:400], ExitCode.AUTH) from None
    except SignalsCRMError as error:
        raise CommandError(f"cannot reach the CRM: {error}"[:400], ExitCode.ERROR) from None
    tokens = connection.tokens
    values = {"auth": "refresh_token" if crm == "salesforce" else "oauth", "client_id": client_id}
    values["refresh_token"] = tokens.refresh_token or ""
    if isinstance(flow, SalesforceConnect):
        values["login_url"] = flow.login_url
        if tokens.instance_url:
            values["instance_url"] = tokens.instance_url
    elif args.url:
        values["base_url"] = str(_check_url(args.url, "--url")).rstrip("/")
    path = _credentials_path(args)
    save_credentials(path, crm, values)
    where = values.get("instance_url") or values.get("base_url") or crm
    out.text(f"connected to {where}: {users} active user(s) visible")
    out.text(f"saved the refresh token to {path} (mode 600; never printed)")
    if secret and os.environ.get(variable(crm, "client_secret")):
        out.text(
            f"the client secret was not written to the file: keep "
            f"{variable(crm, 'client_secret')} set when you run"
        )
    out.document(
        {
            "connected": True,
            "crm": crm,
            "instance_url": values.get("instance_url"),
            "base_url": values.get("base_url"),
            "account_id": connection.account_id,
            "credentials": str(path),
            "users": users,
        }
    )
    return ExitCode.OK


def _check_token(flow: Connector, http: httpx.Client, connection: Connection) -> int:
    """How many active users the new token can read (proof that it works)."""
    adapter: Any
    if isinstance(flow, SalesforceConnect):
        from signals_crm.adapters.salesforce import SalesforceAdapter

        adapter = SalesforceAdapter(http, flow.auth(connection.tokens))
    else:
        from signals_crm.adapters.hubspot import HubSpotAdapter

        assert isinstance(flow, HubSpotConnect)  # noqa: S101  # the two connectors
        adapter = HubSpotAdapter(http, flow.auth(connection.tokens), api=flow.api)
    return sum(1 for user in adapter.list_users() if user.active)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "connect",
        help="connect a CRM with OAuth in the browser (loopback redirect); saves the tokens",
        description=__doc__ + "\nExit 0; 2 on bad options; 4 when the CRM refuses; 1 when no "
        "answer came back in time.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("crm", choices=["salesforce", "hubspot"])
    parser.add_argument("--client-id", help="the connected app's consumer key / app client id")
    parser.add_argument("--redirect-uri", default=DEFAULT_REDIRECT, help="registered with the app")
    parser.add_argument("--login-url", help=f"Salesforce: default {_SF_LOGIN} (or a My Domain)")
    parser.add_argument("--url", help="HubSpot: the API base URL (a local sandbox)")
    parser.add_argument("--authorize-url", help=f"HubSpot: default {HUBSPOT_AUTHORIZE_URL}")
    parser.add_argument("--scope", help="the scopes to ask for (space-separated)")
    parser.add_argument(
        "--credentials", type=Path, help=f"default ${CREDENTIAL_FILE_VARIABLE} or ./{DEFAULT_FILE}"
    )
    parser.add_argument("--timeout", type=positive_float, default=300.0, help="seconds to wait")
    parser.add_argument("--no-browser", action="store_true", help="only print the address")
    add_json_flag(parser)
    parser.set_defaults(handler=_connect)
