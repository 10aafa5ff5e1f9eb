"""Message templates: Jinja2, sandboxed, checked when a campaign is created.

A template must carry the unsubscribe link (ES-4, SM-3), the sender's identity
(ALL-7) and, when the campaign can reach partner leads, the source notice (GD-1).
Email templates may start with a `Subject:` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment

from suppression.errors import OutreachError

UNSUBSCRIBE = "unsubscribe_url"
ORGANISATION = "organisation"
SOURCE_NOTICE = "source_notice"

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class TemplateRefused(OutreachError):
    """The template breaks a rule; the message names the rule id."""


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    subject: str
    body: str

    @classmethod
    def parse(cls, text: str) -> MessageTemplate:
        first, _, rest = text.partition("\n")
        if first.lower().startswith("subject:"):
            return cls(first.split(":", 1)[1].strip(), rest.lstrip("\n"))
        return cls("", text)

    def render(self, values: dict[str, Any]) -> tuple[str, str]:
        """Subject and body. An empty source notice (GD-1: not a partner lead) leaves no
        trace: neither the blank paragraph of a notice on a line of its own nor the
        double space of one inside a sentence."""
        if values.get(SOURCE_NOTICE) != "":
            return _compiled(self.subject).render(values), _compiled(self.body).render(values)
        marked = {**values, SOURCE_NOTICE: _NO_NOTICE}
        return (
            _without_notice(_compiled(self.subject).render(marked)),
            _without_notice(_compiled(self.body).render(marked)),
        )


# Stands for an empty source notice while rendering, so that the text around it can be
# tidied afterwards; no template text contains a NUL.
_NO_NOTICE = "\x00no-source-notice\x00"


def _without_notice(text: str) -> str:
    """The rendered text with each empty notice taken out: a line holding only the notice
    goes, with one of the blank lines around it; inside a line, one space stays."""
    if _NO_NOTICE not in text:
        return text
    lines = text.split("\n")
    kept: list[str] = []
    skip_blank = False
    for line in lines:
        if line.strip() == _NO_NOTICE:
            # A paragraph of its own: drop it, and the blank line after it when one is
            # before it too (else two paragraphs would be two blank lines apart) or it
            # opens the text.
            skip_blank = not kept or not kept[-1].strip()
            continue
        if skip_blank and not line.strip():
            skip_blank = False
            continue
        skip_blank = False
        kept.append(_inline_without_notice(line))
    return "\n".join(kept)


def _inline_without_notice(line: str) -> str:
    while _NO_NOTICE in line:
        before, _, after = line.partition(_NO_NOTICE)
        if before.endswith(" ") and (after.startswith(" ") or not after):
            before = before.rstrip(" ") + (" " if after else "")
            after = after.lstrip(" ")
        elif not before.strip():
            after = after.lstrip(" ")
        line = before + after
    return line


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A compiled template and its globals, rendered as `Template.render` renders it, but
    for the globals: `render` merges them (a ChainMap of the environment's) into a new
    dict on every call, which costs more than rendering a short message does; here they
    are read once per template. The send path renders a message per recipient."""

    template: Template
    globals: dict[str, Any]

    def render(self, values: dict[str, Any]) -> str:
        template = self.template
        context = template.new_context({**self.globals, **values}, shared=True)
        try:
            return str(template.environment.concat(template.root_render_func(context)))
        except Exception:
            template.environment.handle_exception()  # raises, with the template's lines


@lru_cache(maxsize=256)
def _compiled(source: str) -> _Compiled:
    # Compiling takes about a millisecond; a campaign renders one template per recipient.
    template = _env.from_string(source)
    return _Compiled(template, dict(template.globals))


def variables(text: str) -> set[str]:
    try:
        return set(meta.find_undeclared_variables(_env.parse(text)))
    except TemplateSyntaxError as exc:
        raise TemplateRefused(f"template line {exc.lineno}: {exc.message}") from None


def check(text: str, *, organisation_name: str, reaches_partner_leads: bool) -> MessageTemplate:
    """Refuse a template that would send a message the law does not allow."""
    template = MessageTemplate.parse(text)
    used = variables(template.body) | variables(template.subject)
    if UNSUBSCRIBE not in variables(template.body):
        raise TemplateRefused(
            "ES-4: the template has no {{ unsubscribe_url }} placeholder in its body"
        )
    if ORGANISATION not in used and organisation_name.casefold() not in text.casefold():
        raise TemplateRefused(
            "ALL-7: the template does not say who the message is from "
            "(use {{ organisation.name }} or write the company's name)"
        )
    if reaches_partner_leads and SOURCE_NOTICE not in variables(template.body):
        raise TemplateRefused(
            "GD-1: a campaign that can reach partner leads needs {{ source_notice }} in its body"
        )
    return template


def source_notice(partner: str | None, organisation_name: str) -> str:
    """GD-1: where we got the person's data, and how to object (Norwegian first)."""
    if not partner:
        return ""
    return (
        f"Vi fikk kontaktinformasjonen din fra {partner}. "
        f"Du kan når som helst reservere deg mot markedsføring fra {organisation_name} "
        "via lenken i denne meldingen."
    )


def example_values(
    public_url: str,
    organisation_name: str,
    organisation_number: str,
    partner: str | None,
    first_name: str,
    last_name: str,
    token: str,
) -> dict[str, Any]:
    """A template's values for a made-up recipient (`campaign show`, the report's example
    message): `partner` names the partner of a made-up lead (GD-1), None for a customer;
    `token` is a placeholder, not anyone's link."""
    return {
        "unsubscribe_url": f"{public_url.rstrip('/')}/u/{token}",
        "organisation": {"name": organisation_name, "number": organisation_number},
        "source_notice": source_notice(partner, organisation_name),
        "first_name": first_name,
        "name": f"{first_name} {last_name}",
    }
