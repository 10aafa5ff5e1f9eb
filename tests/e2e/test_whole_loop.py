"""The whole loop, proven on real processes: the guarantees of PRODUCT.md under faults.

`outreach serve`, two `outreach worker` and `outreach clock` run as the Procfile runs
them, configured only by environment variables, on Redis (a redis-server of the test's
own) and PostgreSQL on loopback, with the Twilio and Mailchimp fakes and the partner's
SFTP server (tests/e2e/conftest.py). Campaigns are created and launched with the
`outreach campaign` CLI; opt-outs arrive through the real unsubscribe endpoint. The
figures of each scenario go to test-artifacts/e2e-summary.json.
"""

from __future__ import annotations

import random
import signal
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from campaigns.campaign_schema import FINAL_STATES
from suppression.schema import ledger_entries
from tests.e2e import evidence
from tests.e2e.conftest import GROUPS, used_identities
from tests.e2e.stack import Recipient, Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.travel]

SMS_TEMPLATE = (
    "{{ organisation.name }}: 20 % på alarm i vinter! {{ source_notice }} "
    "Stopp: {{ unsubscribe_url }}"
)
EMAIL_TEMPLATE = (
    "Subject: Vinterkampanje fra {{ organisation.name }}\n\n"
    "Hei {{ first_name }}!\n{{ source_notice }}\nMeld deg av: {{ unsubscribe_url }}\n"
)
RATE = 100  # messages per second: a campaign of 2,000 takes about 20 s to send
BATCH = 100
THREADS = 4  # per worker process (OUTREACH_WORKER_THREADS in the stack)
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = {"content-type": "application/x-www-form-urlencoded"}
DONE_WITHIN = 150  # seconds for a campaign to finish after a fault


@dataclass
class Answer:
    recipient: Recipient
    status: int
    at: float  # wall clock, when the answer was read: compared with the fake's `t_wall`


def one_click(client: httpx.Client, stack: Stack, r: Recipient) -> Answer:
    """RFC 8058 one-click, as a mail client or a person's tap on the SMS link would."""
    try:
        status = client.post(
            f"{stack.web_url}/u/{r.token}", headers=FORM, content=ONE_CLICK
        ).status_code
    except httpx.HTTPError:
        status = 0
    return Answer(r, status, time.time())  # wall-clock: compared with the fake's stamps


def unsubscribe_paced(stack: Stack, chosen: Sequence[Recipient], seconds: float) -> list[Answer]:
    """`chosen` unsubscribe one after another, spread evenly over `seconds`, four at a time."""
    answers: list[Answer] = []
    lock = threading.Lock()
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(4) as pool:
        started = time.monotonic()

        def post(r: Recipient) -> None:
            answer = one_click(client, stack, r)
            with lock:
                answers.append(answer)

        for n, r in enumerate(chosen):
            time.sleep(max(0.0, started + n * seconds / len(chosen) - time.monotonic()))
            pool.submit(post, r)
    return answers


def committed_tokens(stack: Stack, recipient_ids: Sequence[int]) -> set[int]:
    """Recipients whose one-click opt-out (through the token in their message) is in the
    ledger (campaigns.optouts.unsubscribe)."""
    wanted = {f"recipient:{r}:{scope}": r for r in recipient_ids for scope in ("sms", "email")}
    with stack.engine.connect() as conn:
        events = conn.execute(
            select(ledger_entries.c.source_event).where(
                ledger_entries.c.source == "web",
                ledger_entries.c.source_event.in_(list(wanted)),
            )
        ).scalars()
        return {wanted[e] for e in events}


def settle(stack: Stack, campaign_id: int) -> tuple[list[Recipient], list[dict[str, Any]]]:
    """The campaign's recipients and the fake's messages to them, once it is done; every
    recipient is in a final state (guarantee 3) and the fake saw no broken request."""
    rows = stack.recipients(campaign_id)
    states = {r.state for r in rows}
    assert states <= set(FINAL_STATES), states
    numbers = {r.phone for r in rows}
    messages = [m for m in stack.twilio_messages() if m["to"] in numbers]
    assert stack.twilio_problems() == []
    stack.assert_running()
    return rows, messages


def at_most_once(rows: Sequence[Recipient], messages: list[dict[str, Any]]) -> dict[str, int]:
    """Guarantee 2, counted by To in the fake's log; and the store agrees with the fake:
    exactly the recipients recorded `sent` got a message."""
    duplicates = evidence.duplicates_by_number(messages, rows)
    assert duplicates == {}, f"{len(duplicates)} numbers got more than one message"
    got = evidence.by_recipient(messages, rows)
    assert len(got) == len(messages), "a message the campaign's links do not account for"
    assert set(got) == {r.id for r in rows if r.state == "sent"}
    # ... and each records the provider id of the message it got.
    assert all(r.provider_id == got[r.id][0]["sid"] for r in rows if r.id in got)
    return duplicates


def launch_sms(stack: Stack, scenario: str) -> int:
    group = GROUPS[scenario]
    campaign_id = stack.create_campaign(
        f"e2e {scenario}", "sms", group.postal_prefix, SMS_TEMPLATE,
        rate_limit=RATE, batch_size=BATCH,
    )  # fmt: skip
    launched = stack.launch(campaign_id)
    assert launched["eligible"] == group.size, launched
    return campaign_id


def sent(stack: Stack, campaign_id: int) -> int:
    return stack.states(campaign_id)["sent"]


def sent_at_least(stack: Stack, campaign_id: int, more: int) -> Callable[[], bool]:
    """A condition: `more` recipients sent than now."""
    target = sent(stack, campaign_id) + more
    return lambda: sent(stack, campaign_id) >= target


def opt_outs_in_background(
    stack: Stack, rows: Sequence[Recipient], count: int, seconds: float, seed: int
) -> Callable[[], list[Answer]]:
    """`count` of `rows` unsubscribe while the test goes on; call the result to wait for
    their answers."""
    chosen = random.Random(seed).sample(list(rows), count)
    answers: list[Answer] = []
    thread = threading.Thread(
        target=lambda: answers.extend(unsubscribe_paced(stack, chosen, seconds)), daemon=True
    )
    thread.start()

    def join() -> list[Answer]:
        thread.join(120)
        assert not thread.is_alive(), "the opt-outs did not finish"
        return answers

    return join


def judge_opt_outs(
    stack: Stack,
    answers: Sequence[Answer],
    rows: Sequence[Recipient],
    messages: list[dict[str, Any]],
) -> evidence.OptOutOutcome:
    """Every opt-out was answered 200 and each 200 has its ledger entry (guarantee 3);
    then guarantee 1 counted from the fake's log (evidence.opt_out_outcome)."""
    assert sorted({a.status for a in answers}) == [200]
    token_ids = [a.recipient.id for a in answers]
    assert committed_tokens(stack, token_ids) == set(token_ids)
    return evidence.opt_out_outcome(
        {a.recipient.id: a.at for a in answers}, rows, evidence.by_recipient(messages, rows)
    )


def opt_out_figures(outcome: evidence.OptOutOutcome) -> dict[str, Any]:
    return {
        "violations": len(outcome.violations),
        "unsubscribed_during_sending": outcome.answered,
        "stopped_at_send": outcome.stopped_at_send,
        "unknown_never_sent": outcome.unknown_unsent,
        "sent_before_the_opt_out": outcome.sent_before,
        "of_which_arrived_after_the_200": outcome.arrived_after_200,
        "of_which_checked_within_50_ms_before_the_200": outcome.close_calls,
        "of_which_undecided": outcome.undecided,
    }


def test_opt_outs_through_the_link_while_an_sms_campaign_sends_stop_every_later_send(
    stack: Stack,
) -> None:
    """Guarantee 1 (ALL-2, EM-1): a few hundred recipients unsubscribe with one click while
    the campaign sends. None of them gets a message whose send-time check came after the
    200 of their unsubscribe; every 200 has its ledger entry."""
    group = GROUPS["opt-outs"]
    campaign_id = launch_sms(stack, "opt-outs")
    started = time.monotonic()
    rows = stack.recipients(campaign_id)
    stack.wait("first sends", lambda: sent(stack, campaign_id) >= 100, 60)
    answers = opt_outs_in_background(stack, rows, 300, group.size / RATE * 0.6, seed=47)()
    stack.wait_done(campaign_id, DONE_WITHIN)
    took = time.monotonic() - started

    rows, messages = settle(stack, campaign_id)
    duplicates = at_most_once(rows, messages)
    outcome = judge_opt_outs(stack, answers, rows, messages)
    # The clock arithmetic holds: each check's interval is sound (earliest <= latest).
    checks = evidence.check_times(rows, evidence.by_recipient(messages, rows))
    widths = [latest - earliest for earliest, latest in checks.values()]
    states = stack.states(campaign_id)
    evidence.record(
        "opt-outs during sending",
        {
            "recipients": group.size,
            "messages_sent": len(messages),
            "duplicates": len(duplicates),
            **opt_out_figures(outcome),
            "ms_check_time_known_within": {
                "median": round(statistics.median(widths) * 1000, 1),
                "p99": round(statistics.quantiles(widths, n=100)[98] * 1000, 1),
                "max": round(max(widths) * 1000, 1),
            },
            "seconds_to_finish": round(took, 1),
            "states": dict(states),
        },
    )
    assert len(checks) == len(messages) and min(widths) >= -0.001
    assert outcome.violations == []
    assert outcome.unexplained == []
    assert outcome.stopped_at_send > 0
    assert states == {
        "sent": group.size - outcome.stopped_at_send,
        "excluded_at_send": outcome.stopped_at_send,
    }


def test_a_worker_killed_three_times_mid_campaign_sends_nothing_twice_and_loses_nothing(
    stack: Stack,
) -> None:
    """Guarantees 2 and 3 across SIGKILLs: three times a worker is killed (its process group,
    as a lost machine) while the campaign sends and recipients unsubscribe, and a
    replacement is started. The campaign finishes; no number gets two messages; every
    recipient ends in a final state; no opt-out is overtaken."""
    group = GROUPS["worker kills"]
    campaign_id = launch_sms(stack, "worker kills")
    rows = stack.recipients(campaign_id)
    stack.wait("first sends", lambda: sent(stack, campaign_id) >= 100, 60)
    opt_outs = opt_outs_in_background(stack, rows, 100, group.size / RATE * 0.6, seed=48)
    at_kill = []
    for _ in range(3):
        victim = stack.running_workers()[0]
        before = stack.states(campaign_id)
        assert before["queued"] > 0, "the campaign had sent everything before the kill"
        stack.procs.kill(victim)
        killed_at = time.monotonic()
        at_kill.append({"sent": before["sent"], "claimed": before["sending"]})
        stack.start_workers(1)
        # A replacement worker's start (seconds of imports) and the killed one's lease
        # running out: on a loaded 2-core machine this has taken over 60 s.
        stack.wait("sending after the kill", sent_at_least(stack, campaign_id, 100), 180)
    stack.wait_done(campaign_id, DONE_WITHIN)
    after_kill = time.monotonic() - killed_at

    rows, messages = settle(stack, campaign_id)
    duplicates = at_most_once(rows, messages)
    outcome = judge_opt_outs(stack, opt_outs(), rows, messages)
    states = stack.states(campaign_id)
    evidence.record(
        "worker SIGKILLed three times",
        {
            "recipients": group.size,
            "messages_sent": len(messages),
            "duplicates": len(duplicates),
            **opt_out_figures(outcome),
            "at_each_kill": at_kill,
            "seconds_to_finish_after_the_last_kill": round(after_kill, 1),
            "states": dict(states),
        },
    )
    assert outcome.violations == []
    assert outcome.unexplained == []
    assert states["sent"] + states["unknown"] + states["excluded_at_send"] == group.size
    # A killed worker leaves `unknown` at most what it had claimed: a sub-batch per thread
    # (RATE // 20, a twentieth of a second's worth: campaigns.sending), and only those the
    # provider has no record of. The bound allows twice that.
    assert states["unknown"] <= 3 * THREADS * (RATE // 10)


def test_a_redis_restart_mid_campaign_loses_no_batch_and_sends_nothing_twice(
    stack: Stack,
) -> None:
    """Redis is killed mid-campaign and started again empty (no persistence): every
    message it held is lost. The clock re-enqueues the batches still queued, the workers
    reconnect; the campaign finishes, no number gets two messages, and no opt-out made
    meanwhile is overtaken."""
    group = GROUPS["redis restart"]
    campaign_id = launch_sms(stack, "redis restart")
    rows = stack.recipients(campaign_id)
    stack.wait("first sends", lambda: sent(stack, campaign_id) >= 300, 60)
    opt_outs = opt_outs_in_background(stack, rows, 100, 10, seed=49)
    stack.stop_redis(signal.SIGKILL)
    stopped_at = time.monotonic()
    at_stop = stack.states(campaign_id)
    assert at_stop["queued"] > 0, "the campaign had sent everything before Redis went"
    time.sleep(2)
    stack.start_redis()
    restarted_at = time.monotonic()
    stack.wait_done(campaign_id, DONE_WITHIN)
    finished = time.monotonic()

    rows, messages = settle(stack, campaign_id)
    duplicates = at_most_once(rows, messages)
    outcome = judge_opt_outs(stack, opt_outs(), rows, messages)
    states = stack.states(campaign_id)
    evidence.record(
        "redis restarted",
        {
            "recipients": group.size,
            "messages_sent": len(messages),
            "duplicates": len(duplicates),
            **opt_out_figures(outcome),
            "sent_when_redis_stopped": at_stop["sent"],
            "seconds_redis_was_down": round(restarted_at - stopped_at, 1),
            "seconds_to_finish_after_the_restart": round(finished - restarted_at, 1),
            "states": dict(states),
        },
    )
    assert outcome.violations == []
    assert outcome.unexplained == []
    # Nothing was lost with Redis: a delivery cut off in its throttle gave its claim back.
    assert states["sent"] + states["excluded_at_send"] == group.size


def test_with_the_database_cut_off_the_link_answers_503_never_200_without_a_commit(
    stack: Stack,
) -> None:
    """Guarantee 3: the web process reaches PostgreSQL through a proxy that is cut while
    recipients unsubscribe. Every answer is a 200 or a 503; every 200 has its ledger
    entry; after the proxy comes back the endpoint answers 200 again, and the 503s,
    tried again, are stored."""
    campaign_id = launch_sms(stack, "database cut")
    rows = stack.recipients(campaign_id)
    answers: list[tuple[float, Answer]] = []  # (when the request went, its answer)
    lock = threading.Lock()
    health: dict[str, int] = {}

    def count() -> int:
        with lock:
            return len(answers)

    def post(client: httpx.Client, r: Recipient) -> None:
        went = time.time()  # wall-clock: compared with Answer.at
        answer = one_click(client, stack, r)
        with lock:
            answers.append((went, answer))

    def feed(client: httpx.Client, pool: ThreadPoolExecutor) -> None:
        for r in rows:
            pool.submit(post, client, r)
            time.sleep(0.025)

    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(4) as pool:
        feeder = threading.Thread(target=feed, args=(client, pool))
        feeder.start()
        try:
            stack.wait("answers before the cut", lambda: count() >= 80, 30)
            stack.proxy.cut()
            cut_at = count()
            stack.wait("answers while cut", lambda: count() >= cut_at + 40, 30)
            health["during"] = client.get(f"{stack.web_url}/healthz").status_code
        finally:
            stack.proxy.restore()
            restored_at = time.time()  # wall-clock: compared with Answer.at
            feeder.join()
    health["after"] = httpx.get(f"{stack.web_url}/healthz", timeout=10).status_code

    statuses = {a.status for _, a in answers}
    ok = [a for _, a in answers if a.status == 200]
    refused = [a for _, a in answers if a.status == 503]
    ok_ids = [a.recipient.id for a in ok]
    stored = committed_tokens(stack, [r.id for r in rows])
    first_ok_after = min(a.at for went, a in answers if went >= restored_at and a.status == 200)
    # The 503s tried again, once the database is back.
    with httpx.Client(timeout=30) as client:
        retried = [one_click(client, stack, a.recipient) for a in refused]
    stored_after_retry = committed_tokens(stack, [r.id for r in rows])
    evidence.record(
        "database cut during unsubscribes",
        {
            "requests": len(answers),
            "answered_200": len(ok),
            "answered_503": len(refused),
            "200_without_a_ledger_entry": len(set(ok_ids) - stored),
            "503_stored_anyway": len({a.recipient.id for a in refused} & stored),
            "healthz_while_cut": health["during"],
            "healthz_after": health["after"],
            "seconds_to_first_200_after_the_proxy_came_back": round(
                first_ok_after - restored_at, 3
            ),
            "retried_503s_answered_200": sum(1 for a in retried if a.status == 200),
        },
    )
    assert statuses <= {200, 503}, statuses
    assert refused, "no request met the cut"
    assert set(ok_ids) <= stored
    assert health == {"during": 503, "after": 200}
    assert all(a.status == 200 for a in retried)
    assert stored_after_retry == {r.id for r in rows}
    stack.wait_done(campaign_id, DONE_WITHIN)


def test_no_log_of_the_run_holds_an_email_address_or_phone_number(stack: Stack) -> None:
    """Guarantee 4 (GD-4): an email campaign goes through Mailchimp (the fake) and a few of
    its recipients unsubscribe; then the output of every process of the run (web, workers,
    clock, the CLI, the fakes, redis-server) is searched for every email address and phone
    number the run used, in every spelling: none is there."""
    group = GROUPS["email"]
    campaign_id = stack.create_campaign(
        "e2e email", "email", group.postal_prefix, EMAIL_TEMPLATE, rate_limit=RATE,
        batch_size=50, extra=("--from-email", "post@trygghjem.example.no"),
    )  # fmt: skip
    assert stack.launch(campaign_id)["eligible"] == group.size
    stack.wait_done(campaign_id, 90)
    rows = stack.recipients(campaign_id)
    assert {r.state for r in rows} == {"sent"}
    sends = stack.mailchimp_state()["sends"]
    assert sum(len(s["recipients"]) for s in sends) >= group.size
    with httpx.Client(timeout=30) as client:
        assert {one_click(client, stack, r).status for r in rows[:10]} == {200}

    emails, numbers = used_identities()
    # The search finds what it looks for, in every spelling.
    planted = stack.root / "planted.txt"
    planted.write_text(
        "lead1@example.no +4741000001 +47 410 00 001 0047 41000001 410 00 001 41000001 "
        "41 00 00 01 lead1%40example.no 12345678 lead0@example.no 41000000\n"
    )
    found, _ = evidence.identities_in_logs([planted], emails, numbers)
    assert [h.kind for h in found] == ["email", "email"] + ["phone"] * 6
    files = sorted(stack.logs.glob("*.log"))
    hits, lines = evidence.identities_in_logs(files, emails, numbers)
    where = sorted({f"{h.file}:{h.line} ({h.kind})" for h in hits})
    evidence.record(
        "identities in logs",
        {
            "log_files": len(files),
            "log_lines": lines,
            "emails_searched": len(emails),
            "numbers_searched": len(numbers),
            "hits": len(hits),
        },
    )
    assert lines > 0
    assert where == []
