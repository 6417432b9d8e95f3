"""The local Salesforce on loopback (the shared :class:`~signals_crm.testing.LoopbackServer`).

:func:`serve` is the ``signals-crm sandbox salesforce`` command; :func:`running_server` is the
older spelling of ``with LoopbackServer(org) as server`` that yields the URL.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from signals_crm.testing._loopback import LoopbackServer

if TYPE_CHECKING:
    from signals_crm.testing.salesforce._org import LocalSalesforce

__all__ = ["LOCAL_CLIENT_ID", "LOCAL_CLIENT_SECRET", "running_server", "serve"]

LOCAL_CLIENT_ID = "signals-crm-local"
LOCAL_CLIENT_SECRET = "local-secret"  # noqa: S105  # a published, sandbox-only credential
LOCAL_USERNAME = "integration@local.example.com"
LOCAL_PASSWORD = "local-password"  # noqa: S105  # a published, sandbox-only credential
LOCAL_SECURITY_TOKEN = "LOCALTOKEN"  # noqa: S105  # a published, sandbox-only credential
LOCAL_REDIRECT_URI = "http://localhost:1717/OauthRedirect"


@contextmanager
def running_server(
    org: LocalSalesforce, *, port: int = 0, host: str = "127.0.0.1", tls: bool = False
) -> Iterator[str]:
    """Serve ``org`` in a background thread; yields its base URL; stops on exit.

    The org's ``instance_url`` becomes that URL, so tokens it issues point clients here.
    """
    with LoopbackServer(org, host=host, port=port, tls=tls) as server:
        yield server.url


def serve(
    port: int = 8000,
    *,
    host: str = "127.0.0.1",
    org: LocalSalesforce | None = None,
    announce: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    tls: bool = False,
    ca_dir: str | Path | None = None,
) -> None:
    """Serve a local Salesforce on ``host:port`` until interrupted (``signals-crm sandbox
    salesforce --port N``).

    The org's instance URL becomes the server's URL; a connected app ``signals-crm-local`` /
    ``local-secret`` may use every OAuth flow the org serves, and a ready access token is
    issued. ``announce`` receives a few lines saying how to connect (the CLI prints them),
    including where the CA bundle is with ``tls=True``. Serving ends on ``KeyboardInterrupt``,
    or when ``stop`` (if given) is set.
    """
    from signals_crm.testing.salesforce._org import LocalSalesforce

    org = org or LocalSalesforce()
    server = LoopbackServer(org, host=host, port=port, tls=tls, ca_dir=ca_dir)
    org.add_login(LOCAL_USERNAME, LOCAL_PASSWORD, LOCAL_SECURITY_TOKEN)
    with tempfile.TemporaryDirectory(prefix="signals-crm-jwt-") as scratch:
        key_file = _jwt_key(Path(ca_dir) if ca_dir else Path(scratch))
        org.register_client(
            LOCAL_CLIENT_ID,
            LOCAL_CLIENT_SECRET,
            client_credentials=True,
            redirect_uris=(LOCAL_REDIRECT_URI,),
            jwt_public_key=key_file[1] if key_file else None,
            jwt_username=LOCAL_USERNAME if key_file else None,
        )
        if announce is not None:
            url = server.url
            announce(f"Local Salesforce listening on {url}")
            announce(f"  token endpoint: {url}/services/oauth2/token")
            announce(f"  connected app: {LOCAL_CLIENT_ID} / {LOCAL_CLIENT_SECRET}")
            announce(
                f"  user: {LOCAL_USERNAME}, password {LOCAL_PASSWORD}, "
                f"security token {LOCAL_SECURITY_TOKEN}"
            )
            announce(f"  redirect URI (authorization code, PKCE): {LOCAL_REDIRECT_URI}")
            if key_file:
                announce(
                    f"  JWT bearer: private key {key_file[0]} (consumer key {LOCAL_CLIENT_ID})"
                )
            announce(f"  access token: {org.issue_token()}")
            if server.ca_file is not None:
                announce(f"  CA bundle: {server.ca_file}")
                announce(f"  HTTPS proxy (for clients that build vendor URLs): {server.proxy_url}")
        server.serve_forever(stop)


def _jwt_key(directory: Path) -> tuple[Path, bytes] | None:
    """Write a fresh RSA private key for the JWT bearer flow; (its path, the public key PEM)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:  # pragma: no cover - cryptography comes with the jwt and sandbox extras
        return None
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "signals-crm-sandbox-jwt.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, public
