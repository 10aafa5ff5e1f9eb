"""Command groups of the `outreach` CLI, one module per group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from suppression.errors import InvalidIdentity
from suppression.identity import Identity, email_identity, phone_identity
from worker.output import fail

F = TypeVar("F", bound=Callable[..., Any])


def identity_options(func: F) -> F:
    """--email / --phone, exactly one of them."""
    func = click.option("--phone", help="A phone number, any common spelling (default region NO).")(
        func
    )
    func = click.option("--email", help="An email address.")(func)
    return func


def identity_from(email: str | None, phone: str | None) -> Identity:
    if bool(email) == bool(phone):
        fail("give exactly one of --email or --phone")
    try:
        return email_identity(email) if email else phone_identity(phone or "")
    except InvalidIdentity as exc:
        fail(f"--{exc.field}: {exc.reason}")
        raise


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for tools.")
