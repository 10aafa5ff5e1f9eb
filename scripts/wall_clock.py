"""One clock: finds every read of the wall clock where none is allowed.

The domain (`suppression/`, `campaigns/`) takes `now` from its caller, always; the
application reads the wall clock in one place (`worker.context.make_clock`); the tests
take every instant from `tests.clock`. A read that must stay (the composition root's
clock, a fake server stamping what it received) carries a `# wall-clock: <why>` comment
on its line; in the domain not even that is accepted.

Reads looked for: `datetime.now/utcnow/today`, `date.today`, `time.time/time_ns`, and
`time.localtime/gmtime/ctime/asctime` without an argument, however they were imported
(`import datetime as dt`, `from time import time`, ...), called or passed as a value
(`default_factory=datetime.now`). Monotonic timers (`time.monotonic`, `perf_counter`)
measure durations, not the date, and are allowed.

    python -m scripts.wall_clock          # exit 1 and one line per read found
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
CHECKED: Final = ("suppression", "campaigns", "worker", "tests")
DOMAIN: Final = ("suppression", "campaigns")  # never a wall-clock read, marked or not
MARKER: Final = "# wall-clock:"

_CLASS_READS: Final = {"datetime": {"now", "utcnow", "today"}, "date": {"today"}}
_TIME_READS: Final = {"time", "time_ns"}
_TIME_READS_WITHOUT_ARGS: Final = {"localtime", "gmtime", "ctime", "asctime"}


@dataclass(frozen=True)
class Read:
    path: Path
    line: int
    call: str

    def __str__(self) -> str:
        where = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        hint = (
            "take `now` from the caller"
            if where.parts[0] in DOMAIN
            else "take it from the caller's clock (tests: tests.clock), or mark a deliberate "
            f"read with `{MARKER} <why>`"
        )
        return f"{where}:{self.line}: {self.call} reads the wall clock; {hint}"


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.modules: dict[str, str] = {}  # local name -> "datetime" | "time"
        self.classes: dict[str, str] = {}  # local name -> "datetime" | "date"
        self.functions: dict[str, str] = {}  # local name -> "time" | "time_ns" (from time)
        self.found: list[tuple[int, str]] = []
        self._called: set[int] = set()

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in ("datetime", "time"):
                self.modules[alias.asname or alias.name] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            local = alias.asname or alias.name
            if node.module == "datetime" and alias.name in _CLASS_READS:
                self.classes[local] = alias.name
            elif node.module == "time" and alias.name in _TIME_READS | _TIME_READS_WITHOUT_ARGS:
                self.functions[local] = alias.name

    def _class_of(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.classes.get(node.id)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and self.modules.get(node.value.id) == "datetime"
            and node.attr in _CLASS_READS
        ):
            return node.attr
        return None

    def _read(self, node: ast.expr, call: ast.Call | None) -> str | None:
        bare = call is not None and not call.args and not call.keywords
        if isinstance(node, ast.Attribute):
            cls = self._class_of(node.value)
            if cls is not None and node.attr in _CLASS_READS[cls]:
                return f"{cls}.{node.attr}()"
            is_time = isinstance(node.value, ast.Name) and self.modules.get(node.value.id) == "time"
            if is_time and (
                node.attr in _TIME_READS or (node.attr in _TIME_READS_WITHOUT_ARGS and bare)
            ):
                return f"time.{node.attr}()"
        if isinstance(node, ast.Name) and node.id in self.functions:
            name = self.functions[node.id]
            if name in _TIME_READS or bare:
                return f"time.{name}()"
        return None

    def visit_Call(self, node: ast.Call) -> None:
        found = self._read(node.func, node)
        if found:
            self.found.append((node.lineno, found))
            self._called.add(id(node.func))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # `datetime.now` passed as a value (a default factory, a callback) reads it too.
        if id(node) not in self._called:
            found = self._read(node, None)
            if found:
                self.found.append((node.lineno, found))
        self.generic_visit(node)


def reads_in(path: Path, source: str | None = None) -> list[Read]:
    """The wall-clock reads of one file that no marker allows."""
    text = path.read_text(encoding="utf-8") if source is None else source
    finder = _Finder()
    finder.visit(ast.parse(text, filename=str(path)))
    lines = text.splitlines()
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    in_domain = rel.parts[0] in DOMAIN
    found = []
    for line, call in sorted(set(finder.found)):
        marked = MARKER in lines[line - 1]
        if marked and not in_domain:
            continue
        found.append(Read(path, line, call))
    return found


def python_files(roots: Iterable[str] = CHECKED) -> Iterator[Path]:
    for name in roots:
        yield from sorted((ROOT / name).rglob("*.py"))


def main() -> int:
    found = [r for p in python_files() for r in reads_in(p)]
    for read in found:
        print(read, file=sys.stderr)
    if found:
        print(
            f"{len(found)} wall-clock read(s) where the one clock should be used", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
