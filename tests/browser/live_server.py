"""The web app served for real: uvicorn on 127.0.0.1 in a thread, over a test context.

Used by the browser tests and by the web and webhook integration tests, so that
every request crosses a real socket and a real HTTP server.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn
from sqlalchemy import Engine

from tests.clock import NOW
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET
from worker import settings
from worker.context import Context
from worker.web import create_app

PUBLIC_URL = "https://outreach.example.no"
TWILIO_AUTH_TOKEN = "test-twilio-auth-token-0123456789"
MAILCHIMP_SECRET = "test-mailchimp-webhook-secret-abc123"
STARTUP_DEADLINE = 20.0


def make_context(database_url: str, **overrides: object) -> Context:
    """A Context with the settings a deployment would set, over `database_url`; its
    clock starts at the suite's instant (tests.clock.NOW) and runs at real pace."""
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "OUTREACH_SECRET_KEY": SECRET,
        "OUTREACH_ORGANISATION_NAME": ORG_NAME,
        "OUTREACH_ORGANISATION_NUMBER": ORG_NUMBER,
        "OUTREACH_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
        "MAILCHIMP_WEBHOOK_SECRET": MAILCHIMP_SECRET,
        # The app's clock starts at the suite's instant, not at the wall clock.
        "OUTREACH_DEMO_NOW": NOW.isoformat(),
    }
    values.update(overrides)
    return Context(settings.load(**values))


class LiveServer:
    """`with LiveServer(ctx) as server: server.url` serves create_app(ctx) until exit."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.app = create_app(ctx)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)
        self.url = ""

    @property
    def engine(self) -> Engine:
        """The app's own engine (its pool, its events)."""
        engine: Engine = self.app.state.web.engine
        return engine

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_DEADLINE
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STARTUP_DEADLINE)
        self.engine.dispose()
        self.ctx.engine.dispose()
