"""/healthz names the part that fails: the database, or Redis when it is configured."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.browser.live_server import LiveServer, make_context
from tests.services import REDIS_URL, require

pytestmark = pytest.mark.integration


def test_healthz_checks_redis_when_it_is_configured(store_url: str) -> None:
    require("Redis", "127.0.0.1", 6379)
    with LiveServer(make_context(store_url, REDIS_URL=REDIS_URL)) as server:
        answer = httpx.get(f"{server.url}/healthz", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_says_redis_is_down_with_a_503(store_url: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LiveServer(make_context(store_url, REDIS_URL=f"redis://127.0.0.1:{port}/0")) as server:
        answer = httpx.get(f"{server.url}/healthz", timeout=10)
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "failed": "redis"}
