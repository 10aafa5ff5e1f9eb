"""A person's way through the unsubscribe link, in a real browser (headless Chromium from
Debian, driven by Playwright) against the app on a real uvicorn server.

Screenshots of every page land in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from sqlalchemy import select

from suppression import tokens
from suppression.identity import email_identity, phone_identity
from suppression.keys import Hasher
from suppression.schema import ledger_entries
from tests.browser.live_server import LiveServer, make_context
from tests.clock import NOW
from tests.conftest import ORG_NAME
from tests.factories import add_person
from tests.services import IN_CI

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (Debian package chromium)"
        if IN_CI:
            pytest.fail(message + " (CI=true: browser tests must not be skipped)")
        pytest.skip(message)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def server(store_url: str) -> Iterator[LiveServer]:
    with LiveServer(make_context(store_url)) as live:
        yield live


def _token(server: LiveServer, hasher: Hasher, identity: str, channel: str) -> str:
    ident = email_identity(identity) if "@" in identity else phone_identity(identity)
    with server.engine.begin() as conn:
        return tokens.issue(conn, hasher, hasher.hash(ident), ident.kind, channel, now=NOW)


def _entries(server: LiveServer) -> list[tuple[str, str, str]]:
    with server.engine.connect() as conn:
        rows = conn.execute(
            select(ledger_entries.c.scope, ledger_entries.c.reason, ledger_entries.c.source)
        )
        return [(r.scope, r.reason, r.source) for r in rows]


def _shot(page: Page, name: str, request: pytest.FixtureRequest) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    store = request.node.callspec.params.get("store_url", "store")
    page.screenshot(path=str(ARTIFACTS / f"unsubscribe-{name}-{store}.png"), full_page=True)


def test_a_person_unsubscribes_in_norwegian_without_javascript(
    browser: Browser, server: LiveServer, hasher: Hasher, request: pytest.FixtureRequest
) -> None:
    token = _token(server, hasher, "ola.nordmann@example.com", "email")
    context = browser.new_context(
        locale="nb-NO", java_script_enabled=False, viewport={"width": 390, "height": 844}
    )
    page = context.new_page()
    page.goto(f"{server.url}/u/{token}")

    expect(page.locator("html")).to_have_attribute("lang", "nb")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Stopp e-post fra {ORG_NAME}")
    expect(page.get_by_role("button", name="Stopp all markedsføring")).to_be_visible()
    expect(page.get_by_label("Adressert reklame i posten")).not_to_be_checked()
    no_sideways_scroll = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert no_sideways_scroll, "the page must fit a phone's width"
    _shot(page, "nb-page", request)
    assert _entries(server) == [], "opening the page changes nothing (EM-2)"

    page.get_by_role("button", name="Stopp e-post").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Du er avmeldt")
    expect(page.get_by_text(f"Vi har stoppet e-post fra {ORG_NAME}.")).to_be_visible()
    _shot(page, "nb-done", request)
    assert _entries(server) == [("email", "unsubscribe", "web")]
    assert context.cookies() == []
    context.close()


def test_a_person_stops_all_marketing_in_english(
    browser: Browser, server: LiveServer, hasher: Hasher, request: pytest.FixtureRequest
) -> None:
    token = _token(server, hasher, "kari.nordmann@example.com", "email")
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    page.goto(f"{server.url}/u/{token}")

    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Stop email from {ORG_NAME}")
    _shot(page, "en-page", request)

    page.get_by_role("button", name="Stop all marketing").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    expect(page.get_by_text("We will not contact you with marketing again")).to_be_visible()
    _shot(page, "en-done", request)
    assert _entries(server) == [("all", "objection", "web")]
    context.close()


def test_the_preference_form_works_with_the_keyboard_alone(
    browser: Browser, server: LiveServer, hasher: Hasher, request: pytest.FixtureRequest
) -> None:
    token = _token(server, hasher, "41234567", "sms")
    context = browser.new_context(locale="nb-NO")
    page = context.new_page()
    page.goto(f"{server.url}/u/{token}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Stopp SMS fra {ORG_NAME}")

    page.get_by_label("Telefonsamtaler").focus()
    page.keyboard.press("Space")
    expect(page.get_by_label("Telefonsamtaler")).to_be_checked()
    page.get_by_role("button", name="Stopp det jeg har valgt").focus()
    _shot(page, "nb-preferences", request)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_have_text("Du er avmeldt")
    expect(page.get_by_text(f"Vi har stoppet telefonsamtaler fra {ORG_NAME}.")).to_be_visible()
    assert _entries(server) == [("phone", "unsubscribe", "web")]
    context.close()


def test_an_unknown_link_shows_a_plain_norwegian_page(
    browser: Browser, server: LiveServer, request: pytest.FixtureRequest
) -> None:
    context = browser.new_context(locale="nb-NO")
    page = context.new_page()
    response = page.goto(f"{server.url}/u/AAAAAAAAAAAAAAAAAAAAAAAA")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Fant ikke lenken")
    _shot(page, "nb-not-found", request)
    context.close()


def test_a_partner_lead_hears_nothing_of_an_agreement_and_is_told_how_to_reach_us(
    browser: Browser, store_url: str, hasher: Hasher, request: pytest.FixtureRequest
) -> None:
    contact = "kundeservice@example.no"
    with LiveServer(make_context(store_url, OUTREACH_ORGANISATION_CONTACT=contact)) as live:
        with live.engine.begin() as conn:
            add_person(conn, hasher, 1, partner="Partner A")  # a lead, not a customer
        token = _token(live, hasher, "ola1@example.com", "email")
        context = browser.new_context(locale="nb-NO", java_script_enabled=False)
        page = context.new_page()
        page.goto(f"{live.url}/u/{token}")
        expect(page.get_by_text("Dette gjelder bare markedsføring.")).to_be_visible()
        expect(page.get_by_text("avtalen")).to_have_count(0)
        _shot(page, "nb-lead-page", request)

        page.get_by_role("button", name="Stopp e-post").click()

        expect(page.get_by_role("heading", level=1)).to_have_text("Du er avmeldt")
        expect(page.get_by_text(f"Ta kontakt med oss på {contact}")).to_be_visible()
        _shot(page, "nb-lead-done", request)
        context.close()
