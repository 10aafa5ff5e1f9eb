"""campaigns.templates renders a message exactly as Jinja's own `Template.render` does (the
send path renders one per recipient, so it reads the template's globals once instead of
on every call): same text, same globals, same sandbox, same errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import UndefinedError
from jinja2.sandbox import SecurityError

from campaigns.templates import MessageTemplate, _env

TEMPLATES = [
    "Subject: Nytt fra {{ organisation.name }}\n\nHei {{ first_name }}!\n"
    "{{ source_notice }}\nAvmeld: {{ unsubscribe_url }}\n",
    "{% for n in range(3) %}{{ n }}{% endfor %} {{ name | upper }} {{ unsubscribe_url }}",
    "{% set ns = namespace(total=0) %}{% for c in name %}{% set ns.total = ns.total + 1 %}"
    "{% endfor %}{{ ns.total }} {{ dict(a=1)['a'] }} {{ unsubscribe_url }}",
    "{{ first_name if first_name else 'kunde' }}, {{ organisation['number'] }} "
    "{{ unsubscribe_url | replace('/', '|') }}",
]

values = st.fixed_dictionaries(
    {
        "unsubscribe_url": st.text(max_size=40),
        "organisation": st.fixed_dictionaries({"name": st.text(max_size=20), "number": st.text()}),
        # Not empty: an empty notice is taken out with the space or blank line around it
        # (campaigns.templates; tests/integration/test_rendering.py), which Jinja keeps.
        "source_notice": st.text(min_size=1, max_size=60),
        "first_name": st.text(max_size=20),
        "name": st.text(max_size=30),
    }
)


def _jinja(text: str, vals: dict[str, Any]) -> tuple[str, str]:
    parsed = MessageTemplate.parse(text)
    return (
        _env.from_string(parsed.subject).render(vals),
        _env.from_string(parsed.body).render(vals),
    )


@pytest.mark.parametrize("text", TEMPLATES)
@given(vals=values)
def test_a_message_renders_as_jinja_renders_it(text: str, vals: dict[str, Any]) -> None:
    assert MessageTemplate.parse(text).render(vals) == _jinja(text, vals)


def test_a_value_that_is_not_given_fails_as_in_jinja() -> None:
    template = MessageTemplate.parse("Hei {{ first_name }} {{ unsubscribe_url }}")
    with pytest.raises(UndefinedError, match="first_name"):
        template.render({"unsubscribe_url": "u"})


def test_the_sandbox_still_refuses_unsafe_attributes() -> None:
    template = MessageTemplate.parse("{{ unsubscribe_url.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        template.render({"unsubscribe_url": "u"})


def test_one_recipients_values_do_not_leak_into_the_next_message() -> None:
    template = MessageTemplate.parse(
        "{% if first_name %}{% set greeting = 'Hei ' ~ first_name %}{% endif %}"
        "{{ greeting | default('Hei') }} {{ unsubscribe_url }}"
    )
    assert template.render({"first_name": "Kari", "unsubscribe_url": "a"})[1] == "Hei Kari a"
    assert template.render({"first_name": "", "unsubscribe_url": "b"})[1] == "Hei b"
