"""What the end-to-end tests count, from the fakes' logs, the store and the processes' logs.

A message is the fake Twilio's record of a message it accepted: the number it went to,
its body (which carries the recipient's own unsubscribe link, so the link's token names
the recipient), its sid, and the wall-clock times its request arrived (`t_wall`) and its
answer was ready (`t_answered`). Times compared across processes are wall-clock times
of this machine: when the fake received or answered a message, when this process got an
answer from the web. A worker's own times (`checked_at`, `sent_at`) are on its demo
clock; only their differences are used.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.e2e.stack import REPO, Recipient

SUMMARY = REPO / "test-artifacts" / "e2e-summary.json"
_TOKEN_IN_BODY = re.compile(r"/u/([A-Za-z0-9_-]{4,64})")


def by_recipient(
    messages: Iterable[Mapping[str, Any]], recipients: Sequence[Recipient]
) -> dict[int, list[Mapping[str, Any]]]:
    """The fake's messages of these recipients, by recipient id (through the link's token)."""
    of_token = {r.token: r.id for r in recipients if r.token}
    found: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for m in messages:
        match = _TOKEN_IN_BODY.search(str(m.get("body", "")))
        if match and match.group(1) in of_token:
            found[of_token[match.group(1)]].append(m)
    return dict(found)


def duplicates_by_number(
    messages: Iterable[Mapping[str, Any]], recipients: Sequence[Recipient]
) -> dict[str, int]:
    """Numbers of these recipients that the fake sent more than one message to (count by To)."""
    numbers = {r.phone for r in recipients if r.phone}
    counts = Counter(str(m["to"]) for m in messages if m["to"] in numbers)
    return {to: n for to, n in counts.items() if n > 1}


def check_times(
    recipients: Sequence[Recipient], messages: Mapping[int, Sequence[Mapping[str, Any]]]
) -> dict[int, tuple[float, float]]:
    """When each sent recipient's send-time check happened, on this machine's wall clock:
    (earliest, latest).

    A worker records on its demo clock, some `offset` seconds off the wall clock, the same
    for everything one process records. One delivery checks a sub-batch in one query
    (`checked_at`), sends it, then records the outcomes at one time (`sent_at`). So the
    check came before the fake received the sub-batch's first message (offset >=
    checked_at - that arrival), and the outcomes were recorded after the fake answered its
    last one (offset <= sent_at - that answer). The sub-batches of a batch are sent by one
    delivery, one process: together their bounds pin its offset down to milliseconds. A
    batch worked by two processes (a lease taken over) may give bounds that disagree; its
    sub-batches then keep their own."""
    groups: dict[tuple[datetime, datetime], list[Recipient]] = defaultdict(list)
    for r in recipients:
        if r.state == "sent" and r.checked_at is not None and r.sent_at is not None:
            groups[(r.checked_at, r.sent_at)].append(r)
    bounds: dict[tuple[datetime, datetime], tuple[float, float]] = {}
    by_batch: dict[int | None, list[tuple[datetime, datetime]]] = defaultdict(list)
    for (checked, sent), members in groups.items():
        got = [m for r in members for m in messages.get(r.id, ())]
        if not got:
            continue
        low = checked.timestamp() - min(float(m["t_wall"]) for m in got)
        high = sent.timestamp() - max(float(m["t_answered"]) for m in got)
        bounds[(checked, sent)] = (low, high)
        by_batch[members[0].batch_no].append((checked, sent))
    found: dict[int, tuple[float, float]] = {}
    for keys in by_batch.values():
        low = max(bounds[k][0] for k in keys)
        high = min(bounds[k][1] for k in keys)
        for k in keys:
            offset = (low, high) if low <= high else bounds[k]
            at = k[0].timestamp()
            for r in groups[k]:
                found[r.id] = (at - offset[1], at - offset[0])
    return found


@dataclass
class OptOutOutcome:
    """How each recipient who unsubscribed during the campaign fared."""

    answered: int  # 200s
    stopped_at_send: int  # excluded_at_send: the send-time check saw the opt-out
    unknown_unsent: int  # `unknown` after a crash, and the provider has no message
    sent_before: int  # a message checked before the 200
    arrived_after_200: int  # of those, the message reached the fake after the 200
    close_calls: int  # of those, checked less than 50 ms before the 200
    undecided: int  # of those, the 200 falls inside the interval of the check's time
    violations: list[int]  # a message whose send-time check came after the 200
    unexplained: list[int]  # none of the above (should not happen)


def opt_out_outcome(
    answered_at: Mapping[int, float],
    recipients: Sequence[Recipient],
    messages: Mapping[int, Sequence[Mapping[str, Any]]],
) -> OptOutOutcome:
    """Guarantee 1 counted from the fake's log: a violation is a recipient who got a message
    whose send-time check came after the 200 of their unsubscribe (its earliest possible
    time, check_times). A message with no check time to go by (none recorded) counts as a
    violation if it arrived after the 200."""
    rows = {r.id: r for r in recipients}
    checks = check_times(recipients, messages)
    stopped = sent = late_arrival = close_calls = undecided = unknown = 0
    violations: list[int] = []
    unexplained: list[int] = []
    for rid, t200 in answered_at.items():
        got = messages.get(rid, ())
        if not got:
            if rows[rid].state == "excluded_at_send":
                stopped += 1
            elif rows[rid].state == "unknown":
                unknown += 1
            else:
                unexplained.append(rid)
            continue
        sent += 1
        arrived = min(float(m["t_wall"]) for m in got)
        late_arrival += arrived > t200
        checked = checks.get(rid)
        if checked is None:
            # No check time recorded (an `unknown` found sent): judged by its arrival.
            if arrived > t200:
                violations.append(rid)
            continue
        earliest, latest = checked
        close_calls += 0 <= t200 - latest < 0.05
        undecided += earliest <= t200 < latest
        if earliest > t200:
            violations.append(rid)
    return OptOutOutcome(
        answered=len(answered_at),
        stopped_at_send=stopped,
        unknown_unsent=unknown,
        sent_before=sent,
        arrived_after_200=late_arrival,
        close_calls=close_calls,
        undecided=undecided,
        violations=violations,
        unexplained=unexplained,
    )


# -- identities in logs ---------------------------------------------------------------------

# A Norwegian mobile number as people write it: 41234567, 412 34 567, 41 23 45 67, with or
# without +47 / 0047 / 47 in front (with or without a space after it).
_PHONE = re.compile(
    r"(?<!\d)(?:(?:\+|00)?47 ?)?(?:(\d{3}) ?(\d{2}) ?(\d{3})|(\d{2}) (\d{2}) (\d{2}) (\d{2}))(?!\d)"
)
_EMAIL = re.compile(r"[\w.+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)


@dataclass
class LogHit:
    file: str
    line: int
    kind: str  # email | phone


def identities_in_logs(
    files: Iterable[Path], emails: Iterable[str], national_numbers: Iterable[str]
) -> tuple[list[LogHit], int]:
    """Every line of `files` that holds one of the emails or phone numbers (in any of the
    spellings above); and how many lines were read. A hit names the file and line only."""
    wanted_emails = {e.lower() for e in emails}
    wanted_numbers = set(national_numbers)
    hits: list[LogHit] = []
    lines = 0
    for path in files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            lines += 1
            for m in _EMAIL.finditer(line):
                if m.group(0).lower().replace("%40", "@") in wanted_emails:
                    hits.append(LogHit(path.name, number, "email"))
            for m in _PHONE.finditer(line):
                if "".join(g for g in m.groups() if g) in wanted_numbers:
                    hits.append(LogHit(path.name, number, "phone"))
    return hits, lines


# -- the summary ------------------------------------------------------------------------------


def start_summary(info: Mapping[str, Any]) -> None:
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)  # wall-clock: when the run really happened, for its reader
    SUMMARY.write_text(
        json.dumps(
            {"run": {"started": started.isoformat(timespec="seconds"), **info}, "scenarios": {}},
            indent=2,
        )
    )


def record(scenario: str, figures: Mapping[str, Any]) -> None:
    """Keep a scenario's figures in test-artifacts/e2e-summary.json and print them."""
    summary = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {"scenarios": {}}
    summary["scenarios"][scenario] = dict(figures)
    SUMMARY.write_text(json.dumps(summary, indent=2))
    print(f"\n{scenario}: {json.dumps(dict(figures))}")
