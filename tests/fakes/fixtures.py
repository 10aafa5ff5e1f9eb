"""Pytest fixtures for the provider fakes.

Enable them with ``pytest_plugins = ["tests.fakes.fixtures"]`` (in the root conftest or a
test module). Each fixture yields a running fake on the test's clock (the ``clock`` fixture:
the fake stamps the resources it creates at the suite's instant, and moves when the test
moves the clock) and fails the test at teardown if the fake recorded spec violations (or
contract violations) the test did not take.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clock import TestClock
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.twilio import FakeTwilio


@pytest.fixture
def fake_twilio(clock: TestClock) -> Iterator[FakeTwilio]:
    """A running :class:`FakeTwilio` without a rate limit (set ``fake_twilio.mps`` for one)."""
    with FakeTwilio(clock=clock) as fake:
        yield fake


@pytest.fixture
def fake_mailchimp(clock: TestClock) -> Iterator[FakeMailchimp]:
    """A running :class:`FakeMailchimp` with one empty list, ``DEFAULT_LIST_ID``."""
    with FakeMailchimp(clock=clock) as fake:
        yield fake
