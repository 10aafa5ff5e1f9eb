"""Mailchimp audience webhooks over real HTTP, with payloads as Mailchimp posts them
(form-encoded, flat data[...] keys): EM-4 unsubscribe, cleaned, upemail, profile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, select

from campaigns.optouts.schema import inbound_events
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.ledger import Ledger
from suppression.schema import ledger_entries
from tests.browser.live_server import MAILCHIMP_SECRET, LiveServer, make_context
from tests.clock import UTC_NOW

pytestmark = pytest.mark.integration

LIST_ID = "a6b5da1054"

# When Mailchimp fired the events: a few minutes before the app receives them (the app's
# clock starts at the suite's instant), in Mailchimp's "YYYY-MM-DD HH:MM:SS" UTC.
FIRED_AT = (UTC_NOW - timedelta(minutes=5)).replace(microsecond=0)


def fired(minutes_later: int = 0) -> str:
    return (FIRED_AT + timedelta(minutes=minutes_later)).strftime("%Y-%m-%d %H:%M:%S")


def unsubscribe(
    address: str, reason: str = "manual", fired_at: str | None = None
) -> list[tuple[str, str]]:
    return [
        ("type", "unsubscribe"),
        ("fired_at", fired_at or fired()),
        ("data[action]", "unsub"),
        ("data[reason]", reason),
        ("data[id]", "8a25ff1d98"),
        ("data[list_id]", LIST_ID),
        ("data[email]", address),
        ("data[email_type]", "html"),
        ("data[merges][EMAIL]", address),
        ("data[merges][FNAME]", "Ola"),
        ("data[merges][LNAME]", "Nordmann"),
        ("data[merges][INTERESTS]", "Alarm,Kamera"),
        ("data[ip_opt]", "10.20.10.30"),
        ("data[campaign_id]", "cb398d21d2"),
    ]


def cleaned(address: str, reason: str) -> list[tuple[str, str]]:
    return [
        ("type", "cleaned"),
        ("fired_at", fired(1)),
        ("data[list_id]", LIST_ID),
        ("data[campaign_id]", "4fjk2ma9xd"),
        ("data[reason]", reason),
        ("data[email]", address),
    ]


def upemail(old: str, new: str) -> list[tuple[str, str]]:
    return [
        ("type", "upemail"),
        ("fired_at", fired(2)),
        ("data[list_id]", LIST_ID),
        ("data[new_id]", "51da8c3259"),
        ("data[new_email]", new),
        ("data[old_email]", old),
    ]


def profile(address: str) -> list[tuple[str, str]]:
    return [
        ("type", "profile"),
        ("fired_at", fired(-1)),
        ("data[id]", "8a25ff1d98"),
        ("data[list_id]", LIST_ID),
        ("data[email]", address),
        ("data[email_type]", "html"),
        ("data[merges][EMAIL]", address),
        ("data[merges][FNAME]", "Kari"),
        ("data[ip_opt]", "10.20.10.30"),
    ]


@dataclass
class Mailchimp:
    url: str
    engine: Engine
    hasher: Hasher
    client: httpx.Client

    def post(self, fields: list[tuple[str, str]], secret: str = MAILCHIMP_SECRET) -> httpx.Response:
        return self.client.post(f"{self.url}/webhooks/mailchimp/{secret}", data=dict(fields))

    def entries(self, address: str | None = None) -> list[dict[str, object]]:
        query = select(ledger_entries)
        if address is not None:
            digest = self.hasher.digest("email", email_identity(address).value)
            query = query.where(ledger_entries.c.key_hash == digest)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def events(self) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(inbound_events))]

    def email_suppressed(self, address: str) -> bool:
        with self.engine.connect() as conn:
            value = email_identity(address).value
            return Ledger(conn, self.hasher).status("email", value).suppressed("email")


@pytest.fixture
def mailchimp(store_url: str, hasher: Hasher) -> Iterator[Mailchimp]:
    with LiveServer(make_context(store_url)) as server, httpx.Client(timeout=30) as client:
        yield Mailchimp(server.url, server.engine, hasher, client)


def test_mailchimps_url_check_gets_200_with_the_right_secret(mailchimp: Mailchimp) -> None:
    response = mailchimp.client.get(f"{mailchimp.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "secret", ["wrong", MAILCHIMP_SECRET[:-1], MAILCHIMP_SECRET + "x", "ø" * 10]
)
def test_a_wrong_secret_gets_the_plain_404_and_changes_nothing(
    mailchimp: Mailchimp, secret: str
) -> None:
    assert mailchimp.client.get(f"{mailchimp.url}/webhooks/mailchimp/{secret}").status_code == 404
    response = mailchimp.post(unsubscribe("ola@example.com"), secret=secret)
    assert response.status_code == 404
    assert mailchimp.entries() == [] and mailchimp.events() == []


def test_em4_an_unsubscribe_becomes_an_email_unsubscribe(mailchimp: Mailchimp) -> None:
    assert mailchimp.post(unsubscribe("Ola.Nordmann@Example.com")).status_code == 200
    (entry,) = mailchimp.entries("ola.nordmann@example.com")
    assert (entry["scope"], entry["reason"], entry["source"]) == (
        "email",
        "unsubscribe",
        "mailchimp",
    )
    occurred = entry["occurred_at"]
    assert isinstance(occurred, datetime)
    assert occurred.replace(tzinfo=UTC) == FIRED_AT


def test_an_unsubscribe_for_abuse_is_a_complaint_for_all_marketing(mailchimp: Mailchimp) -> None:
    mailchimp.post(unsubscribe("ola@example.com", reason="abuse"))
    (entry,) = mailchimp.entries("ola@example.com")
    assert (entry["scope"], entry["reason"]) == ("all", "complaint")


@pytest.mark.parametrize(("reason", "expected"), [("hard", "hard_bounce"), ("abuse", "complaint")])
def test_a_cleaned_address_is_suppressed_for_email(
    mailchimp: Mailchimp, reason: str, expected: str
) -> None:
    assert mailchimp.post(cleaned("kari@example.com", reason)).status_code == 200
    (entry,) = mailchimp.entries("kari@example.com")
    assert (entry["scope"], entry["reason"]) == ("email", expected)


def test_a_retried_event_is_recorded_once(mailchimp: Mailchimp) -> None:
    for _ in range(3):
        assert mailchimp.post(unsubscribe("ola@example.com")).status_code == 200
    assert len(mailchimp.entries()) == 1
    assert len(mailchimp.events()) == 1


def test_a_later_unsubscribe_of_the_same_address_is_a_new_event(mailchimp: Mailchimp) -> None:
    a_month_before = (FIRED_AT - timedelta(days=31)).strftime("%Y-%m-%d %H:%M:%S")
    mailchimp.post(unsubscribe("ola@example.com", fired_at=a_month_before))
    mailchimp.post(unsubscribe("ola@example.com", fired_at=fired()))
    assert len(mailchimp.events()) == 2


def test_upemail_makes_the_old_addresses_no_follow_the_new_address(mailchimp: Mailchimp) -> None:
    mailchimp.post(unsubscribe("old@example.com"))
    mailchimp.post(cleaned("old@example.com", "abuse"))
    for _ in range(2):  # retried
        assert mailchimp.post(upemail("old@example.com", "new@example.com")).status_code == 200
    assert mailchimp.email_suppressed("new@example.com")
    moved = mailchimp.entries("new@example.com")
    assert sorted(str(e["reason"]) for e in moved) == ["complaint", "unsubscribe"]
    assert all(str(e["evidence_ref"]).count("follows ledger:") == 1 for e in moved)


def test_upemail_of_an_address_without_a_no_suppresses_nothing(mailchimp: Mailchimp) -> None:
    assert mailchimp.post(upemail("free@example.com", "new@example.com")).status_code == 200
    assert mailchimp.entries() == []
    assert not mailchimp.email_suppressed("new@example.com")


def test_a_profile_update_is_only_recorded(mailchimp: Mailchimp) -> None:
    assert mailchimp.post(profile("kari@example.com")).status_code == 200
    assert mailchimp.entries() == []
    (event,) = mailchimp.events()
    assert (event["name"], event["action"]) == ("mailchimp_profile", "record")


def test_stored_payloads_hold_no_address_name_or_ip(mailchimp: Mailchimp) -> None:
    mailchimp.post(unsubscribe("ola.nordmann@example.com"))
    (event,) = mailchimp.events()
    raw = str(event["raw"])
    for personal in ("example.com", "Nordmann", "10.20.10.30", "8a25ff1d98"):
        assert personal not in raw
    assert json.loads(raw)["data[list_id]"] == LIST_ID


def test_an_address_that_does_not_validate_is_recorded_and_answered_200(
    mailchimp: Mailchimp,
) -> None:
    assert mailchimp.post(unsubscribe("not an address")).status_code == 200
    (event,) = mailchimp.events()
    assert event["outcome"] == "no_identity"
    assert mailchimp.entries() == []


def test_without_a_secret_configured_every_url_is_404(store_url: str) -> None:
    with LiveServer(make_context(store_url, MAILCHIMP_WEBHOOK_SECRET=None)) as server:
        assert httpx.get(f"{server.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}").status_code == 404
        assert httpx.get(f"{server.url}/webhooks/mailchimp/").status_code == 404
