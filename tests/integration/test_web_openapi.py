"""Property-based requests from the app's own OpenAPI schema (schemathesis), sent over
real HTTP to the app on uvicorn, on SQLite and PostgreSQL: no request makes it fail
with a server error, and none sets a cookie."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from twilio.request_validator import RequestValidator

from suppression import tokens
from suppression.identity import email_identity
from suppression.keys import Hasher
from tests.browser.live_server import (
    MAILCHIMP_SECRET,
    PUBLIC_URL,
    TWILIO_AUTH_TOKEN,
    LiveServer,
    make_context,
)
from tests.clock import NOW
from worker.web import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def live(store_url: str) -> Iterator[LiveServer]:
    with LiveServer(make_context(store_url)) as server:
        yield server


# The schema is the app's own; it does not depend on the store behind it.
schema = schemathesis.openapi.from_dict(
    create_app(make_context("sqlite:///unused-for-the-schema.db")).openapi()
)


@pytest.fixture
def token(live: LiveServer, hasher: Hasher) -> str:
    ident = email_identity("ola.nordmann@example.com")
    with live.engine.begin() as conn:
        return tokens.issue(conn, hasher, hasher.hash(ident), "email", "email", now=NOW)


def _with_credentials(case: Any, token: str) -> None:
    """Let the generated request past the door: a real token, the Mailchimp secret, a
    valid Twilio signature, so that the parsers behind it meet the generated data."""
    path = case.operation.path
    if "token" in (case.path_parameters or {}):
        case.path_parameters["token"] = token
    if "secret" in (case.path_parameters or {}):
        case.path_parameters["secret"] = MAILCHIMP_SECRET
    if path.startswith("/webhooks/twilio/"):
        body = case.body if isinstance(case.body, dict) else {}
        params = {str(k): str(v) for k, v in body.items()}
        case.body = params
        signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(PUBLIC_URL + path, params)
        case.headers["X-Twilio-Signature"] = signature


@schema.parametrize()
@pytest.mark.parametrize("credentials", [False, True], ids=["as-generated", "with-credentials"])
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_generated_request_gets_a_server_error(
    case: Any, live: LiveServer, token: str, credentials: bool
) -> None:
    if credentials:
        _with_credentials(case, token)
    response = case.call(base_url=live.url, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    assert "set-cookie" not in {name.lower() for name in response.headers}
