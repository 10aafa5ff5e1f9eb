"""`outreach serve`: the web process (unsubscribe pages and provider webhooks)."""

from __future__ import annotations

import click
import uvicorn

from worker.context import Context

WORKER_HEALTHCHECK_SECONDS = 60


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes (each with its own connection pool).",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request. Off by default: the paths carry unsubscribe tokens.",
)
def serve(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the unsubscribe pages and the Twilio and Mailchimp webhooks (uvicorn)."""
    settings = Context.load().settings  # a missing setting stops here, named, not per worker
    uvicorn.run(
        "worker.web:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=settings.log_level.lower(),
        server_header=False,
        # uvicorn kills a worker that does not answer its supervisor's ping within this
        # many seconds (default 5): on a loaded machine a worker importing the app took
        # longer, and was killed and restarted over and over, never serving.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
