"""Logins as an org answers them: SOAP ``login()``, and the OAuth pieces the REST guide names.

Rules:

1. ``POST /services/Soap/u/NN.N`` with a SOAP ``login`` (username, and the password followed
   by the user's security token) answers a ``loginResponse`` whose ``serverUrl`` names the
   instance and whose ``sessionId`` is an access token of the REST API. A wrong username,
   password or token answers HTTP 500 with the SOAP fault ``INVALID_LOGIN``, "Invalid
   username, password, security token; or user locked out." (SOAP API Developer Guide,
   "login()").
2. ``grant_type=password`` (OAuth username-password flow) needs a registered client, its
   secret, and the user's password followed by the security token; a wrong one answers 400
   ``invalid_grant`` "authentication failure".
3. ``GET /services/oauth2/authorize?response_type=code&client_id&redirect_uri[&state]
   [&code_challenge&code_challenge_method=S256]`` approves at once as the org's consenting
   user (there is no one to click) and redirects (302) to ``redirect_uri`` with ``code`` and
   ``state``; an unregistered client or redirect URI is refused on the page (400), as
   Salesforce shows an error instead of redirecting. The code is good once, for 15 minutes;
   ``grant_type=authorization_code`` exchanges it, checking ``redirect_uri`` and, when a
   challenge was given, ``code_verifier`` (``BASE64URL(SHA256(verifier))``), for an access
   token and a refresh token.
4. ``POST /services/oauth2/revoke`` with ``token=`` revokes an access or refresh token (a
   refresh token takes its access tokens with it): 200; an unknown token answers 400
   ``unsupported_token_type``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from xml.sax.saxutils import escape

import attrs

__all__ = [
    "AuthCode",
    "Login",
    "pkce_matches",
    "soap_fault",
    "soap_login_answer",
    "soap_login_request",
]

_SOAP_FIELD = re.compile(
    r"<(?:[A-Za-z0-9_]+:)?(username|password)>(.*?)</(?:[A-Za-z0-9_]+:)?\1>", re.DOTALL
)


@attrs.define
class Login:
    """A user's login: password and security token (the SOAP and password flows need both)."""

    username: str
    user_id: str
    password: str = attrs.field(repr=False)
    security_token: str = attrs.field(default="", repr=False)

    def accepts(self, password: str) -> bool:
        """Whether ``password`` is the password followed by the security token."""
        return password == self.password + self.security_token


@attrs.define
class AuthCode:
    """An authorization code waiting for its exchange."""

    client_id: str
    redirect_uri: str
    user_id: str
    expires_at: float
    challenge: str | None = None
    scope: str = "api refresh_token"


def soap_login_request(body: bytes) -> tuple[str, str] | None:
    """The username and password of a SOAP ``login`` envelope, or ``None`` if it is not one."""
    text = body.decode("utf-8", errors="replace")
    if "login" not in text:
        return None
    fields = {name: _unescape(value) for name, value in _SOAP_FIELD.findall(text)}
    if "username" not in fields or "password" not in fields:
        return None
    return fields["username"], fields["password"]


def _unescape(value: str) -> str:
    return (
        value.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )


def soap_login_answer(
    *, server_url: str, session_id: str, user_id: str, org_id: str, username: str
) -> str:
    """The ``loginResponse`` envelope."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>{escape(server_url.replace('/u/', '/m/'))}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
        f"<serverUrl>{escape(server_url)}</serverUrl>"
        f"<sessionId>{escape(session_id)}</sessionId>"
        f"<userId>{escape(user_id)}</userId>"
        "<userInfo>"
        f"<organizationId>{escape(org_id)}</organizationId>"
        f"<userName>{escape(username)}</userName>"
        f"<userEmail>{escape(username)}</userEmail>"
        "</userInfo>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )


def soap_fault(code: str, message: str) -> str:
    """A SOAP ``LoginFault`` envelope (HTTP 500)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>sf:{escape(code)}</faultcode>"
        f"<faultstring>{escape(code)}: {escape(message)}</faultstring>"
        '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{escape(code)}</sf:exceptionCode>"
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


def pkce_matches(challenge: str, verifier: str, method: str = "S256") -> bool:
    """Whether ``verifier`` answers ``challenge`` (RFC 7636: S256, or plain)."""
    if method.upper() == "PLAIN":
        return challenge == verifier
    digest = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return expected == challenge


def form_value(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""
