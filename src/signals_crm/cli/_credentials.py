"""CRM credentials for the command line: environment variables or a credentials file.

Rules:

1. Each value comes from the environment variable ``SIGNALS_CRM_<CRM>_<NAME>`` if it is set and
   not empty, else from the ``[<crm>]`` table of the credentials file (``--credentials FILE``
   or ``SIGNALS_CRM_CREDENTIALS``; TOML or JSON), else it is absent. ``SIGNALS_CRM_TOKEN`` is
   the access token of either CRM when no other source names one (the older command's name).
2. The flow is ``auth`` when given, else inferred: Salesforce ``jwt`` (a private key and a
   username), ``refresh_token``, ``client_credentials`` (a client secret, no refresh token),
   ``static`` (an access token); HubSpot ``oauth`` (a refresh token) or ``static``.
3. A missing or malformed value is a :class:`CommandError` with exit code 2 that names the
   variable and the file key to set; a URL that does not parse names its field too.
4. Secrets are read, handed to the adapter's auth class and never printed: :class:`Credentials`
   hides every value in its repr, and no message quotes one.
5. A credentials file readable by other users is used with a warning (``chmod 600`` it).
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import httpx

from signals_crm.cli._common import CommandError, ExitCode
from signals_crm.exceptions import ConfigurationError

__all__ = [
    "CREDENTIAL_FILE_VARIABLE",
    "FLOWS",
    "KEYS",
    "Credentials",
    "build_adapter",
    "environment_help",
    "load_credentials",
]

CRM = Literal["salesforce", "hubspot"]

CREDENTIAL_FILE_VARIABLE = "SIGNALS_CRM_CREDENTIALS"
LEGACY_TOKEN_VARIABLE = "SIGNALS_CRM_TOKEN"  # noqa: S105  # a variable's name

KEYS: Mapping[str, tuple[str, ...]] = {
    "salesforce": (
        "auth",
        "instance_url",
        "access_token",
        "client_id",
        "client_secret",
        "refresh_token",
        "username",
        "private_key_file",
        "login_url",
        "audience",
    ),
    "hubspot": ("auth", "access_token", "client_id", "client_secret", "refresh_token", "base_url"),
}
"""The keys each CRM's credentials may hold (file keys; variables are their upper-case form)."""

FLOWS: Mapping[str, tuple[str, ...]] = {
    "salesforce": ("static", "refresh_token", "jwt", "client_credentials"),
    "hubspot": ("static", "oauth"),
}

_REQUIRED: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("salesforce", "static"): ("access_token", "instance_url"),
    ("salesforce", "refresh_token"): ("client_id", "refresh_token"),
    ("salesforce", "jwt"): ("client_id", "username", "private_key_file"),
    ("salesforce", "client_credentials"): ("client_id", "client_secret", "login_url"),
    ("hubspot", "static"): ("access_token",),
    ("hubspot", "oauth"): ("client_id", "client_secret", "refresh_token"),
}
_URLS = ("instance_url", "login_url", "audience", "base_url")


PREFIX = "SIGNALS_CRM_"
"""What every credential variable's name starts with (the worker adds a tenant's part)."""


def variable(crm: str, key: str, prefix: str = PREFIX) -> str:
    """The environment variable of one credential value."""
    return f"{prefix}{crm.upper()}_{key.upper()}"


def environment_help() -> str:
    """The ``--help`` text listing every variable (names only, never values)."""
    lines = [
        "credentials (never given on the command line, never printed):",
        f"  {CREDENTIAL_FILE_VARIABLE}=FILE   a TOML/JSON credentials file with [salesforce] and",
        "      [hubspot] tables of the keys below (lower case); variables override it",
    ]
    for crm, keys in KEYS.items():
        flows = ", ".join(FLOWS[crm])
        lines.append(f"  {crm} (auth = {flows}):")
        lines.extend(f"    {variable(crm, k)}" for k in keys)
    lines.append(f"  {LEGACY_TOKEN_VARIABLE}   an access token for either CRM (older name)")
    return "\n".join(lines)


@attrs.frozen
class Credentials:
    """One CRM's credentials and the flow they are for; every value hidden from the repr."""

    crm: str
    flow: str
    values: Mapping[str, str] = attrs.field(repr=False)
    sources: Mapping[str, str] = attrs.field(repr=False, factory=dict)
    file: Path | None = None
    """The credentials file the values were read from, if any."""

    def from_file(self, key: str) -> bool:
        """Whether ``key`` came from the credentials file (not a variable or an option)."""
        return self.file is not None and self.sources.get(key, "").endswith(f".{key}")

    def get(self, key: str) -> str | None:
        return self.values.get(key)


def _read_file(path: Path, warn: Callable[[str], None]) -> dict[str, Any]:
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(
            f"cannot read the credentials file {os.fspath(path)!r}: {type(error).__name__}",
            ExitCode.USAGE,
        ) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"warning: {os.fspath(path)!r} is readable by other users; run chmod 600 on it")
    try:
        data: object = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, RecursionError) as error:
        # The parser's message may quote a line of the file, and so a secret: name the kind only.
        raise CommandError(
            f"the credentials file {os.fspath(path)!r} is not valid "
            f"{'JSON' if path.suffix.lower() == '.json' else 'TOML'} ({type(error).__name__})",
            ExitCode.USAGE,
        ) from None
    if not isinstance(data, dict):
        raise CommandError(
            f"the credentials file {os.fspath(path)!r} must hold a table", ExitCode.USAGE
        )
    return data


def _infer(crm: str, values: Mapping[str, str]) -> str | None:
    if crm == "salesforce":
        if "private_key_file" in values and "username" in values:
            return "jwt"
        if "refresh_token" in values:
            return "refresh_token"
        if "client_secret" in values and "client_id" in values:
            return "client_credentials"
        if "access_token" in values:
            return "static"
        return None
    if "refresh_token" in values:
        return "oauth"
    if "access_token" in values:
        return "static"
    return None


def _check_url(crm: str, key: str, value: str, sources: Mapping[str, str], prefix: str) -> None:
    where = sources.get(key, variable(crm, key, prefix))
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise CommandError(f"{where}: not a valid URL", ExitCode.USAGE) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise CommandError(f"{where}: must be an http(s) URL with a host", ExitCode.USAGE)


def load_credentials(
    crm: str,
    *,
    file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] = lambda _: None,
    url: str | None = None,
    prefix: str = PREFIX,
    shared: bool = True,
) -> Credentials:
    """The credentials of ``crm`` from ``environ`` (default ``os.environ``) and ``file``.

    ``url`` (the ``--url`` option) overrides the Salesforce instance URL or HubSpot base URL.
    ``prefix`` starts every variable's name (the worker gives each tenant its own); with
    ``shared=False`` the variables every tenant would share (``SIGNALS_CRM_CREDENTIALS``,
    ``SIGNALS_CRM_TOKEN``) are not read, so one tenant can never get another's credentials.
    """
    env = os.environ if environ is None else environ
    if crm not in KEYS:
        raise CommandError(f"unknown CRM {crm!r}", ExitCode.USAGE)
    path = file or (
        Path(env[CREDENTIAL_FILE_VARIABLE])
        if shared and env.get(CREDENTIAL_FILE_VARIABLE)
        else None
    )
    table: Mapping[str, Any] = {}
    if path is not None:
        data = _read_file(path, warn)
        raw = data.get(crm, {})
        if not isinstance(raw, dict):
            raise CommandError(f"{os.fspath(path)}: [{crm}] must be a table", ExitCode.USAGE)
        table = raw
        unknown = sorted(set(table) - set(KEYS[crm]))
        if unknown:
            raise CommandError(
                f"{os.fspath(path)}: [{crm}] has unknown keys {unknown}; "
                f"known: {', '.join(KEYS[crm])}",
                ExitCode.USAGE,
            )
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    where = os.fspath(path) if path is not None else ""
    for key in KEYS[crm]:
        name = variable(crm, key, prefix)
        if env.get(name):
            values[key], sources[key] = env[name], name
        elif key in table:
            value = table[key]
            if not isinstance(value, str) or not value:
                raise CommandError(
                    f"{where}: [{crm}].{key} must be a non-empty string", ExitCode.USAGE
                )
            values[key], sources[key] = value, f"{where}: [{crm}].{key}"
    if shared and "access_token" not in values and env.get(LEGACY_TOKEN_VARIABLE):
        values["access_token"] = env[LEGACY_TOKEN_VARIABLE]
        sources["access_token"] = LEGACY_TOKEN_VARIABLE
    if url is not None:
        key = "instance_url" if crm == "salesforce" else "base_url"
        values[key], sources[key] = url, "--url"
    flow = values.pop("auth", None) or _infer(crm, values)
    if flow is None and not shared:
        raise CommandError(
            f"no {crm} credentials: set {variable(crm, 'access_token', prefix)} (or another "
            "flow's variables, see --help) or name a credentials file",
            ExitCode.USAGE,
        )
    if flow is None:
        raise CommandError(
            f"no {crm} credentials: set {variable(crm, 'access_token')} or "
            f"{LEGACY_TOKEN_VARIABLE} (or another flow's variables, see --help) or name a "
            f"credentials file in {CREDENTIAL_FILE_VARIABLE}",
            ExitCode.USAGE,
        )
    if flow not in FLOWS[crm]:
        raise CommandError(
            f"{sources.get('auth', variable(crm, 'auth', prefix))}: unknown {crm} auth {flow!r}; "
            f"one of {', '.join(FLOWS[crm])}",
            ExitCode.USAGE,
        )
    missing = [k for k in _REQUIRED[(crm, flow)] if k not in values]
    if missing:
        names = ", ".join(variable(crm, k, prefix) for k in missing)
        raise CommandError(f"{crm} auth {flow!r} needs {names}", ExitCode.USAGE)
    for key in _URLS:
        if key in values:
            _check_url(crm, key, values[key], sources, prefix)
    return Credentials(crm=crm, flow=flow, values=values, sources=sources, file=path)


def _private_key(credentials: Credentials) -> bytes:
    path = Path(credentials.values["private_key_file"])
    try:
        return path.read_bytes()
    except OSError as error:
        where = credentials.sources.get("private_key_file", "private_key_file")
        raise CommandError(
            f"{where}: cannot read the private key file ({type(error).__name__})", ExitCode.USAGE
        ) from None


def salesforce_auth(credentials: Credentials, token_store: Any = None) -> Any:
    """The Salesforce auth object of ``credentials``."""
    from signals_crm.adapters import salesforce as sf

    v = credentials.values
    instance = v.get("instance_url")
    login = v.get("login_url")
    try:
        if credentials.flow == "static":
            return sf.StaticToken(v["access_token"], v["instance_url"], token_store=token_store)
        if credentials.flow == "refresh_token":
            kwargs: dict[str, Any] = {
                "client_id": v["client_id"],
                "refresh_token": v["refresh_token"],
                "client_secret": v.get("client_secret"),
                "instance_url": instance,
                "token_store": token_store,
            }
            if login:
                kwargs["login_url"] = login
            return sf.RefreshTokenFlow(**kwargs)
        if credentials.flow == "client_credentials":
            return sf.ClientCredentialsFlow(
                client_id=v["client_id"],
                client_secret=v["client_secret"],
                login_url=v["login_url"],
                instance_url=instance,
                token_store=token_store,
            )
        jwt_kwargs: dict[str, Any] = {
            "client_id": v["client_id"],
            "username": v["username"],
            "private_key": _private_key(credentials),
            "audience": v.get("audience"),
            "instance_url": instance,
            "token_store": token_store,
        }
        if login:
            jwt_kwargs["login_url"] = login
        return sf.JWTBearerFlow(**jwt_kwargs)
    except ConfigurationError as error:
        raise CommandError(f"salesforce credentials: {error}", ExitCode.USAGE) from None


def build_adapter(credentials: Credentials, http: httpx.Client, *, token_store: Any = None) -> Any:
    """A blocking adapter for ``credentials`` over ``http``; ``token_store`` receives tokens
    whenever they change (a rotated refresh token)."""
    try:
        if credentials.crm == "salesforce":
            from signals_crm.adapters.salesforce import SalesforceAdapter

            return SalesforceAdapter(http, salesforce_auth(credentials, token_store))
        from signals_crm.adapters import hubspot as hs

        v = credentials.values
        api = hs.HubSpotAPI(base_url=v["base_url"].rstrip("/")) if "base_url" in v else None
        auth: Any
        if credentials.flow == "static":
            auth = hs.StaticToken(v["access_token"], token_store=token_store)
        else:
            auth = hs.RefreshTokenFlow(
                client_id=v["client_id"],
                client_secret=v["client_secret"],
                refresh_token=v["refresh_token"],
                api=api,
                token_store=token_store,
            )
        if api is None:
            return hs.HubSpotAdapter(http, auth)
        return hs.HubSpotAdapter(http, auth, api=api)
    except ConfigurationError as error:
        raise CommandError(f"{credentials.crm} credentials: {error}", ExitCode.USAGE) from None
