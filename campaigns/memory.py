"""Bulk work's memory: the cyclic garbage collector paused while millions of objects
that form no reference cycles are made and dropped (a launch deciding, an import
reading and writing)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector would walk every live object again and again (40 % of a
    launch's CPU, a quarter of an import's reading). Paused for the block, on again
    after (it then finds nothing to collect). Process-wide: other threads' work too."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
