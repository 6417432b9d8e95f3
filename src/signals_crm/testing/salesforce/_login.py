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
   ``grant_type=authorization_code`` exchanges it, checking ``redirect_uri``, the client secret
   (the web server flow requires it unless the app turns off "Require Secret for Web Server
   Flow": ``register_client(..., require_secret=False)``) and, when a challenge was given,
   ``code_verifier`` (``BASE64URL(SHA256(verifier))``): a missing verifier answers
   ``invalid_grant``, a wrong one ``invalid_request`` (REST API Developer Guide, "Web Server
   OAuth Authentication Flow", ``code_challenge``). The answer carries an access token and a
   refresh token.
4. ``POST /services/oauth2/revoke`` with ``token=`` revokes an access or refresh token (a
   refresh token takes its access tokens with it): 200; an unknown token answers 400
   ``unsupported_token_type``.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import attrs
import httpx

from signals_crm.testing.salesforce._records import OrgData
from signals_crm.testing.salesforce._reply import Reply, basic_auth, oauth_error

__all__ = [
    "AuthCode",
    "Client",
    "Login",
    "Logins",
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


@attrs.define
class Client:
    client_id: str
    client_secret: str | None = attrs.field(default=None, repr=False)
    jwt_public_key: str | bytes | None = attrs.field(default=None, repr=False)
    jwt_username: str | None = None
    client_credentials: bool = False
    rotate_refresh_tokens: bool = False
    redirect_uris: tuple[str, ...] = ()
    password_flow: bool = True
    require_secret: bool = True


class Logins:
    """The org's OAuth and SOAP login endpoints and its tokens (a part of LocalSalesforce)."""

    data: OrgData
    instance_url: str
    org_id: str
    integration_user_id: str
    consenting_user_id: str
    token_requests: int
    login_audiences: set[str]
    logins: dict[str, Login]
    _lock: threading.RLock
    _rng: random.Random
    _tokens: dict[str, int]
    _refresh_tokens: dict[str, str]
    _clients: dict[str, Client]
    _codes: dict[str, AuthCode]
    _access_by_refresh: dict[str, set[str]]

    def _new_token(self) -> str:
        return f"{self.org_id}!LOCAL.{self._rng.getrandbits(96):024x}"

    def issue_token(self) -> str:
        """A fresh, valid access token (for :class:`StaticToken` and other clients)."""
        with self._lock:
            token = self._new_token()
            self._tokens[token] = 0
            return token

    def expire_tokens(self) -> None:
        """Expire every access token (the next call with one gets 401 INVALID_SESSION_ID)."""
        with self._lock:
            self._tokens.clear()

    def register_client(
        self,
        client_id: str,
        client_secret: str | None = None,
        *,
        jwt_public_key: str | bytes | None = None,
        jwt_username: str | None = None,
        client_credentials: bool = False,
        rotate_refresh_tokens: bool = False,
        redirect_uris: tuple[str, ...] = (),
        password_flow: bool = True,
        require_secret: bool = True,
    ) -> None:
        """Register a connected app (the flows it may use follow from what is given):
        refresh tokens always; client credentials when ``client_credentials``; JWT bearer with
        a ``jwt_public_key``; the username-password flow unless ``password_flow=False``; the
        authorization-code flow (with or without PKCE) to the given ``redirect_uris``, with
        the client secret unless ``require_secret=False``."""
        with self._lock:
            self._clients[client_id] = Client(
                client_id,
                client_secret,
                jwt_public_key,
                jwt_username,
                client_credentials,
                rotate_refresh_tokens,
                tuple(redirect_uris),
                password_flow,
                require_secret,
            )

    def add_login(self, username: str, password: str, security_token: str = "") -> str:
        """Let ``username`` log in (SOAP login, OAuth username-password flow) with ``password``
        followed by ``security_token``; creates the User when there is none. Returns its id."""
        with self._lock:
            users = self.data.records["user"]
            user_id = next(
                (
                    i
                    for i, u in users.items()
                    if str(u.get("Username", "")).lower() == username.lower()
                ),
                None,
            )
            if user_id is None:
                first, _, last = username.split("@", 1)[0].partition(".")
                user_id = self.data.insert_raw(
                    self.data.objects["user"],
                    {
                        "Username": username,
                        "Email": username,
                        "FirstName": first.title() if last else None,
                        "LastName": (last or first).title(),
                        "Name": username.split("@", 1)[0],
                        "IsActive": True,
                    },
                )
            self.logins[username.lower()] = Login(username, user_id, password, security_token)
            return user_id

    def issue_refresh_token(self, client_id: str) -> str:
        """A refresh token for a registered client (as a web-server flow would have given)."""
        with self._lock:
            token = f"5Aep{self._rng.getrandbits(96):024x}"
            self._refresh_tokens[token] = client_id
            return token

    def _token_endpoint(self, headers: Mapping[str, str], body: bytes) -> Reply:
        self.token_requests += 1
        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        basic_id, basic_secret = basic_auth(headers.get("authorization", ""))
        client_id = form.get("client_id") or basic_id
        client_secret = form.get("client_secret") or basic_secret
        grant = form.get("grant_type", "")
        if grant == "refresh_token":
            owner = self._refresh_tokens.get(form.get("refresh_token", ""))
            client = self._clients.get(client_id or "")
            if client is None:
                return oauth_error("invalid_client_id", "client identifier invalid")
            if owner != client.client_id:
                return oauth_error("invalid_grant", "expired access/refresh token")
            if client.client_secret is not None and client_secret != client.client_secret:
                return oauth_error("invalid_client", "invalid client credentials")
            extra: dict[str, str] = {}
            if client.rotate_refresh_tokens:
                del self._refresh_tokens[form["refresh_token"]]
                extra["refresh_token"] = self.issue_refresh_token(client.client_id)
            return self._token_reply(extra)
        if grant == "client_credentials":
            client = self._clients.get(client_id or "")
            if client is None or not client.client_credentials:
                return oauth_error("invalid_client_id", "client identifier invalid")
            if client_secret != client.client_secret:
                return oauth_error("invalid_client", "invalid client credentials")
            return self._token_reply({})
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._jwt_grant(form.get("assertion", ""))
        if grant == "password":
            client = self._clients.get(client_id or "")
            if client is None or not client.password_flow:
                return oauth_error("invalid_client_id", "client identifier invalid")
            if client.client_secret is not None and client_secret != client.client_secret:
                return oauth_error("invalid_client", "invalid client credentials")
            login = self.logins.get(form.get("username", "").lower())
            if login is None or not login.accepts(form.get("password", "")):
                return oauth_error("invalid_grant", "authentication failure")
            return self._token_reply({}, user_id=login.user_id)
        if grant == "authorization_code":
            return self._code_grant(form, client_id, client_secret)
        return oauth_error("unsupported_grant_type", "grant type not supported")

    def _authorize(self, params: Mapping[str, str]) -> Reply:
        client = self._clients.get(params.get("client_id", ""))
        redirect = params.get("redirect_uri", "")
        if client is None:
            return Reply(400, html="<html><body>error=invalid_client_id</body></html>")
        if redirect not in client.redirect_uris:
            return Reply(
                400,
                html="<html><body>error=redirect_uri_mismatch&amp;error_description=redirect_uri "
                "must match configuration</body></html>",
            )
        query: dict[str, str] = {}
        if params.get("response_type") != "code":
            query = {
                "error": "unsupported_response_type",
                "error_description": "response type not supported",
            }
        else:
            code = f"aPrx{self._rng.getrandbits(128):032x}"
            challenge = params.get("code_challenge") or None
            self._codes[code] = AuthCode(
                client.client_id,
                redirect,
                self.consenting_user_id,
                self.data.now().timestamp() + 15 * 60,
                challenge,
                params.get("scope") or "api refresh_token",
            )
            query = {"code": code}
        if "state" in params:
            query["state"] = params["state"]
        location = str(httpx.URL(redirect).copy_merge_params(query))
        return Reply(302, headers={"Location": location})

    def _code_grant(
        self, form: Mapping[str, str], client_id: str | None, client_secret: str | None
    ) -> Reply:
        client = self._clients.get(client_id or "")
        if client is None:
            return oauth_error("invalid_client_id", "client identifier invalid")
        code = self._codes.pop(form.get("code", ""), None)
        if (
            code is None
            or code.client_id != client.client_id
            or code.expires_at <= self.data.now().timestamp()
        ):
            return oauth_error("invalid_grant", "invalid authorization code")
        if form.get("redirect_uri", "") != code.redirect_uri:
            return oauth_error("redirect_uri_mismatch", "redirect_uri must match configuration")
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            if not verifier:
                return oauth_error("invalid_grant", "code verifier is required")
            if not pkce_matches(code.challenge, verifier):
                return oauth_error("invalid_request", "invalid code verifier")
        if (
            client.require_secret
            and client.client_secret is not None
            and client_secret != client.client_secret
        ):
            return oauth_error("invalid_client", "invalid client credentials")
        refresh = self.issue_refresh_token(client.client_id)
        reply = self._token_reply({"refresh_token": refresh}, user_id=code.user_id)
        self._access_by_refresh.setdefault(refresh, set()).add(reply.body["access_token"])
        return reply

    def _revoke(self, token: str) -> Reply:
        if token in self._tokens:
            del self._tokens[token]
            return Reply(200)
        if token in self._refresh_tokens:
            del self._refresh_tokens[token]
            for access in self._access_by_refresh.pop(token, set()):
                self._tokens.pop(access, None)
            return Reply(200)
        return oauth_error("unsupported_token_type", "this token type is not supported")

    def _soap_login(self, body: bytes) -> Reply:
        request = soap_login_request(body)
        if request is None:
            return Reply(500, xml=soap_fault("INVALID_LOGIN", "Invalid request: no login found"))
        username, password = request
        login = self.logins.get(username.lower())
        if login is None or not login.accepts(password):
            message = "Invalid username, password, security token; or user locked out."
            return Reply(500, xml=soap_fault("INVALID_LOGIN", message))
        self.token_requests += 1
        token = self._new_token()
        self._tokens[token] = 0
        server_url = f"{self.instance_url}/services/Soap/u/61.0/{self.org_id}"
        answer = soap_login_answer(
            server_url=server_url,
            session_id=token,
            user_id=login.user_id,
            org_id=self.org_id,
            username=login.username,
        )
        return Reply(200, xml=answer)

    def _jwt_grant(self, assertion: str) -> Reply:
        try:
            import jwt
        except ImportError:  # pragma: no cover - PyJWT is a test dependency
            return oauth_error("invalid_grant", "JWT support is not installed on this server")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return oauth_error("invalid_grant", "invalid assertion")
        client = self._clients.get(str(unverified.get("iss", "")))
        if client is None or client.jwt_public_key is None:
            return oauth_error("invalid_client_id", "client identifier invalid")
        try:
            claims = jwt.decode(
                assertion,
                client.jwt_public_key,
                algorithms=["RS256"],
                audience=sorted(self.login_audiences),
                options={"verify_exp": False},
            )
        except jwt.InvalidAudienceError:
            return oauth_error("invalid_grant", "audience is invalid")
        except jwt.PyJWTError:
            return oauth_error("invalid_grant", "invalid assertion")
        try:
            expires = float(claims.get("exp", ""))
        except (TypeError, ValueError):
            expires = 0.0
        if expires <= self.data.now().timestamp():
            return oauth_error("invalid_grant", "expired authorization code")
        if client.jwt_username is not None and claims.get("sub") != client.jwt_username:
            return oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._token_reply({})

    def _token_reply(self, extra: Mapping[str, str], *, user_id: str | None = None) -> Reply:
        token = self._new_token()
        self._tokens[token] = 0
        issued = int(self.data.now().timestamp() * 1000)
        who = user_id or self.integration_user_id
        body = {
            "access_token": token,
            "instance_url": self.instance_url,
            "id": f"https://login.salesforce.com/id/{self.org_id}/{who}",
            "token_type": "Bearer",
            "issued_at": str(issued),
            "signature": base64.b64encode(f"sig-{issued}".encode()).decode(),
            "scope": "api refresh_token",
            **extra,
        }
        return Reply(200, body)
