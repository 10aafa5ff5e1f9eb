"""The fakes keep connections alive, as the real APIs do, and stay strict while doing so."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from tests.fakes.twilio import FakeTwilio

pytest_plugins = ["tests.fakes.fixtures"]
pytestmark = pytest.mark.integration

SERVICE_SID = "MG" + "1" * 32


@pytest.fixture
def connection(fake_twilio: FakeTwilio) -> Iterator[http.client.HTTPConnection]:
    conn = http.client.HTTPConnection("127.0.0.1", fake_twilio.port, timeout=5)
    yield conn
    conn.close()


def create(
    conn: http.client.HTTPConnection, fake: FakeTwilio, form: dict[str, str]
) -> tuple[int, dict[str, object]]:
    token = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
    conn.request(
        "POST",
        f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
        body=urlencode(form),
        headers={
            "Authorization": f"Basic {token}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    answer = conn.getresponse()
    return answer.status, json.loads(answer.read())


def test_many_requests_are_answered_on_one_connection(
    fake_twilio: FakeTwilio, connection: http.client.HTTPConnection
) -> None:
    for n in range(3):
        status, body = create(
            connection,
            fake_twilio,
            {"To": f"+1415555010{n}", "Body": "hi", "MessagingServiceSid": SERVICE_SID},
        )
        assert status == 201 and body["to"] == f"+1415555010{n}"
    sock = connection.sock
    status, _ = create(
        connection, fake_twilio, {"To": "+14155550109", "Body": "hi", "From": "+15005550006"}
    )

    assert status == 201 and connection.sock is sock  # still the first connection
    assert len(fake_twilio.messages) == 4


def test_a_request_the_spec_refuses_is_refused_every_time_on_a_kept_connection(
    fake_twilio: FakeTwilio, connection: http.client.HTTPConnection
) -> None:
    """openapi-core's objects are built once and kept: a second bad request must still be
    checked in full, not waved through by what the first one left behind."""
    bad = {"To": "+14155550101", "From": "+15005550006", "Body": "hi", "ValidityPeriod": "soon"}
    good = {**bad, "ValidityPeriod": "600"}

    with fake_twilio.expect_spec_violations(count=2) as violations:
        assert create(connection, fake_twilio, bad)[0] == 400
        assert create(connection, fake_twilio, good)[0] == 201
        assert create(connection, fake_twilio, bad)[0] == 400

    assert violations[0]["errors"] == violations[1]["errors"]
    assert "integer" in violations[0]["errors"][0]


def test_a_dropped_request_closes_its_kept_connection_without_an_answer(
    fake_twilio: FakeTwilio, connection: http.client.HTTPConnection
) -> None:
    form = {"To": "+14155550101", "Body": "hi", "MessagingServiceSid": SERVICE_SID}
    assert create(connection, fake_twilio, form)[0] == 201
    fake_twilio.drop_next()

    with pytest.raises(http.client.RemoteDisconnected):
        create(connection, fake_twilio, form)

    assert [r["status"] for r in fake_twilio.requests] == [201, "dropped"]


def test_a_stopped_fake_closes_the_connections_it_kept_alive() -> None:
    fake = FakeTwilio().start()
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    form = {"To": "+14155550101", "Body": "hi", "MessagingServiceSid": SERVICE_SID}
    assert create(conn, fake, form)[0] == 201

    fake.stop()

    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        create(conn, fake, form)
    assert len(fake.messages) == 1  # nothing was answered after the stop
    conn.close()
