"""The ``bocli`` command group.

Commands live in ``bocli/commands/`` and are imported only when invoked, so ``bocli --help`` loads
neither torch nor botorch. Every command is thin: parse, call one library function, print. A user's
mistake (any ``bocli.errors.UserError``) prints one line and exits with code 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import click

# command name -> "module:attribute"; a command whose module is absent is simply not listed
COMMANDS: dict[str, str] = {
    "run": "bocli.commands.run:run",
    "init": "bocli.commands.study:init",
    "ask": "bocli.commands.study:ask",
    "tell": "bocli.commands.study:tell",
    "status": "bocli.commands.study:status",
    "best": "bocli.commands.study:best",
    "export": "bocli.commands.study:export",
    "compare": "bocli.commands.compare:compare",
    "report": "bocli.commands.compare:report",
    "plot": "bocli.commands.plot:plot",
    "problems": "bocli.commands.registries:problems",
    "surrogates": "bocli.commands.registries:surrogates",
    "acquisitions": "bocli.commands.registries:acquisitions",
    "pfn": "bocli.commands.pfn:pfn",
}

SHORT_HELP: dict[str, str] = {
    "run": "Optimize a registered problem or your own objective, with live progress.",
    "init": "Create a study file from a space file or a registered problem.",
    "ask": "Suggest the next points to evaluate (CSV, JSON or a table).",
    "tell": "Record results from a filled-in CSV (or one --value).",
    "status": "Show a study's trials and best value.",
    "best": "Print the best trial of a study.",
    "export": "Write every trial of a study to CSV.",
    "compare": "Run a grid of problems x surrogates x acquisitions x seeds.",
    "report": "Turn comparison results, or one study, into an HTML (or Markdown) report.",
    "plot": "Draw a study's progress as a PNG or SVG picture.",
    "problems": "List the registered problems.",
    "surrogates": "List the surrogate models.",
    "acquisitions": "List acquisitions and which surrogates support each.",
    "pfn": "Train and inspect the PFN surrogate's transformer.",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, t in COMMANDS.items() if _module_exists(t.split(":")[0])]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target.split(":")[0]):
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, SHORT_HELP.get(n, "")) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        from bocli import errors

        errors.set_log_dir(None)  # a new invocation (CliRunner reuses the process)
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:  # `bocli --bogus`: one line too
            if isinstance(e, _NO_ARGS_IS_HELP):
                raise
            _usage_line(e)
            raise click.exceptions.Exit(2) from None

    def invoke(self, ctx: click.Context) -> Any:
        from bocli.errors import UserError, log_internal_error, one_line

        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"Error: {one_line(str(e))}", err=True)
            ctx.exit(2)
        except click.UsageError as e:  # a subcommand's bad option or value: one line, exit 2
            if isinstance(e, _NO_ARGS_IS_HELP):
                raise
            _usage_line(e)
            ctx.exit(2)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:  # commands that save work say how to continue themselves
            click.echo("\ninterrupted", err=True)
            ctx.exit(130)
        except Exception as e:  # a bug, not a user's mistake: one line, the traceback in a log
            if ctx.params.get("debug") or os.environ.get("BOCLI_DEBUG", "") not in ("", "0"):
                raise
            log = log_internal_error(e)
            where = f"details in {log}" if log else "no log could be written; rerun with --debug"
            click.echo(
                f"internal error: {type(e).__name__}: {one_line(str(e))} ({where})", err=True
            )
            ctx.exit(1)


# `bocli` / `bocli pfn` alone print their help (click >= 8.2 signals it as a usage error)
_NO_ARGS_IS_HELP: tuple[type[BaseException], ...] = tuple(
    c for c in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if c is not None
)


def _usage_line(e: click.UsageError) -> None:
    """A click usage error (unknown option, bad value) as one line with a pointer to --help."""
    from bocli.errors import one_line

    where = e.ctx.command_path if e.ctx is not None else "bocli"
    hint = f" (see '{where} --help')" if e.ctx is not None else ""
    click.echo(f"Error: {one_line(e.format_message())}{hint}", err=True)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bocli")
@click.option(
    "--debug",
    is_flag=True,
    help="Show the full traceback of an internal error (also: BOCLI_DEBUG=1).",
)
def cli(debug: bool) -> None:
    """bocli: Bayesian optimization from the terminal.

    \b
    Examples:
      bocli run branin --surrogate gp --acquisition ei --budget 30
      bocli init study.db --space space.yaml && bocli ask study.db -n 4 -o batch.csv
      bocli compare --preset quick --out cmp && bocli report cmp -o report.html
    """


def main() -> None:
    """Console entry point."""
    cli(prog_name="bocli")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
