"""`driftline train`: run training here, with a progress display, and register the result.

Data comes from a local file (``--data``: Parquet, CSV, CSV.gz) or from the feature store of the
selected environment (the point-in-time training set, built from the features bucket wherever
``AWS_ENDPOINT_URL`` points: AWS or the local platform). The result is registered like a workflow
run would register it; ``--out DIR`` instead writes the artifacts to a directory and touches no AWS.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from driftline.cli.common import console, fail, load_platform


def read_training_file(path: Path, fs: Any) -> Any:
    """A local Parquet/CSV file as an Arrow table, with the feature store's reader for CSV."""
    if not path.exists():
        fail(f"{path}: file not found")
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path)
        except Exception as e:
            fail(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})")
    from driftline.features.readers import UnreadableFileError, read_path

    try:
        return read_path(path, fs).table
    except UnreadableFileError as e:
        fail(f"{e.message}; {e.hint}")
    return None


def load_feature_set(platform: Any, config: Path, name: str) -> Any:
    from driftline.features.schema import FeatureSetCatalog

    directory = Path(platform.config.feature_sets_dir)
    if not directory.is_absolute():
        directory = config.resolve().parent / directory
    return FeatureSetCatalog(directory).get(name)


def training_set_from_store(
    fs: Any, bucket: str, model: str, run_id: str, cfg: Any = None, captures_bucket: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """The point-in-time training set from the features bucket, plus the model's feedback rows when its
    ``training.feedback`` is on (as the train step builds it), and its lineage."""
    from driftline.training.sources import from_feature_store, training_table

    if cfg is None:
        return from_feature_store(fs, bucket, model=model, run_id=run_id)
    return training_table(
        fs,
        bucket,
        model=model,
        run_id=run_id,
        feedback=cfg.training.feedback,
        labelers=cfg.labelers,
        captures_bucket=captures_bucket,
    )


class _Steps:
    """Turns training progress messages into a spinner plus one finished line per step."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=None)
        self.last: tuple[str, float] | None = None

    def __call__(self, message: str) -> None:
        now = time.perf_counter()
        if self.last is not None:
            text, started = self.last
            self.progress.console.print(f"  [green]✓[/] {text} [dim]({now - started:.1f} s)[/]", highlight=False)
        self.last = (message, now)
        self.progress.update(self.task, description=message)

    def done(self) -> None:
        self("")
        self.last = None


def _metrics_table(metrics: dict[str, float], champion: dict[str, float] | None, champion_version: Any) -> Table:
    table = Table(title="validation metrics (newest rows, held out by time)")
    table.add_column("metric")
    table.add_column("candidate", justify="right")
    if champion:
        table.add_column(f"champion v{champion_version}", justify="right")
    for k, v in sorted(metrics.items()):
        row = [k, f"{v:.4f}"]
        if champion:
            other = champion.get(k)
            row.append(f"{other:.4f}" if isinstance(other, int | float) else "")
        table.add_row(*row)
    return table


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        feature_set: str = typer.Option(..., "--feature-set", "-f", help="Feature set (as in feature_sets_dir)."),
        model: str = typer.Option(..., "--model", "-m", help="Model to train (as named in cdk.json)."),
        data: Path = typer.Option(
            None,
            "--data",
            "-d",
            help="Local Parquet/CSV training table (default: the point-in-time training set from the features bucket).",
        ),
        out: Path = typer.Option(
            None, "--out", help="Write the artifacts here instead of registering them (no AWS needed; requires --data)."
        ),
        algorithm: str = typer.Option(None, "--algorithm", help="Override the configured algorithm."),
        validation_fraction: float = typer.Option(
            None, "--validation-fraction", help="Share of the newest rows held out (default 0.2)."
        ),
        seed: int = typer.Option(0, "--seed", help="Random seed (same data + seed = same model)."),
        trigger: str = typer.Option("manual", "--trigger", help="Recorded in the lineage."),
        config: Path = typer.Option(Path("cdk.json"), "--config", help="Path to cdk.json."),
        env: str = typer.Option(None, "--env", help="Environment in cdk.json (default: driftline:env)."),
    ) -> None:
        """Train a model now and register it as a candidate (or rejected, with the reason)."""
        from driftline.config import ConfigError

        platform = load_platform(config, env)
        try:
            cfg = platform.config.model(model)
        except ConfigError as e:
            fail(str(e))
        if cfg.feature_set != feature_set:
            fail(
                f"model {model!r} is trained on feature set {cfg.feature_set!r}, not {feature_set!r} "
                f"(see cdk.json); pass --feature-set {cfg.feature_set}"
            )
        fs = load_feature_set(platform, config, feature_set)
        if out is not None and data is None:
            fail("--out writes a local model and needs local data: pass --data PATH")
        run_id = f"cli-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            steps = _Steps(progress)
            if data is not None:
                steps(f"reading {data}")
                table = read_training_file(data, fs)
                from driftline.training.lineage import file_sha256

                lineage: dict[str, Any] = {
                    "uri": data.resolve().as_uri(),
                    "sha256": file_sha256(data),
                    "rows": table.num_rows,
                    "object_versions": {},
                }
            if out is not None:
                outcome = _train_local(
                    table, fs, cfg, out, algorithm, seed, validation_fraction, steps, _trainers_dir(platform, config)
                )
                steps.done()
                _report_local(outcome, out)
                return
            from driftline.cli.models import principal, resource_names
            from driftline.registry.store import Registry

            names = resource_names(platform)
            if data is None:
                steps(f"building the point-in-time training set from s3://{names['FEATURES_BUCKET']}")
                table, lineage = _call(
                    lambda: training_set_from_store(
                        fs, names["FEATURES_BUCKET"], model, run_id, cfg, names.get("CAPTURES_BUCKET")
                    )
                )
            from driftline.training.publish import train_and_register

            outcome = _call(
                lambda: train_and_register(
                    table,
                    fs,
                    cfg,
                    registry=Registry(names["REGISTRY_TABLE"], names["AUDIT_BUCKET"]),
                    artifacts_bucket=names["ARTIFACTS_BUCKET"],
                    trigger=trigger,
                    training_set=lineage,
                    created_by=principal(None) if _has_identity() else "driftline-cli",
                    execution_id=run_id,
                    algorithm=algorithm,
                    seed=seed,
                    validation_fraction=validation_fraction,
                    progress=steps,
                    trainers_dir=_trainers_dir(platform, config),
                )
            )
            steps.done()
        _report(outcome)


def _has_identity() -> bool:
    from driftline.cli.resources import NoCallerIdentityError, caller_identity

    try:
        caller_identity()
        return True
    except NoCallerIdentityError:
        return False


def _call(action: Any) -> Any:
    """AWS and feature-store errors as one line (exit 1), never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return action()
    except (BotoCoreError, ClientError) as e:
        fail(f"AWS call failed: {e}", 1)
    except (LookupError, ValueError) as e:
        fail(str(e), 2)
    return None


def _trainers_dir(platform: Any, config: Path) -> str:
    """``trainers_dir`` of cdk.json, relative to cdk.json (as the local platform resolves it)."""
    return str((config.resolve().parent / platform.config.trainers_dir).resolve())


def _train_local(
    table: Any,
    fs: Any,
    cfg: Any,
    out: Path,
    algorithm: str | None,
    seed: int,
    fraction: float | None,
    steps: _Steps,
    trainers_dir: str,
) -> Any:
    from driftline.training.core import train_model
    from driftline.training.errors import TrainingRejectedError

    try:
        trained = train_model(
            table,
            fs,
            cfg,
            algorithm=algorithm,
            seed=seed,
            validation_fraction=fraction,
            progress=steps,
            trainers_dir=trainers_dir,
        )
    except TrainingRejectedError as e:
        steps.done()
        fail(f"training rejected: {e.reason}", 1)
    steps("writing artifacts")
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(trained.onnx)
    (out / "model.skops").write_bytes(trained.skops)
    (out / "profile.json").write_text(trained.profile_json(fs, cfg.name, None, cfg.drift.profile_sample_size))
    (out / "metrics.json").write_text(
        json.dumps(
            {"metrics": trained.metrics, "split": trained.split, "parity": trained.parity, "params": trained.params},
            indent=1,
            sort_keys=True,
        )
    )
    return trained


def _report_local(trained: Any, out: Path) -> None:
    console.print(_metrics_table(trained.metrics, None, None))
    console.print(
        f"[green]trained[/] {trained.algorithm}: parity max |Δ| {trained.parity['max_abs_diff']:.2g}; "
        f"artifacts in {out}/ (model.onnx, model.skops, profile.json, metrics.json)",
        highlight=False,
    )


def _report(outcome: Any) -> None:
    if outcome.status == "rejected":
        console.print(f"[bold red]rejected[/] {outcome.model} v{outcome.version}: {outcome.reason}", highlight=False)
        raise typer.Exit(1)
    console.print(_metrics_table(outcome.metrics, outcome.champion_metrics, outcome.champion_version))
    if outcome.champion_error:
        console.print(f"[yellow]warning:[/] {outcome.champion_error}", highlight=False)
    console.print(
        f"[bold cyan]candidate[/] {outcome.model} v{outcome.version} registered; next: "
        f"driftline models approve --model {outcome.model} --version {outcome.version} --reason …",
        highlight=False,
    )
