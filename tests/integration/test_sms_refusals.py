"""Replies to a marketing SMS that are not a keyword wait in the review queue, and the
campaign's report says how many of its recipients' replies still wait (SM-1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC

import httpx
import pytest

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns import report as report_mod
from campaigns.optouts import review
from suppression.keys import Hasher
from tests.browser.live_server import LiveServer, make_context
from tests.clock import working_morning
from tests.conftest import ORG_NAME, Cli
from tests.factories import add_person
from tests.integration.test_webhooks_twilio import Twilio
from worker.context import Context

pytestmark = [pytest.mark.integration, pytest.mark.travel]

TEMPLATE = (
    "{{ organisation.name }}: 20 % på alarm! {{ source_notice }} Stopp: {{ unsubscribe_url }}"
)
LAUNCH = working_morning().astimezone(UTC)


@pytest.fixture
def twilio(store_url: str, hasher: Hasher) -> Iterator[Twilio]:
    with LiveServer(make_context(store_url)) as server, httpx.Client(timeout=30) as client:
        yield Twilio(server.url, server.engine, hasher, client)


def _launched_sms_campaign(ctx: Context, people: int) -> int:
    with ctx.engine.begin() as conn:
        for n in range(people):
            add_person(conn, ctx.hasher, n)
        campaign_id = campaign_mod.create(
            conn,
            name="Vintertilbud",
            channel="sms",
            purpose="alarm",
            template_text=TEMPLATE,
            organisation_name=ORG_NAME,
            now=LAUNCH,
        ).id
        launch_mod.launch(conn, ctx.hasher, ctx.policy, campaign_id, now=LAUNCH)
    return campaign_id


def _number(n: int) -> str:
    return f"+474{n:07d}"  # the phone of tests.factories.add_person(n)


def test_the_report_counts_the_open_review_items_of_the_campaigns_recipients(
    twilio: Twilio, store_url: str, cli: Cli
) -> None:
    ctx = make_context(store_url)
    campaign_id = _launched_sms_campaign(ctx, 3)
    twilio.sms("Hva koster alarmen?", sid="SM" + "a" * 32, sender=_number(0))
    twilio.sms("Stopp takk", sid="SM" + "b" * 32, sender=_number(1))
    twilio.sms("S T O P", sid="SM" + "c" * 32, sender=_number(2))  # an opt-out, no item
    twilio.sms("Hei?", sid="SM" + "d" * 32, sender="+4799999999")  # not a recipient
    with ctx.engine.connect() as conn:
        assert review.count_open(conn) == 3
        assert report_mod.build(conn, campaign_id).review_open == 2
    result = cli("campaign", "report", str(campaign_id), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["review_open"] == 2
    text = cli("campaign", "report", str(campaign_id))  # nb by default
    assert "Til gjennomgang: 2 åpne svar" in " ".join(text.output.split())
    english = cli("campaign", "report", str(campaign_id), "--lang", "en")
    assert "Review queue: 2 open" in " ".join(english.output.split())
    ctx.engine.dispose()


def test_a_resolved_item_is_no_longer_counted(twilio: Twilio, store_url: str) -> None:
    ctx = make_context(store_url)
    campaign_id = _launched_sms_campaign(ctx, 1)
    twilio.sms("Nå holder det", sid="SM" + "e" * 32, sender=_number(0))
    with ctx.engine.begin() as conn:
        (item,) = review.items(conn)
        review.resolve(conn, ctx.hasher, item.id, review.RESOLVE_UNSUBSCRIBE, actor="t", now=LAUNCH)
    with ctx.engine.connect() as conn:
        assert report_mod.build(conn, campaign_id).review_open == 0
    ctx.engine.dispose()
