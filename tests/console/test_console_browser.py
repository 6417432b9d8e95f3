"""The console in a real headless Chromium: load the pages, filter, open an explanation, retry
a dead letter and see it move. Also refreshes the screenshots in ``docs/console/``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _console_helpers import HEADER, OPERATOR, operator_from_header, serving

from signals_crm.console import create_console, salesforce_links
from signals_crm.settings import IntegrationSettings

SHOTS = Path(__file__).parent.parent.parent / "docs" / "console"


@pytest.fixture
def console_url(console_ledger):
    app = create_console(
        console_ledger,
        authenticate=operator_from_header,
        settings=IntegrationSettings.from_dict({"criteria": "two_stars"}),
        crm_links=salesforce_links("https://acme.my.salesforce.test"),
    )
    with serving(app) as base:
        yield base


@pytest.fixture
def page(chromium_browser, console_url):
    context = chromium_browser.new_context(
        extra_http_headers={HEADER: OPERATOR}, viewport={"width": 1100, "height": 760}
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.base = console_url
    yield page
    context.close()


def _shot(page, name):
    """Keep a screenshot for the docs when asked (SIGNALS_CRM_SCREENSHOTS=1)."""
    if os.environ.get("SIGNALS_CRM_SCREENSHOTS") == "1":
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def test_an_operator_filters_explains_and_retries_a_dead_letter(page):
    """From the start page to a retried dead letter, by clicking as a person would."""
    page.goto(page.base + "/")
    assert "only as safe as its authentication hook" in page.inner_text("#auth-warning")
    _shot(page, "start")
    page.click("text=default")
    assert page.inner_text("#count-dead .n") == "3"
    assert page.inner_text("#count-due .n") == "60"
    _shot(page, "integration")

    page.click("#count-due")
    assert page.locator("tbody tr").count() == 50
    page.click("#next-page")
    assert page.locator("tbody tr").count() == 10
    page.fill("input[name=email]", "due42@x.test")
    page.click("#filter")
    rows = page.locator("tbody tr")
    assert rows.count() == 1
    assert "due-042" in rows.first.inner_text()

    page.click("#count-dead")
    _shot(page, "dead-letters")
    page.fill("input[name=error]", "validation")
    page.click("#filter")
    assert page.locator("tbody tr").count() == 1
    page.click("text=dead-0")
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in page.inner_text("#facts")
    assert page.inner_text("#explain-status") == "failed"
    _shot(page, "explanation")

    page.click("#retry-link")
    assert "Retry dead-0?" in page.inner_text("h1")
    _shot(page, "confirm-retry")
    page.click("#confirm-retry")
    assert "Sent round again" in page.inner_text("#notice")
    assert "Due" in page.inner_text("#facts")
    page.click("text=default")
    assert page.inner_text("#count-dead .n") == "2"
    assert page.inner_text("#count-due .n") == "61"


def test_a_page_without_the_operator_is_refused_in_the_browser(chromium_browser, console_url):
    """Without the host's sign-in the browser gets the refusal, not the queue."""
    context = chromium_browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(console_url + "/i/default/syncs?view=dead")
        assert response.status == 403
        assert "dead-0" not in page.content()
    finally:
        context.close()
