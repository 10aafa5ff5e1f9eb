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


# Besides worker/settings.py, the only places that touch the environment, and why.
ENVIRONMENT_ALLOWED = {
    "worker/commands/processes.py": "passes the environment on to the dramatiq process it becomes",
    "worker/demo.py": "sets the demo's own settings for the commands it runs",
    "worker/settings.py": "reads the settings",
}


def test_only_worker_settings_reads_the_environment() -> None:
    touching = set()
    for package in ("suppression", "campaigns", "worker"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "os.environ" in text or "os.getenv" in text:
                touching.add(str(path.relative_to(ROOT)))
    assert touching - set(ENVIRONMENT_ALLOWED) == set()
    assert not any(p.startswith(("suppression/", "campaigns/")) for p in touching)
