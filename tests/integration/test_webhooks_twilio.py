"""Twilio webhooks over real HTTP, signed with the SDK's own RequestValidator:
SM-1 keywords, ALL-5 START, the review queue, SM-2 error 21610, delivery states."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator

from campaigns.optouts.schema import delivery_events, inbound_events
from suppression.keys import Hasher
from suppression.ledger import Ledger
from suppression.schema import ledger_entries, review_items
from tests.browser.live_server import PUBLIC_URL, TWILIO_AUTH_TOKEN, LiveServer, make_context

pytestmark = pytest.mark.integration

ACCOUNT = "AC" + "0123456789abcdef" * 2
OUR_NUMBER = "+4759000000"
PERSON = "+4741234567"
SM1_KEYWORDS = [
    "STOP",
    "STOPP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "AVMELD",
    "AVSLUTT",
    "REVOKE",
    "OPTOUT",
]


@dataclass
class Twilio:
    """Posts to the app as Twilio does: form-encoded, signed for the public URL."""

    url: str
    engine: Engine
    hasher: Hasher
    client: httpx.Client

    def post(
        self,
        path: str,
        params: dict[str, str],
        *,
        token: str = TWILIO_AUTH_TOKEN,
        tamper: dict[str, str] | None = None,
    ) -> httpx.Response:
        signature = RequestValidator(token).compute_signature(PUBLIC_URL + path, params)
        sent = {**params, **(tamper or {})}
        return self.client.post(
            self.url + path,
            content=urlencode(sent),
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "x-twilio-signature": signature,
            },
        )

    def sms(
        self, body: str, sid: str = "SM" + "1" * 32, sender: str = PERSON, **extra: str
    ) -> httpx.Response:
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": ACCOUNT,
            "From": sender,
            "To": OUR_NUMBER,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
            "FromCountry": "NO",
            **extra,
        }
        return self.post("/webhooks/twilio/inbound", params)

    def status(self, sid: str, status: str, error_code: str | None = None) -> httpx.Response:
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": ACCOUNT,
            "MessageStatus": status,
            "SmsStatus": status,
            "From": OUR_NUMBER,
            "To": PERSON,
            "ApiVersion": "2010-04-01",
        }
        if error_code:
            params["ErrorCode"] = error_code
        return self.post("/webhooks/twilio/status", params)

    def rows(self, table: object) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(table))]  # type: ignore[call-overload]

    def sms_suppressed(self, number: str = PERSON) -> bool:
        with self.engine.connect() as conn:
            return Ledger(conn, self.hasher).status("phone", number).suppressed("sms")


@pytest.fixture
def twilio(store_url: str, hasher: Hasher) -> Iterator[Twilio]:
    with LiveServer(make_context(store_url)) as server, httpx.Client(timeout=30) as client:
        yield Twilio(server.url, server.engine, hasher, client)


def _is_empty_twiml(response: httpx.Response) -> bool:
    return (
        response.status_code == 200
        and response.headers["content-type"].startswith("application/xml")
        and response.text.endswith("<Response/>")
    )


@pytest.mark.parametrize("word", SM1_KEYWORDS)
def test_sm1_every_keyword_becomes_an_sms_opt_out(twilio: Twilio, word: str) -> None:
    response = twilio.sms(f" {word.title()}! ")
    assert _is_empty_twiml(response)
    (entry,) = twilio.rows(ledger_entries)
    assert (entry["scope"], entry["reason"], entry["source"]) == ("sms", "unsubscribe", "twilio")
    assert entry["source_event"] == "SM" + "1" * 32
    assert twilio.sms_suppressed()


def test_a_retried_inbound_message_is_recorded_once(twilio: Twilio) -> None:
    for _ in range(3):
        assert _is_empty_twiml(twilio.sms("STOPP"))
    assert len(twilio.rows(ledger_entries)) == 1
    assert len(twilio.rows(inbound_events)) == 1


def test_all5_start_after_stop_is_recorded_and_lifts_nothing(twilio: Twilio) -> None:
    twilio.sms("STOP", sid="SM" + "a" * 32)
    for word, sid in (("START", "b"), ("UNSTOP", "c"), ("yes", "d")):
        assert _is_empty_twiml(twilio.sms(word, sid="SM" + sid * 32))
    assert twilio.sms_suppressed()
    names = sorted(str(e["name"]) for e in twilio.rows(inbound_events))
    assert names == ["sms_opt_in_request"] * 3 + ["sms_opt_out"]
    assert len(twilio.rows(ledger_entries)) == 1


def test_twilios_opt_out_type_stop_is_an_opt_out_whatever_the_body(twilio: Twilio) -> None:
    assert _is_empty_twiml(twilio.sms("Stopp dette nå", OptOutType="STOP"))
    assert twilio.sms_suppressed()


def test_twilios_opt_out_type_start_and_help_are_only_recorded(twilio: Twilio) -> None:
    twilio.sms("START", sid="SM" + "e" * 32, OptOutType="START")
    twilio.sms("HELP", sid="SM" + "f" * 32, OptOutType="HELP")
    assert twilio.rows(ledger_entries) == []
    assert len(twilio.rows(inbound_events)) == 2


def test_sm1_a_longer_refusal_goes_to_the_review_queue_not_the_ledger(twilio: Twilio) -> None:
    assert _is_empty_twiml(twilio.sms("Ikke send meg mer reklame takk"))
    assert twilio.rows(ledger_entries) == []
    (item,) = twilio.rows(review_items)
    assert item["text"] == "Ikke send meg mer reklame takk"
    assert item["key_hash"] == twilio.hasher.digest("phone", PERSON)


@pytest.mark.parametrize("text", ["S T O P", "STØPP", "st0p", "Stpo", "🛑", "⛔"])
def test_sm1_a_keyword_in_the_spellings_people_send_is_an_sms_opt_out(
    twilio: Twilio, text: str
) -> None:
    assert _is_empty_twiml(twilio.sms(text))
    (entry,) = twilio.rows(ledger_entries)
    assert (entry["scope"], entry["reason"], entry["source"]) == ("sms", "unsubscribe", "twilio")
    assert twilio.sms_suppressed()
    assert twilio.rows(review_items) == []


@pytest.mark.parametrize("text", ["Hva koster alarmen?", "SHOP", "Nå holder det 😡"])
def test_any_other_reply_to_a_marketing_sms_goes_to_the_review_queue(
    twilio: Twilio, text: str
) -> None:
    assert _is_empty_twiml(twilio.sms(text))
    assert twilio.rows(ledger_entries) == []
    (item,) = twilio.rows(review_items)
    assert item["text"] == text
    assert str(item["source_event"]).startswith("reply_text:twilio:")
    assert item["key_hash"] == twilio.hasher.digest("phone", PERSON)
    (event,) = twilio.rows(inbound_events)
    assert (event["name"], event["outcome"]) == ("sms_text", "review")


def test_a_picture_without_words_goes_to_the_review_queue_without_the_picture(
    twilio: Twilio,
) -> None:
    assert _is_empty_twiml(twilio.sms("", NumMedia="1", MediaContentType0="image/jpeg"))
    (item,) = twilio.rows(review_items)
    assert "1 attachment(s)" in str(item["text"])


def test_an_empty_reply_is_only_recorded(twilio: Twilio) -> None:
    assert _is_empty_twiml(twilio.sms("  "))
    assert twilio.rows(ledger_entries) == [] and twilio.rows(review_items) == []
    assert len(twilio.rows(inbound_events)) == 1


def test_stored_payloads_hold_no_phone_number_or_text(twilio: Twilio) -> None:
    twilio.sms("STOP")
    (event,) = twilio.rows(inbound_events)
    raw = json.loads(str(event["raw"]))
    assert "From" not in raw and "To" not in raw and "Body" not in raw
    assert "41234567" not in str(event["raw"])
    assert raw["MessageSid"] == "SM" + "1" * 32


@pytest.mark.parametrize(
    "tamper",
    [
        {"Body": "START"},  # the text changed after signing
        {"From": "+4741234568"},  # another number
        {"Extra": "1"},  # a field added
    ],
)
def test_a_tampered_request_is_refused_with_403_and_changes_nothing(
    twilio: Twilio, tamper: dict[str, str]
) -> None:
    params = {"MessageSid": "SM" + "2" * 32, "From": PERSON, "To": OUR_NUMBER, "Body": "STOP"}
    response = twilio.post("/webhooks/twilio/inbound", params, tamper=tamper)
    assert response.status_code == 403
    assert twilio.rows(ledger_entries) == [] and twilio.rows(inbound_events) == []


def test_a_request_signed_with_another_token_or_unsigned_is_refused(twilio: Twilio) -> None:
    params = {"MessageSid": "SM" + "3" * 32, "From": PERSON, "Body": "STOP"}
    assert twilio.post("/webhooks/twilio/inbound", params, token="wrong-token").status_code == 403
    unsigned = twilio.client.post(twilio.url + "/webhooks/twilio/inbound", data=params)
    assert unsigned.status_code == 403
    assert twilio.rows(ledger_entries) == []


def test_the_signature_is_checked_against_the_public_url_not_the_local_one(
    twilio: Twilio,
) -> None:
    params = {"MessageSid": "SM" + "4" * 32, "From": PERSON, "Body": "STOP"}
    local = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
        twilio.url + "/webhooks/twilio/inbound", params
    )
    response = twilio.client.post(
        twilio.url + "/webhooks/twilio/inbound", data=params, headers={"x-twilio-signature": local}
    )
    assert response.status_code == 403


def test_status_callbacks_record_delivery_states_once_each(twilio: Twilio) -> None:
    sid = "SM" + "5" * 32
    for state in ("queued", "sent", "delivered", "delivered"):
        assert _is_empty_twiml(twilio.status(sid, state))
    rows = twilio.rows(delivery_events)
    assert sorted(str(r["status"]) for r in rows) == ["delivered", "queued", "sent"]
    assert all("41234567" not in str(r["raw"]) for r in rows)
    assert twilio.rows(ledger_entries) == []


def test_a_status_for_a_message_we_never_sent_still_gets_200(twilio: Twilio) -> None:
    assert _is_empty_twiml(twilio.status("SM" + "9" * 32, "undelivered", "30003"))
    (row,) = twilio.rows(delivery_events)
    assert row["error_code"] == "30003"


def test_sm2_error_21610_becomes_an_sms_suppression_of_the_recipient(twilio: Twilio) -> None:
    sid = "SM" + "6" * 32
    for _ in range(2):
        assert _is_empty_twiml(twilio.status(sid, "failed", "21610"))
    (entry,) = twilio.rows(ledger_entries)
    assert (entry["scope"], entry["reason"]) == ("sms", "carrier_opt_out")
    assert twilio.sms_suppressed()


def test_a_status_callback_with_a_bad_signature_is_refused(twilio: Twilio) -> None:
    params = {"MessageSid": "SM" + "7" * 32, "MessageStatus": "failed", "ErrorCode": "21610"}
    response = twilio.post("/webhooks/twilio/status", params, tamper={"ErrorCode": "30003"})
    assert response.status_code == 403
    assert twilio.rows(delivery_events) == []


def test_without_an_auth_token_configured_twilio_webhooks_are_refused(
    store_url: str,
) -> None:
    with LiveServer(make_context(store_url, TWILIO_AUTH_TOKEN=None)) as server:
        params = {"MessageSid": "SM" + "8" * 32, "From": PERSON, "Body": "STOP"}
        signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
            PUBLIC_URL + "/webhooks/twilio/inbound", params
        )
        response = httpx.post(
            server.url + "/webhooks/twilio/inbound",
            data=params,
            headers={"x-twilio-signature": signature},
        )
        assert response.status_code == 403
