"""The pages' languages: every text of the templates has a Norwegian translation, and
the language is chosen as the issue says (nb first; en from Accept-Language or ?lang)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from worker.web import i18n

pytestmark = pytest.mark.integration

WEB = Path(i18n.__file__).parent


def _template_messages() -> set[str]:
    found = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(WEB / "templates"),
            method_map=[("**.html", "jinja2")],
            options_map={"**.html": {"extensions": "jinja2.ext.i18n"}},
        )
    }
    # Texts the handlers translate in Python: web.gettext(lang, "...").
    for module in WEB.glob("*.py"):
        found.update(re.findall(r'gettext\(\w+, "([^"]+)"\)', module.read_text()))
    return {m for m in found if isinstance(m, str)}


@pytest.mark.parametrize("language", i18n.LANGUAGES)
def test_every_text_on_the_pages_is_in_the_catalog(language: str) -> None:
    path = i18n.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    messages = _template_messages()
    assert messages, "the extraction found the templates"
    in_catalog = {m.id for m in catalog if m.id}
    assert messages <= in_catalog, f"not in {language}: {sorted(messages - in_catalog)}"
    for message in catalog:
        if message.id and language == "nb":
            assert message.string, f"no Norwegian for {message.id!r}"
            assert not message.fuzzy, f"fuzzy Norwegian for {message.id!r}"


def test_the_norwegian_catalog_has_the_norwegian_letters_right() -> None:
    translations = i18n.compile_catalog("nb")
    assert translations.gettext("Stop all marketing") == "Stopp all markedsføring"
    assert translations.gettext("Try again in a moment") == "Prøv igjen om litt"
    assert translations.gettext("You are unsubscribed") == "Du er avmeldt"


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        (None, None, "nb"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "de-DE,de;q=0.9", "nb"),
        (None, "nb-NO,nb;q=0.9,en;q=0.8", "nb"),
        (None, "en;q=0.3,no;q=0.8", "nb"),
        (None, "en;q=0.9,nn;q=0.1", "en"),
        (None, "en;q=0", "nb"),
        (None, "garbage;;q=x,,", "nb"),
        ("en", "nb-NO", "en"),
        ("nb", "en-GB", "nb"),
        ("xx", "en-GB", "en"),
    ],
)
def test_the_language_is_lang_then_accept_language_then_norwegian(
    query: str | None, header: str | None, expected: str
) -> None:
    assert i18n.negotiate(query, header) == expected
