"""Train one model from a table: split by time, fit, convert to ONNX, check parity, evaluate, profile.

Pure computation (no AWS): :func:`train_model` takes a pyarrow Table or pandas DataFrame, the
feature set and the model config and returns a :class:`TrainedModel` holding every artifact's
bytes, or raises :class:`TrainingRejectedError` with a reason meant for people. Seeds are fixed, so
the same inputs give the same metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from driftline.config import ModelConfig
from driftline.contracts import DEFAULT_MAX_SEGMENTS
from driftline.drift.feature_set import DEFAULT_REFERENCE_ROWS
from driftline.features.encoding import model_features
from driftline.features.schema import FeatureSet
from driftline.training.dataset import PreparedData, prepare, to_arrow
from driftline.training.errors import TrainingRejectedError
from driftline.training.estimators import RESERVED_PARAMS, build_pipeline, estimator_params
from driftline.training.metrics import classification_metrics, regression_metrics
from driftline.training.onnx_export import OnnxModel, OnnxPrediction, parity, to_onnx
from driftline.training.skops_io import dump_pipeline
from driftline.training.weights import fit_weight_kwargs

DEFAULT_VALIDATION_FRACTION = 0.2
DEFAULT_SEED = 0
IMPORTANCE_REPEATS = 3
IMPORTANCE_ROWS = 5_000
"""Holdout rows permutation importance scores at most (a weight needs ranks, not decimals)."""
SMALL_DATA_ROWS = 50_000
"""Below this many training rows, fit on one thread (see :func:`fit_threads`)."""

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    return None


@dataclass
class TrainedModel:
    """The outcome of a successful run: artifacts as bytes plus what the registry records."""

    algorithm: str
    task: str
    params: dict[str, Any]
    metrics: dict[str, float]
    parity: dict[str, Any]
    split: dict[str, Any]
    onnx: bytes
    skops: bytes
    data: PreparedData
    validation_prediction: OnnxPrediction
    timings_s: dict[str, float] = field(default_factory=dict)
    rows_unlabeled: int = 0
    fit_threads: int | None = None
    reference_table: pa.Table | None = None
    """The labelled training rows (train + holdout) the drift reference is built from; None (a run read
    back from a SageMaker model directory) falls back to the holdout."""
    feature_importance: dict[str, float] | None = None
    """Per-feature importance measured at training (:func:`feature_importance`); None: not available."""
    importance_method: str = ""
    reference_rows: int | None = DEFAULT_REFERENCE_ROWS
    """At most this many training rows are profiled (the model config's ``drift.reference_rows``)."""
    segments: tuple[str, ...] = ()
    """Segment columns whose values get their own reference in the profile (``drift.segments``)."""
    max_segments: int = DEFAULT_MAX_SEGMENTS
    """Segment values per column with their own reference (``drift.max_segments``)."""

    def prediction_column(self) -> np.ndarray:
        """The numeric ``prediction`` profile column: P(positive), top-label confidence, or the value."""
        p = self.validation_prediction
        if p.probabilities is not None:
            probs = p.probabilities
            return probs[:, 1] if probs.shape[1] == 2 else probs.max(axis=1)
        assert p.values is not None
        return p.values

    def profile_json(self, fs: FeatureSet, model: str, version: int | None, sample_size: int) -> str:
        """Reference profile: features of the training rows (train + holdout), predictions of the holdout.

        Features come from every labelled training row (at most the config's ``drift.reference_rows``):
        the holdout alone (a fifth of the rows, and the latest period) is so small that its own
        sampling noise made unchanged columns look drifted. Predictions come from the holdout only,
        because in-sample predictions are sharper than anything serving will see, which would raise
        false prediction-drift alarms. The model's feature importances go into the metadata.
        """
        from driftline.drift.feature_set import build_profile_for_feature_set, drift_columns

        source = "train+holdout" if self.reference_table is not None else "holdout"
        table = self.reference_table if self.reference_table is not None else self.data.validation_table
        numerical, categorical, _ = drift_columns(fs)
        checked = {*numerical, *categorical}
        importance = None
        if self.feature_importance is not None:
            importance = {k: v for k, v in self.feature_importance.items() if k in checked}
        profile = build_profile_for_feature_set(
            fs,
            table,
            holdout_predictions=self.prediction_column(),
            model=model,
            version=version,
            sample_size=sample_size,
            feature_importance=importance,
            reference_rows=self.reference_rows,
            segments=self.segments,
            max_segments=self.max_segments,
            metadata={
                "reference": {"source": source, "split": dict(self.split)},
                "importance_method": self.importance_method or "none",
            },
        )
        text: str = profile.to_json()
        return text

    def estimator_json(
        self, fs: FeatureSet, model: str, version: int | None, calibration: str = "isotonic", seed: int = DEFAULT_SEED
    ) -> str:
        """The estimated-performance artifact (driftline.estimation), fitted on the holdout like the profile.

        The holdout is the only labelled data the model never saw, so its probabilities (and errors)
        are what serving's will look like. A fit that cannot be made yields an ``unavailable``
        estimator with the reason rather than a rejected version: estimates are an aid, not a gate.
        """
        from driftline.estimation import fit_classifier_estimator, fit_regressor_estimator, unavailable
        from driftline.estimation.calibration import CalibrationMethod

        p, data = self.validation_prediction, self.data
        label = fs.label
        classes = list(label.class_values) if label is not None and self.task != "regression" else []
        try:
            if self.task == "regression":
                assert p.values is not None
                est = fit_regressor_estimator(
                    data.X_val, p.values, data.y_val, seed=seed, threads=self.fit_threads, model=model, version=version
                )
            else:
                method: CalibrationMethod = "platt" if calibration == "platt" else "isotonic"
                est = fit_classifier_estimator(
                    data.y_val,
                    p.probabilities,
                    p.labels,
                    classes,
                    method=method,
                    seed=seed,
                    model=model,
                    version=version,
                )
        except (TrainingRejectedError, ValueError) as e:  # e.g. a loss model ONNX cannot express
            est = unavailable(
                self.task, f"the estimator could not be fitted: {e}", classes, model=model, version=version
            )
        return est.to_json()


def feature_importance(
    estimator: Any, X: np.ndarray, y: np.ndarray, names: list[str], *, seed: int, permute: bool = True
) -> tuple[dict[str, float] | None, str]:
    """Per-feature importance of a fitted model and how it was measured.

    Permutation importance on the holdout (how much the model's own score drops when a column is
    shuffled) measures what the model relies on out of sample, for any estimator; it runs on at most
    ``IMPORTANCE_ROWS`` rows. When it cannot run (``permute`` False for a user's trainer whose
    pipeline may not take the encoded matrix, or a failure), the estimator's own
    ``feature_importances_`` or ``|coef_|`` serve; None when neither exists.
    """
    if permute and len(y) >= 2:
        from sklearn.inspection import permutation_importance

        try:
            res = permutation_importance(
                estimator,
                X,
                y,
                n_repeats=IMPORTANCE_REPEATS,
                random_state=seed,
                max_samples=min(len(y), IMPORTANCE_ROWS),
            )
            values = np.clip(np.asarray(res.importances_mean, dtype=np.float64), 0.0, None)
            if values.size == len(names) and values.sum() > 0:
                return dict(zip(names, values.tolist(), strict=True)), "permutation"
        except (ValueError, TypeError, AttributeError):  # a model that cannot score these rows
            pass
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    own = getattr(final, "feature_importances_", None)
    method = "estimator"
    if own is None and getattr(final, "coef_", None) is not None:
        coef = np.abs(np.asarray(final.coef_, dtype=np.float64))
        own = coef.reshape(-1, coef.shape[-1]).sum(axis=0)
        method = "coefficients"
    if own is None:
        return None, "none"
    values = np.asarray(own, dtype=np.float64).ravel()
    if values.size != len(names):
        return None, "none"
    return dict(zip(names, values.tolist(), strict=True)), method


def _labelled(table: pa.Table, fs: FeatureSet) -> pa.Table:
    """The rows with a label (those the model was trained and validated on)."""
    from driftline.training.dataset import label_targets

    assert fs.label is not None
    keep = ~np.isnan(label_targets(table, fs.label))
    return table if keep.all() else table.filter(pa.array(keep))


def _skops_or_empty(estimator: Any) -> bytes:
    """skops bytes of a trainer's pipeline; empty when skops cannot save the user's objects."""
    try:
        return dump_pipeline(estimator)
    except Exception:  # the ONNX graph is what serves; the skops copy is for inspection only
        return b""


def fit_threads(n_rows: int, requested: int | None = None) -> int | None:
    """OpenMP threads for fitting: ``requested``, else ``DRIFTLINE_TRAIN_THREADS``, else 1 for small data.

    Small fits gain nothing from threads, and on a machine whose cores are shared (the local
    platform, CI) OpenMP's spin-waiting makes a 2-thread HistGradientBoosting fit of a few
    thousand rows many times slower than one thread (docs/performance.md). ``None`` = all cores.
    """
    if requested:
        return requested
    env = os.environ.get("DRIFTLINE_TRAIN_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return 1 if n_rows < SMALL_DATA_ROWS else None


def evaluate(prediction: OnnxPrediction, y: np.ndarray) -> dict[str, float]:
    if prediction.probabilities is not None:
        assert prediction.labels is not None
        return classification_metrics(y, prediction.probabilities, prediction.labels)
    assert prediction.values is not None
    return regression_metrics(y, prediction.values)


def validation_fraction_of(
    cfg: ModelConfig, override: float | None = None, params: Mapping[str, Any] | None = None
) -> float:
    """The explicit override, else ``params.validation_fraction`` (request params, then config), else 0.2."""
    if override is not None:
        return float(override)
    value = (cfg.params if params is None else params).get("validation_fraction", DEFAULT_VALIDATION_FRACTION)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TrainingRejectedError(
            f"params.validation_fraction of model {cfg.name!r} must be a number between 0 and 1, not {value!r}"
        ) from None


def train_model(
    data: pa.Table | Any,
    fs: FeatureSet,
    cfg: ModelConfig,
    *,
    algorithm: str | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = DEFAULT_SEED,
    validation_fraction: float | None = None,
    min_rows: int | None = None,
    threads: int | None = None,
    progress: Progress = quiet,
    trainers_dir: str | Path | None = None,
) -> TrainedModel:
    """Fit ``cfg``'s pipeline on the older rows and validate on the newer ones.

    ``algorithm``/``params`` override the config (a retraining request may carry them); without an
    ``algorithm`` override a configured ``trainer`` (the user's code, from ``trainers_dir``, default
    ``$TRAINERS_DIR``) builds the pipeline instead. Raises
    :class:`TrainingRejectedError` for data or configuration that cannot give a servable model.
    """
    # The configured trainer (the user's own code) trains unless a run asks for a built-in algorithm.
    trainer = cfg.trainer if algorithm is None else None
    if params is None:  # the config's params belong to the config's algorithm (or trainer)
        same = algorithm in (None, cfg.algorithm)
        params = {k: v for k, v in cfg.params.items() if same or k in RESERVED_PARAMS}
    algorithm = f"trainer:{trainer}" if trainer else (algorithm or cfg.algorithm)
    params = dict(params)
    label = fs.label
    if label is None:
        raise TrainingRejectedError(f"feature set {fs.name!r} defines no label; add one under 'labels' to train on it")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    progress("checking and encoding the training table")
    prepared = prepare(
        data,
        fs,
        min_rows=cfg.retrain.min_training_rows if min_rows is None else min_rows,
        validation_fraction=validation_fraction_of(cfg, validation_fraction, params),
    )
    classifier = label.task != "regression"
    if classifier:
        missing = sorted(set(range(len(label.class_values))) - set(np.unique(prepared.y_train).tolist()))
        if missing:
            names = [label.class_values[i] for i in missing]
            raise TrainingRejectedError(
                f"the training period has no rows of class(es) {names} of label "
                f"{label.name!r}; every class in 'classes' needs examples"
            )
    timings["prepare"] = time.perf_counter() - t0
    schema = fs.input_schema()
    n_threads = fit_threads(len(prepared.y_train), threads)
    progress(f"fitting {algorithm} on {len(prepared.y_train)} rows")
    t = time.perf_counter()
    if trainer:
        from driftline.training.trainers import fit_trainer

        own = {k: v for k, v in params.items() if k not in RESERVED_PARAMS}
        pipeline, onnx_bytes, reference = fit_trainer(
            trainer,
            prepared,
            to_arrow(data),
            fs,
            own,
            validation_fraction_of(cfg, validation_fraction, params),
            directory=trainers_dir,
            threads=n_threads,
        )
        timings["fit_and_convert"] = time.perf_counter() - t
        weight_note = fit_weight_kwargs(pipeline, prepared.w_train)[1]
        t = time.perf_counter()
    else:
        pipeline = build_pipeline(algorithm, label.task, schema, params, seed)
        weighted, weight_note = fit_weight_kwargs(pipeline, prepared.w_train)
        try:
            with threadpool_limits(limits=n_threads):
                pipeline.fit(prepared.X_train, prepared.y_train, **weighted)
        except (ValueError, TypeError) as e:  # bad hyper-parameters or degenerate data
            raise TrainingRejectedError(f"fitting {algorithm} failed: {str(e)[:400]}") from None
        timings["fit"] = time.perf_counter() - t
        progress("converting to ONNX and checking parity")
        t = time.perf_counter()
        onnx_bytes = to_onnx(pipeline, prepared.X_train.shape[1], classifier)
        reference = pipeline
    runtime = OnnxModel(onnx_bytes)
    runtime.check_signature(prepared.X_train.shape[1], classifier)
    with threadpool_limits(limits=n_threads):
        if trainer:
            from driftline.training.imported import parity_on_served_rows

            parity_report = parity_on_served_rows(reference, runtime, prepared.X_val, schema, classifier)
        else:
            parity_report = parity(reference, runtime, prepared.X_val, classifier)
    timings["onnx_and_parity"] = time.perf_counter() - t
    progress(f"evaluating on {len(prepared.y_val)} validation rows")
    t = time.perf_counter()
    prediction = runtime.predict(prepared.X_val)
    metrics = evaluate(prediction, prepared.y_val)
    timings["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    with threadpool_limits(limits=1):  # many small predictions: OpenMP threads only spin-wait (fit_threads)
        importance, importance_method = feature_importance(
            pipeline,
            prepared.X_val,
            prepared.y_val,
            [f["name"] for f in model_features(schema)],
            seed=seed,
            permute=not trainer,
        )
    timings["importance"] = time.perf_counter() - t
    t = time.perf_counter()
    skops_bytes = dump_pipeline(pipeline) if not trainer else _skops_or_empty(pipeline)
    timings["skops"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return TrainedModel(
        algorithm=algorithm,
        task=label.task,
        params=dict(params) if trainer else estimator_params(algorithm, params, seed),
        metrics=metrics,
        parity=parity_report,
        split=prepared.split if weight_note == "none" else {**prepared.split, "sample_weight": weight_note},
        onnx=onnx_bytes,
        skops=skops_bytes,
        data=prepared,
        validation_prediction=prediction,
        timings_s={k: round(v, 4) for k, v in timings.items()},
        rows_unlabeled=prepared.rows_unlabeled,
        fit_threads=n_threads,
        reference_table=_labelled(to_arrow(data), fs),
        feature_importance=importance,
        importance_method=importance_method,
        reference_rows=cfg.drift.reference_rows,
        segments=cfg.drift.segments,
        max_segments=cfg.drift.max_segments,
    )
