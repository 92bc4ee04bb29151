"""`distillery <stage> ...`: one entry point for every stage in distillery.commands.

Stage modules are found with pkgutil and imported only when their stage runs: several pull in
torch, transformers or Great Expectations at import time, so `distillery --help` reads each
command's docstring from its source (ast) instead of importing it.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import importlib.util
import pkgutil
from functools import cache

import click

from distillery import commands

PROG = "distillery"


@cache
def stages() -> tuple[str, ...]:
    """Public modules of distillery.commands, each defining a click command `main`."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(commands.__path__)
                        if not m.name.startswith("_") and not m.ispkg))


def docstring(stage: str) -> str:
    """The docstring of the stage's `main` (its click help), read without importing the module."""
    spec = importlib.util.find_spec(f"{commands.__name__}.{stage}")
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"), None)
    return (ast.get_docstring(fn) if fn else None) or ast.get_docstring(tree) or ""


class StageGroup(click.Group):
    """Lists the stage modules and imports one only when it is run (or asked for its --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(stages())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in stages():
            return None
        return importlib.import_module(f"{commands.__name__}.{name}").main

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = click.utils.make_str(args[0])
        if name not in stages() and not name.startswith("-"):
            close = difflib.get_close_matches(name, stages(), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"stages: {', '.join(stages())}"
            click.echo(f"error: unknown stage '{name}'; {hint}", err=True)
            ctx.exit(2)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the same one-line summary click would derive from each imported command's help
        limit = formatter.width - 6 - max(map(len, stages()))
        rows = [(s, click.Command(s, help=docstring(s)).get_short_help_str(limit)) for s in stages()]
        with formatter.section("Stages"):
            formatter.write_dl(rows)


@click.group(cls=StageGroup, name=PROG)
@click.version_option(package_name="distillery", prog_name=PROG)
def cli() -> None:
    """Run one stage of the distillery pipeline (what `dvc repro` runs, or on any record file).

    `distillery STAGE --help` shows a stage's options; `python scripts/STAGE.py` is the same command.
    """


def main(args: list[str] | None = None) -> None:
    """Console-script entry point; the fixed prog name keeps Usage lines equal to the scripts' ones."""
    cli.main(args=args, prog_name=PROG)


if __name__ == "__main__":
    main()
