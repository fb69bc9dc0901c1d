"""The CLI entry point: lazy command table, --version, top-level help without importing the commands."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from driftline.cli.main import COMMANDS, app, load


def test_every_table_entry_loads_to_its_command() -> None:
    for spec in COMMANDS:
        command = load(spec)
        assert command.name == spec.name
        assert bool(getattr(command, "commands", None)) == spec.group, spec


def test_top_level_help_lists_every_command_without_importing_one() -> None:
    code = (
        "import sys\nfrom driftline.cli.main import app, COMMANDS\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "loaded = [c.module for c in COMMANDS if c.module in sys.modules]\n"
        "heavy = [m for m in ('pydantic', 'pyarrow', 'botocore', 'numpy') if m in sys.modules]\n"
        "print('LOADED', loaded, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"COLUMNS": "200", "PATH": ""}
    ).stdout
    for spec in COMMANDS:
        assert spec.name in out
    assert "LOADED [] []" in out


def test_version_and_subcommand_help() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("driftline ")
    result = runner.invoke(app, ["features", "--help"])
    assert result.exit_code == 0 and "redrive" in result.output and "install-completion" not in result.output
    result = runner.invoke(app, ["models", "--help"])
    assert result.exit_code == 0 and "register" in result.output
    result = runner.invoke(app, ["nope"])
    assert result.exit_code == 2
