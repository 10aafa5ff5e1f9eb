"""A delivery whose throttle fails (its Redis is down) hands nothing to the channel: the
recipients it had claimed go back to `queued` and a later delivery sends them, once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns.campaign_schema import recipients
from campaigns.channels.outbox import OutboxChannel
from campaigns.claiming import LEASE
from campaigns.sending import Sender
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from tests.clock import working_morning
from tests.conftest import ORG_NAME
from tests.factories import add_person

pytestmark = [pytest.mark.integration, pytest.mark.travel]

TEMPLATE = (
    "Subject: Nytt fra {{ organisation.name }}\n\n"
    "Hei {{ first_name }}!\n{{ source_notice }}\nAvmeld: {{ unsubscribe_url }}\n"
)
# The launch and the send: a working-day morning, inside every window.
LAUNCH = working_morning().astimezone(UTC)


class RedisDown(ConnectionError):
    pass


def _states(engine: Engine, campaign_id: int) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(recipients.c.state, func.count())
            .where(recipients.c.campaign_id == campaign_id)
            .group_by(recipients.c.state)
        )
        return Counter({str(state): int(n) for state, n in rows})


def test_recipients_claimed_when_the_throttle_fails_go_back_to_queued_and_are_sent_once_later(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path
) -> None:
    """Guarantee 2 keeps `unknown` for sends that may have reached the provider; these
    never did, so they are not left `unknown` (never sent) but sent by the next delivery."""
    with engine.begin() as conn:
        for n in range(5):
            add_person(conn, hasher, n)
    with engine.begin() as conn:
        campaign_id = campaign_mod.create(
            conn, name="Vinter", channel="email", purpose="alarm", template_text=TEMPLATE,
            organisation_name=ORG_NAME, batch_size=5, rate_limit=30, now=LAUNCH,
        ).id  # fmt: skip
        launch_mod.launch(conn, hasher, policy_config, campaign_id, now=LAUNCH)
    outbox = OutboxChannel(tmp_path, "email")

    def redis_down(_campaign: campaign_mod.Campaign, _count: int) -> None:
        raise RedisDown("the throttle's store does not answer")

    failing = Sender(
        engine, hasher, policy_config, lambda _c: outbox, "https://outreach.example.no",
        now=lambda: LAUNCH, throttle=redis_down,
    )  # fmt: skip
    with pytest.raises(RedisDown):
        failing.send_batch(campaign_id, 0)
    assert _states(engine, campaign_id) == Counter({"queued": 5})
    assert outbox.messages(campaign_id) == []

    later = Sender(
        engine, hasher, policy_config, lambda _c: outbox, "https://outreach.example.no",
        now=lambda: LAUNCH + 2 * LEASE,
    )  # fmt: skip
    later.send_batch(campaign_id, 0)
    assert _states(engine, campaign_id) == Counter({"sent": 5})
    assert len(outbox.messages(campaign_id)) == 5
