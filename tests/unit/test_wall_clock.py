"""One clock: no wall-clock read in the domain or the tests (scripts/wall_clock.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scripts import wall_clock
from scripts.wall_clock import ROOT, reads_in


def test_the_tree_reads_the_wall_clock_only_where_it_says_why() -> None:
    found = [str(r) for p in wall_clock.python_files() for r in reads_in(p)]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nx = datetime.now()\n",
        "from datetime import UTC, datetime\nx = datetime.now(UTC)\n",
        "from datetime import datetime as dt\nx = dt.utcnow()\n",
        "import datetime\nx = datetime.datetime.now()\n",
        "import datetime as d\nx = d.date.today()\n",
        "from datetime import date\nx = date.today()\n",
        "import time\nx = time.time()\n",
        "import time as t\nx = t.time_ns()\n",
        "from time import time\nx = time()\n",
        "import time\nx = time.localtime()\n",
        "from dataclasses import field\nfrom datetime import datetime\n"
        "x = field(default_factory=datetime.now)\n",
    ],
)
def test_a_planted_read_is_found_with_its_file_and_line(source: str) -> None:
    planted = ROOT / "campaigns" / "planted.py"
    (found,) = reads_in(planted, source)
    assert found.line == source.count("\n")
    assert str(found).startswith("campaigns/planted.py:")


@pytest.mark.parametrize(
    "source",
    [
        "import time\nx = time.monotonic()\n",
        "import time\nx = time.perf_counter()\n",
        "import time\nx = time.localtime(0)\n",
        "from datetime import datetime\nx = datetime.fromisoformat('2026-01-01T00:00:00+00:00')\n",
        "class Thing:\n    def now(self) -> int:\n        return 1\n\nx = Thing().now()\n",
    ],
)
def test_durations_and_given_instants_are_not_wall_clock_reads(source: str) -> None:
    assert reads_in(ROOT / "campaigns" / "planted.py", source) == []


def test_a_marked_read_is_allowed_in_tests_but_never_in_the_domain() -> None:
    source = "import time\nx = time.time()  # wall-clock: a fake server's arrival stamp\n"
    assert reads_in(ROOT / "tests" / "fakes" / "planted.py", source) == []
    assert len(reads_in(ROOT / "suppression" / "planted.py", source)) == 1


def test_the_command_fails_on_a_planted_read_naming_file_and_line() -> None:
    planted = ROOT / "tests" / "unit" / "_planted_wall_clock_read.py"
    planted.write_text("from datetime import datetime\n\nNOW = datetime.now()\n")
    try:
        run = subprocess.run(
            [sys.executable, "-m", "scripts.wall_clock"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        planted.unlink()
    assert run.returncode == 1
    assert "tests/unit/_planted_wall_clock_read.py:3: datetime.now()" in run.stderr
