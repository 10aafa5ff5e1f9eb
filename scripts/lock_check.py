"""Locked dependencies: pyproject.toml, uv.lock and the virtualenv agree.

Three questions, each answered with the names of what differs:
- is there a lock at all;
- was the lock made from pyproject.toml as it is now (every requirement, extra, marker
  and version range of the project is the one the lock records; `uv lock --check` says
  only "needs to be updated", this says which line);
- is every package in the virtualenv at the version the lock gives it.

    python -m scripts.lock_check            # exit 1 and one line per mismatch

`make check` runs it; tests/unit/test_lock.py holds it to a planted mismatch.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT: Final = Path(__file__).resolve().parents[1]
PROJECT: Final = "outreach"
# In the virtualenv but not in the lock on purpose: venv's own installer.
UNLOCKED: Final = frozenset({"pip", "setuptools", "wheel"})

Wanted = tuple[str, tuple[str, ...], str, str]  # name, extras, specifier, marker


def _wanted(name: str, extras: Iterable[str], specifier: str, marker: str) -> Wanted:
    return (
        canonicalize_name(name),
        tuple(sorted(canonicalize_name(e) for e in extras)),
        str(SpecifierSet(specifier)),
        str(Marker(marker)) if marker else "",
    )


def _describe(w: Wanted) -> str:
    name, extras, spec, marker = w
    text = name + (f"[{','.join(extras)}]" if extras else "") + spec
    return text + (f"; {marker}" if marker else "")


def from_pyproject(pyproject: dict[str, Any]) -> set[Wanted]:
    project = pyproject["project"]
    found = set()
    groups: list[tuple[str | None, list[str]]] = [(None, project.get("dependencies", []))]
    groups += list(project.get("optional-dependencies", {}).items())
    for extra, lines in groups:
        for line in lines:
            req = Requirement(line)
            marker = str(req.marker) if req.marker else ""
            if extra is not None:
                on_extra = f"extra == '{extra}'"
                marker = f"{marker} and {on_extra}" if marker else on_extra
            found.add(_wanted(req.name, req.extras, str(req.specifier), marker))
    return found


def _project_package(lock: dict[str, Any]) -> dict[str, Any]:
    for package in lock.get("package", []):
        if package.get("name") == PROJECT:
            return dict(package)
    raise LookupError(f"uv.lock has no package {PROJECT!r}")


def from_lock(lock: dict[str, Any]) -> set[Wanted]:
    meta = _project_package(lock).get("metadata", {})
    return {
        _wanted(r["name"], r.get("extras", []), r.get("specifier", ""), r.get("marker", ""))
        for r in meta.get("requires-dist", [])
    }


def project_mismatches(pyproject_path: Path, lock_path: Path) -> list[str]:
    """What pyproject.toml asks for that the lock was not made from, and the reverse."""
    if not lock_path.exists():
        return [f"{lock_path.name} is missing: run `make lock` and commit it"]
    pyproject = tomllib.loads(pyproject_path.read_text(encoding="utf-8"))
    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    wanted, locked = from_pyproject(pyproject), from_lock(lock)
    problems = [
        f"{pyproject_path.name} asks for {_describe(w)}, {lock_path.name} was not made from it"
        for w in sorted(wanted - locked)
    ]
    problems += [
        f"{lock_path.name} was made from {_describe(w)}, {pyproject_path.name} no longer says so"
        for w in sorted(locked - wanted)
    ]
    if problems:
        problems.append("run `make lock` and commit pyproject.toml and uv.lock together")
    return problems


def installed_mismatches(lock_path: Path, installed: dict[str, str]) -> list[str]:
    """Packages in the environment at a version the lock does not give them."""
    lock = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    versions = {canonicalize_name(p["name"]): p["version"] for p in lock.get("package", [])}
    problems = []
    for name, version in sorted(installed.items()):
        if name in UNLOCKED or name == PROJECT:
            continue
        if name not in versions:
            problems.append(f"{name} {version} is installed but not in {lock_path.name}")
        elif versions[name] != version:
            problems.append(
                f"{name} {version} is installed, {lock_path.name} says {versions[name]}"
            )
    if problems:
        problems.append("run `make install` (it syncs the virtualenv to the lock)")
    return problems


def installed_here() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}


def main() -> int:
    lock_path = ROOT / "uv.lock"
    problems = project_mismatches(ROOT / "pyproject.toml", lock_path)
    if not problems:
        problems = installed_mismatches(lock_path, installed_here())
    for line in problems:
        print(f"lock: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
