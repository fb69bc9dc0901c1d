"""``driftline`` — one entry point, command groups per concern.

Every command module is imported only when its command runs (or its own ``--help`` is asked for):
``driftline --help`` lists the commands from the table below without importing any of them, so it
does not pay for pydantic, pyarrow or boto3. ``tests/unit/test_cli_main.py`` checks the table
against the modules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import typer
from typer.core import TyperGroup

from driftline.cli.common import run_cli

__all__ = ["COMMANDS", "app", "main"]


@dataclass(frozen=True)
class LazyCommand:
    """A command (or group) whose module is imported only when it is used."""

    name: str
    module: str
    help: str
    group: bool = True
    """True: the module defines ``app`` (a group); False: it defines ``register(app)`` adding one command."""


COMMANDS: tuple[LazyCommand, ...] = (
    LazyCommand(
        "train",
        "driftline.cli.train",
        "Train a model: locally from a file, or from the feature store and register it.",
        group=False,
    ),
    LazyCommand(
        "demo",
        "driftline.cli.demo",
        "Run the whole story: drift is detected, a model retrains, canaries and goes live by itself.",
        group=False,
    ),
    LazyCommand(
        "retrain",
        "driftline.cli.retrain",
        "Request a retraining run (one run per model at a time; the decision and reason are recorded).",
        group=False,
    ),
    LazyCommand("local", "driftline.cli.local", "Run the whole platform on this machine (moto, no Docker, no AWS)."),
    LazyCommand("features", "driftline.cli.features", "Validate, upload, inspect and redrive feature data."),
    LazyCommand(
        "models", "driftline.cli.models", "Model registry: list, show, register, approve, reject, promote, rollback."
    ),
    LazyCommand("drift", "driftline.cli.drift", "Drift checks, reports and history."),
)
_BY_NAME = {c.name: c for c in COMMANDS}


def load(spec: LazyCommand) -> Any:
    """The click command of ``spec`` (imports its module)."""
    module = importlib.import_module(spec.module)
    if spec.group:
        if spec.name == "models":
            importlib.import_module("driftline.cli.register").register(module.app)
        command = typer.main.get_command(module.app)
    else:
        holder = typer.Typer()
        module.register(holder)
        command = typer.main.get_command(holder)  # one command and no callback: the command itself
    command.name = spec.name
    if spec.group:
        command.help = spec.help
    return command


class _LazyGroup(TyperGroup):
    """Lists :data:`COMMANDS` from the table; imports a command's module only to run it."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [c.name for c in COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        spec = _BY_NAME.get(cmd_name)
        if spec is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # the top-level help only needs names and help texts
            return typer.core.TyperCommand(spec.name, help=spec.help, short_help=spec.help)
        if cmd_name not in self.commands:
            self.add_command(load(spec), cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"driftline {version('driftline')}")
        except PackageNotFoundError:
            typer.echo("driftline (not installed: running from a source tree)")
        raise typer.Exit(0)


app = typer.Typer(
    name="driftline",
    cls=_LazyGroup,
    help="Driftline: serverless MLOps on AWS — features, serving, drift monitoring and retraining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Driftline: serverless MLOps on AWS — features, serving, drift monitoring and retraining."""


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()
