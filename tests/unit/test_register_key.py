"""The name+address key the register, the CRM and partner imports hash: its fast path
must give the very same key as the pattern it shortcuts, for any text."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import example, given, settings
from hypothesis import strategies as st

from suppression.register import name_address_key

_SPACES = re.compile(r"[\s.,]+")


def reference(name: str, address: str, postal_code: str) -> str:
    """The key as first written: every part through NFKC, casefold and the pattern."""

    def norm(text: str) -> str:
        return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()

    return f"{norm(name)}|{norm(address)}|{norm(postal_code).replace(' ', '')}"


# Whitespace of every kind str.isspace() knows, the punctuation the key drops, and
# characters NFKC or casefold change (ligature, full-width, sharp s, æøå).
_TRICKY = st.sampled_from(
    [" ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2007",
     "\u2009", "\u3000", "\u2028", ".", ",", " . ", "\ufb01", "\uff21", "ß", "Æ", "ø", "Å",
     "\u0301", "ǅ", "Ⅻ", "x", "9"]
)  # fmt: skip
_TEXT = st.lists(st.one_of(_TRICKY, st.text(max_size=4)), max_size=12).map("".join)


@settings(max_examples=2000)
@given(_TEXT, _TEXT, _TEXT)
@example("Kari  Nordmann", "Storgata\xa012", " 0155 ")
@example("Ola\u3000Nordmann", "Strandveien 3\u2028B", "0 1 5 5")
@example("\ufb01ne Fjære", "St. Olavs gate, 4", "01.55")
def test_the_key_is_the_reference_key_for_any_text(name: str, address: str, postal: str) -> None:
    assert name_address_key(name, address, postal) == reference(name, address, postal)


def test_spellings_of_one_person_give_one_key() -> None:
    key = name_address_key("Kari Nordmann", "Storgata 12", "0155")
    assert name_address_key(" KARI\u00a0NORDMANN ", "Storgata  12", "01 55") == key
    assert name_address_key("Kari Nordmann", "Storgata 13", "0155") != key
