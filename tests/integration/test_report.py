"""`outreach campaign report`: Norwegian first (English with --lang en), each rule id with
its sentence (docs/rules.md), the campaign's dates in Europe/Oslo, the message rendered for
a made-up recipient, and what the provider reported (issue 19, point 9); text, HTML
(parsed) and JSON, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import Engine, select, update

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns import report as report_mod
from campaigns.campaign_schema import recipients
from campaigns.optouts import record
from campaigns.optouts.events import DeliveryEvent
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from tests.clock import NOW
from tests.conftest import ORG_NAME, Cli
from tests.factories import add_person
from worker.web import i18n

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SMS = "{{ organisation.name }}: tilbud til {{ first_name }}! {{ source_notice }} Stopp: {{ unsubscribe_url }}"
EMAIL = (
    "Subject: {{ first_name }}, et tryggere hjem\n\nHei {{ first_name }}!\n\n{{ source_notice }}\n\n"
    "Hilsen {{ organisation.name }}. Avmeld: {{ unsubscribe_url }}\n"
)
# Stored as the store keeps every time: UTC (SQLite hands it back naive).
CREATED = (NOW - timedelta(hours=1)).astimezone(UTC)


def _campaign(engine: Engine, hasher: Hasher, policy: PolicyConfig, channel: str, name: str) -> int:
    """Four partner leads with consent and one without (ES-1), launched at NOW."""
    with engine.begin() as conn:
        for n in range(4):
            add_person(conn, hasher, n)
        add_person(conn, hasher, 4, consent_channels=None)
        camp = campaign_mod.create(
            conn,
            name=name,
            channel=channel,
            purpose="alarm",
            template_text=SMS if channel == "sms" else EMAIL,
            organisation_name=ORG_NAME,
            now=CREATED,
        )
        launch_mod.launch(conn, hasher, policy, camp.id, now=NOW)
    return camp.id


def _twilio_delivered(engine: Engine, hasher: Hasher, campaign_id: int) -> None:
    """Three of the four sent through Twilio (message SIDs as Twilio gives them); its
    status callbacks say two delivered and one undelivered, recorded as the webhook does."""
    with engine.begin() as conn:
        ids = [
            int(r)
            for r in conn.execute(
                select(recipients.c.id)
                .where(recipients.c.campaign_id == campaign_id, recipients.c.state == "queued")
                .order_by(recipients.c.id)
            ).scalars()
        ]
        assert len(ids) == 4
        for i, rid in enumerate(ids[:3]):
            conn.execute(
                update(recipients)
                .where(recipients.c.id == rid)
                .values(state="sent", provider_id=f"SM{i:032d}", sent_at=NOW)
            )
        events = [
            DeliveryEvent("twilio", f"SM{0:032d}", "sent", None, NOW),
            DeliveryEvent("twilio", f"SM{0:032d}", "delivered", None, NOW),
            DeliveryEvent("twilio", f"SM{1:032d}", "delivered", None, NOW),
            DeliveryEvent("twilio", f"SM{2:032d}", "undelivered", "30003", NOW),
        ]
        record.record(conn, hasher, events, now=NOW)


@pytest.fixture
def sms_campaign(engine: Engine, hasher: Hasher, policy_config: PolicyConfig) -> int:
    campaign_id = _campaign(engine, hasher, policy_config, "sms", "Vinter <b>SMS</b>")
    _twilio_delivered(engine, hasher, campaign_id)
    return campaign_id


class _Tables(HTMLParser):
    """The rows of each table with an id, and the text of the element with id=sample."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.table: str | None = None
        self.cell: list[str] | None = None
        self.sample_depth = 0
        self.sample: list[str] = []
        self.lang = ""
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        if tag == "script":
            self.scripts += 1
        table_id = a.get("id")
        if tag == "table" and table_id:
            self.table = table_id
            self.tables[table_id] = []
        if tag == "tr" and self.table:
            self.tables[self.table].append([])
        if tag in ("td", "th") and self.table:
            self.cell = []
        if a.get("id") == "sample" or self.sample_depth:
            self.sample_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.table and self.cell is not None:
            self.tables[self.table][-1].append("".join(self.cell).strip())
            self.cell = None
        if tag == "table":
            self.table = None
        if self.sample_depth:
            self.sample_depth -= 1

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        if self.sample_depth:
            self.sample.append(data)


def _parse(path: Path) -> _Tables:
    parser = _Tables()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_the_report_is_norwegian_by_default_with_rule_sentences_dates_and_an_example(
    cli: Cli, sms_campaign: int
) -> None:
    result = cli("campaign", "report", str(sms_campaign))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Kampanje" in out and "Vinter <b>SMS</b>" in out
    # ES-1: the rule id with its sentence, and the reason in words, not "excluded:no_consent".
    assert "uten samtykke (ES-1 Samtykke på forhånd): 1" in out
    assert "excluded:no_consent" not in out
    oslo = CREATED.astimezone(report_mod.OSLO).strftime("%Y-%m-%d %H:%M")
    assert f"Opprettet: {oslo}" in out
    assert f"Startet: {NOW.astimezone(report_mod.OSLO):%Y-%m-%d %H:%M}" in out
    assert "Ferdig: ikke ennå" in out and "Europe/Oslo" in out
    # What Twilio reported: its status callbacks; opens and clicks it does not report.
    assert "levert: 2" in out and "ikke levert: 1" in out
    assert "åpnet: rapporteres ikke av Twilio" in out
    assert "klikket: rapporteres ikke av Twilio" in out
    # The message, for a made-up person, marked as an example; the GD-1 notice rendered.
    assert "Eksempel: meldingen slik Kari Nordmann" in out
    assert f"{ORG_NAME}: tilbud til Kari!" in out
    assert "Eksempelpartner AS" in out and "/u/EKSEMPEL" in out


def test_the_report_in_english_on_request(cli: Cli, sms_campaign: int) -> None:
    result = cli("campaign", "report", str(sms_campaign), "--lang", "en")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Campaign" in out and "Kampanje" not in out
    assert "no consent (ES-1 Prior consent): 1" in out
    assert "delivered: 2" in out and "bounced: 1" in out
    assert "opened: not reported by Twilio" in out
    assert "Example: the message as Kari Nordmann, a made-up recipient" in out


@pytest.mark.parametrize(
    ("lang", "words"), [("nb", ("levert", "åpnet")), ("en", ("delivered", "opened"))]
)
def test_the_html_report_is_autoescaped_and_says_the_same_in_its_language(
    cli: Cli, sms_campaign: int, tmp_path: Path, lang: str, words: tuple[str, str]
) -> None:
    page = tmp_path / "report.html"
    result = cli("campaign", "report", str(sms_campaign), "--html", str(page), "--lang", lang)
    assert result.exit_code == 0, result.output
    raw = page.read_text(encoding="utf-8")
    assert "Vinter &lt;b&gt;SMS&lt;/b&gt;" in raw and "<b>SMS</b>" not in raw
    doc = _parse(page)
    assert doc.lang == lang and doc.scripts == 0
    delivery = {row[0]: row[1] for row in doc.tables["delivery"]}
    assert delivery[words[0]] == "2"
    provider_says = "rapporteres ikke av Twilio" if lang == "nb" else "not reported by Twilio"
    assert delivery[words[1]] == provider_says
    exclusions = doc.tables["exclusions"][1:]
    sentence = "ES-1 Samtykke på forhånd" if lang == "nb" else "ES-1 Prior consent"
    assert [row[1:] for row in exclusions] == [[sentence, "1"]]
    dates = dict(row for row in doc.tables["dates"] if len(row) == 2)
    created = "Opprettet" if lang == "nb" else "Created"
    assert dates[created] == CREATED.astimezone(report_mod.OSLO).strftime("%Y-%m-%d %H:%M")
    sample = " ".join("".join(doc.sample).split())
    assert ("Eksempel" if lang == "nb" else "Example") in sample
    assert f"{ORG_NAME}: tilbud til Kari!" in sample


@pytest.mark.parametrize(
    ("lang", "sentence"), [("nb", "ES-1 Samtykke på forhånd"), ("en", "ES-1 Prior consent")]
)
def test_the_json_report_has_iso_times_with_offset_the_delivery_and_the_rule_sentences(
    cli: Cli, sms_campaign: int, lang: str, sentence: str
) -> None:
    result = cli("campaign", "report", str(sms_campaign), "--json", "--lang", lang)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    camp = payload["campaign"]
    assert camp["created_at"] == CREATED.astimezone(report_mod.OSLO).isoformat()
    assert re.search(r"[+-]\d\d:\d\d$", camp["launched_at"])
    assert camp["finished_at"] is None
    assert payload["exclusions"] == [
        {"reason": "excluded:no_consent", "rule": "ES-1", "count": 1, "rule_text": sentence}
    ]
    assert payload["delivery"] == {
        "provider": "twilio",
        "delivered": 2,
        "bounced": 1,
        "opened": None,
        "clicked": None,
    }
    assert payload["funnel"]["delivered"] == 2
    assert payload["sample"]["example"] is True
    assert "Kari" in payload["sample"]["body"]


def test_an_email_campaign_sent_through_the_outbox_claims_no_delivery_figures(
    cli: Cli, engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    campaign_id = _campaign(engine, hasher, policy_config, "email", "Vinter-e-post")
    with engine.begin() as conn:
        conn.execute(
            update(recipients)
            .where(recipients.c.campaign_id == campaign_id, recipients.c.state == "queued")
            .values(state="sent", provider_id="outbox:1.json", sent_at=NOW)
        )
    payload = json.loads(cli("campaign", "report", str(campaign_id), "--json").output)
    assert payload["delivery"] == {
        "provider": "outbox",
        "delivered": None,
        "bounced": None,
        "opened": None,
        "clicked": None,
    }
    assert "delivered" not in payload["funnel"]
    assert payload["sample"]["subject"] == "Kari, et tryggere hjem"
    out = cli("campaign", "report", str(campaign_id)).output
    assert "levert: rapporteres ikke av utboksen" in out
    assert "Emne: Kari, et tryggere hjem" in out


def test_a_mailchimp_campaign_says_mailchimp_reports_are_not_recorded_rather_than_0(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    campaign_id = _campaign(engine, hasher, policy_config, "email", "Vinter-e-post")
    with engine.begin() as conn:
        conn.execute(
            update(recipients)
            .where(recipients.c.campaign_id == campaign_id, recipients.c.state == "queued")
            .values(state="sent", provider_id="a1b2c3d4e5", sent_at=NOW)
        )
        rep = report_mod.build(conn, campaign_id)
    assert rep.provider == "mailchimp"
    lines = report_mod.text_lines(rep, i18n.compile_catalog("en").gettext)
    assert "  opened: not reported by Mailchimp" in lines
    assert "  delivered: not reported by Mailchimp" in lines


def test_every_rule_sentence_is_the_one_docs_rules_md_gives() -> None:
    table = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    documented = dict(re.findall(r"^\| \*\*([A-Z]+-\d+)\*\* (.*?) \|", table, re.M))
    assert documented, "docs/rules.md lists the rules"
    assert dict(report_mod.RULE_TITLES) == documented


def test_every_word_of_the_report_has_a_norwegian_translation() -> None:
    path = i18n.LOCALE_DIR / "nb" / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = {m.id: m.string for m in read_po(handle, locale="nb") if m.id}
    tables = (
        report_mod.RULE_TITLES,
        report_mod.STATE_LABELS,
        report_mod.CAMPAIGN_STATE_LABELS,
        report_mod.CHANNEL_LABELS,
        report_mod.DECISION_LABELS,
        report_mod.FUNNEL_LABELS,
        report_mod.DELIVERY_LABELS,
        report_mod.PROVIDER_NAMES,
    )
    source = Path(report_mod.__file__).read_text(encoding="utf-8")
    said = set(re.findall(r'say\("([^"]+)"\)', source))
    wanted = {text for t in tables for text in t.values()} | said
    missing = sorted(w for w in wanted if not catalog.get(w))
    assert not missing, f"no Norwegian for {missing}"
