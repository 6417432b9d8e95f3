"""Secrets never reach reprs, errors, reports or the ledger."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest

from signals_crm._flows import OutcomeKind
from signals_crm.adapters.hubspot import HubSpotAdapter, HubSpotAPI
from signals_crm.adapters.salesforce import RefreshTokenFlow, SalesforceAdapter, StaticToken
from signals_crm.engine import Integration
from signals_crm.exceptions import AuthenticationError
from signals_crm.ledger import SQLiteLedger
from signals_crm.testing.hubspot import LocalHubSpot
from signals_crm.testing.salesforce import LocalSalesforce, SalesforceBackdoor

sys.path.insert(0, str(Path(__file__).parent))

from _scenario import NOW, config, conversations

SECRET = "00Dxx!SECRET-TOKEN-do-not-leak-1234567890"


def test_salesforce_token_never_leaks(tmp_path):
    """The access token appears in no repr, report, explanation or ledger byte."""
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    owner = door.seed_user(email="owner@vendor.test")
    campaign = door.seed_campaign(name="C")
    token = org.issue_token()
    path = tmp_path / "ledger.sqlite3"
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(token, org.instance_url))
        sync = Integration(
            adapter,
            config(owner, campaign),
            ledger=SQLiteLedger(path),
            sleep=lambda _: None,
            clock=lambda: NOW,
        )
        for conversation in conversations():
            sync.conversation_closed(conversation)
        report = sync.run_due(NOW)
        explanation = sync.explain("c-1")
        texts = [
            repr(adapter),
            repr(sync),
            report.as_text(),
            explanation.as_text(),
            repr(adapter.auth),
        ]
        sync.ledger.close()
    assert report.count(OutcomeKind.CREATED) > 0
    for text in texts:
        assert token not in text
    raw = path.read_bytes()
    assert token.encode() not in raw
    with contextlib.closing(sqlite3.connect(path)) as db:
        dump = "\n".join(db.iterdump())
    assert token not in dump


def test_failed_refresh_error_has_no_secret():
    """A refused refresh raises an authentication error that names neither secret."""
    org = LocalSalesforce()
    with httpx.Client(transport=org.transport()) as http:
        auth = RefreshTokenFlow(
            client_id="app", client_secret=SECRET, refresh_token=SECRET, login_url=org.instance_url
        )
        adapter = SalesforceAdapter(http, auth)
        with pytest.raises(AuthenticationError) as caught:
            adapter.list_users()
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert SECRET not in repr(adapter)
    assert SECRET not in repr(auth)


def test_hubspot_token_not_in_repr():
    """The HubSpot bearer token is not shown by the adapter."""
    hub = LocalHubSpot(tokens=[SECRET])
    with httpx.Client(transport=hub.transport()) as http:
        adapter = HubSpotAdapter(http, SECRET, api=HubSpotAPI(base_url="https://h.test"))
        assert SECRET not in repr(adapter)
        assert SECRET not in repr(adapter.auth)


def test_logs_carry_no_token(caplog):
    """The engine's log lines name conversations and CRM reasons, never the token."""
    import logging

    caplog.set_level(logging.DEBUG)
    org = LocalSalesforce()
    door = SalesforceBackdoor(org)
    owner = door.seed_user(email="owner@vendor.test")
    campaign = door.seed_campaign(name="C")
    token = org.issue_token()
    with httpx.Client(transport=org.transport()) as http:
        adapter = SalesforceAdapter(http, StaticToken(token, org.instance_url))
        sync = Integration(
            adapter, config(owner, campaign), sleep=lambda _: None, clock=lambda: NOW
        )
        for conversation in conversations():
            sync.conversation_closed(conversation)
        sync.run_due(NOW)
    assert any("run_due" in r.getMessage() for r in caplog.records)
    assert all(token not in r.getMessage() for r in caplog.records)
