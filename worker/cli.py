"""The `outreach` command line. Every command has --help; reporting commands have --json.

Commands are imported when they run: `COMMANDS` names each one's module and its short
help, so that `outreach --help` imports no command module and a command imports only
its own. A failure ends in one line on stderr and an exit code of docs/cli.md (the
mapping is `_fault`, the codes are worker.output's `EXIT_*`); `--debug` or
OUTREACH_DEBUG=1 adds the traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import click

from worker.output import (
    EXIT_CONFIGURATION,
    EXIT_INPUT_REFUSED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    Summaries,
    error_line,
)

# name: ("module:attribute", short help). The short help is the first sentence of the
# command's own help (tests/integration/test_cli_faults.py holds them together).
COMMANDS: dict[str, tuple[str, str]] = {
    "calllist": (
        "worker.commands.calllist:calllist",
        "Call lists for the call centre, and the outcomes it sends back (TP-1..TP-7).",
    ),
    "campaign": (
        "worker.commands.campaign:campaign",
        "Campaigns: create, preview, launch, follow, report.",
    ),
    "clock": ("worker.commands.processes:clock", "Run the periodic jobs (Procfile: clock)."),
    "customers": (
        "worker.commands.customers:customers",
        "Customers from the CRM (ES-2 / TP-3 facts) and their alarm contacts (ALL-3).",
    ),
    "db": ("worker.commands.db_cmd:db", "The database: create or migrate."),
    "explain": (
        "worker.commands.explain:explain",
        "Everything we hold about a person and, per channel, whether and why they may be "
        "contacted.",
    ),
    "forget": (
        "worker.commands.explain:forget",
        "Erase a person (GDPR art. 17): every plaintext trace goes, the hashed no stays (ALL-4).",
    ),
    "keys": (
        "worker.commands.keys:keys",
        "Secret keys: generate, status, rekey after a rotation, retire an old key.",
    ),
    "leads": (
        "worker.commands.leads:leads",
        "Partner leads: import a file, list who needs a source notice, purge expired leads.",
    ),
    "partners": (
        "worker.commands.partners:partners",
        "Partners who send lead files: check the partners file, poll their inboxes.",
    ),
    "register": ("worker.commands.register:register", "Reservasjonsregisteret snapshots."),
    "review": (
        "worker.commands.review:review_group",
        "Texts that may be a no (SMS replies, emails to the company): a person decides.",
    ),
    "serve": (
        "worker.commands.serve:serve",
        "Serve the unsubscribe pages and the Twilio and Mailchimp webhooks (uvicorn).",
    ),
    "suppress": (
        "worker.commands.suppress:suppress",
        "The suppression ledger: add, import, check.",
    ),
    "worker": (
        "worker.commands.processes:worker",
        "Run the dramatiq workers that send batches (Procfile: worker).",
    ),
}

# OutreachError families by what they mean for the caller; any other OutreachError is a
# refused operation. By (module, class), so that classifying an error imports nothing.
_UNAVAILABLE_ERRORS = (
    ("suppression.errors", "ChannelError"),  # a provider did not answer or refused us
    ("campaigns.sources.inbox", "InboxError"),  # a partner's SFTP server
    ("campaigns.optouts.mailbox", "MailboxError"),  # the company's IMAP server
)
_INPUT_ERRORS = (
    ("suppression.errors", "FileRefused"),
    ("suppression.errors", "InvalidIdentity"),
    ("campaigns.templates", "TemplateRefused"),
)
_DATABASE_ERRORS = (
    ("sqlalchemy.exc", "OperationalError"),
    ("sqlalchemy.exc", "InterfaceError"),
    ("sqlalchemy.exc", "TimeoutError"),  # no connection free in the pool in time
    ("psycopg", "OperationalError"),
    ("psycopg", "InterfaceError"),
)
_BROKER_ERRORS = (
    ("redis.exceptions", "ConnectionError"),
    ("redis.exceptions", "TimeoutError"),
    ("dramatiq.errors", "BrokerConnectionError"),
)


class LazyGroup(Summaries):
    """A group whose commands are imported when they are run (or their help is asked
    for), from `lazy`: name -> ("module:attribute", short help)."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        path, _ = self.lazy[cmd_name]
        module, attribute = path.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        self.commands[cmd_name] = command
        return command

    def summary(self, ctx: click.Context, name: str) -> str | None:
        if name in self.lazy and name not in self.commands:
            return self.lazy[name][1]  # without importing the command
        return super().summary(ctx, name)


class _Group(LazyGroup):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit):
            raise  # click's own: usage errors exit 2, --help exits 0
        except (KeyboardInterrupt, click.exceptions.Abort, EOFError):
            error_line("interrupted")
            raise SystemExit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            code, message = _fault(exc)
            if _debug(ctx):
                _print_traceback(exc)
            elif code == EXIT_INTERNAL:
                message += "; run again with --debug (or OUTREACH_DEBUG=1) for the traceback"
            error_line(message)
            raise SystemExit(code) from None
        finally:
            context = sys.modules.get("worker.context")
            if context is not None:
                context.close_loaded()


def _debug(ctx: click.Context) -> bool:
    if ctx.params.get("debug"):
        return True
    from worker import settings

    return settings.debug()


def _print_traceback(exc: BaseException) -> None:
    import traceback

    from worker.logs import redact

    sys.stderr.write(redact("".join(traceback.format_exception(exc))))


def _is(exc: BaseException, names: tuple[tuple[str, str], ...]) -> bool:
    for module, name in names:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _fault(exc: Exception) -> tuple[int, str]:
    """(exit code, one line naming what failed and what to do) for a command's failure.
    The line never repeats a library's message: it may hold SQL parameters (GD-4)."""
    from suppression.errors import ConfigurationError, OutreachError

    if isinstance(exc, ConfigurationError):
        return EXIT_CONFIGURATION, f"setting {exc.setting}: {exc.reason}"
    if isinstance(exc, OutreachError):
        if _is(exc, _UNAVAILABLE_ERRORS):
            return EXIT_UNAVAILABLE, str(exc)
        if _is(exc, _INPUT_ERRORS):
            return EXIT_INPUT_REFUSED, str(exc)
        return EXIT_REFUSED, str(exc)
    for cause in _chain(exc):
        if _is(cause, _DATABASE_ERRORS):
            return EXIT_UNAVAILABLE, _database_fault(cause)
        if _is(cause, _BROKER_ERRORS):
            where = _address("redis_url")
            return (
                EXIT_UNAVAILABLE,
                f"cannot reach Redis{where}: check REDIS_URL and that Redis is running",
            )
    if isinstance(exc, OSError) and exc.filename is not None:  # --out into a missing folder
        return EXIT_INPUT_REFUSED, f"{exc.filename}: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, ConnectionError | TimeoutError):
        return EXIT_UNAVAILABLE, f"a connection failed ({type(exc).__name__}): try again"
    return EXIT_INTERNAL, f"unexpected {type(exc).__name__} (a bug)"


def _database_fault(exc: BaseException) -> str:
    where = _address("sqlalchemy_url")
    orig = getattr(exc, "orig", None)
    connecting = getattr(exc, "statement", None) is None or getattr(
        exc, "connection_invalidated", False
    )
    if connecting and "sqlite" in where:
        return (
            f"cannot open the database{where}: check DATABASE_URL and that its folder "
            "exists and can be written"
        )
    if connecting:
        return f"cannot reach the database{where}: check DATABASE_URL and that it is running"
    kind = type(orig or exc).__name__
    return (
        f"the database could not complete the command{where} ({kind}): try again; "
        "--debug shows the details"
    )


def _address(attribute: str) -> str:
    """` (postgresql 127.0.0.1:5432/outreach)`: where the failing service is, from the
    settings of the command's context, without user or password; "" when not known."""
    context = sys.modules.get("worker.context")
    loaded = context.loaded_settings() if context is not None else None
    url = getattr(loaded, attribute, None) if loaded is not None else None
    if not url:
        return ""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(str(url))
        backend = parts.scheme.split("+")[0]
        if backend == "sqlite":
            return f" (sqlite file {parts.path[1:] or ':memory:'})"
        place = f"{parts.hostname or 'localhost'}:{parts.port or 'default port'}"
    except ValueError:
        return ""
    return f" ({backend} {place}{parts.path})"


@click.group(
    cls=_Group,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--debug",
    is_flag=True,
    help="On a failure, print the traceback too (also OUTREACH_DEBUG=1).",
)
def main(debug: bool) -> None:
    """outreach: marketing suppression and outreach. Never contact someone who said no.

    Exit codes (docs/cli.md): 0 done or allowed, 1 the negative answer of a question
    (suppress check: suppressed), 2 usage, 3 configuration, 4 database, Redis or another
    service unavailable, 5 input refused, 6 operation refused, 70 unexpected error.
    """
    from worker import logs

    logs.configure()


if __name__ == "__main__":
    main()
