"""The unsubscribe link over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL:
EM-1 one-click, EM-2 GET changes nothing, ALL-1/ALL-2 choices, ALL-4 after erasure."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, event, func, select

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns import people
from campaigns.campaign_schema import recipients
from suppression import tokens
from suppression.identity import email_identity, phone_identity
from suppression.keys import Hasher
from suppression.ledger import Ledger
from suppression.policy import PolicyConfig
from suppression.schema import ledger_entries
from tests.browser.live_server import PUBLIC_URL, LiveServer, make_context
from tests.clock import NOW
from tests.conftest import ORG_NAME, SECRET
from tests.factories import add_person
from worker import db

pytestmark = pytest.mark.integration

ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclass
class Site:
    url: str
    engine: Engine
    hasher: Hasher

    def token(self, identity: str = "ola.nordmann@example.com", channel: str = "email") -> str:
        ident = email_identity(identity) if "@" in identity else phone_identity(identity)
        with self.engine.begin() as conn:
            return tokens.issue(
                conn, self.hasher, self.hasher.hash(ident), ident.kind, channel, now=NOW
            )

    def entries(self) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(ledger_entries))]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one())


@pytest.fixture
def site(store_url: str, hasher: Hasher) -> Iterator[Site]:
    with LiveServer(make_context(store_url)) as server:
        yield Site(server.url, server.engine, hasher)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, follow_redirects=False) as c:
        yield c


def test_em2_the_page_is_norwegian_by_default_and_get_changes_nothing(
    site: Site, client: httpx.Client
) -> None:
    token = site.token()
    for _ in range(3):
        response = client.get(f"{site.url}/u/{token}")
        assert response.status_code == 200
        assert '<html lang="nb">' in response.text
        assert f"Stopp e-post fra {ORG_NAME}" in response.text
        assert "Stopp all markedsføring" in response.text
        assert response.headers["content-language"] == "nb"
    assert site.count() == 0


@pytest.mark.parametrize(
    ("query", "headers"),
    [("?lang=en", {}), ("", {"accept-language": "en-GB,en;q=0.9,nb;q=0.5"})],
)
def test_the_page_is_english_when_asked_for(
    site: Site, client: httpx.Client, query: str, headers: dict[str, str]
) -> None:
    response = client.get(f"{site.url}/u/{site.token()}{query}", headers=headers)
    assert response.status_code == 200
    assert '<html lang="en">' in response.text
    assert f"Stop email from {ORG_NAME}" in response.text


def test_norwegian_wins_when_the_browser_prefers_it(site: Site, client: httpx.Client) -> None:
    response = client.get(
        f"{site.url}/u/{site.token()}", headers={"accept-language": "nn-NO,en;q=0.8"}
    )
    assert '<html lang="nb">' in response.text


def test_em1_one_click_urlencoded_answers_200_and_records_the_channel_once(
    site: Site, client: httpx.Client
) -> None:
    token = site.token()
    for _ in range(3):
        response = client.post(f"{site.url}/u/{token}", content=ONE_CLICK, headers=FORM)
        assert response.status_code == 200
        assert "set-cookie" not in response.headers
    entries = site.entries()
    assert len(entries) == 1
    (entry,) = entries
    assert (entry["scope"], entry["reason"], entry["source"]) == ("email", "unsubscribe", "web")
    assert str(entry["evidence_ref"]).startswith("token:")


def test_em1_one_click_multipart_answers_200_and_repeats_change_nothing(
    site: Site, client: httpx.Client
) -> None:
    token = site.token()
    for _ in range(2):
        response = client.post(
            f"{site.url}/u/{token}", files={"List-Unsubscribe": (None, "One-Click")}
        )
        assert response.status_code == 200
        assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert [e["scope"] for e in site.entries()] == ["email"]


def test_all2_one_click_from_an_sms_link_stops_sms(site: Site, client: httpx.Client) -> None:
    token = site.token("41234567", channel="sms")
    assert client.post(f"{site.url}/u/{token}", content=ONE_CLICK, headers=FORM).status_code == 200
    (entry,) = site.entries()
    assert (entry["scope"], entry["identity_kind"]) == ("sms", "phone")
    with site.engine.connect() as conn:
        status = Ledger(conn, site.hasher).status("phone", "+4741234567")
    assert status.suppressed("sms") and not status.suppressed("phone")


def test_all1_the_all_marketing_button_records_an_objection(
    site: Site, client: httpx.Client
) -> None:
    token = site.token()
    response = client.post(f"{site.url}/u/{token}", data={"action": "all", "lang": "nb"})
    assert response.status_code == 200
    assert "Du er avmeldt" in response.text
    assert "i noen kanal" in response.text
    (entry,) = site.entries()
    assert (entry["scope"], entry["reason"]) == ("all", "objection")


def test_the_preference_form_stops_each_ticked_channel(site: Site, client: httpx.Client) -> None:
    token = site.token()
    response = client.post(
        f"{site.url}/u/{token}",
        data={"action": "preferences", "channels": ["sms", "post"], "lang": "en"},
    )
    assert response.status_code == 200
    assert "text messages and addressed advertising" in response.text
    assert sorted(str(e["scope"]) for e in site.entries()) == ["post", "sms"]


def test_the_preference_form_with_nothing_ticked_asks_again_and_stores_nothing(
    site: Site, client: httpx.Client
) -> None:
    response = client.post(f"{site.url}/u/{site.token()}", data={"action": "preferences"})
    assert response.status_code == 400
    assert "Velg minst én kanal." in response.text
    assert site.count() == 0


def test_a_post_without_any_choice_stores_nothing(site: Site, client: httpx.Client) -> None:
    response = client.post(f"{site.url}/u/{site.token()}", content=b"", headers=FORM)
    assert response.status_code == 400
    assert site.count() == 0


def test_the_page_says_when_the_channel_is_already_stopped(
    site: Site, client: httpx.Client
) -> None:
    token = site.token()
    client.post(f"{site.url}/u/{token}", content=ONE_CLICK, headers=FORM)
    response = client.get(f"{site.url}/u/{token}")
    assert "Du er allerede avmeldt fra e-post." in response.text
    assert 'value="email" checked disabled' in response.text


def _signed(site: Site, hasher: Hasher, token_id: int) -> str:
    """A token row's token as this store's installation signs it, under `hasher`'s key."""
    with site.engine.connect() as conn:
        return tokens.encode(tokens.signer(conn, hasher), token_id)


def _forgeries(site: Site, hasher: Hasher) -> list[str]:
    real = site.token()
    other_key = Hasher(b"another-secret-key-0123456789abcdef")
    return [
        real[:-1] + ("A" if real[-1] != "A" else "B"),  # one character changed
        real[:-2],  # truncated
        _signed(site, hasher, 987_654),  # a real MAC over an id never issued
        _signed(site, other_key, 1),  # signed with another key
        "not-a-token",
        "x" * 200,
    ]


def test_forged_and_unknown_tokens_get_the_same_404_and_change_nothing(
    site: Site, client: httpx.Client, hasher: Hasher
) -> None:
    bodies = set()
    for forged in _forgeries(site, hasher):
        for method in ("GET", "POST"):
            response = client.request(
                method, f"{site.url}/u/{forged}", content=ONE_CLICK, headers=FORM
            )
            assert response.status_code == 404
            assert "set-cookie" not in response.headers
            bodies.add(response.text)
    assert len(bodies) == 1, "a 404 must not tell a forged token from an unknown one"
    assert site.count() == 0


def test_all4_the_link_keeps_working_after_the_persons_erasure(
    site: Site, client: httpx.Client, hasher: Hasher
) -> None:
    token = site.token("kari.nordmann@example.com")
    with site.engine.begin() as conn:
        people.forget(
            conn, hasher, email_identity("kari.nordmann@example.com"), now=NOW, actor="test"
        )
    assert client.get(f"{site.url}/u/{token}").status_code == 200
    response = client.post(f"{site.url}/u/{token}", content=ONE_CLICK, headers=FORM)
    assert response.status_code == 200
    assert {"web"} <= {str(e["source"]) for e in site.entries()}


def test_pages_carry_no_cookies_and_are_kept_out_of_caches(
    site: Site, client: httpx.Client
) -> None:
    response = client.get(f"{site.url}/u/{site.token()}")
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in response.text


# Anyone can send any Host header; a redirect built from it would send the person to
# another site from our own link.
FORGED_HOST = {"host": "evil.example", "x-forwarded-host": "evil.example"}


def test_the_link_with_a_slash_added_redirects_to_the_public_url_whatever_the_host_header(
    site: Site, client: httpx.Client
) -> None:
    token = site.token()
    response = client.get(f"{site.url}/u/{token}/?lang=en", headers=FORGED_HOST)
    assert response.status_code == 307
    assert response.headers["location"] == f"{PUBLIC_URL}/u/{token}?lang=en"
    assert site.count() == 0


def test_one_click_to_the_link_with_a_slash_added_is_answered_never_redirected(
    site: Site, client: httpx.Client
) -> None:
    token = site.token()
    response = client.post(
        f"{site.url}/u/{token}/", content=ONE_CLICK, headers={**FORM, **FORGED_HOST}
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    (entry,) = site.entries()
    assert (entry["scope"], entry["reason"]) == ("email", "unsubscribe")


@pytest.mark.parametrize("path", ["/healthz/", "/u/{token}//"])
def test_every_redirect_of_the_app_goes_to_the_public_url(
    site: Site, client: httpx.Client, path: str
) -> None:
    for method in ("GET", "POST"):
        response = client.request(
            method, site.url + path.format(token=site.token()), headers=FORGED_HOST
        )
        assert response.status_code == 307
        assert response.headers["location"].startswith(PUBLIC_URL + "/")
        assert "evil" not in response.headers["location"]


def test_healthz_answers_when_the_database_is_there(site: Site, client: httpx.Client) -> None:
    answer = client.get(f"{site.url}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "redis": "not configured"}


def test_metrics_count_requests_by_route_never_by_token(site: Site, client: httpx.Client) -> None:
    client.get(f"{site.url}/u/not-a-real-token")
    text = client.get(f"{site.url}/metrics").text
    assert 'outreach_http_requests_total{method="GET",route="/u/{token}",status="404"}' in text
    assert "not-a-real-token" not in text


def test_outreach_serve_runs_the_app_as_the_procfile_starts_it(
    store_url: str, hasher: Hasher, tmp_path: Path
) -> None:
    """`outreach serve` (uvicorn, two worker processes) answers the one-click POST."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": store_url,
        "OUTREACH_SECRET_KEY": SECRET,
        "OUTREACH_ORGANISATION_NAME": ORG_NAME,
        "OUTREACH_DEMO_NOW": NOW.isoformat(),  # the app's clock starts at the suite's instant
    }
    outreach = str(Path(sys.executable).parent / "outreach")
    process = subprocess.Popen(
        [outreach, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
    )
    engine = db.engine_for(store_url)
    try:
        ident = email_identity("ola.nordmann@example.com")
        with engine.begin() as conn:
            token = tokens.issue(conn, hasher, hasher.hash(ident), "email", "email", now=NOW)
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "outreach serve exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "outreach serve did not answer"
                time.sleep(0.1)
        response = httpx.post(f"http://127.0.0.1:{port}/u/{token}", content=ONE_CLICK, headers=FORM)
        assert response.status_code == 200
        assert response.headers.get("server") is None  # no server banner
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one() == 1
    finally:
        process.terminate()
        process.wait(timeout=30)
        engine.dispose()


def test_a_forged_token_costs_the_same_database_lookup_as_an_unknown_one(
    site: Site, client: httpx.Client, hasher: Hasher
) -> None:
    """The same work whether or not the MAC verifies: the answer's timing tells nothing."""
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    client.get(f"{site.url}/u/{'A' * 24}")  # the installation id, read once per engine
    event.listen(site.engine, "before_cursor_execute", count)
    try:
        for candidate in ("A" * 24, _signed(site, hasher, 987_654)):
            statements.clear()
            assert client.get(f"{site.url}/u/{candidate}").status_code == 404
            assert len(statements) == 1 and "unsubscribe_tokens" in statements[0]
    finally:
        event.remove(site.engine, "before_cursor_execute", count)


CUSTOMER_NOTE = "Meldinger om avtalen og alarmen din får du som før."
MARKETING_ONLY = "Dette gjelder bare markedsføring."


def test_only_a_customer_is_told_that_messages_about_the_agreement_continue(
    site: Site, client: httpx.Client, hasher: Hasher
) -> None:
    with site.engine.begin() as conn:
        add_person(conn, hasher, 1, partner="Partner A")  # a partner lead: no agreement
        add_person(conn, hasher, 2, partner=None, customer={})
    lead = client.get(f"{site.url}/u/{site.token('ola1@example.com')}").text
    assert MARKETING_ONLY in lead and "avtalen" not in lead
    customer = client.get(f"{site.url}/u/{site.token('ola2@example.com')}").text
    assert CUSTOMER_NOTE in customer
    # A person we hold nothing about any more (or never did) is told nothing of an agreement.
    stranger = client.get(f"{site.url}/u/{site.token('kari.nordmann@example.com')}").text
    assert MARKETING_ONLY in stranger and "avtalen" not in stranger


def test_a_recipient_link_knows_whether_its_recipient_is_a_customer(
    site: Site, client: httpx.Client, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    with site.engine.begin() as conn:
        add_person(conn, hasher, 1, partner="Partner A")
        add_person(conn, hasher, 2, partner=None, customer={})
        camp = campaign_mod.create(
            conn,
            name="Vinter",
            channel="email",
            purpose="alarm",
            template_text=(
                "Hei fra {{ organisation.name }}! {{ source_notice }} Avmeld: {{ unsubscribe_url }}"
            ),
            organisation_name=ORG_NAME,
            now=NOW,
        )
        launch_mod.launch(conn, hasher, policy_config, camp.id, now=NOW)
        signer = tokens.signer(conn, hasher)
        links = {
            int(r.contact_id): tokens.for_recipient(signer, int(r.id), r.token_id)
            for r in conn.execute(
                select(recipients.c.id, recipients.c.contact_id, recipients.c.token_id).where(
                    recipients.c.campaign_id == camp.id
                )
            )
        }
    pages = {cid: client.get(f"{site.url}/u/{token}").text for cid, token in links.items()}
    lead, customer = (pages[cid] for cid in sorted(pages))
    assert MARKETING_ONLY in lead and "avtalen" not in lead
    assert CUSTOMER_NOTE in customer


def test_the_confirmation_names_the_organisations_contact(
    store_url: str, client: httpx.Client, hasher: Hasher
) -> None:
    contact = "kundeservice@example.no, 22 00 00 00"
    ctx = make_context(store_url, OUTREACH_ORGANISATION_CONTACT=contact)
    with LiveServer(ctx) as server:
        site = Site(server.url, server.engine, hasher)
        response = client.post(f"{site.url}/u/{site.token()}", content=ONE_CLICK, headers=FORM)
        english = client.post(
            f"{site.url}/u/{site.token('kari@example.com')}",
            data={"action": "all", "lang": "en"},
        )
    assert response.status_code == 200
    assert f"Ta kontakt med oss på {contact}, så ber vi om samtykket ditt på nytt." in (
        response.text
    )
    assert f"Contact us at {contact}, and we will ask for your consent again." in english.text


def test_without_a_configured_contact_the_confirmation_says_how_to_reach_us(
    site: Site, client: httpx.Client
) -> None:
    response = client.post(f"{site.url}/u/{site.token()}", content=ONE_CLICK, headers=FORM)
    assert response.status_code == 200
    assert "Svar på en melding fra oss, så ber vi om samtykket ditt på nytt." in response.text
    assert "Ta kontakt med oss," not in response.text
