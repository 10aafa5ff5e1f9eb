"""With CI=true a skipped test fails the run (tests/no_skips.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIPPING = "import pytest\n\ndef test_runs():\n    pass\n\ndef test_skips():\n    pytest.skip('no service')\n"


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SKIPPING)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.no_skips",
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_sample.py"),
        ],
        cwd=tmp_path,
        env={**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_in_ci_a_skip_fails_the_run_and_says_why(tmp_path: Path) -> None:
    run = _run(tmp_path, "true")
    assert run.returncode == pytest.ExitCode.TESTS_FAILED
    assert "CI=true and 1 test(s) skipped" in run.stdout


def test_outside_ci_a_skip_is_only_reported(tmp_path: Path) -> None:
    run = _run(tmp_path, "")
    assert run.returncode == pytest.ExitCode.OK
    assert "1 skipped" in run.stdout
