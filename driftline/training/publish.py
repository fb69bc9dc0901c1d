"""Train, upload artifacts, register: the whole training task, shared by the Lambda and the CLI.

:func:`train_and_register` always ends with a registered version: ``candidate`` with metrics,
artifacts and lineage, or ``rejected`` with the reason (bad data, bad config, ONNX conversion or
parity failure). Infrastructure errors (S3/DynamoDB unreachable) propagate so the workflow retries.
The current champion is evaluated on the same validation rows, so the quality gate compares like
with like.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from driftline.config import ModelConfig
from driftline.features.schema import FeatureSet
from driftline.registry.artifacts import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    put_artifact,
    read_verified,
)
from driftline.registry.store import Registry, UnknownModelError
from driftline.training.core import (
    DEFAULT_SEED,
    Progress,
    TrainedModel,
    evaluate,
    quiet,
    train_model,
    validation_fraction_of,
)
from driftline.training.dataset import encode_table, to_arrow
from driftline.training.errors import TrainingRejectedError
from driftline.training.lineage import code_version, library_versions, training_set_lineage
from driftline.training.onnx_export import OnnxModel


@dataclass
class TrainingOutcome:
    """What the workflow's next step (the quality gate) needs; JSON-serializable via ``to_dict``."""

    model: str
    version: int
    status: str
    metrics: dict[str, float]
    champion_version: int | None
    champion_metrics: dict[str, float] | None
    reason: str = ""
    champion_error: str | None = None
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "metrics": self.metrics,
            "champion_version": self.champion_version,
            "champion_metrics": self.champion_metrics,
            "reason": self.reason,
            "champion_error": self.champion_error,
        }


def artifact_prefix(model: str, version: int) -> str:
    return f"models/{model}/v{version}/"


def current_champion(registry: Registry, model: str) -> int | None:
    try:
        return registry.aliases(model, consistent=True).champion
    except UnknownModelError:
        return None


def evaluate_champion(
    registry: Registry, model: str, version: int | None, validation: pa.Table, y_val: np.ndarray
) -> tuple[dict[str, float] | None, str | None]:
    """Metrics of the champion's verified ONNX artifact on the candidate's validation rows.

    The rows are encoded with the champion's own ``input_schema``, so a champion trained on an older
    feature-set version is scored on the inputs it expects. Failures are returned, not raised: a
    candidate is still worth registering when the champion cannot be scored.
    """
    if version is None:
        return None, None
    try:
        mv = registry.get_version(model, version)
        onnx_ref = mv.artifacts.get("onnx")
        if onnx_ref is None:
            return None, f"champion v{version} has no ONNX artifact"
        runtime = OnnxModel(read_verified(onnx_ref))
        X = encode_table(mv.input_schema, validation)
        return evaluate(runtime.predict(X), y_val), None
    except (ArtifactIntegrityError, ArtifactNotFoundError, TrainingRejectedError, KeyError, ValueError) as e:
        return None, f"champion v{version} could not be evaluated: {e}"


def training_lineage(
    fs: FeatureSet,
    cfg: ModelConfig,
    *,
    training_set: Mapping[str, Any],
    parent: int | None,
    trigger: str,
    execution_id: str | None,
    seed: int,
    validation_fraction: float | None,
) -> dict[str, Any]:
    """What a version records about how it was made (the data, the code, the trigger, the seed)."""
    return {
        "training_set": dict(training_set),
        "feature_set": {"name": fs.name, "version": fs.version, "fingerprint": fs.fingerprint},
        "code_version": code_version(),
        "libraries": library_versions(),
        "parent_version": parent,
        "trigger": trigger,
        "execution_id": execution_id,
        "seed": seed,
        "validation_fraction": validation_fraction,
        "config_params": dict(cfg.params),
    }


def train_and_register(
    data: Any,
    fs: FeatureSet,
    cfg: ModelConfig,
    *,
    registry: Registry,
    artifacts_bucket: str,
    trigger: str = "manual",
    training_set: Mapping[str, Any] | None = None,
    created_by: str = "driftline",
    execution_id: str | None = None,
    algorithm: str | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    validation_fraction: float | None = None,
    progress: Progress = quiet,
    trainers_dir: str | None = None,
) -> TrainingOutcome:
    """Train ``cfg.name`` on ``data`` and register the result (candidate or rejected).

    ``training_set`` is the lineage of the data (``uri``, ``sha256``, ``object_versions``...);
    a content hash of the table is added when it has none.
    """
    model = cfg.name
    table = to_arrow(data)
    ts_lineage = training_set_lineage(table, training_set)
    parent = current_champion(registry, model)
    fraction: float | None = None
    result: TrainedModel | TrainingRejectedError
    try:
        fraction = validation_fraction_of(cfg, validation_fraction, params)
        result = train_model(
            table,
            fs,
            cfg,
            algorithm=algorithm,
            params=params,
            seed=seed,
            validation_fraction=fraction,
            progress=progress,
            trainers_dir=trainers_dir,
        )
    except TrainingRejectedError as e:
        result = e
    lineage = training_lineage(
        fs,
        cfg,
        training_set=ts_lineage,
        parent=parent,
        trigger=trigger,
        execution_id=execution_id,
        seed=seed,
        validation_fraction=fraction,
    )
    return register_result(
        result,
        fs,
        cfg,
        registry=registry,
        artifacts_bucket=artifacts_bucket,
        lineage=lineage,
        parent=parent,
        trigger=trigger,
        created_by=created_by,
        algorithm=algorithm,
        params=params,
        progress=progress,
    )


def register_result(
    result: TrainedModel | TrainingRejectedError,
    fs: FeatureSet,
    cfg: ModelConfig,
    *,
    registry: Registry,
    artifacts_bucket: str,
    lineage: dict[str, Any],
    parent: int | None,
    trigger: str,
    created_by: str,
    algorithm: str | None = None,
    params: Mapping[str, Any] | None = None,
    progress: Progress = quiet,
) -> TrainingOutcome:
    """Register what a training run produced, wherever it ran (the ``train`` Lambda, the CLI or a
    SageMaker training job read back by driftline.retraining.sagemaker): a ``candidate`` with its
    uploaded artifacts, or a ``rejected`` version with the reason. One function, so both compute
    paths give the same registry records, artifacts and champion comparison."""
    if isinstance(result, TrainedModel):
        return _publish(
            result,
            fs,
            cfg,
            registry=registry,
            bucket=artifacts_bucket,
            lineage=lineage,
            parent=parent,
            trigger=trigger,
            created_by=created_by,
            progress=progress,
        )
    progress(f"rejected: {result.reason}")
    mv = registry.register(
        cfg.name,
        status="rejected",
        reason=result.reason,
        created_by=created_by,
        algorithm=str(algorithm or cfg.algorithm),
        params=dict(params if params is not None else cfg.params),
        input_schema=fs.input_schema(),
        feature_set=fs.name,
        feature_set_version=fs.version,
        feature_set_fingerprint=fs.fingerprint,
        lineage=lineage,
        trigger=trigger,
    )
    return TrainingOutcome(
        model=cfg.name,
        version=mv.version,
        status="rejected",
        metrics={},
        champion_version=parent,
        champion_metrics=None,
        reason=result.reason,
        lineage=lineage,
    )


def _publish(
    trained: TrainedModel,
    fs: FeatureSet,
    cfg: ModelConfig,
    *,
    registry: Registry,
    bucket: str,
    lineage: dict[str, Any],
    parent: int | None,
    trigger: str,
    created_by: str,
    progress: Progress,
) -> TrainingOutcome:
    model = cfg.name
    version = registry.next_version(model)
    lineage = {
        **lineage,
        "split": trained.split,
        "parity": trained.parity,
        "timings_s": trained.timings_s,
        "rows_unlabeled_dropped": trained.rows_unlabeled,
        "fit_threads": trained.fit_threads or "all",
    }
    common: dict[str, Any] = dict(
        created_by=created_by,
        algorithm=trained.algorithm,
        params=trained.params,
        input_schema=fs.input_schema(),
        feature_set=fs.name,
        feature_set_version=fs.version,
        feature_set_fingerprint=fs.fingerprint,
        trigger=trigger,
    )
    try:
        profile = trained.profile_json(fs, model, version, cfg.drift.profile_sample_size)
    except (ValueError, TypeError) as e:  # DriftInputError is a ValueError
        reason = f"the drift reference profile could not be built: {e}"
        registry.register(
            model, version=version, status="rejected", reason=reason, metrics=trained.metrics, lineage=lineage, **common
        )
        return TrainingOutcome(
            model=model,
            version=version,
            status="rejected",
            metrics=trained.metrics,
            champion_version=parent,
            champion_metrics=None,
            reason=reason,
            lineage=lineage,
        )
    progress(f"uploading artifacts to s3://{bucket}/{artifact_prefix(model, version)}")
    prefix = artifact_prefix(model, version)
    metrics_doc = {
        "model": model,
        "version": version,
        "metrics": trained.metrics,
        "split": trained.split,
        "parity": trained.parity,
    }
    refs = {
        "onnx": put_artifact(bucket, prefix + "model.onnx", trained.onnx),
        "profile": put_artifact(bucket, prefix + "profile.json", profile.encode(), "application/json"),
        "metrics": put_artifact(
            bucket,
            prefix + "metrics.json",
            json.dumps(metrics_doc, sort_keys=True, indent=1).encode(),
            "application/json",
        ),
    }
    est = cfg.drift.estimated_performance
    if est.enabled:  # CBPE/DLE fitted on the holdout, hashed and pinned like every artifact
        progress("fitting the performance estimator on the holdout")
        estimator = trained.estimator_json(fs, model, version, est.calibration)
        refs["estimator"] = put_artifact(bucket, prefix + "estimator.json", estimator.encode(), "application/json")
    if trained.skops:  # an imported ONNX file (or an object skops cannot save) has none
        refs["skops"] = put_artifact(bucket, prefix + "model.skops", trained.skops)
    progress(
        f"evaluating the champion (v{parent}) on the same validation rows" if parent else "no champion to compare with"
    )
    champion_metrics, champion_error = evaluate_champion(
        registry, model, parent, trained.data.validation_table, trained.data.y_val
    )
    lineage["champion_metrics"] = champion_metrics
    registry.register(
        model, version=version, status="candidate", metrics=trained.metrics, artifacts=refs, lineage=lineage, **common
    )
    progress(f"registered {model} v{version} as candidate")
    return TrainingOutcome(
        model=model,
        version=version,
        status="candidate",
        metrics=trained.metrics,
        champion_version=parent,
        champion_metrics=champion_metrics,
        champion_error=champion_error,
        artifacts={k: v.to_dict() for k, v in refs.items()},
        lineage=lineage,
    )
