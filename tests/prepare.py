"""Run before the test suite (`make test`): say which real services are there.

With CI=true a missing service stops the run here, before any test, with a message
that names it.
"""

from __future__ import annotations

import sys

from tests.services import IN_CI, reachable

SERVICES = {"PostgreSQL": ("127.0.0.1", 5432), "Redis": ("127.0.0.1", 6379)}


def main() -> int:
    missing = [name for name, (host, port) in SERVICES.items() if not reachable(host, port)]
    for name, (host, port) in SERVICES.items():
        state = "missing" if name in missing else "ok"
        print(f"{name} on {host}:{port}: {state}")
    if missing and IN_CI:
        print(
            f"CI=true and {', '.join(missing)} not reachable: the integration tests cannot run",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
