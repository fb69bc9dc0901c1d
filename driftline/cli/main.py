"""``driftline`` — one entry point, command groups per concern.

Each group lives in its own module and is imported lazily by the group callback-free
registration below, so ``driftline --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

from driftline.cli.common import run_cli

app = typer.Typer(
    name="driftline",
    help="Driftline: serverless MLOps on AWS — features, serving, drift monitoring and retraining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, group name, help). Modules define ``app = typer.Typer(...)``.
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("driftline.cli.local", "local", "Run the whole platform on this machine (moto, no Docker, no AWS)."),
    ("driftline.cli.features", "features", "Validate, upload and inspect feature data."),
    ("driftline.cli.models", "models", "Model registry: list, show, approve, reject, promote, rollback."),
    ("driftline.cli.drift", "drift", "Drift checks, reports and history."),
)

for module_name, group, help_text in GROUPS:
    module = importlib.import_module(module_name)
    app.add_typer(module.app, name=group, help=help_text)
    if group == "models":
        importlib.import_module("driftline.cli.register").register(module.app)

for module_name in ("driftline.cli.train", "driftline.cli.demo", "driftline.cli.retrain"):
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:  # a command module not written yet
        if e.name != module_name:
            raise
        continue
    module.register(app)


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()
