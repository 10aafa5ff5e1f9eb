"""Printing for the CLI: rich tables on a terminal, `--json` for tools, and exit codes.

The exit codes are a contract (docs/cli.md): an error never exits with the code of an
answer. `console` and `err_console` become rich Consoles at their first use, so that
importing a command module does not import rich.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final, NoReturn, cast

import click

if TYPE_CHECKING:
    from rich.console import Console

# docs/cli.md: the table of these codes.
EXIT_OK: Final = 0  # done; or the positive answer of a question (suppress check: contactable)
EXIT_NO: Final = 1  # the negative answer of a question (suppress check: suppressed)
EXIT_USAGE: Final = 2  # click's own: a missing or malformed option or argument
EXIT_CONFIGURATION: Final = 3  # a setting is missing or wrong (ConfigurationError)
EXIT_UNAVAILABLE: Final = 4  # the database, Redis or another service cannot be used
EXIT_INPUT_REFUSED: Final = 5  # a file or rows of it were refused (FileRefused, row errors)
EXIT_REFUSED: Final = 6  # the operation was refused (a rule, a state, no such thing)
EXIT_INTERNAL: Final = 70  # an unexpected error: a bug, or a crashed process (sysexits)
EXIT_INTERRUPTED: Final = 130  # Ctrl-C (128 + SIGINT)


class _LazyConsole:
    """Stands for a rich Console, made at its first use (rich takes a while to import)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._made: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or "_stderr" not in self.__dict__:
            raise AttributeError(name)
        if self._made is None:
            from rich.console import Console

            self._made = Console(stderr=self._stderr)
        return getattr(self._made, name)


console = cast("Console", _LazyConsole(stderr=False))
err_console = cast("Console", _LazyConsole(stderr=True))


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, default=_default, ensure_ascii=False, indent=2) + "\n")


def error_line(message: str) -> None:
    """One line on stderr: `error: <message>` (never wrapped, never a traceback)."""
    import click

    text = " ".join(message.split())
    click.echo(f"{click.style('error:', fg='red', bold=True)} {text}", err=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Stop the command with one line on stderr and an exit code of the table above."""
    error_line(message)
    raise SystemExit(code)


_SENTENCE_END = re.compile(r"(?<=[a-zæøå0-9)])\.\s+(?=[A-ZÆØÅ`\"(])")


def summary_of(command: click.Command) -> str:
    """A command's summary for its group's listing: `short_help`, else the first sentence
    of its help's first paragraph. A period inside a sentence ("GDPR art. 17", "e.g. a")
    does not end it: click's own short help stops there, or at 45 characters."""
    if command.short_help:
        return command.short_help
    paragraph = " ".join((command.help or "").split("\n\n", 1)[0].split())
    end = _SENTENCE_END.search(paragraph)
    return paragraph[: end.start() + 1] if end else paragraph


class Summaries(click.Group):
    """A command group that lists each command with its whole summary, wrapped to the
    terminal's width, never cut."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, summary)
            for name in self.list_commands(ctx)
            if (summary := self.summary(ctx, name))
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def summary(self, ctx: click.Context, name: str) -> str | None:
        """The summary of command `name`, None to leave it out (hidden)."""
        command = self.get_command(ctx, name)
        if command is None or command.hidden:
            return None
        return summary_of(command)
