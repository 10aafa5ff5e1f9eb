"""Read ahead: run an iterator in a thread, a few items ahead of its consumer.

A launch reads the next chunk of facts (on its own database connection: the server
works while Python decides, and psycopg lets go of the GIL while it waits) while the
previous chunk is decided. The standard library has no bounded, cancellable,
exception-forwarding read-ahead iterator; this is that, and nothing more.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")
_POLL_S = 0.1


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """`with Prefetch(source) as items: for item in items: ...`. At most `depth` items wait
    in memory; an exception in the source is raised in the consumer; leaving the block
    early stops the thread and closes the source (in the thread that ran it) before the
    block ends, so the source's resources (a connection) are free again."""

    def __init__(self, source: Iterator[T], depth: int = 2, name: str = "prefetch") -> None:
        self._source = source
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _put(self, item: T | _End) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    break
            else:
                self._put(_End())
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_End(exc))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    def __enter__(self) -> Prefetch[T]:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
