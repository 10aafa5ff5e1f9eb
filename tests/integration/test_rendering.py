"""Messages as rendered for each recipient: an empty `{{ source_notice }}` (a customer, not
a partner lead: GD-1 has nothing to tell) leaves no blank paragraph in an email and no
double space in an SMS (issue 19, point 10), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns.campaign_schema import recipients
from campaigns.messages import render_messages
from campaigns.templates import MessageTemplate
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from tests.clock import NOW
from tests.conftest import ORG_NAME
from tests.factories import add_person

pytestmark = pytest.mark.integration

EMAIL = (
    "Subject: Hei {{ first_name }}\n\n"
    "Hei {{ first_name }}!\n\n"
    "Alarm til halv pris.\n\n"
    "{{ source_notice }}\n\n"
    "Hilsen {{ organisation.name }}\n"
    "Avmeld: {{ unsubscribe_url }}\n"
)
SMS = "{{ organisation.name }}: halv pris! {{ source_notice }} Stopp: {{ unsubscribe_url }}"
VALUES = {
    "unsubscribe_url": "https://example.invalid/u/x",
    "organisation": {"name": ORG_NAME, "number": "999999999"},
    "first_name": "Kari",
    "name": "Kari Nordmann",
}


def _messages(engine: Engine, hasher: Hasher, policy: PolicyConfig, channel: str) -> list[str]:
    """The bodies for a customer (no notice) and a partner lead (a notice)."""
    with engine.begin() as conn:
        add_person(conn, hasher, 1, partner=None, customer={})
        add_person(conn, hasher, 2, partner="Partner A")
        camp = campaign_mod.create(
            conn,
            name="Halv pris",
            channel=channel,
            purpose="alarm",
            template_text=EMAIL if channel == "email" else SMS,
            organisation_name=ORG_NAME,
            now=NOW,
        )
        launch_mod.launch(conn, hasher, policy, camp.id, now=NOW)
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                select(recipients.c.id)
                .where(recipients.c.campaign_id == camp.id, recipients.c.state == "queued")
                .order_by(recipients.c.contact_id)
            ).scalars()
        )
        assert len(ids) == 2
        messages = render_messages(
            conn, hasher, policy, "https://example.invalid", campaign_mod.get(conn, camp.id), ids
        )
    return [m.body for m in sorted(messages, key=lambda m: m.recipient_id)]


def test_an_email_to_a_customer_has_no_blank_paragraph_where_the_notice_would_be(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    customer, lead = _messages(engine, hasher, policy_config, "email")
    assert "\n\n\n" not in customer
    assert "Alarm til halv pris.\n\nHilsen" in customer
    # GD-1: the partner lead's notice is its own paragraph, as the template has it.
    assert "Alarm til halv pris.\n\nVi fikk kontaktinformasjonen din fra Partner A." in lead


def test_an_sms_to_a_customer_has_no_double_space_where_the_notice_would_be(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    customer, lead = _messages(engine, hasher, policy_config, "sms")
    assert "  " not in customer
    assert f"{ORG_NAME}: halv pris! Stopp: https://example.invalid/u/" in customer
    assert "halv pris! Vi fikk kontaktinformasjonen din fra Partner A." in lead


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ source_notice }} Hei", "Hei"),
        ("Hei {{ source_notice }}", "Hei"),
        ("Hei\n{{ source_notice }}\nAvmeld", "Hei\nAvmeld"),
        ("Hei\n\n{{ source_notice }}\n\nAvmeld", "Hei\n\nAvmeld"),
        ("Hei\n\n  {{ source_notice }}  \nAvmeld", "Hei\n\nAvmeld"),
        ("{{ source_notice }}\n\nHei", "Hei"),
        ("A  {{ first_name }}  B", "A  Kari  B"),  # only the notice's spaces are touched
    ],
)
def test_an_empty_notice_is_taken_out_with_the_space_it_stood_in(
    template: str, expected: str
) -> None:
    body = MessageTemplate.parse(template).render({**VALUES, "source_notice": ""})[1]
    assert body == expected


def test_a_notice_with_text_renders_as_written() -> None:
    body = MessageTemplate.parse("Hei\n\n{{ source_notice }}\n\nAvmeld").render(
        {**VALUES, "source_notice": "Vi fikk kontaktinformasjonen din fra Partner A."}
    )[1]
    assert body == "Hei\n\nVi fikk kontaktinformasjonen din fra Partner A.\n\nAvmeld"


def test_the_demo_prints_an_error_report_without_its_bom_and_the_file_keeps_it(
    tmp_path: Path,
) -> None:
    from campaigns.importresult import error_report
    from suppression.errors import RowError
    from worker.demo import error_report_text

    report = tmp_path / "leads.csv.errors.csv"
    report.write_bytes(error_report([RowError(3, "telefon", "not a phone number")]))
    shown = error_report_text(report)
    assert shown.splitlines() == ["row,field,reason", "3,telefon,not a phone number"]
    assert "\ufeff" not in shown
    assert report.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel still reads it as UTF-8
