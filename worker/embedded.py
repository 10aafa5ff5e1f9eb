"""The embedded default: with no REDIS_URL, a dramatiq worker runs inside this process."""

from __future__ import annotations

import time
from collections.abc import Sequence

import dramatiq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from campaigns import campaign, report
from campaigns.campaign_schema import FINAL_STATES
from worker import actors
from worker.broker import SEND_QUEUE, is_embedded
from worker.context import Context


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]}"),
        TimeElapsedColumn(),
    )


def state_line(states: dict[str, int]) -> str:
    return " ".join(f"{s}={n}" for s, n in states.items() if n and s != "excluded")


def watch(
    ctx: Context, campaign_ids: Sequence[int], progress: Progress, until_done: bool = True
) -> None:
    """Update one bar per campaign from the store until every recipient is in a final state."""
    tasks = {}
    for cid in campaign_ids:
        with ctx.engine.connect() as conn:
            camp = campaign.get(conn, cid)
        tasks[cid] = progress.add_task(f"campaign {cid} ({camp.channel})", total=None, states="")
    while True:
        finished = True
        for cid, task in tasks.items():
            with ctx.engine.connect() as conn:
                states = report.counts(conn, cid)
                camp_state = campaign.get(conn, cid).state
            eligible = sum(n for s, n in states.items() if s != "excluded")
            done = sum(n for s, n in states.items() if s in FINAL_STATES and s != "excluded")
            progress.update(
                task,
                total=eligible or 1,
                completed=done if eligible else 1,
                states=state_line(states),
            )
            if done < eligible and camp_state == "running":
                finished = False
        if finished or not until_done:
            return
        time.sleep(0.3)


def run(ctx: Context, campaign_ids: Sequence[int], show_progress: bool = True) -> None:
    """Run the in-process worker until the campaigns' queued batches are sent."""
    actors.configure(ctx)
    broker = actors.broker
    if not is_embedded(broker):
        raise RuntimeError("the embedded runner needs the in-process broker (REDIS_URL unset)")
    worker = dramatiq.Worker(broker, worker_threads=ctx.settings.worker_threads, worker_timeout=100)
    worker.start()
    try:
        if show_progress:
            with progress_bar() as bar:
                import threading

                join = threading.Thread(target=broker.join, args=(SEND_QUEUE,), daemon=True)
                join.start()
                while join.is_alive():
                    watch(ctx, campaign_ids, bar, until_done=False)
                    join.join(0.3)
                watch(ctx, campaign_ids, bar, until_done=False)
        else:
            broker.join(SEND_QUEUE)
    finally:
        worker.stop()
