"""docs/marketer-walkthrough.md, run as written (issue 19: "the walkthrough cannot drift
from the product again").

The `sh` blocks are taken in order and each command in them runs in one temporary
folder, as a marketer would type them: the real `outreach` executable, the embedded
default (SQLite in the folder, no Redis, the outbox), and the demo clock the walkthrough
names (OUTREACH_DEMO_NOW: each process's clock starts at that instant; this test reads
no clock). Each command must exit 0, or the code its line names (`# exit N`); a `text`
block right after an `sh` block is what the block's last command prints: each of its
lines appears in that output, in order, `...` standing for anything.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

pytestmark = pytest.mark.integration

REPO: Final = Path(__file__).resolve().parents[2]
WALKTHROUGH: Final = REPO / "docs" / "marketer-walkthrough.md"
BIN: Final = Path(sys.executable).parent
# The instant the walkthrough's example files are made for (its practice .env says it).
WALKTHROUGH_NOW: Final = "2026-11-24T10:00:00+01:00"
_FENCE = re.compile(r"^```(\w*)\s*$")
_EXIT = re.compile(r"#\s*exit\s+(\d+)\b")
_HEREDOC = re.compile(r"<<-?\s*'?\"?(\w+)'?\"?")


@dataclass
class Command:
    text: str
    exit_code: int
    line: int  # in the walkthrough, for the failure message


@dataclass
class Block:
    line: int
    commands: list[Command]
    expected: list[str] = field(default_factory=list)  # the text block after it, if any


def fenced(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of each fenced block."""
    blocks: list[tuple[str, int, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        blocks.append((opened.group(1), start + 1, body))
        i += 1
    return blocks


def commands(lines: list[str], first_line: int) -> list[Command]:
    """A block's commands: one a line, with its continuation lines (`\\`) and its here
    document (`<<'EOF'` ... `EOF`); comment lines and blank lines are not commands."""
    out: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        start = i
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        parts = [line]
        while parts[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            parts.append(lines[i])
        heredoc = _HEREDOC.search(" ".join(parts))
        if heredoc is not None:
            end = heredoc.group(1)
            while i + 1 < len(lines):
                i += 1
                parts.append(lines[i])
                if lines[i].strip() == end:
                    break
        code = _EXIT.search(parts[0] if heredoc is not None else parts[-1])
        out.append(Command("\n".join(parts), int(code.group(1)) if code else 0, first_line + start))
        i += 1
    return out


def walkthrough() -> list[Block]:
    blocks: list[Block] = []
    for language, line, body in fenced(WALKTHROUGH.read_text(encoding="utf-8")):
        if language == "sh":
            blocks.append(Block(line, commands(body, line)))
        elif language == "text" and blocks and not blocks[-1].expected:
            blocks[-1].expected = body
    return blocks


def shows(output: str, expected: list[str]) -> str | None:
    """None when each expected line is in the output, in order (`...`: anything); else
    the first line that is not."""
    lines = output.splitlines()
    at = 0
    for want in expected:
        pieces = [re.escape(p) for p in want.split("...")]
        pattern = re.compile(".*".join(pieces))
        while at < len(lines) and not pattern.search(lines[at]):
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


def environment(folder: Path) -> dict[str, str]:
    """What a marketer's shell holds: the executables, a home, a UTF-8 locale; nothing of
    this machine's own OUTREACH_*, DATABASE_URL or REDIS_URL (the embedded default)."""
    return {
        "PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(folder),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OUTREACH_DEMO_NOW": WALKTHROUGH_NOW,
        "OUTREACH_LOG_LEVEL": "WARNING",
    }


def test_the_walkthrough_has_its_steps_as_commands() -> None:
    blocks = walkthrough()
    names = {c.text.split()[1] for b in blocks for c in b.commands if c.text.startswith("outreach")}
    assert {"partners", "customers", "register", "campaign", "calllist", "explain"} <= names
    assert f"OUTREACH_DEMO_NOW={WALKTHROUGH_NOW}" in WALKTHROUGH.read_text(encoding="utf-8")


def test_the_command_splitter_keeps_here_documents_and_exit_codes() -> None:
    found = commands(
        ["cat > a.txt <<'EOF'", "x # exit 9", "EOF", "# a comment", "false  # exit 1"], 10
    )
    assert [(c.text, c.exit_code, c.line) for c in found] == [
        ("cat > a.txt <<'EOF'\nx # exit 9\nEOF", 0, 10),
        ("false  # exit 1", 1, 14),
    ]
    assert shows("a\nb 1 c\n", ["b...c"]) is None and shows("a\n", ["b"]) == "b"


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    env = environment(tmp_path)
    for block in walkthrough():
        output = ""
        for command in block.commands:
            done = subprocess.run(
                ["bash", "-c", command.text],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            output = done.stdout + done.stderr
            assert done.returncode == command.exit_code, (
                f"docs/marketer-walkthrough.md line {command.line}: {command.text!r} exited "
                f"{done.returncode}, not {command.exit_code}:\n{output}"
            )
            assert "Traceback" not in output, f"line {command.line}:\n{output}"
        missing = shows(output, block.expected)
        assert missing is None, (
            f"docs/marketer-walkthrough.md, the block at line {block.line}: its last command "
            f"did not print {missing!r}; it printed:\n{output}"
        )
