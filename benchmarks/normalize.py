"""Identity normalisation: identities per second, fast path against the libraries.

    python -m benchmarks.normalize [--n 1000000] [--seed 47] [--naive-budget 120]

Generates N realistic, synthetic inputs, half email addresses and half phone
numbers, as partner files and CRM exports write them: local parts built from
Faker's Norwegian names (æøå kept in some, transliterated in most, upper and lower
case mixed, dots, underscores, plus tags, digits) at the mail providers Norwegians
use and at example.com / example.no; phone numbers in the four common spellings
(`+47 412 34 567`, `0047 41234567`, `412 34 567`, `41234567`) and a few others;
about 3 % of each kind invalid. Numbers are random in the mobile ranges: made up,
never stored, never dialled.

Then it normalises every input twice in the same process: the naive path calls
email-validator and phonenumbers on each item (`_normalise_email_slow`,
`_normalise_phone_slow`, the reference) and the fast path calls the public
`normalise_email` / `normalise_phone`. Every output is compared (canonical value,
number type, or refusal and its reason); a single mismatch makes the exit status 1.
Rates are by wall clock; the speedup is also given by the process's CPU time, which
stays put when other work shares the machine.

If the naive path would take longer than --naive-budget seconds on all N inputs
(estimated from its first 20,000), it runs on a random sample of 200,000 instead
and the output says so. Peak memory is the process's peak RSS (ru_maxrss), read
after generating the inputs, after the fast path and after the naive path (the
fast path runs first so that its figure is not the naive path's peak).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from suppression.errors import InvalidIdentity
from suppression.identity import (
    Phone,
    _email_domain,
    _normalise_email_slow,
    _normalise_phone_slow,
    normalise_email,
    normalise_phone,
)

NAIVE_SAMPLE = 200_000
NAIVE_PROBE = 20_000
INVALID_SHARE = 0.03

# Weighted like a Norwegian partner file: the big webmail providers first.
DOMAINS = (
    ("gmail.com", 30),
    ("hotmail.com", 14),
    ("online.no", 10),
    ("outlook.com", 8),
    ("yahoo.no", 6),
    ("live.no", 6),
    ("icloud.com", 6),
    ("broadpark.no", 3),
    ("getmail.no", 3),
    ("example.com", 7),
    ("example.no", 7),
)
_MOBILE_PREFIXES = ("40", "41", "45", "46", "47", "48", *(str(p) for p in range(90, 100)))
_TRANSLITERATE = str.maketrans(
    {"æ": "ae", "ø": "o", "å": "a", "Æ": "Ae", "Ø": "O", "Å": "A", "é": "e"}
)

Outcome = str | Phone | tuple[str, str]


# --- inputs -------------------------------------------------------------------------


def _name_pools(seed: int) -> tuple[list[str], list[str]]:
    from faker import Faker

    fake = Faker("no_NO")  # Faker's Norwegian (bokmål) locale; it has no "nb_NO"
    fake.seed_instance(seed)
    firsts = sorted({fake.first_name() for _ in range(3000)})
    lasts = sorted({fake.last_name() for _ in range(3000)})
    return firsts, lasts


def _local_part(rng: random.Random, firsts: Sequence[str], lasts: Sequence[str]) -> str:
    first, last = rng.choice(firsts), rng.choice(lasts)
    style = rng.random()
    if style < 0.40:
        local = f"{first}.{last}"
    elif style < 0.55:
        local = f"{first}{last}"
    elif style < 0.65:
        local = f"{first[0]}.{last}"
    elif style < 0.75:
        local = f"{first}_{last}"
    elif style < 0.85:
        local = f"{first}.{last}{rng.randrange(1, 100)}"
    elif style < 0.92:
        local = f"{first}{rng.randrange(1950, 2010)}"
    else:
        local = f"{first}.{last}+{rng.choice(('nyhetsbrev', 'alarm', 'tilbud'))}"
    if rng.random() < 0.90:  # most people write æøå as ae/o/a in an address
        local = local.translate(_TRANSLITERATE)
    case = rng.random()
    if case < 0.70:
        return local.lower()
    if case < 0.95:
        return local
    return local.upper()


def _invalid_email(rng: random.Random, local: str, domain: str) -> str:
    return rng.choice(
        (
            f"{local}{domain}",  # no @
            f"{local}@@{domain}",
            f"{local} @{domain}",
            f"{local}@{domain.split('.')[0]}",  # no top-level domain
            f"{local}@{domain.replace('.', ',')}",
            f"{local}.@{domain}",
            f".{local}@{domain}",
            f"{local}@{domain}.",
            f"{local}@localhost",
            "",
        )
    )


def _phone(rng: random.Random) -> str:
    national = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(1_000_000):06d}"
    if rng.random() < INVALID_SHARE:
        return rng.choice(
            (
                national[:7],
                national + str(rng.randrange(10)),
                "1" + national[1:],  # no Norwegian number starts with 1
                f"{national[:3]} {national[3:5]} ABC",
                f"+47 {national[:4]}",
            )
        )
    spelling = rng.random()
    if spelling < 0.25:
        return f"+47 {national[:3]} {national[3:5]} {national[5:]}"
    if spelling < 0.45:
        return f"0047 {national}"
    if spelling < 0.65:
        return f"{national[:3]} {national[3:5]} {national[5:]}"
    if spelling < 0.90:
        return national
    return rng.choice(
        (
            f"+47{national}",
            f"{national[:2]} {national[2:4]} {national[4:6]} {national[6:]}",
            f"({national[:3]}) {national[3:]}",
            f"+47-{national}",
        )
    )


def generate(n: int, seed: int) -> tuple[list[str], list[str]]:
    """n inputs: n // 2 email addresses and the rest phone numbers."""
    rng = random.Random(seed)
    firsts, lasts = _name_pools(seed)
    names, weights = zip(*DOMAINS, strict=True)
    emails = []
    for domain in rng.choices(names, weights, k=n // 2):
        local = _local_part(rng, firsts, lasts)
        if rng.random() < INVALID_SHARE:
            emails.append(_invalid_email(rng, local, domain))
        elif rng.random() < 0.05:  # pasted from a spreadsheet
            emails.append(f" {local}@{domain.upper() if rng.random() < 0.5 else domain} ")
        else:
            emails.append(f"{local}@{domain}")
    phones = [_phone(rng) for _ in range(n - n // 2)]
    return emails, phones


# --- timing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    outcomes: list[Outcome]
    seconds: float  # wall clock
    cpu: float  # this process's CPU time: steadier when other work shares the machine

    @property
    def rate(self) -> float:
        return len(self.outcomes) / max(self.seconds, 1e-9)

    @property
    def cpu_rate(self) -> float:
        return len(self.outcomes) / max(self.cpu, 1e-9)

    def __add__(self, other: Run) -> Run:
        return Run(
            self.outcomes + other.outcomes, self.seconds + other.seconds, self.cpu + other.cpu
        )


def _run(normalise: Callable[[str], str | Phone], inputs: Sequence[str]) -> Run:
    outcomes: list[Outcome] = []
    append = outcomes.append
    started, cpu_started = time.perf_counter(), time.process_time()
    for raw in inputs:
        try:
            append(normalise(raw))
        except InvalidIdentity as exc:
            append((exc.field, exc.reason))
    return Run(outcomes, time.perf_counter() - started, time.process_time() - cpu_started)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _naive_inputs(
    emails: list[str], phones: list[str], budget: float, rng: random.Random
) -> tuple[list[int] | None, list[int] | None, str]:
    """Indices for the naive path (None: all of them) and a note for the output."""
    probe_e = _run(_normalise_email_slow, emails[:NAIVE_PROBE]).seconds / max(
        1, min(NAIVE_PROBE, len(emails))
    )
    probe_p = _run(_normalise_phone_slow, phones[:NAIVE_PROBE]).seconds / max(
        1, min(NAIVE_PROBE, len(phones))
    )
    estimate = probe_e * len(emails) + probe_p * len(phones)
    total = len(emails) + len(phones)
    if estimate <= budget or total <= NAIVE_SAMPLE:
        return None, None, f"naive path on all {total:,} inputs (estimated {estimate:.0f} s)"
    share = NAIVE_SAMPLE / total
    pick_e = sorted(rng.sample(range(len(emails)), round(len(emails) * share)))
    pick_p = sorted(rng.sample(range(len(phones)), NAIVE_SAMPLE - len(pick_e)))
    note = (
        f"NAIVE PATH ON A RANDOM SAMPLE of {NAIVE_SAMPLE:,} of the {total:,} inputs: "
        f"all of them were estimated at {estimate:.0f} s > budget {budget:.0f} s; "
        "its rate is measured on the sample and outputs are compared on the sample"
    )
    return pick_e, pick_p, note


def _mismatches(fast: list[Outcome], naive: list[Outcome], picked: list[int] | None) -> int:
    chosen = fast if picked is None else [fast[i] for i in picked]
    return sum(1 for a, b in zip(chosen, naive, strict=True) if a != b)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--n", type=int, default=1_000_000, help="inputs (half emails, half phones)"
    )
    parser.add_argument("--seed", type=int, default=47)
    parser.add_argument(
        "--naive-budget",
        type=float,
        default=120.0,
        help="seconds the naive path may take on all inputs",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    emails, phones = generate(args.n, args.seed)
    generated = time.perf_counter() - started
    rss_inputs = _peak_rss_mib()

    _email_domain.cache_clear()  # the fast path starts cold, as in a fresh worker
    fast_e = _run(normalise_email, emails)
    fast_p = _run(normalise_phone, phones)
    rss_fast = _peak_rss_mib()

    pick_e, pick_p, note = _naive_inputs(
        emails, phones, args.naive_budget, random.Random(args.seed)
    )
    naive_e = _run(_normalise_email_slow, emails if pick_e is None else [emails[i] for i in pick_e])
    naive_p = _run(_normalise_phone_slow, phones if pick_p is None else [phones[i] for i in pick_p])
    rss_naive = _peak_rss_mib()

    bad_e = _mismatches(fast_e.outcomes, naive_e.outcomes, pick_e)
    bad_p = _mismatches(fast_p.outcomes, naive_p.outcomes, pick_p)
    refused = sum(isinstance(o, tuple) for o in fast_e.outcomes + fast_p.outcomes) / max(1, args.n)

    print(
        f"normalise {args.n:,} inputs ({len(emails):,} emails, {len(phones):,} phones, {refused:.1%} refused)"
    )
    print(f"inputs generated in {generated:.1f} s; {note}")
    print()
    header = (
        "kind",
        "path",
        "items",
        "wall s",
        "cpu s",
        "identities/s",
        "speedup",
        "cpu speedup",
        "mismatches",
    )
    print("{:<6} {:<6} {:>10} {:>7} {:>7} {:>13} {:>8} {:>12} {:>11}".format(*header))
    rows = (
        ("email", naive_e, fast_e, bad_e),
        ("phone", naive_p, fast_p, bad_p),
        ("all", naive_e + naive_p, fast_e + fast_p, bad_e + bad_p),
    )
    for kind, naive, fast, bad in rows:
        # With a sampled naive path the rates are compared, not the totals.
        for path, run in (("naive", naive), ("fast", fast)):
            line = (
                f"{kind:<6} {path:<6} {len(run.outcomes):>10,} {run.seconds:>7.2f} {run.cpu:>7.2f} "
                f"{run.rate:>13,.0f}"
            )
            if path == "fast":
                speedup, cpu_speedup = fast.rate / naive.rate, fast.cpu_rate / naive.cpu_rate
                line += f" {speedup:>7.1f}x {cpu_speedup:>11.1f}x {bad:>11,}"
            print(line)
    print()
    print(
        f"peak RSS: {rss_inputs:,.0f} MiB after generating the inputs, {rss_fast:,.0f} MiB after the fast "
        f"path, {rss_naive:,.0f} MiB after the naive path (both paths' outputs kept for comparison)"
    )
    print(
        f"distinct email domains validated by the library: {_email_domain.cache_info().currsize:,}"
    )
    if bad_e + bad_p:
        print(
            f"FAIL: {bad_e + bad_p:,} outputs differ between the fast and the naive path",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
