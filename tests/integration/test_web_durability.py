"""Guarantee 3: a 200 from the unsubscribe endpoint means the no is committed.

The database goes down for real: the app talks to PostgreSQL through a TCP proxy on
loopback, and the test cuts the proxy (the shared server keeps running).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Connection, Engine, event, func, select

from suppression import tokens
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.schema import ledger_entries
from tests.browser.live_server import LiveServer, make_context
from tests.clock import NOW
from tests.conftest import _truncate_all
from tests.tcp_proxy import TcpProxy
from worker import db

pytestmark = pytest.mark.integration

ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def direct(postgres_url: str) -> Iterator[Engine]:
    """The test's own way to the database, around the proxy."""
    engine = db.engine_for(postgres_url)
    _truncate_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", 5432) as p:
        yield p


@pytest.fixture
def server(postgres_url: str, proxy: TcpProxy, direct: Engine) -> Iterator[LiveServer]:
    proxied = postgres_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    assert proxied != postgres_url
    with LiveServer(make_context(proxied)) as live:
        yield live


def _token(engine: Engine, hasher: Hasher) -> str:
    ident = email_identity("ola.nordmann@example.com")
    with engine.begin() as conn:
        return tokens.issue(conn, hasher, hasher.hash(ident), "email", "email", now=NOW)


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one())


def test_with_the_database_down_one_click_answers_503_and_a_later_retry_succeeds(
    server: LiveServer, proxy: TcpProxy, direct: Engine, hasher: Hasher
) -> None:
    token = _token(direct, hasher)
    url = f"{server.url}/u/{token}"
    with httpx.Client(timeout=60) as client:
        assert client.get(url).status_code == 200  # the pool holds a live connection now

        proxy.cut()
        for _ in range(2):
            response = client.post(url, content=ONE_CLICK, headers=FORM)
            assert response.status_code == 503
            assert response.headers["retry-after"]
            assert "Ingenting er endret" in response.text
        assert client.get(url).status_code == 503
        assert client.get(f"{server.url}/healthz").status_code == 503
        assert _stored(direct) == 0

        proxy.restore()
        response = client.post(url, content=ONE_CLICK, headers=FORM)
        assert response.status_code == 200
        assert "Du er avmeldt" in response.text
    assert _stored(direct) == 1


def test_a_commit_lost_on_the_way_never_answers_200(
    server: LiveServer, proxy: TcpProxy, direct: Engine, hasher: Hasher
) -> None:
    """The connection dies between the INSERT and the COMMIT: the answer is 503 and
    nothing is stored, and the person's retry stores it."""
    token = _token(direct, hasher)
    cut_once = {"armed": True}

    def cut_before_commit(conn: Connection) -> None:
        if cut_once["armed"]:
            cut_once["armed"] = False
            proxy.cut()

    event.listen(server.engine, "commit", cut_before_commit)
    url = f"{server.url}/u/{token}"
    with httpx.Client(timeout=60) as client:
        response = client.post(url, content=ONE_CLICK, headers=FORM)
        assert response.status_code == 503
        assert not cut_once["armed"], "the connection was cut at the commit"
        assert _stored(direct) == 0
        proxy.restore()
        assert client.post(url, content=ONE_CLICK, headers=FORM).status_code == 200
    assert _stored(direct) == 1


def test_a_database_restart_between_requests_is_retried_on_a_fresh_connection(
    server: LiveServer, proxy: TcpProxy, direct: Engine, hasher: Hasher
) -> None:
    """The pool's connections die while idle (a restart, a failover): the request that
    finds one dead is retried once on a new connection, so the person sees a 200."""
    token = _token(direct, hasher)
    url = f"{server.url}/u/{token}"
    with httpx.Client(timeout=60) as client:
        assert client.get(url).status_code == 200  # a pooled connection, now idle
        proxy.cut()
        proxy.restore()
        response = client.post(url, content=ONE_CLICK, headers=FORM)
        assert response.status_code == 200
    assert _stored(direct) == 1
