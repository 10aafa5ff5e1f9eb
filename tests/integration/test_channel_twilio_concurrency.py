"""The Twilio channel sends a sub-batch's messages several at once (the real SDK against
the fake), and a rate limit stops it from starting any more of them."""

from __future__ import annotations

import pytest

from campaigns.channels.base import OutgoingMessage
from campaigns.channels.twilio_sms import TwilioSmsChannel
from tests.fakes.twilio import FakeTwilio

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.integration

SERVICE_SID = "MG" + "1" * 32


def channel(fake: FakeTwilio, concurrency: int) -> TwilioSmsChannel:
    return TwilioSmsChannel(
        fake.account_sid,
        fake.auth_token,
        SERVICE_SID,
        "https://outreach.example.no/webhooks/twilio/status",
        base_url=fake.base_url,
        timeout=5,
        concurrency=concurrency,
    )


def messages(count: int) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            n, 1, f"+1415555{n:04d}", "", "Hei! Stopp: https://outreach.example.no/u/x", "u"
        )
        for n in range(count)
    ]


def most_at_once(fake: FakeTwilio) -> int:
    spans = [(r["t_monotonic"], r["t_done_monotonic"]) for r in fake.requests]
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


def test_the_messages_of_a_sub_batch_are_in_flight_together(fake_twilio: FakeTwilio) -> None:
    fake_twilio.delay_next(0.2, n=None)  # each answer takes a while, as over the internet

    outcomes = channel(fake_twilio, concurrency=4).deliver(messages(8), lambda ids: {})

    assert [o.state for o in outcomes] == ["sent"] * 8
    assert [o.recipient_id for o in outcomes] == list(range(8))  # in the batch's order
    assert fake_twilio.count_by_recipient() == {f"+1415555{n:04d}": 1 for n in range(8)}
    assert most_at_once(fake_twilio) == 4


def test_one_at_a_time_when_asked(fake_twilio: FakeTwilio) -> None:
    fake_twilio.delay_next(0.05, n=None)

    outcomes = channel(fake_twilio, concurrency=1).deliver(messages(4), lambda ids: {})

    assert [o.state for o in outcomes] == ["sent"] * 4
    assert most_at_once(fake_twilio) == 1


def test_after_a_rate_limit_no_further_message_is_started_and_the_rest_waits(
    fake_twilio: FakeTwilio,
) -> None:
    fake_twilio.mps = 3
    fake_twilio.delay_next(0.05, n=None)

    outcomes = channel(fake_twilio, concurrency=2).deliver(messages(12), lambda ids: {})

    sent = [o for o in outcomes if o.state == "sent"]
    waiting = [o for o in outcomes if o.state == "retry"]
    assert len(sent) == 3 and len(waiting) == 9
    assert all(o.retry_after and o.error == "rate limited" for o in waiting)
    assert len(fake_twilio.messages) == 3 and not fake_twilio.duplicates()
    # Only what was already in flight when the first 429 came back was asked at all.
    assert len(fake_twilio.requests) <= 3 + 2
