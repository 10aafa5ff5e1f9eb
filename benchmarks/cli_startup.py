"""Start-up of the command line: `outreach --help` and a `suppress check`, against Python's own.

    python -m benchmarks.cli_startup [--runs 20] [--target-ms 300] [--as-is]

Each command runs `--runs` times as a fresh process, the three commands taking turns
(so that a change in the machine's load reaches all three alike): `python -c pass` (the
floor: the interpreter's own start), `outreach --help`, and `outreach suppress check
--email a@example.com` on a SQLite store migrated beforehand (contactable: exit 0). The
medians of wall time and of CPU time (user + system, from the children's rusage) are
printed, with each command's ratio to `python -c pass` and whether the target held.

Bytecode: an installed package has its `.pyc` files (pip and uv compile them at
install, or Python writes them at the first import). This machine's environment sets
PYTHONDONTWRITEBYTECODE and the virtualenv holds none, so every start would compile
every module from source. Unless --as-is, the runs use a bytecode cache of their own
(PYTHONPYCACHEPREFIX in a temporary folder, filled by one run of each command first);
with --as-is they run in the environment as it is.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SECRET = "benchmark-only-secret-key-0123456789"
OURS = ("OUTREACH_", "DATABASE_URL", "REDIS", "TWILIO_", "MAILCHIMP_", "IMAP_")


@dataclass
class Timings:
    name: str
    argv: list[str]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def run(self, env: dict[str, str]) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(self.argv, env=env, capture_output=True, check=False)
        self.wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(
                f"{self.name}: exit {done.returncode}\n{done.stderr.decode(errors='replace')}"
            )

    @property
    def median_ms(self) -> float:
        return statistics.median(self.wall) * 1000

    @property
    def cpu_ms(self) -> float:
        return statistics.median(self.cpu) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command")
    parser.add_argument("--target-ms", type=float, default=300.0, help="median to stay under")
    parser.add_argument("--as-is", action="store_true", help="no bytecode cache of our own")
    args = parser.parse_args()
    outreach = str(Path(sys.executable).with_name("outreach"))
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{tmp}/outreach.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith(OURS)}
        env.update(DATABASE_URL=store, OUTREACH_SECRET_KEY=SECRET)
        if not args.as_is:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = f"{tmp}/pycache"
        migrated = subprocess.run(
            [outreach, "db", "upgrade"], env=env, capture_output=True, check=False
        )
        if migrated.returncode != 0:
            raise SystemExit(migrated.stderr.decode(errors="replace"))
        commands = [
            Timings("python -c pass", [sys.executable, "-c", "pass"]),
            Timings("outreach --help", [outreach, "--help"]),
            Timings(
                "outreach suppress check (SQLite)",
                [outreach, "suppress", "check", "--email", "a@example.com"],
            ),
        ]
        for command in commands:  # fills the bytecode cache; not counted
            command.run(env)
            command.wall.clear()
            command.cpu.clear()
        for _ in range(args.runs):
            for command in commands:
                command.run(env)
    floor = commands[0]
    cache = "as the environment is" if args.as_is else "with a bytecode cache"
    print(f"{os.cpu_count()} CPUs; {args.runs} runs of each command, taking turns; {cache}")
    print()
    header = ("command", "median ms", "CPU ms", "x python", f"<= {args.target_ms:.0f} ms")
    print("{:<34} {:>10} {:>8} {:>9} {:>9}".format(*header))
    missed = []
    for command in commands:
        ratio = command.median_ms / floor.median_ms
        held = command is floor or command.median_ms <= args.target_ms
        if not held:
            missed.append(command.name)
        mark = "-" if command is floor else ("yes" if held else "no")
        print(
            f"{command.name:<34} {command.median_ms:>10.1f} {command.cpu_ms:>8.1f} "
            f"{ratio:>8.1f}x {mark:>9}"
        )
    print()
    if missed:
        print(f"target missed by: {', '.join(missed)}")
    else:
        print("target met by every command")
    return 0


if __name__ == "__main__":
    sys.exit(main())
