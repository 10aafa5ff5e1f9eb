from __future__ import annotations

import os
import sys
import time

import click

from worker.context import Context
from worker.output import console

PREFETCH = 2  # messages (batches) a worker process holds; what a SIGKILL can delay


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

    With REDIS_URL: `dramatiq worker.actors`, two batches prefetched per process so that
    a killed worker holds little (two batches come back after its heartbeat times out)
    while the process never idles between batches; SIGTERM lets in-flight batches
    finish and returns the rest to the queue. Without REDIS_URL (one machine): an in-process worker that
    also reconciles, until SIGTERM or Ctrl-C.
    """
    ctx = Context.load()
    p = processes or ctx.settings.worker_processes
    t = threads or ctx.settings.worker_threads
    if ctx.settings.redis_url:
        # benchmarks/pipeline.py: prefetch 1 gave 7,730 recipients/s, 2 gave 11,564/s.
        env = {**os.environ, "dramatiq_queue_prefetch": str(PREFETCH)}
        args = [
            sys.executable,
            "-m",
            "dramatiq",
            "worker.actors",
            "--processes",
            str(p),
            "--threads",
            str(t),
        ]
        os.execvpe(sys.executable, args, env)
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
    clock_mod.run(ctx)
