"""Locked dependencies: the lock was made from pyproject.toml, and the virtualenv holds
exactly what the lock gives (scripts/lock_check.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from scripts.lock_check import (
    ROOT,
    installed_here,
    installed_mismatches,
    project_mismatches,
)


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    pyproject, lock = tmp_path / "pyproject.toml", tmp_path / "uv.lock"
    shutil.copy(ROOT / "pyproject.toml", pyproject)
    shutil.copy(ROOT / "uv.lock", lock)
    return pyproject, lock


def test_the_lock_was_made_from_pyproject_as_it_is() -> None:
    assert project_mismatches(ROOT / "pyproject.toml", ROOT / "uv.lock") == []


def test_the_virtualenv_holds_the_locked_versions() -> None:
    assert installed_mismatches(ROOT / "uv.lock", installed_here()) == []


def test_uv_itself_finds_the_environment_in_sync_with_the_lock() -> None:
    uv = shutil.which("uv", path=str(Path(__import__("sys").executable).parent))
    assert uv is not None, "uv is part of the dev extra and must be in the virtualenv"
    run = subprocess.run(
        [uv, "sync", "--frozen", "--extra", "dev", "--check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr


def test_a_missing_lock_is_named(tmp_path: Path) -> None:
    pyproject, lock = _copy(tmp_path)
    lock.unlink()
    assert project_mismatches(pyproject, lock) == [
        "uv.lock is missing: run `make lock` and commit it"
    ]


def test_a_dependency_changed_without_locking_is_named(tmp_path: Path) -> None:
    pyproject, lock = _copy(tmp_path)
    text = pyproject.read_text()
    assert '"click>=8.1"' in text
    pyproject.write_text(text.replace('"click>=8.1"', '"click>=8.2"'))
    problems = project_mismatches(pyproject, lock)
    assert "pyproject.toml asks for click>=8.2, uv.lock was not made from it" in problems
    assert "uv.lock was made from click>=8.1, pyproject.toml no longer says so" in problems


def test_a_new_dev_dependency_without_locking_is_named(tmp_path: Path) -> None:
    pyproject, lock = _copy(tmp_path)
    text = pyproject.read_text()
    pyproject.write_text(
        text.replace('    "pytest>=8.0",\n', '    "pytest>=8.0",\n    "attrs>=23",\n')
    )
    assert project_mismatches(pyproject, lock)[0] == (
        'pyproject.toml asks for attrs>=23; extra == "dev", uv.lock was not made from it'
    )


def test_a_package_at_another_version_than_the_lock_is_named() -> None:
    installed = installed_here()
    installed["click"] = "0.1"
    assert (
        "click 0.1 is installed, uv.lock says"
        in installed_mismatches(ROOT / "uv.lock", installed)[0]
    )
