"""The training image's entry point when a SageMaker training job runs it (``compute: sagemaker``).

The job runs the ``train`` Lambda's image with ``ContainerEntrypoint`` ``python3 -m
driftline.training.sagemaker_entry``: the same code, feature sets and user trainers as the Lambda,
so a model trains the same way wherever it runs. SageMaker's conventions are read as documented
(paths overridable through the ``SM_*`` variables, and ``DRIFTLINE_ML_ROOT`` for the whole
``/opt/ml`` tree, which is how the local platform runs it):

- ``<root>/input/data/train/*.parquet``: the point-in-time training set (channel ``train``);
- ``<root>/input/data/job/job.json``: the model's configuration and its feature set's name and
  fingerprint (channel ``job``; written by driftline.retraining.sagemaker when it starts the job);
- ``<root>/input/config/hyperparameters.json``: the run's overrides, strings as SageMaker passes
  them (``algorithm``, ``params`` as JSON, ``seed``, ``validation_fraction``);
- ``<root>/model``: what SageMaker tars into ``model.tar.gz`` (driftline.training.model_dir);
- ``<root>/output/failure``: why the job failed, which SageMaker reports as ``FailureReason``.

Exit status 0 for a trained or rejected run (both are registered), 1 for a failure.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from driftline.config import ModelConfig
from driftline.features.schema import FeatureSetCatalog
from driftline.training.core import train_model, validation_fraction_of
from driftline.training.errors import TrainingRejectedError
from driftline.training.lineage import code_version, library_versions
from driftline.training.model_dir import write_model_dir, write_rejected

__all__ = [
    "FAILURE_LIMIT",
    "JOB_CHANNEL",
    "JOB_FILE",
    "TRAIN_CHANNEL",
    "EntryError",
    "Paths",
    "main",
    "parse_hyperparameters",
    "run",
    "write_failure",
]

TRAIN_CHANNEL = "train"
JOB_CHANNEL = "job"
JOB_FILE = "job.json"
FAILURE_LIMIT = 1024
"""SageMaker keeps the first 1,024 characters of the failure file as ``FailureReason``."""


class EntryError(ValueError):
    """The job's inputs are not what the workflow writes (missing channel, bad hyperparameter)."""


class Paths:
    """Where SageMaker puts things, with each path overridable by its ``SM_*`` variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        root = Path(env.get("DRIFTLINE_ML_ROOT", "/opt/ml"))
        self.train = Path(env.get("SM_CHANNEL_TRAIN", root / "input" / "data" / TRAIN_CHANNEL))
        self.job = Path(env.get("SM_CHANNEL_JOB", root / "input" / "data" / JOB_CHANNEL))
        self.hyperparameters = Path(env.get("SM_HPS_FILE", root / "input" / "config" / "hyperparameters.json"))
        self.model = Path(env.get("SM_MODEL_DIR", root / "model"))
        self.failure = Path(env.get("SM_FAILURE_FILE", root / "output" / "failure"))


def parse_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The run's overrides from SageMaker's all-string hyperparameters (unknown names refused)."""
    known = {"algorithm", "params", "seed", "validation_fraction"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise EntryError(f"unknown hyperparameter(s) {unknown}; known: {sorted(known)}")
    out: dict[str, Any] = {"algorithm": None, "params": None, "seed": 0, "validation_fraction": None}
    try:
        if raw.get("algorithm"):
            out["algorithm"] = str(raw["algorithm"])
        if raw.get("params"):
            params = json.loads(str(raw["params"]))
            if not isinstance(params, dict):
                raise EntryError("hyperparameter 'params' must be a JSON object")
            out["params"] = params
        if raw.get("seed") not in (None, ""):
            out["seed"] = int(str(raw["seed"]))
        if raw.get("validation_fraction") not in (None, ""):
            out["validation_fraction"] = float(str(raw["validation_fraction"]))
    except EntryError:
        raise
    except ValueError as e:
        raise EntryError(f"a hyperparameter cannot be read: {e}") from None
    return out


def _read_table(directory: Path) -> pa.Table:
    files = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    if not files:
        raise EntryError(f"channel {TRAIN_CHANNEL!r} has no Parquet file in {directory}")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def _job(directory: Path) -> tuple[ModelConfig, str, str]:
    path = directory / JOB_FILE
    try:
        doc = json.loads(path.read_text())
        cfg = ModelConfig.model_validate(doc["model_config"])
        return cfg, str(doc["feature_set"]), str(doc["feature_set_fingerprint"])
    except FileNotFoundError:
        raise EntryError(f"channel {JOB_CHANNEL!r} has no {JOB_FILE} ({path})") from None
    except (ValueError, KeyError, TypeError) as e:
        raise EntryError(f"{path} is not a driftline job description: {str(e)[:300]}") from None


def run(env: Mapping[str, str]) -> str:
    """Train once into the model directory; returns ``trained`` or ``rejected``. Raises on failure."""
    paths = Paths(env)
    cfg, fs_name, fingerprint = _job(paths.job)
    catalog = FeatureSetCatalog(env.get("FEATURE_SETS_DIR", "feature_sets"))
    fs = catalog.get(fs_name)
    if fs.fingerprint != fingerprint:
        raise EntryError(
            f"feature set {fs_name!r} in this image has fingerprint {fs.fingerprint}, the job was started for "
            f"{fingerprint}: the training image is older or newer than the workflow; redeploy both"
        )
    try:
        raw = json.loads(paths.hyperparameters.read_text()) if paths.hyperparameters.exists() else {}
    except ValueError as e:
        raise EntryError(f"{paths.hyperparameters} is not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise EntryError(f"{paths.hyperparameters} must hold a JSON object")
    hp = parse_hyperparameters(raw)
    table = _read_table(paths.train)
    extra = {"code_version": code_version(), "libraries": library_versions(), "rows_read": table.num_rows}
    try:
        fraction = validation_fraction_of(cfg, hp["validation_fraction"], hp["params"])
        trained = train_model(
            table,
            fs,
            cfg,
            algorithm=hp["algorithm"],
            params=hp["params"],
            seed=hp["seed"],
            validation_fraction=fraction,
            trainers_dir=env.get("TRAINERS_DIR"),
        )
    except TrainingRejectedError as e:
        write_rejected(e.reason, paths.model, extra)
        return "rejected"
    write_model_dir(trained, paths.model, extra)
    return "trained"


def write_failure(paths: Paths, error: BaseException) -> str:
    """Write SageMaker's failure file: the error's class and message (no traceback: it is shown to people)."""
    reason = f"{type(error).__name__}: {error}"[:FAILURE_LIMIT]
    paths.failure.parent.mkdir(parents=True, exist_ok=True)
    paths.failure.write_text(reason)
    return reason


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        outcome = run(env)
    except Exception as e:  # every failure must reach the failure file, or SageMaker reports no reason
        reason = write_failure(Paths(env), e)
        traceback.print_exc(file=sys.stderr)  # the job's CloudWatch log keeps the details
        print(f"driftline training failed: {reason}", file=sys.stderr)
        return 1
    print(f"driftline training {outcome}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
