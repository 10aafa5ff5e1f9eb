"""SMS length: GSM-7 / UCS-2 segment counting (SM-3).

æ, ø, å, Æ, Ø, Å are in the GSM-7 basic set; characters of the extension table
(e.g. € [ ] { } ~ ^ | \\) take two septets. Anything else forces UCS-2.
"""

from __future__ import annotations

from campaigns.templates import MessageTemplate, TemplateRefused, source_notice

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("\f^{}\\[~]|€")
# A worst-case unsubscribe link: public URL + /u/ + a 24-character token.
LINK_PLACEHOLDER = "https://example.invalid/u/" + "x" * 24


def septets(text: str) -> int | None:
    """GSM-7 length in septets, or None when the text needs UCS-2."""
    total = 0
    for ch in text:
        if ch in GSM7_BASIC:
            total += 1
        elif ch in GSM7_EXTENSION:
            total += 2
        else:
            return None
    return total


def segments(text: str) -> int:
    """How many SMS segments the text takes (concatenated SMS: 153 septets / 67 UCS-2 units)."""
    length = septets(text)
    if length is not None:
        return 1 if length <= 160 else -(-length // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def check_segments(template: MessageTemplate, limit: int | None, organisation_name: str) -> int:
    """Render with worst-case values and refuse a template over the campaign's segment limit."""
    body = template.render(
        {
            "unsubscribe_url": LINK_PLACEHOLDER,
            "organisation": {"name": organisation_name},
            "source_notice": source_notice("X" * 30, organisation_name),
            "name": "Xxxxxxxxxx",
            "first_name": "Xxxxxxxxxx",
        }
    )[1]
    count = segments(body)
    if limit is not None and count > limit:
        raise TemplateRefused(
            f"SM-3: the message takes {count} SMS segments, the campaign allows {limit}"
        )
    return count
