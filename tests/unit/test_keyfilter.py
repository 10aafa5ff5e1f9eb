"""The key filter: never "no" for a hash it holds, "no" for most it does not."""

from __future__ import annotations

import random

from campaigns.keyfilter import KeyFilter


def test_the_key_filter_holds_what_it_was_given_and_rules_out_most_of_the_rest() -> None:
    rnd = random.Random(7)
    keys = [rnd.randbytes(32) for _ in range(10_000)]
    others = [rnd.randbytes(32) for _ in range(10_000)]
    found = KeyFilter(expected_keys=10_000)
    found.add_all([*keys[:5000], None])
    for key in keys[5000:]:
        found.add(key)
    assert all(key in found for key in keys)
    assert sum(key in found for key in others) < 500  # about 3 % by design


def test_screening_answers_maybe_for_what_it_holds_and_holds_what_it_screened() -> None:
    rnd = random.Random(8)
    held, new = rnd.randbytes(32), rnd.randbytes(32)
    found = KeyFilter(expected_keys=100)
    found.add(held)
    assert found.screen([held, new, new]) == [held, new]  # new: a "maybe" the second time
    assert new in found
