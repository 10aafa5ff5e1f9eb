"""`outreach worker` and `outreach clock`: the long-running processes besides the web."""

from __future__ import annotations

import os
import time

import click

from worker.context import Context
from worker.output import EXIT_INTERNAL, EXIT_OK, EXIT_UNAVAILABLE, console

PREFETCH = 2  # messages (batches) a worker process holds; what a SIGKILL can delay


def _reachable(ctx: Context) -> None:
    """The store (migrated, every key configured) and Redis answer now: a process that
    cannot work stops at its start with the CLI's exit code and one line, instead of
    logging the same failure forever."""
    from worker.broker import ping

    _ = ctx.engine
    if ctx.settings.redis_url:
        ping(ctx.settings.redis_url)


def _dramatiq_exit(code: int) -> int:
    """dramatiq's exit codes in the CLI's table (docs/cli.md): its 1 is not an answer."""
    from dramatiq import cli as dramatiq_cli

    if code == dramatiq_cli.RET_OK:
        return EXIT_OK
    if code == dramatiq_cli.RET_CONNECT:
        return EXIT_UNAVAILABLE
    return EXIT_INTERNAL


@click.command("worker")
@click.option(
    "--processes",
    type=int,
    default=None,
    help="Worker processes (default OUTREACH_WORKER_PROCESSES).",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Threads per process (default OUTREACH_WORKER_THREADS).",
)
def worker(processes: int | None, threads: int | None) -> None:
    """Run the dramatiq workers that send batches (Procfile: worker).

    With REDIS_URL: dramatiq's worker over `worker.actors`, two batches prefetched per
    process so that a killed worker holds little (two batches come back after its
    heartbeat times out) while the process never idles between batches; SIGTERM lets
    in-flight batches finish and returns the rest to the queue. Without REDIS_URL (one
    machine): an in-process worker that also reconciles, until SIGTERM or Ctrl-C.
    """
    ctx = Context.load()
    p = processes or ctx.settings.worker_processes
    t = threads or ctx.settings.worker_threads
    if ctx.settings.redis_url:
        # benchmarks/pipeline.py: prefetch 1 gave 7,730 recipients/s, 2 gave 11,564/s.
        # dramatiq reads it when it is imported: before anything here imports it.
        os.environ["dramatiq_queue_prefetch"] = str(PREFETCH)  # noqa: SIM112 (dramatiq's name)
    _reachable(ctx)
    if ctx.settings.redis_url:
        from dramatiq import cli as dramatiq_cli

        # Nothing of this process's store goes into the forked worker processes.
        ctx.close()
        # dramatiq's command line, in this process: its main process logs through this
        # process's logging (worker.logs, JSON), not a basicConfig of its own; the worker
        # processes it forks set theirs up when they import worker.actors.
        args = dramatiq_cli.make_argument_parser().parse_args(  # type: ignore[no-untyped-call]
            ["worker.actors", "--processes", str(p), "--threads", str(t), "--skip-logging"]
        )
        raise SystemExit(_dramatiq_exit(dramatiq_cli.main(args)))  # type: ignore[no-untyped-call]
    import dramatiq

    from worker import actors
    from worker.clock import erasure_job, reconcile_job

    actors.configure(ctx)
    w = dramatiq.Worker(actors.broker, worker_threads=t, worker_timeout=100)
    w.start()
    console.print("embedded worker running (no REDIS_URL); Ctrl-C to stop")
    try:
        while True:
            reconcile_job(ctx)
            erasure_job(ctx)  # GD-5: an erasure a processor refused is tried again
            time.sleep(5)
    except KeyboardInterrupt:
        pass
    finally:
        w.stop()


@click.command("clock")
def clock() -> None:
    """Run the periodic jobs (Procfile: clock). Exactly one per installation."""
    from worker import clock as clock_mod

    ctx = Context.load()
    _reachable(ctx)
    clock_mod.run(ctx)
