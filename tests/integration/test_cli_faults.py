"""Faults and the command line (issue 18): an error never looks like an answer.

Every command, with the store down (PostgreSQL on a port nothing listens on, or a SQLite
file in a folder that does not exist), exits 4 with one line on stderr and no traceback
(a traceback and exit 1 used to look like "suppressed"); with Redis down the processes
and a launch exit 4 too. `--debug` and OUTREACH_DEBUG=1 show the traceback. And the start:
`outreach --help` imports no command module, `suppress check` imports only what it needs,
Alembic's and dramatiq's INFO lines stay out of a quiet run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from suppression.keys import Hasher
from tests import clock as test_clock
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET
from tests.factories import add_person
from worker import db
from worker.cli import COMMANDS, _fault, main
from worker.output import (
    EXIT_CONFIGURATION,
    EXIT_INPUT_REFUSED,
    EXIT_INTERNAL,
    EXIT_NO,
    EXIT_OK,
    EXIT_UNAVAILABLE,
)

pytestmark = pytest.mark.integration

OUTREACH = str(Path(sys.executable).with_name("outreach"))
REPO = Path(__file__).resolve().parents[2]
PARTNERS = """
[partners.boligpartner]
display_name = "Boligpartner AS"
local_dir = "inbox"
"""
TEMPLATE = (
    "Subject: Nytt fra {{ organisation.name }}\n\n"
    "Hei {{ first_name }}!\n{{ source_notice }}\nAvmeld: {{ unsubscribe_url }}\n"
)
CREATE = ("--name", "n", "--channel", "email", "--purpose", "alarm", "--template", "{dir}/template.txt")  # fmt: skip
# The least each command needs to get as far as the store ({dir}: the test's folder).
ARGS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("calllist", "export"): ("1", "--out", "{dir}/list.csv"),
    ("calllist", "outcomes"): ("{dir}/file.csv",),
    ("campaign", "cancel"): ("1",),
    ("campaign", "create"): CREATE,
    ("campaign", "edit"): ("1", "--name", "n2"),
    ("campaign", "list"): (),
    ("campaign", "show"): ("1",),
    ("campaign", "launch"): ("1",),
    ("campaign", "pause"): ("1",),
    ("campaign", "preview"): ("1",),
    ("campaign", "report"): ("1",),
    ("campaign", "resume"): ("1",),
    ("campaign", "status"): ("1",),
    ("clock",): (),
    ("customers", "import"): ("{dir}/file.csv",),
    ("db", "upgrade"): (),
    ("explain",): ("--email", "ola@example.com"),
    ("forget",): ("--email", "ola@example.com"),
    ("keys", "generate"): (),
    ("keys", "rekey"): (),
    ("keys", "retire"): ("abcdef12",),
    ("keys", "status"): (),
    ("leads", "import"): ("{dir}/file.csv", "--partner", "boligpartner"),
    ("leads", "notice-due"): (),
    ("leads", "purge"): (),
    ("partners", "check"): (),
    ("partners", "list"): (),
    ("partners", "poll"): (),
    ("register", "load"): ("{dir}/file.csv", "--date", "2026-01-05"),
    ("register", "status"): (),
    ("review", "check-mailbox"): (),
    ("review", "list"): (),
    ("review", "resolve"): ("1", "--as", "ignore"),
    ("serve",): ("--port", "1"),
    ("suppress", "add"): ("--email", "ola@example.com", "--reason", "unsubscribe"),
    ("suppress", "check"): ("--email", "ola@example.com"),
    ("suppress", "import"): ("{dir}/file.csv", "--reason", "unsubscribe"),
    ("worker",): (),
}
# Commands that do not use the store: they answer with it down.
WITHOUT_STORE = {
    ("keys", "generate"),
    ("partners", "check"),
    ("partners", "list"),
    ("review", "check-mailbox"),
}


def leaf_commands(group: click.Group = main, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found.extend(leaf_commands(command, (*path, name)))
        else:
            found.append((*path, name))
    return found


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (taken from the OS, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "file.csv").write_text("telefon;reservasjon\n41234567;telefon\n")
    (tmp_path / "template.txt").write_text(TEMPLATE)
    (tmp_path / "partners.toml").write_text(PARTNERS)
    (tmp_path / "inbox").mkdir()
    return tmp_path


def env_for(folder: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "OUTREACH_SECRET_KEY": SECRET,
        "OUTREACH_ORGANISATION_NAME": ORG_NAME,
        "OUTREACH_ORGANISATION_NUMBER": ORG_NUMBER,
        "OUTREACH_PARTNERS_FILE": str(folder / "partners.toml"),
        "OUTREACH_OUTBOX_DIR": str(folder / "outbox"),
        "OUTREACH_DEMO_NOW": test_clock.NOW.isoformat(),
        "REDIS_URL": "",
        **extra,
    }


DOWN_STORES = {
    "postgresql": lambda folder: f"postgresql://outreach@127.0.0.1:{closed_port()}/outreach",
    "sqlite": lambda folder: f"sqlite:///{folder}/no-such-folder/outreach.db",
}


def args_of(command: tuple[str, ...], folder: Path) -> list[str]:
    return [*command, *(a.replace("{dir}", str(folder)) for a in ARGS[command])]


def invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env)


def run(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`outreach ...` as an operator runs it: a process of its own, only our variables."""
    ours = ("OUTREACH_", "DATABASE_URL", "REDIS", "TWILIO_", "MAILCHIMP_", "IMAP_", "dramatiq_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return subprocess.run(
        [OUTREACH, *args], env={**base, **env}, capture_output=True, text=True,
        timeout=timeout, check=False, cwd=REPO,
    )  # fmt: skip


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


# --- the command tree ----------------------------------------------------------------------


def test_every_command_of_the_tree_has_its_arguments_in_this_test() -> None:
    assert sorted(leaf_commands()) == sorted(ARGS)


def test_the_static_short_help_of_each_command_begins_its_own_help() -> None:
    ctx = click.Context(main)
    for name, (_, short) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.help is not None, name
        assert " ".join(command.help.split()).startswith(short), name


# --- the store down ------------------------------------------------------------------------


@pytest.mark.parametrize("store", sorted(DOWN_STORES))
@pytest.mark.parametrize("command", sorted(ARGS), ids=" ".join)
def test_with_the_store_down_every_command_exits_4_with_one_line_and_no_traceback(
    folder: Path, store: str, command: tuple[str, ...]
) -> None:
    env = env_for(folder, DOWN_STORES[store](folder))
    result = invoke(args_of(command, folder), env)
    assert "Traceback" not in result.output
    if command in WITHOUT_STORE:
        assert result.exit_code == EXIT_OK, result.output
        return
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    line = one_error_line(result.stderr)
    assert "DATABASE_URL" in line and result.stdout == ""
    assert "ola@example.com" not in result.output and "outreach@" not in line


@pytest.mark.parametrize(
    "command", [("suppress", "check"), ("db", "upgrade"), ("worker",), ("clock",), ("serve",)],
    ids=" ".join,
)  # fmt: skip
def test_an_operator_with_postgresql_down_reads_one_line_and_exit_4_never_1(
    folder: Path, command: tuple[str, ...]
) -> None:
    port = closed_port()
    done = run(args_of(command, folder), env_for(folder, f"postgresql://u:pw@127.0.0.1:{port}/x"))
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    line = one_error_line(done.stderr)
    assert f"cannot reach the database (postgresql 127.0.0.1:{port}/x)" in line
    assert "pw" not in line and done.stdout == ""


def test_debug_and_outreach_debug_show_the_traceback_with_the_same_exit_code(
    folder: Path,
) -> None:
    env = env_for(folder, DOWN_STORES["postgresql"](folder))
    args = args_of(("suppress", "check"), folder)
    for result in (invoke(["--debug", *args], env), invoke(args, {**env, "OUTREACH_DEBUG": "1"})):
        assert result.exit_code == EXIT_UNAVAILABLE
        assert "Traceback" in result.stderr and "OperationalError" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: cannot reach")


# --- a store that answers, but not as it should ------------------------------------------


def test_an_unmigrated_store_is_a_setting_to_fix_not_a_suppressed_person(folder: Path) -> None:
    env = env_for(folder, f"sqlite:///{folder}/empty.db")
    result = invoke(args_of(("suppress", "check"), folder), env)
    assert result.exit_code == EXIT_CONFIGURATION, result.output
    assert "outreach db upgrade" in one_error_line(result.stderr)


def test_the_revision_check_knows_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    assert (
        db.head_revision() == ScriptDirectory.from_config(db.alembic_config("")).get_current_head()
    )


def test_suppressed_is_1_and_contactable_0_on_a_migrated_store(
    folder: Path, store_url: str
) -> None:
    env = env_for(folder, store_url)
    assert invoke(args_of(("suppress", "add"), folder), env).exit_code == EXIT_OK
    assert invoke(args_of(("suppress", "check"), folder), env).exit_code == EXIT_NO
    other = invoke(["suppress", "check", "--email", "kari@example.com"], env)
    assert other.exit_code == EXIT_OK


def test_a_refused_file_is_input_refused_not_an_answer(folder: Path, store_url: str) -> None:
    env = env_for(folder, store_url)
    bad = folder / "bad.csv"
    bad.write_text("telefon;reservasjon\n41234569;kanskje\n")
    refused = invoke(["register", "load", str(bad), "--date", "2026-01-05"], env)
    assert refused.exit_code == EXIT_INPUT_REFUSED, refused.output


def test_what_is_not_ours_is_an_internal_error_never_an_answer() -> None:
    assert _fault(KeyError("x"))[0] == EXIT_INTERNAL
    assert _fault(FileNotFoundError(2, "No such file or directory", "/nope/list.csv")) == (
        EXIT_INPUT_REFUSED,
        "/nope/list.csv: No such file or directory",
    )


# --- Redis down ------------------------------------------------------------------------------


@pytest.fixture
def sqlite_store(folder: Path, sqlite_template: Path) -> str:
    import shutil

    path = folder / "outreach.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.mark.parametrize("command", [("worker",), ("clock",)], ids=" ".join)
def test_with_redis_down_the_processes_exit_4_at_their_start(
    folder: Path, sqlite_store: str, command: tuple[str, ...]
) -> None:
    port = closed_port()
    done = run([*command], env_for(folder, sqlite_store, REDIS_URL=f"redis://127.0.0.1:{port}/0"))
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    line = one_error_line(done.stderr)
    assert f"cannot reach Redis (redis 127.0.0.1:{port}/0)" in line and "REDIS_URL" in line


def test_with_redis_down_a_launch_exits_4_naming_redis(
    folder: Path, sqlite_store: str, hasher: Hasher
) -> None:
    engine = db.engine_for(sqlite_store)
    with engine.begin() as conn:
        add_person(conn, hasher, 1, partner="boligpartner")
    engine.dispose()
    env = env_for(folder, sqlite_store, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0")
    created = run(
        ["campaign", "create", "--name", "n", "--channel", "email", "--purpose", "alarm",
         "--template", str(folder / "template.txt"), "--json"],
        env,
    )  # fmt: skip
    assert created.returncode == EXIT_OK, created.stderr
    campaign_id = str(json.loads(created.stdout)["id"])
    done = run(["campaign", "launch", campaign_id, "--no-wait"], env)
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr
    assert "cannot reach Redis" in one_error_line(done.stderr)


# --- quiet by default, and a start that imports little -----------------------------------------


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    ours = ("OUTREACH_", "DATABASE_URL", "REDIS")
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
        timeout=120, check=False, cwd=REPO,
    )  # fmt: skip


def test_db_upgrade_prints_its_result_and_nothing_else(folder: Path) -> None:
    done = run(["db", "upgrade"], env_for(folder, f"sqlite:///{folder}/new.db"))
    assert done.returncode == EXIT_OK, done.stderr
    assert (done.stdout, done.stderr) == ("database at revision head\n", "")


def test_a_migration_after_the_workers_logging_is_set_up_logs_nothing_at_info(
    folder: Path,
) -> None:
    # What the benchmarks do: import the actors (logging at INFO), then migrate.
    code = "from worker import actors, db; db.upgrade('sqlite:///' + __import__('sys').argv[1])"
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder / "bench.db")],
        env={**os.environ, "OUTREACH_SECRET_KEY": SECRET, "OUTREACH_LOG_LEVEL": "INFO"},
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_the_worker_processes_log_at_outreach_log_level(folder: Path) -> None:
    code = "import logging, worker.actors; print(logging.getLogger('dramatiq').getEffectiveLevel())"
    done = python(code, {"OUTREACH_SECRET_KEY": SECRET, "OUTREACH_LOG_LEVEL": "WARNING"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(20 + 10)  # WARNING


HEAVY = (
    "dramatiq", "fastapi", "starlette", "uvicorn", "alembic", "rich", "httpx", "mailchimp_marketing",
    "twilio", "paramiko", "apscheduler", "jinja2", "structlog",
)  # fmt: skip


def imported_by(args: list[str], env: dict[str, str]) -> set[str]:
    code = (
        "import sys\nfrom worker.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    ours = ("OUTREACH_", "DATABASE_URL", "REDIS")
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env={**base, **env}, capture_output=True,
        text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split("\n")[-2].split())


def test_help_imports_no_command_module_and_no_store(folder: Path) -> None:
    found = imported_by(["--help"], {})
    assert {m for m in found if m.startswith("worker.commands")} == set()
    assert {m.split(".")[0] for m in found} & {"sqlalchemy", "pydantic", *HEAVY} == set()


def test_suppress_check_imports_only_what_it_needs(folder: Path, sqlite_store: str) -> None:
    found = imported_by(
        ["suppress", "check", "--email", "ola@example.com"], env_for(folder, sqlite_store)
    )
    assert {m for m in found if m.startswith("worker.commands.")} == {"worker.commands.suppress"}
    assert {m.split(".")[0] for m in found} & set(HEAVY) == set()


def _listed(help_text: str) -> dict[str, str]:
    """The Commands section of a --help: name -> its summary, wrapped lines joined."""
    listed: dict[str, str] = {}
    name = ""
    for line in help_text.split("Commands:", 1)[1].splitlines():
        if not line.strip():
            continue
        if line.startswith("  ") and not line.startswith("   "):
            name, _, summary = line.strip().partition(" ")
            listed[name] = summary.strip()
        else:
            listed[name] += " " + line.strip()
    return listed


def test_no_summary_in_any_help_is_cut() -> None:
    """The top-level listing showed "forget  Erase a person (GDPR art." and every group's
    listing cut summaries with "...": each summary is whole, and is its command's first
    sentence, on the top level and in every group."""
    runner = CliRunner()
    top = runner.invoke(main, ["--help"], terminal_width=80)
    assert top.exit_code == 0, top.output
    listed = _listed(top.output)
    assert listed.keys() == COMMANDS.keys()
    assert listed["forget"].startswith("Erase a person (GDPR art. 17): every plaintext trace")
    groups = 0
    for name, (_, short) in COMMANDS.items():
        assert listed[name] == short, name
        assert not listed[name].endswith("..."), name
        sub = runner.invoke(main, [name, "--help"], terminal_width=80)
        assert sub.exit_code == 0, sub.output
        if "Commands:" not in sub.output:
            continue
        groups += 1
        group = main.get_command(click.Context(main), name)
        assert isinstance(group, click.Group)
        for sub_name, summary in _listed(sub.output).items():
            command = group.commands[sub_name]
            assert not summary.endswith("..."), (name, sub_name, summary)
            help_text = " ".join((command.help or "").split())
            assert help_text.startswith(summary.rstrip(".")), (name, sub_name, summary)
            assert summary.endswith((".", ")")) or summary == help_text, (name, sub_name)
    assert groups >= 9
