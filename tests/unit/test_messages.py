"""GD-1: the source notice names the partner as the person knows it (campaigns.messages)."""

from __future__ import annotations

from campaigns.messages import partner_name

NAMES = {"boligpartner": "Boligpartner AS", "strom-as": "Strømselskapet AS"}


def test_gd1_a_partner_is_named_by_its_display_name_not_its_key() -> None:
    assert partner_name("partner:boligpartner", NAMES) == "Boligpartner AS"
    assert partner_name("partner:strom-as", NAMES) == "Strømselskapet AS"


def test_gd1_a_partner_no_longer_in_the_partners_file_is_still_named_by_its_key() -> None:
    assert partner_name("partner:gammelpartner", NAMES) == "gammelpartner"
    assert partner_name("partner:boligpartner", {}) == "boligpartner"
