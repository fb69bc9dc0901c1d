"""`driftline models register MODEL --artifact PATH`: bring a model file in as a candidate.

The same path as ``driftline.register_model`` in a notebook: conversion to the serving signature,
parity on the feature set's validation rows (from the feature store, or ``--data``), metrics,
drift profile, lineage, and registration as a candidate (or rejected, with the reason). Who
registers comes from STS, never from an option.
"""

from __future__ import annotations

from pathlib import Path

import typer

from driftline.cli.common import console, fail


def register(models: typer.Typer) -> None:
    @models.command("register")
    def register_(
        model: str = typer.Argument(..., help="Model name (as in cdk.json)."),
        artifact: Path = typer.Option(
            ...,
            "--artifact",
            "-a",
            help="Model file: .skops (scikit-learn), .onnx, .txt (LightGBM) or .json/.ubj (XGBoost).",
        ),
        data: Path = typer.Option(
            None,
            "--data",
            "-d",
            help="Labelled Parquet/CSV table to evaluate on (default: the feature store's training set).",
        ),
        code: Path = typer.Option(
            None, "--code", help="The notebook or script that fitted the model (path and SHA-256 go into the lineage)."
        ),
        config: Path = typer.Option(Path("cdk.json"), "--config", help="Path to cdk.json."),
        env: str = typer.Option(None, "--env", help="Environment in cdk.json (default: driftline:env)."),
    ) -> None:
        """Register a model file as a candidate: it then goes through gate, approval and canary."""
        from botocore.exceptions import BotoCoreError, ClientError

        from driftline.notebook import ModelRejectedError, NotebookError, register_model

        table = None
        if data is not None:
            from driftline.cli.common import load_platform
            from driftline.cli.train import load_feature_set, read_training_file

            platform = load_platform(config, env)
            try:
                fs = load_feature_set(platform, config, platform.config.model(model).feature_set)
            except ValueError as e:
                fail(str(e))
            table = read_training_file(data, fs)
        try:
            result = register_model(artifact, model=model, config=config, env=env, data=table, code_path=code)
        except ModelRejectedError as e:
            console.print(f"[bold red]rejected[/] {e.model} v{e.version}: {e.reason}", highlight=False)
            raise typer.Exit(1) from None
        except NotebookError as e:
            fail(str(e))
        except (BotoCoreError, ClientError) as e:
            fail(f"AWS call failed: {e}", 1)
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()))
        console.print(
            f"[bold cyan]candidate[/] {result.model} v{result.version} registered ({metrics}); next: "
            f"driftline models approve --model {result.model} --version {result.version} --reason …",
            highlight=False,
        )
