"""What ``signals-crm sandbox ... --tls`` serves: a ready user, connected app and JWT key, the
CA bundle, and the same for HubSpot; the vendors' clients connect with what it prints."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from hubspot import HubSpot
from simple_salesforce import Salesforce

from signals_crm.testing.hubspot import serve as serve_hubspot
from signals_crm.testing.salesforce import serve as serve_salesforce


def _running(
    target: object, **kwargs: object
) -> tuple[list[str], threading.Event, threading.Thread]:
    lines: list[str] = []
    stop = threading.Event()
    ready = threading.Event()

    def announce(line: str) -> None:
        lines.append(line)
        ready.set()

    thread = threading.Thread(
        target=target, kwargs={"port": 0, "announce": announce, "stop": stop, **kwargs}, daemon=True
    )
    thread.start()
    assert ready.wait(30)
    return lines, stop, thread


def _value(lines: list[str], pattern: str) -> str:
    for line in lines:
        found = re.search(pattern, line)
        if found:
            return found.group(1)
    raise AssertionError(f"{pattern!r} not announced in {lines}")


def test_salesforce_sandbox_announces_logins_that_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tls_available: None
) -> None:
    """The served org has the announced user (SOAP login with password and security token)
    and a connected app whose JWT key file the JWT bearer flow signs with.

    https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
    """
    lines, stop, thread = _running(serve_salesforce, tls=True, ca_dir=tmp_path)
    try:
        for _ in range(50):
            if any("HTTPS proxy" in line for line in lines):
                break
            threading.Event().wait(0.05)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", _value(lines, r"CA bundle: (\S+)"))
        monkeypatch.setenv("HTTPS_PROXY", _value(lines, r"HTTPS proxy .*: (\S+)"))
        username = _value(lines, r"user: (\S+),")
        password = _value(lines, r"password (\S+),")
        token = _value(lines, r"security token (\S+)")
        soap = Salesforce(username=username, password=password, security_token=token)
        assert soap.query("SELECT COUNT() FROM Lead")["totalSize"] == 0
        key_file = _value(lines, r"private key (\S+)")
        consumer = _value(lines, r"consumer key (\S+)\)")
        jwt = Salesforce(username=username, consumer_key=consumer, privatekey_file=key_file)
        assert jwt.Lead.create({"LastName": "J", "Company": "W"})["success"] is True
    finally:
        stop.set()
        thread.join(10)


def test_hubspot_sandbox_announces_its_token_and_bundle(
    tmp_path: Path, tls_available: None
) -> None:
    """The served portal answers the announced private-app token over HTTPS.

    https://developers.hubspot.com/docs/api/private-apps
    """
    lines, stop, thread = _running(serve_hubspot, tls=True, ca_dir=tmp_path)
    try:
        for _ in range(50):
            if any("CA bundle" in line for line in lines):
                break
            threading.Event().wait(0.05)
        url = _value(lines, r"listening on (https://\S+)")
        client = HubSpot(
            access_token=_value(lines, r"bearer token: ([^\s)]+)"),
            host=url,
            ssl_ca_cert=_value(lines, r"CA bundle: (\S+)"),
        )
        owners = client.crm.owners.owners_api.get_page()
        assert sorted(o.email for o in owners.results) == ["bob@example.com", "sally@example.com"]
    finally:
        stop.set()
        thread.join(10)
