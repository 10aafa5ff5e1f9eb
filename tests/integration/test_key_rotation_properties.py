"""Issue 17's property: whatever happened before and after it, a key rotation (and a
`keys rekey` after it, sometimes) changes no decision. Two stores run the same random
history (partner files, opt-outs of every scope by email or phone, SMS STOPs, erasures,
register snapshots, launches and sends); one of them rotates its key at a random step.
After every step each person's decisions, as `explain` makes them (`people.facts` and
`policy.decide`) and as a launch and a send make them, are the same in both."""

from __future__ import annotations

import itertools
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns import people
from campaigns.calllist import register_problem
from suppression.identity import Identity, email_identity, phone_identity
from suppression.policy import decide
from suppression.register import load_snapshot
from tests.clock import TestClock, working_morning
from tests.conftest import ORG_NAME
from tests.integration.test_key_rotation import (
    KEYS_REKEY,
    POLICY,
    TEMPLATES,
    World,
    email,
    national,
    phone,
)
from worker import db

# Dated (launches, sends, TP-2, ES-5); slow: it travels in `make test-travel`, and once in CI.
pytestmark = [pytest.mark.integration, pytest.mark.travel, pytest.mark.slow]

POOL = range(1, 7)
SCOPES = ("email", "sms", "phone", "all")
CAMPAIGN_CHANNELS = ("email", "sms", "call")
DRAFT_CHANNELS = ("email", "sms")
STEP = timedelta(minutes=1)  # the machine's clock, a minute a step


def identity(n: int, kind: str) -> Identity:
    return email_identity(email(n)) if kind == "email" else phone_identity(phone(n))


class Twins(RuleBasedStateMachine):
    """`plain` never rotates; `rotated` rotates once: before the step `begin` drew (or at
    the rule `rotate`, whichever comes first), and is sometimes rekeyed after."""

    template: Path
    folder: Path
    counter = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.clock = TestClock(working_morning())
        self.worlds: list[World] = []
        for rotates in (False, True):
            path = self.folder / f"store-{next(self.counter)}.db"
            shutil.copy(self.template, path)
            url = f"sqlite:///{path}"
            world = World(
                url,
                db.engine_for(url),
                path.with_suffix(""),
                rotates=rotates,
                clock=self.clock,
                step=timedelta(0),  # the machine moves the clock, not the worlds
            )
            self.worlds.append(world)
        self.plain, self.rotated = self.worlds
        self.has_rotated = False
        self.steps = 0
        self.rotate_at: int | None = None
        self.rekey_at: int | None = None
        self.files = 0
        self.launched: list[dict[str, dict[str, int]]] = []
        # A draft per channel in each store, to preview: not a call campaign, which
        # `campaign create` refuses without a fresh register snapshot (TP-2, preflight).
        self.drafts = [
            {channel: self._draft(world, channel) for channel in DRAFT_CHANNELS}
            for world in self.worlds
        ]

    def teardown(self) -> None:
        for world in self.worlds:
            world.engine.dispose()

    def _draft(self, world: World, channel: str) -> int:
        with world.engine.begin() as conn:
            return campaign_mod.create(
                conn, name=f"{channel} utkast", channel=channel, purpose="alarm",
                template_text=TEMPLATES[channel], organisation_name=ORG_NAME,
                sender=campaign_mod.Sender(from_name=ORG_NAME, caller_id="22334455"),
                now=self.clock(),
            ).id  # fmt: skip

    def _step(self) -> datetime:
        """The next step's instant; the rotation (and rekey) drawn for this step first."""
        self.steps += 1
        if self.steps == self.rotate_at and not self.has_rotated:
            note(f"the rotation, before step {self.steps}")
            self.rotate()
        if self.steps == self.rekey_at and self.has_rotated:
            note(f"keys rekey, before step {self.steps}")
            self.rekey()
        return self.clock.advance(STEP)

    # -- what happens ------------------------------------------------------------------

    @initialize(
        who=st.lists(st.sampled_from(POOL), min_size=2, max_size=len(POOL), unique=True),
        rotate_at=st.integers(1, 6),
        rekey_after=st.none() | st.integers(1, 4),
    )
    def begin(self, who: list[int], rotate_at: int, rekey_after: int | None) -> None:
        """A first partner file; when the rotation comes, and whether a rekey follows."""
        self.rotate_at = rotate_at
        self.rekey_at = None if rekey_after is None else rotate_at + rekey_after
        self.clock.advance(STEP)
        self._import(who)

    @rule(who=st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True))
    def import_partner_file(self, who: list[int]) -> None:
        self._step()
        self._import(who)

    def _import(self, who: list[int]) -> None:
        self.files += 1
        for world in self.worlds:
            world.import_people(who, tag=f"file{self.files}")

    @rule(
        n=st.sampled_from(POOL),
        kind=st.sampled_from(["email", "phone"]),
        scope=st.sampled_from(SCOPES),
        reason=st.sampled_from(["unsubscribe", "objection"]),
    )
    def opt_out(self, n: int, kind: str, scope: str, reason: str) -> None:
        """A no given by email or phone, recorded in the ledger by `outreach suppress add`."""
        self._step()
        spelt = email(n) if kind == "email" else national(n)
        for world in self.worlds:
            world.ok(
                "suppress", "add", f"--{kind}", spelt, "--reason", reason, "--channel", scope,
                "--source", "manual",
            )  # fmt: skip

    @rule(n=st.sampled_from(POOL))
    def sms_stop(self, n: int) -> None:
        self._step()
        for world in self.worlds:
            world.sms_stop(n)  # campaigns.optouts.record.receive of Twilio's inbound SMS

    @rule(n=st.sampled_from(POOL), kind=st.sampled_from(["email", "phone"]))
    def forget(self, n: int, kind: str) -> None:
        now = self._step()
        for world in self.worlds:
            with world.engine.begin() as conn:
                people.forget(conn, world.hasher, identity(n, kind), now=now, actor="test")

    @rule(listed=st.sets(st.sampled_from(POOL)))
    def load_register(self, listed: set[int]) -> None:
        now = self._step()
        self.files += 1
        for world in self.worlds:
            path = world.folder / f"register-{self.files}.csv"
            lines = ["telefon;reservasjon", "+4799999999;begge"]
            path.write_text(
                "\n".join([*lines, *(f"{phone(n)};telefon" for n in sorted(listed))]) + "\n",
                encoding="utf-8",
            )
            with world.engine.begin() as conn:
                load_snapshot(conn, world.hasher, path, self.clock.today(), now=now)

    @precondition(lambda self: not self.has_rotated)
    @rule()
    def rotate(self) -> None:
        self.clock.advance(STEP)
        for world in self.worlds:
            world.rotate()  # the plain one ignores it
        self.has_rotated = True

    @precondition(lambda self: self.has_rotated)
    @rule()
    def rekey(self) -> None:
        self.clock.advance(STEP)
        self.rotated.ok(*KEYS_REKEY)

    def _launchable(self) -> tuple[str, ...]:
        """The channels a launch now takes: a call campaign only on a fresh register
        snapshot (TP-2: launch refuses it otherwise, in both stores alike)."""
        now = self.clock()
        fresh = set()
        for world in self.worlds:
            with world.engine.connect() as conn:
                fresh.add(register_problem(conn, POLICY, now) is None)
        assert len(fresh) == 1  # the rotation changes no snapshot's freshness
        return CAMPAIGN_CHANNELS if fresh.pop() else DRAFT_CHANNELS

    @rule()
    def launch(self) -> None:
        self._step()
        channels = self._launchable()
        launched = [world.launch_all(channels) for world in self.worlds]
        self.launched.append(launched[0])  # (ids are the same in both stores)
        plain, rotated = (w.decisions(c) for w, c in zip(self.worlds, launched, strict=True))
        assert rotated == plain

    @precondition(lambda self: bool(self.launched))
    @rule()
    def send(self) -> None:
        self._step()
        campaigns = {c: self.launched[-1][c] for c in ("email", "sms")}
        for world in self.worlds:
            for campaign_id in campaigns.values():
                world.send(campaign_id)
        plain, rotated = (w.send_outcomes(campaigns) for w in self.worlds)
        assert rotated == plain

    # -- what must hold after every step -----------------------------------------------

    @invariant()
    def explain_decides_the_same(self) -> None:
        plain, rotated = (self._explained(world) for world in self.worlds)
        assert rotated == plain

    @invariant()
    def preview_counts_the_same(self) -> None:
        plain, rotated = (
            self._previewed(world, drafts)
            for world, drafts in zip(self.worlds, self.drafts, strict=True)
        )
        assert rotated == plain

    def _explained(self, world: World) -> dict[tuple[int, str, str], tuple[str, str, str]]:
        """Per person, identity kind and channel: what `outreach explain` decides."""
        found = {}
        now = self.clock()
        with world.engine.connect() as conn:
            for n in POOL:
                for kind in ("email", "phone"):
                    person = people.find(conn, world.hasher, identity(n, kind))
                    for channel in CAMPAIGN_CHANNELS:
                        facts, register = people.facts(conn, world.hasher, person, channel)
                        d = decide(channel, "alarm", facts, register, POLICY, now)
                        found[(n, kind, channel)] = (d.decision, d.rule, d.basis)
        return found

    def _previewed(self, world: World, drafts: dict[str, int]) -> dict[str, list[Any]]:
        found = {}
        with world.engine.connect() as conn:
            for channel, campaign_id in drafts.items():
                summary = launch_mod.preview(
                    conn, world.hasher, POLICY, campaign_id, now=self.clock()
                )
                found[channel] = sorted(summary.by_decision.items())
        return found


def test_a_rotation_at_any_step_changes_no_decision(sqlite_template: Path, tmp_path: Path) -> None:
    Twins.template, Twins.folder = sqlite_template, tmp_path
    run_state_machine_as_test(
        Twins,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            # One failure shrunk at a time: each example is two stores and many steps.
            report_multiple_bugs=False,
        ),
    )
