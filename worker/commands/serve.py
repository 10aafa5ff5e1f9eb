"""`outreach serve`: the web process (unsubscribe pages and provider webhooks)."""

from __future__ import annotations

import click

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
    import uvicorn

    from worker import logs

    # A missing setting, a store that cannot be reached or is not migrated, or a key it
    # needs stops here, with one line and the CLI's exit code, not in every worker.
    ctx = Context.load()
    _ = ctx.engine
    ctx.close()
    settings = ctx.settings
    uvicorn.run(
        "worker.web:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=settings.log_level.lower(),
        # uvicorn's loggers through worker.logs' handler (JSON, redacted), in its worker
        # processes too: it applies this dictConfig in each.
        log_config=logs.dict_config(settings.log_level),
        server_header=False,
        # uvicorn kills a worker that does not answer its supervisor's ping within this
        # many seconds (default 5): on a loaded machine a worker importing the app took
        # longer, and was killed and restarted over and over, never serving.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
