"""The `outreach` command line. Every command has --help; reporting commands have --json."""

from __future__ import annotations

import click

from suppression.errors import ConfigurationError, OutreachError
from worker import logs, settings
from worker.commands import (
    calllist,
    campaign,
    customers,
    db_cmd,
    explain,
    keys,
    leads,
    partners,
    processes,
    register,
    review,
    serve,
    suppress,
)
from worker.context import close_loaded
from worker.output import fail


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            fail(f"setting {exc.setting}: {exc.reason}")
        except OutreachError as exc:
            fail(str(exc))
        finally:
            close_loaded()
        return None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """outreach: marketing suppression and outreach. Never contact someone who said no."""
    logs.configure(settings.log_level())


main.add_command(db_cmd.db)
main.add_command(suppress.suppress)
main.add_command(register.register)
main.add_command(explain.forget)
main.add_command(explain.explain)
main.add_command(campaign.campaign)
main.add_command(calllist.calllist)
main.add_command(processes.worker)
main.add_command(processes.clock)
main.add_command(serve.serve)
main.add_command(review.review_group)
main.add_command(keys.keys)

main.add_command(customers.customers)
main.add_command(leads.leads)
main.add_command(partners.partners)

if __name__ == "__main__":
    main()
