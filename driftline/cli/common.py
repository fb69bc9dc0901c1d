"""Shared CLI plumbing: turn user mistakes into one clear line and a non-zero exit, never a trace."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def print_json(text: str) -> None:
    """JSON output of ``--json``: highlighted on a terminal, plain text anywhere else.

    Scripts parse it, and Rich colours a pipe too when ``FORCE_COLOR`` is set (Jupyter kernels,
    CI runners set it), which would break ``json.loads`` of the output.
    """
    if sys.stdout.isatty():
        console.print_json(text)
    else:
        sys.stdout.write(text + "\n")


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def run_cli(app: typer.Typer) -> None:
    from driftline.config import ConfigError
    from driftline.features.schema import FeatureSetError

    try:
        app(standalone_mode=True)
    except (UserError, ConfigError, FeatureSetError) as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)


def load_platform(config_path: Path = Path("cdk.json"), env: str | None = None) -> Any:
    """Config + platform definition, with errors as one line."""
    from driftline import config
    from driftline.platform import build_platform

    try:
        cfg = config.load(config_path, env)
    except config.ConfigError as e:
        fail(str(e))
    return build_platform(cfg)
