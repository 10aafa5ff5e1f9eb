"""The Twilio and Mailchimp fakes, driven through the official SDKs over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import mailchimp_marketing
import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from tests.clock import UTC_NOW, TestClock
from tests.fakes.mailchimp import DEFAULT_API_KEY, DEFAULT_LIST_ID, FakeMailchimp, subscriber_hash
from tests.fakes.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeTwilio, num_segments

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SENDER = "+15005550006"
ALICE = "+14155550101"
BOB = "+14155550102"
SERVICE_SID = "MG" + "1" * 32


def twilio_client(fake: FakeTwilio) -> TwilioClient:
    client = TwilioClient(
        fake.account_sid, fake.auth_token, http_client=TwilioHttpClient(timeout=5)
    )
    client.api.base_url = fake.base_url
    return client


def mailchimp_client(fake: FakeMailchimp) -> mailchimp_marketing.Client:
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": fake.api_key, "server": "us1", "timeout": 5})
    client.api_client.host = f"{fake.base_url}/3.0"
    return client


def send_sms(client: TwilioClient, to: str, body: str = "Hello") -> Any:
    return client.messages.create(to=to, from_=SENDER, body=body)


def problem(error: ApiClientError) -> dict[str, Any]:
    """Mailchimp answers errors as application/problem+json, which the SDK leaves as text."""
    text = error.text if isinstance(error.text, str) else json.dumps(error.text)
    return dict(json.loads(text))


@pytest.fixture
def twilio(fake_twilio: FakeTwilio) -> TwilioClient:
    return twilio_client(fake_twilio)


@pytest.fixture
def mailchimp(fake_mailchimp: FakeMailchimp) -> mailchimp_marketing.Client:
    return mailchimp_client(fake_mailchimp)


@pytest.fixture
def admin() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5, trust_env=False) as client:
        yield client


# -- Twilio ------------------------------------------------------------------------------


def test_a_sent_sms_is_recorded_with_timestamps_and_can_be_fetched_back(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    before_mono = time.monotonic()
    before_wall = time.time()  # wall-clock: the fake stamps arrivals with the machine's time

    message = twilio.messages.create(
        to=ALICE, from_=SENDER, body="Hi Alice", status_callback="https://example.com/cb"
    )

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert message.num_segments == "1"
    assert message.to == ALICE
    [recorded] = fake_twilio.messages
    assert recorded["sid"] == message.sid
    assert recorded["body"] == "Hi Alice"
    assert recorded["status_callback"] == "https://example.com/cb"
    assert before_mono <= recorded["t_monotonic"] <= time.monotonic()
    assert before_wall <= recorded["t_wall"] <= time.time()  # wall-clock: as above
    assert twilio.messages(message.sid).fetch().body == "Hi Alice"


def test_the_fakes_date_what_they_create_on_the_test_clock(
    clock: TestClock,
    twilio: TwilioClient,
    fake_mailchimp: FakeMailchimp,
    mailchimp: mailchimp_marketing.Client,
) -> None:
    """A provider's own times (a message's date_created, a member's last_changed) are on
    the fake's clock, the test's: the suite's instant, and later when the test moves it."""
    message = send_sms(twilio, ALICE)
    fake_mailchimp.add_member("jo@example.org")
    clock.advance(timedelta(days=3, hours=1))
    mailchimp.lists.update_list_member(
        DEFAULT_LIST_ID, subscriber_hash("jo@example.org"), {"status": "unsubscribed"}
    )

    assert message.date_created == message.date_updated == UTC_NOW
    member = fake_mailchimp.member("jo@example.org")
    assert member is not None
    assert member["timestamp_signup"] == UTC_NOW.isoformat()
    assert member["last_changed"] == (UTC_NOW + timedelta(days=3, hours=1)).isoformat()


def test_a_messaging_service_send_is_accepted_with_no_sender_yet(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    message = twilio.messages.create(to=ALICE, messaging_service_sid=SERVICE_SID, body="Hi")

    assert message.status == "accepted"
    assert message.num_segments == "0"
    assert message.from_ is None
    assert fake_twilio.messages[0]["messaging_service_sid"] == SERVICE_SID


def test_segments_are_counted_as_gsm7_or_ucs2() -> None:
    assert num_segments("a" * 160) == 1
    assert num_segments("a" * 161) == 2
    assert num_segments("{" * 80) == 1  # extended characters take two septets
    assert num_segments("{" * 81) == 2
    assert num_segments("é" * 160) == 1  # é is in the GSM-7 alphabet
    assert num_segments("ł" * 70) == 1  # ł is not: UCS-2
    assert num_segments("ł" * 71) == 2


def test_listing_messages_filters_by_recipient_across_pages(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    sent = [send_sms(twilio, ALICE, f"n{i}").sid for i in range(5)]
    send_sms(twilio, BOB)

    listed = twilio.messages.list(to=ALICE, page_size=2)

    assert sorted(m.sid for m in listed) == sorted(sent)
    pages = [r for r in fake_twilio.requests if r["method"] == "GET"]
    assert len(pages) == 3


def test_sending_to_an_opted_out_number_raises_21610_and_sends_nothing(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    fake_twilio.opt_out(ALICE)

    with pytest.raises(TwilioRestException) as raised:
        send_sms(twilio, ALICE)

    assert raised.value.code == 21610
    assert raised.value.status == 400
    assert fake_twilio.messages == []
    send_sms(twilio, BOB)
    assert fake_twilio.count_by_recipient() == {BOB: 1}


@pytest.mark.parametrize("code", [21211, 21614, 21610])
def test_an_error_code_injected_for_one_number_spares_the_others(
    fake_twilio: FakeTwilio, twilio: TwilioClient, code: int
) -> None:
    fake_twilio.error_for(ALICE, code)

    with pytest.raises(TwilioRestException) as raised:
        send_sms(twilio, ALICE)
    send_sms(twilio, BOB)

    assert raised.value.code == code
    assert raised.value.status == 400
    assert fake_twilio.count_by_recipient() == {BOB: 1}


def test_an_error_code_for_the_next_n_requests_then_stops(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    fake_twilio.error_next(21614, n=2)
    codes: list[int | None] = []
    for number in (ALICE, BOB, ALICE):
        try:
            send_sms(twilio, number)
            codes.append(None)
        except TwilioRestException as exc:
            codes.append(exc.code)

    assert codes == [21614, 21614, None]


def test_a_number_that_is_not_e164_gets_21211(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    with pytest.raises(TwilioRestException) as raised:
        send_sms(twilio, "555-0101")

    assert raised.value.code == 21211
    assert fake_twilio.messages == []


def test_sends_beyond_the_messages_per_second_limit_get_429_with_code_20429(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    fake_twilio.mps = 5
    outcomes: list[int] = []
    for i in range(8):
        try:
            send_sms(twilio, f"+1415555020{i}")
            outcomes.append(201)
        except TwilioRestException as exc:
            assert exc.code == 20429
            outcomes.append(exc.status)

    assert outcomes == [201] * 5 + [429] * 3
    assert fake_twilio.rate_limited == 3
    assert len(fake_twilio.messages) == 5


def test_the_rate_limit_is_a_sliding_one_second_window(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    fake_twilio.mps = 2
    send_sms(twilio, ALICE)
    send_sms(twilio, BOB)
    with pytest.raises(TwilioRestException):
        send_sms(twilio, ALICE)

    time.sleep(1.05)
    send_sms(twilio, ALICE)

    times = [m["t_monotonic"] for m in fake_twilio.messages]
    assert len(times) == 3
    assert times[2] - times[0] >= 1.0
    assert fake_twilio.rate_limited == 1


def test_an_injected_5xx_fails_only_the_next_request(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    fake_twilio.fail_next(status=503)

    with pytest.raises(TwilioRestException) as raised:
        send_sms(twilio, ALICE)
    send_sms(twilio, ALICE)

    assert raised.value.status == 503
    assert raised.value.code == 20503
    assert [r["status"] for r in fake_twilio.requests] == [503, 201]


def test_a_dropped_connection_raises_a_connection_error_and_is_logged(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    fake_twilio.drop_next(target=ALICE)

    with pytest.raises(requests.exceptions.ConnectionError):
        send_sms(twilio, ALICE)
    send_sms(twilio, ALICE)

    assert [r["status"] for r in fake_twilio.requests] == ["dropped", 201]
    assert fake_twilio.count_by_recipient() == {ALICE: 1}


def test_a_slow_response_takes_the_injected_delay(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    fake_twilio.delay_next(0.4)

    started = time.monotonic()
    send_sms(twilio, ALICE)
    slow = time.monotonic() - started
    started = time.monotonic()
    send_sms(twilio, BOB)
    fast = time.monotonic() - started

    assert slow >= 0.4
    assert fast < 0.4


def test_a_timed_out_client_gives_up_while_the_fake_is_slow(fake_twilio: FakeTwilio) -> None:
    fake_twilio.delay_next(2.0)
    client = TwilioClient(
        fake_twilio.account_sid, fake_twilio.auth_token, http_client=TwilioHttpClient(timeout=0.3)
    )
    client.api.base_url = fake_twilio.base_url

    with pytest.raises(requests.exceptions.Timeout):
        send_sms(client, ALICE)


def test_duplicate_sends_are_counted_per_recipient(
    fake_twilio: FakeTwilio, twilio: TwilioClient
) -> None:
    send_sms(twilio, ALICE)
    send_sms(twilio, BOB)
    send_sms(twilio, ALICE)

    assert fake_twilio.duplicates() == {ALICE: 2}
    assert [m["to"] for m in fake_twilio.messages_to(ALICE)] == [ALICE, ALICE]


def test_a_message_without_to_is_refused_and_recorded_as_a_spec_violation(
    fake_twilio: FakeTwilio, admin: httpx.Client
) -> None:
    url = f"{fake_twilio.base_url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"

    response = admin.post(
        url,
        data={"From": SENDER, "Body": "no recipient"},
        auth=(fake_twilio.account_sid, fake_twilio.auth_token),
    )

    assert response.status_code == 400
    assert response.json()["code"] == 21604
    [violation] = fake_twilio.take_spec_violations()
    assert violation["path"].endswith("/Messages.json")
    assert "To" in " ".join(violation["errors"])
    assert fake_twilio.messages == []


def test_a_malformed_parameter_is_a_spec_violation(
    fake_twilio: FakeTwilio, admin: httpx.Client
) -> None:
    url = f"{fake_twilio.base_url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    auth = (fake_twilio.account_sid, fake_twilio.auth_token)

    with fake_twilio.expect_spec_violations(count=1) as violations:
        response = admin.post(
            url, data={"To": ALICE, "From": SENDER, "ValidityPeriod": "soon"}, auth=auth
        )

    assert response.status_code == 400
    assert violations[0]["seq"] == fake_twilio.requests[-1]["seq"]


def test_a_twilio_path_the_spec_does_not_have_gets_404_and_is_a_spec_violation(
    fake_twilio: FakeTwilio, admin: httpx.Client
) -> None:
    url = f"{fake_twilio.base_url}/2010-04-01/Accounts/{fake_twilio.account_sid}/Sms.json"

    response = admin.post(
        url, data={"To": ALICE}, auth=(fake_twilio.account_sid, fake_twilio.auth_token)
    )

    assert response.status_code == 404
    assert response.json()["code"] == 20404
    [violation] = fake_twilio.take_spec_violations()
    assert violation["path"].endswith("/Sms.json")


def test_a_wrong_auth_token_gets_20003_and_is_not_a_spec_violation(
    fake_twilio: FakeTwilio,
) -> None:
    client = TwilioClient(
        fake_twilio.account_sid, "wrong-token", http_client=TwilioHttpClient(timeout=5)
    )
    client.api.base_url = fake_twilio.base_url

    with pytest.raises(TwilioRestException) as raised:
        send_sms(client, ALICE)

    assert raised.value.status == 401
    assert raised.value.code == 20003
    assert fake_twilio.spec_violations == []


def test_leaving_a_fake_with_spec_violations_the_test_did_not_take_fails() -> None:
    with pytest.raises(AssertionError, match="spec violation"), FakeTwilio() as fake:
        httpx.post(
            f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
            data={"Body": "no recipient"},
            auth=(fake.account_sid, fake.auth_token),
            trust_env=False,
        )


# -- Mailchimp ---------------------------------------------------------------------------


def test_ping_answers_and_an_upsert_creates_a_subscribed_member(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client
) -> None:
    assert mailchimp.ping.get() == {"health_status": "Everything's Chimpy!"}

    member = mailchimp.lists.set_list_member(
        DEFAULT_LIST_ID,
        subscriber_hash("Ann@Example.org"),
        {
            "email_address": "Ann@Example.org",
            "status_if_new": "subscribed",
            "merge_fields": {"FNAME": "Ann"},
        },
    )

    assert member["status"] == "subscribed"
    assert member["merge_fields"]["FNAME"] == "Ann"
    assert fake_mailchimp.status_of("ann@example.org") == "subscribed"
    fetched = mailchimp.lists.get_list_member(DEFAULT_LIST_ID, subscriber_hash("ann@example.org"))
    assert fetched["email_address"] == "Ann@Example.org"
    assert mailchimp.lists.get_list(DEFAULT_LIST_ID)["stats"]["member_count"] == 1


@pytest.mark.parametrize("gone", ["unsubscribed", "cleaned"])
def test_a_member_who_left_stays_so_when_an_upsert_says_status_if_new_subscribed(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client, gone: str
) -> None:
    fake_mailchimp.add_member("bo@example.org", status=gone)

    member = mailchimp.lists.set_list_member(
        DEFAULT_LIST_ID,
        subscriber_hash("bo@example.org"),
        {"email_address": "bo@example.org", "status_if_new": "subscribed"},
    )

    assert member["status"] == gone
    assert fake_mailchimp.status_of("bo@example.org") == gone
    assert fake_mailchimp.violations == []


def test_an_explicit_resubscribe_is_applied_like_mailchimp_but_recorded_as_a_violation(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client
) -> None:
    fake_mailchimp.add_member("cy@example.org", status="unsubscribed")

    member = mailchimp.lists.set_list_member(
        DEFAULT_LIST_ID,
        subscriber_hash("cy@example.org"),
        {"email_address": "cy@example.org", "status_if_new": "subscribed", "status": "subscribed"},
    )

    assert member["status"] == "subscribed"
    [violation] = fake_mailchimp.take_violations()
    assert violation["kind"] == "resubscribe"
    assert (violation["email"], violation["old"], violation["new"]) == (
        "cy@example.org",
        "unsubscribed",
        "subscribed",
    )


def test_resubscribing_someone_who_unsubscribed_themselves_is_refused(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client
) -> None:
    fake_mailchimp.add_member("di@example.org")
    fake_mailchimp.unsubscribe("di@example.org")

    with pytest.raises(ApiClientError) as raised:
        mailchimp.lists.update_list_member(
            DEFAULT_LIST_ID, subscriber_hash("di@example.org"), {"status": "subscribed"}
        )

    assert raised.value.status_code == 400
    assert problem(raised.value)["title"] == "Member In Compliance State"
    assert fake_mailchimp.status_of("di@example.org") == "unsubscribed"
    assert len(fake_mailchimp.take_violations()) == 1


def test_a_batch_of_500_members_is_accepted_and_one_of_501_is_refused(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client
) -> None:
    def batch(n: int, prefix: str) -> dict[str, Any]:
        return {
            "members": [
                {"email_address": f"{prefix}{i}@example.org", "status": "subscribed"}
                for i in range(n)
            ]
        }

    accepted = mailchimp.lists.batch_list_members(DEFAULT_LIST_ID, batch(500, "ok"))
    with (
        fake_mailchimp.expect_spec_violations(count=1) as violations,
        pytest.raises(ApiClientError) as raised,
    ):
        mailchimp.lists.batch_list_members(DEFAULT_LIST_ID, batch(501, "big"))

    assert accepted["total_created"] == 500
    assert raised.value.status_code == 400
    assert "501 items" in violations[0]["errors"][0]
    assert fake_mailchimp.member("big0@example.org") is None


def test_a_batch_without_update_existing_reports_existing_members_as_errors(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client
) -> None:
    fake_mailchimp.add_member("ed@example.org", status="unsubscribed")

    result = mailchimp.lists.batch_list_members(
        DEFAULT_LIST_ID,
        {
            "members": [
                {"email_address": "ed@example.org", "status": "subscribed"},
                {"email_address": "fay@example.org", "status": "subscribed"},
            ]
        },
    )

    assert result["total_created"] == 1
    assert [e["error_code"] for e in result["errors"]] == ["ERROR_CONTACT_EXISTS"]
    assert fake_mailchimp.status_of("ed@example.org") == "unsubscribed"
    assert fake_mailchimp.violations == []


def test_the_eleventh_simultaneous_request_gets_429_and_concurrency_peaks_at_ten(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client
) -> None:
    fake_mailchimp.delay_next(1.0, n=None)
    start = threading.Barrier(11)

    def ping(_: int) -> int:
        start.wait()
        try:
            mailchimp.ping.get()
            return 200
        except ApiClientError as exc:
            assert problem(exc)["title"] == "Too Many Requests"
            return int(exc.status_code or 0)

    with ThreadPoolExecutor(max_workers=11) as pool:
        statuses = list(pool.map(ping, range(11)))

    assert sorted(statuses) == [200] * 10 + [429]
    assert fake_mailchimp.too_many_requests == 1
    assert fake_mailchimp.max_concurrency == 10


def test_a_campaign_send_reaches_only_subscribed_members_of_its_segment(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client
) -> None:
    for email, status in [
        ("in@example.org", "subscribed"),
        ("left@example.org", "unsubscribed"),
        ("outside@example.org", "subscribed"),
    ]:
        fake_mailchimp.add_member(email, status=status)
    segment = mailchimp.lists.create_segment(
        DEFAULT_LIST_ID, {"name": "spring", "static_segment": ["in@example.org"]}
    )
    added = mailchimp.lists.batch_segment_members(
        {"members_to_add": ["left@example.org", "stranger@example.org"]},
        DEFAULT_LIST_ID,
        str(segment["id"]),
    )
    campaign = mailchimp.campaigns.create(
        {
            "type": "regular",
            "recipients": {
                "list_id": DEFAULT_LIST_ID,
                "segment_opts": {"saved_segment_id": segment["id"]},
            },
            "settings": {
                "subject_line": "Spring",
                "from_name": "Shop",
                "reply_to": "shop@example.org",
            },
        }
    )
    mailchimp.campaigns.set_content(campaign["id"], {"html": "<p>Spring sale</p>"})

    mailchimp.campaigns.send(campaign["id"])

    assert added["total_added"] == 1 and added["error_count"] == 1
    members = mailchimp.lists.get_segment_members_list(DEFAULT_LIST_ID, str(segment["id"]))
    assert members["total_items"] == 2
    assert fake_mailchimp.recipients(campaign["id"]) == ["in@example.org"]
    assert mailchimp.campaigns.get(campaign["id"])["status"] == "sent"
    [send] = fake_mailchimp.sends
    assert send["segment_id"] == segment["id"]
    assert send["t_monotonic"] <= time.monotonic()


def test_a_campaign_without_content_is_not_ready_to_send(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client
) -> None:
    fake_mailchimp.add_member("gus@example.org")
    campaign = mailchimp.campaigns.create(
        {
            "type": "regular",
            "recipients": {"list_id": DEFAULT_LIST_ID},
            "settings": {"subject_line": "Hi", "from_name": "Shop", "reply_to": "shop@example.org"},
        }
    )

    with pytest.raises(ApiClientError) as raised:
        mailchimp.campaigns.send(campaign["id"])

    assert raised.value.status_code == 400
    assert fake_mailchimp.sends == []


def test_merge_fields_can_be_added_and_tags_set_on_a_member(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client
) -> None:
    fake_mailchimp.add_member("hal@example.org")

    field = mailchimp.lists.add_list_merge_field(
        DEFAULT_LIST_ID, {"name": "Phone", "type": "phone"}
    )
    mailchimp.lists.update_list_member_tags(
        DEFAULT_LIST_ID,
        subscriber_hash("hal@example.org"),
        {"tags": [{"name": "vip", "status": "active"}, {"name": "new", "status": "active"}]},
    )
    mailchimp.lists.update_list_member_tags(
        DEFAULT_LIST_ID,
        subscriber_hash("hal@example.org"),
        {"tags": [{"name": "new", "status": "inactive"}]},
    )

    assert field["tag"] == "PHONE"
    fields = mailchimp.lists.get_list_merge_fields(DEFAULT_LIST_ID)["merge_fields"]
    assert [f["tag"] for f in fields] == ["FNAME", "LNAME", "PHONE"]
    member = fake_mailchimp.member("hal@example.org")
    assert member is not None
    assert [t["name"] for t in member["tags"]] == ["vip"]


@pytest.mark.parametrize("fault", ["status", "drop"])
def test_mailchimp_faults_fail_the_next_request_only(
    fake_mailchimp: FakeMailchimp, mailchimp: mailchimp_marketing.Client, fault: str
) -> None:
    if fault == "status":
        fake_mailchimp.fail_next(status=503)
    else:
        fake_mailchimp.drop_next()

    with pytest.raises(ApiClientError) as raised:
        mailchimp.ping.get()
    assert mailchimp.ping.get()["health_status"]

    if fault == "status":
        assert raised.value.status_code == 503
        assert problem(raised.value)["status"] == 503
    else:
        assert raised.value.status_code is None  # the SDK wraps the connection error
        assert isinstance(raised.value.text, requests.exceptions.ConnectionError)
    assert [r["status"] for r in fake_mailchimp.requests] == [
        503 if fault == "status" else "dropped",
        200,
    ]


def test_an_upsert_without_status_if_new_is_a_spec_violation(
    fake_mailchimp: FakeMailchimp, admin: httpx.Client
) -> None:
    url = f"{fake_mailchimp.base_url}/3.0/lists/{DEFAULT_LIST_ID}/members/{subscriber_hash('x@example.org')}"

    response = admin.put(
        url, json={"email_address": "x@example.org"}, auth=("any", fake_mailchimp.api_key)
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    [violation] = fake_mailchimp.take_spec_violations()
    assert "status_if_new" in violation["errors"][0]
    assert fake_mailchimp.member("x@example.org") is None


def test_a_path_the_spec_does_not_have_is_a_spec_violation(
    fake_mailchimp: FakeMailchimp, admin: httpx.Client
) -> None:
    response = admin.post(
        f"{fake_mailchimp.base_url}/3.0/lists/{DEFAULT_LIST_ID}/subscribe",
        json={},
        auth=("any", fake_mailchimp.api_key),
    )

    assert response.status_code == 404
    [violation] = fake_mailchimp.take_spec_violations()
    assert violation["path"] == f"/3.0/lists/{DEFAULT_LIST_ID}/subscribe"


def test_a_wrong_api_key_gets_401(fake_mailchimp: FakeMailchimp) -> None:
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": "wrong-us1", "server": "us1", "timeout": 5})
    client.api_client.host = f"{fake_mailchimp.base_url}/3.0"

    with pytest.raises(ApiClientError) as raised:
        client.ping.get()

    assert raised.value.status_code == 401


# -- as separate processes -----------------------------------------------------------------


@pytest.fixture
def spawn() -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def run(module: str, *args: str) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0", *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip().isdigit(), f"{module} printed {line!r}"
        return f"http://127.0.0.1:{int(line)}"

    yield run
    for process in started:
        with process:  # closes its stdout pipe, whatever the assertion says
            process.terminate()
            assert process.wait(timeout=10) == 0


@pytest.mark.timeout(60)
def test_the_twilio_fake_runs_as_a_process_with_a_json_admin_api(
    spawn: Any, admin: httpx.Client
) -> None:
    base_url = spawn("tests.fakes.twilio", "--mps", "100")
    client = TwilioClient(
        DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, http_client=TwilioHttpClient(timeout=5)
    )
    client.api.base_url = base_url

    send_sms(client, ALICE)
    admin.post(f"{base_url}/_fake/opt_out", json={"number": BOB}).raise_for_status()
    admin.post(
        f"{base_url}/_fake/faults", json={"kind": "status", "status": 500}
    ).raise_for_status()
    with pytest.raises(TwilioRestException) as failed:
        send_sms(client, ALICE)
    with pytest.raises(TwilioRestException) as opted_out:
        send_sms(client, BOB)
    state = admin.get(f"{base_url}/_fake/state").json()

    assert failed.value.status == 500
    assert opted_out.value.code == 21610
    assert [m["to"] for m in state["messages"]] == [ALICE]
    assert [r["status"] for r in state["requests"]] == [201, 500, 400]
    assert state["opted_out"] == [BOB]
    assert state["spec_violations"] == []


@pytest.mark.timeout(60)
def test_the_mailchimp_fake_runs_as_a_process_with_a_json_admin_api(
    spawn: Any, admin: httpx.Client
) -> None:
    base_url = spawn("tests.fakes.mailchimp")
    client = mailchimp_marketing.Client()
    client.set_config({"api_key": DEFAULT_API_KEY, "server": "us1", "timeout": 5})
    client.api_client.host = f"{base_url}/3.0"

    added = admin.post(
        f"{base_url}/_fake/add_member", json={"email": "ivy@example.org", "status": "unsubscribed"}
    )
    added.raise_for_status()
    member = client.lists.set_list_member(
        DEFAULT_LIST_ID,
        subscriber_hash("ivy@example.org"),
        {"email_address": "ivy@example.org", "status_if_new": "subscribed"},
    )
    state = admin.get(f"{base_url}/_fake/state").json()

    assert member["status"] == "unsubscribed"
    assert state["lists"][DEFAULT_LIST_ID]["members"] == {"ivy@example.org": "unsubscribed"}
    assert state["violations"] == [] and state["spec_violations"] == []
    assert admin.post(f"{base_url}/_fake/nonsense", json={}).status_code == 404
