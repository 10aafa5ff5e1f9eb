"""suppression <- campaigns <- worker: the dependency direction is enforced (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"suppression": ("campaigns", "worker"), "campaigns": ("worker",)}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_suppression_and_campaigns_never_import_the_layers_above_them() -> None:
    offences = []
    for package, forbidden in FORBIDDEN.items():
        for path in (ROOT / package).rglob("*.py"):
            bad = _imports(path) & set(forbidden)
            if bad:
                offences.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert offences == []


def test_only_worker_settings_reads_the_environment() -> None:
    readers = []
    for package in ("suppression", "campaigns", "worker"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if ("os.environ" in text or "os.getenv" in text) and path.name not in ("settings.py",):
                readers.append(str(path.relative_to(ROOT)))
    # `outreach worker` passes the environment on to the dramatiq process it becomes.
    assert readers in ([], ["worker/commands/processes.py"])
