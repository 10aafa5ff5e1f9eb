"""Languages of the pages: Norwegian Bokmål first, English on request.

The catalogs live as .po files beside the templates and are compiled in memory when
the app starts (no `pybabel compile` step to forget). The language is `?lang=` when
given, else the best of Accept-Language, else Norwegian.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).parent
LOCALE_DIR: Final = HERE / "locale"
TEMPLATE_DIR: Final = HERE / "templates"
DEFAULT: Final = "nb"
LANGUAGES: Final = ("nb", "en")
# Accept-Language tags we read as one of ours: Norwegian in any form is Bokmål here.
_ALIASES: Final = {"nb": "nb", "no": "nb", "nn": "nb", "en": "en"}


def compile_catalog(language: str) -> Translations:
    """The language's .po catalog, compiled to .mo in memory."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def environment(language: str, translations: Translations | None = None) -> Environment:
    """The Jinja environment of one language, its translations installed (autoescaped:
    the pages and the campaign report show names people typed)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "xml"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    catalog = translations if translations is not None else compile_catalog(language)
    env.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
    return env


def environments() -> dict[str, Environment]:
    """One Jinja environment per language, each with its translations installed."""
    return {language: environment(language) for language in LANGUAGES}


def negotiate(query_lang: str | None, accept_language: str | None) -> str:
    """`?lang=` first, then Accept-Language by its q-values, then Norwegian."""
    if query_lang:
        chosen = _ALIASES.get(query_lang.strip().lower()[:2])
        if chosen:
            return chosen
    if not accept_language:
        return DEFAULT
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = _ALIASES.get(tag.strip().lower().split("-")[0])
        if language and quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else DEFAULT
