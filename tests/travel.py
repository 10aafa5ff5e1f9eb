"""Time travel: run the suite with the test clock at other instants.

    python -m tests.travel            # the whole suite at every instant of tests.clock.TRAVEL
    python -m tests.travel --subset   # `travel`-marked tests, but the slow end-to-end
                                      # ones, at TRAVEL_IN_CI (make test)
    python -m tests.travel --at 2028-01-15T09:00:00+01:00 [pytest args]

Each run is a pytest process of its own with OUTREACH_TEST_NOW set (the clock is read
once, at import); a table of the results closes the run, and the exit code is pytest's
worst one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from tests.clock import ENV, TRAVEL, TRAVEL_IN_CI, parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.travel", description=__doc__)
    parser.add_argument(
        "--subset", action="store_true", help="only tests marked `travel` and not `slow`"
    )
    parser.add_argument("--at", action="append", default=[], help="an instant (repeatable)")
    args, pytest_args = parser.parse_known_args(argv)
    instants = args.at or list(TRAVEL_IN_CI if args.subset else TRAVEL)
    for text in instants:
        parse(text)  # a bad instant stops here, naming it, before any run
    # The whole-loop e2e (marked slow, minutes a run) travels in `make test-travel` only.
    selection = ["-m", "travel and not slow"] if args.subset else []
    results: list[tuple[str, int, float]] = []
    for text in instants:
        print(f"\n=== {ENV}={text} {' '.join(selection)}", flush=True)
        started = time.monotonic()  # how long each run took, for the table
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", *selection, *pytest_args],
            env={**os.environ, ENV: text},
        )
        results.append((text, code, time.monotonic() - started))
    print("\ntime travel:")
    for text, code, seconds in results:
        verdict = "passed" if code == 0 else f"FAILED (pytest exit {code})"
        print(f"  {text}  {verdict}  {seconds:.0f} s")
    return max((code for _, code, _ in results), default=0)


if __name__ == "__main__":
    sys.exit(main())
