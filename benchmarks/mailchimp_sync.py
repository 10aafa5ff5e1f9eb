"""Mailchimp audience sync: members per second into the fake, at most 8 connections.

    python -m benchmarks.mailchimp_sync [--members 20000] [--connections 8] [--naive 1000]

The sync is the one the Mailchimp channel stages a campaign with
(`campaigns.channels.mailchimp.Audience.upsert`: batches of 500 on `POST /lists/{id}`,
a second pass without status for members who exist, on a bounded pool behind the
connection gate), through the real `mailchimp-marketing` SDK to
`python -m tests.fakes.mailchimp` in a process of its own (every body checked against
Mailchimp's schema; an 11th simultaneous request answered 429). Two rounds: every
member new, then every member existing (the campaign after). The fake reports the most
requests it served at once, and any 429 or spec violation.

Baseline in the same run: one `PUT /lists/{id}/members/{hash}` (upsert with
status_if_new) per member, sequentially, on a sample.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NOTICE = (
    "Vi fikk kontaktinformasjonen din fra Partner A. Du kan når som helst reservere deg "
    "mot markedsføring fra Trygg Hjem Alarm AS via lenken i denne meldingen."
)


@contextmanager
def fake_mailchimp() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.mailchimp", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(10)


def state(base_url: str) -> Any:
    with urllib.request.urlopen(f"{base_url}/_fake/state", timeout=120) as answer:
        return json.loads(answer.read())


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--naive", type=int, default=1_000, help="members of the baseline")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from campaigns.channels.mailchimp import Audience, MailchimpApi, Member
    from tests.fakes.mailchimp import DEFAULT_API_KEY, DEFAULT_LIST_ID, subscriber_hash

    members = [
        Member(
            f"kunde{n}@example.com",
            {
                "FNAME": f"Kari{n}",
                "LNAME": "Nordmann",
                "UNSUBURL": f"https://outreach.example.no/u/AQ{n:018d}",
                "SRCNOTICE": NOTICE,
            },
        )
        for n in range(args.members)
    ]
    print(
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.members:,} members; "
        f"at most {args.connections} connections (Mailchimp allows 10)"
    )
    with fake_mailchimp() as (base_url, fake):
        api = MailchimpApi(
            DEFAULT_API_KEY, "us1", base_url=base_url, timeout=60, max_connections=args.connections
        )
        audience = Audience(api, DEFAULT_LIST_ID)
        audience.ensure_merge_fields()
        for label in ("new members", "existing members"):
            cpu_fake, cpu_own = process_cpu(fake.pid), own_cpu()
            started = time.perf_counter()
            result = audience.upsert(members)
            seconds = time.perf_counter() - started
            cpu_fake, cpu_own = process_cpu(fake.pid) - cpu_fake, own_cpu() - cpu_own
            per_k = 1000 / args.members
            print(
                f"\nsync, {label}: {args.members / seconds:,.0f} members/s ({seconds:.2f} s); "
                f"subscribed {len(result.subscribed):,}, errors {len(result.errors)}"
            )
            print(
                f"  CPU s per 1,000 members: fake {cpu_fake * per_k:.3f}, "
                f"this process (SDK, JSON) {cpu_own * per_k:.3f}"
            )
        seen = state(base_url)
        audience_size = len(seen["lists"][DEFAULT_LIST_ID]["members"])
        posts = sum(1 for r in seen["requests"] if r["method"] == "POST")
        print(
            f"\nfake: {audience_size:,} members in the audience, {posts} batch calls, most "
            f"requests at once {seen['max_concurrency']}, 429s {seen['too_many_requests']}, "
            f"spec violations {len(seen['spec_violations'])}, contract violations "
            f"{len(seen['violations'])}"
        )
    with fake_mailchimp() as (base_url, _):
        api = MailchimpApi(DEFAULT_API_KEY, "us1", base_url=base_url, timeout=60)
        lists = api.client.lists
        sample = members[: args.naive]
        started = time.perf_counter()
        for m in sample:
            lists.set_list_member(
                DEFAULT_LIST_ID,
                subscriber_hash(m.email),
                {
                    "email_address": m.email,
                    "status_if_new": "subscribed",
                    "merge_fields": {"FNAME": m.merge_fields["FNAME"]},
                },
            )
        rate = len(sample) / (time.perf_counter() - started)
    print(f"\nnaive baseline: one PUT per member, sequentially: {rate:,.0f} members/s")


if __name__ == "__main__":
    main()
