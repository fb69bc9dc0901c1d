"""The estimator a model version carries: fitted at training, one JSON artifact, no pickle.

The training run builds it from the holdout (the rows the model never saw, as the reference
profile), uploads it next to ``profile.json`` as ``estimator.json`` and registers it under
``artifacts.estimator`` with its SHA-256, so the scheduled check reads exactly the bytes the run
wrote. It holds one of:

- ``cbpe`` (classifiers): the calibration map(s) as knot arrays;
- ``dle`` (regressors): the two loss models as ONNX, base64 inside the JSON (one hashed object);
- ``unavailable``: why no estimate can be made (no probabilities, a holdout too small or with one
  class only), so the check can say so instead of failing or guessing.

``reference`` holds the same metrics realized on the holdout: the baseline an estimate is compared
with, so the tolerance compares like with like.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.estimation.calibration import Calibration, CalibrationMethod, fit_calibration
from driftline.estimation.cbpe import CALIBRATION_DRAWS, realized_metrics
from driftline.estimation.dle import LOSS_TARGETS

__all__ = [
    "ESTIMATOR_FORMAT",
    "MIN_CALIBRATION_ROWS",
    "EstimatorFormatError",
    "FittedEstimator",
    "fit_classifier_estimator",
    "fit_regressor_estimator",
    "unavailable",
]

ESTIMATOR_FORMAT = "driftline.estimation/1"
MIN_CALIBRATION_ROWS = 50
"""Below this many holdout rows a calibration map (or a loss model) is mostly noise: no estimator."""
KINDS = ("cbpe", "dle", "unavailable")


class EstimatorFormatError(ValueError):
    """The artifact is not an estimator this code can read (wrong format, missing or bad fields)."""


@dataclass
class FittedEstimator:
    """What the scheduled check needs to estimate a window's performance without labels."""

    kind: str
    task: str
    classes: list[Any] = field(default_factory=list)
    reason: str = ""
    calibrations: list[Calibration] = field(default_factory=list)
    calibration_draws: list[list[Calibration]] = field(default_factory=list)
    """The same calibration(s) fitted on bootstrap resamples of the holdout (the band's calibration share)."""
    loss_models: dict[str, bytes] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)
    reference_rows: int = 0
    model: str = ""
    version: int | None = None

    def to_json(self) -> str:
        doc = {
            "format": ESTIMATOR_FORMAT,
            "model": self.model,
            "version": self.version,
            "kind": self.kind,
            "task": self.task,
            "classes": list(self.classes),
            "reason": self.reason,
            "calibrations": [c.to_dict() for c in self.calibrations],
            "calibration_draws": [[c.to_dict() for c in d] for d in self.calibration_draws],
            "loss_models": {k: base64.b64encode(v).decode("ascii") for k, v in self.loss_models.items()},
            "reference": {"rows": self.reference_rows, "metrics": self.reference},
        }
        return json.dumps(doc, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, data: bytes | str, source: str = "estimator") -> FittedEstimator:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise EstimatorFormatError(f"{source} is not JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != ESTIMATOR_FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise EstimatorFormatError(f"{source} has format {found!r}; this code reads {ESTIMATOR_FORMAT!r}")
        try:
            return _from_doc(doc)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, binascii.Error) as e:
            # AttributeError: a list where an object belongs; OverflowError: rows of 1e400 (inf) as an int
            raise EstimatorFormatError(f"{source} is malformed: {e}") from None


def _from_doc(doc: Mapping[str, Any]) -> FittedEstimator:
    kind = str(doc["kind"])
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {list(KINDS)}")
    ref = doc.get("reference") or {}
    metrics = {str(k): float(v) for k, v in (ref.get("metrics") or {}).items() if v is not None}
    est = FittedEstimator(
        kind=kind,
        task=str(doc["task"]),
        classes=list(doc.get("classes") or []),
        reason=str(doc.get("reason", "")),
        calibrations=[Calibration.from_dict(c) for c in doc.get("calibrations") or []],
        calibration_draws=[[Calibration.from_dict(c) for c in d] for d in doc.get("calibration_draws") or []],
        loss_models={str(k): base64.b64decode(v, validate=True) for k, v in (doc.get("loss_models") or {}).items()},
        reference=metrics,
        reference_rows=int(ref.get("rows", 0)),
        model=str(doc.get("model", "")),
        version=int(doc["version"]) if doc.get("version") is not None else None,
    )
    if kind == "cbpe":
        need = 1 if len(est.classes) == 2 else len(est.classes)
        if len(est.classes) < 2 or any(len(d) != need for d in (est.calibrations, *est.calibration_draws)):
            raise ValueError(f"a cbpe estimator of {len(est.classes)} classes needs {need} calibration(s) per map")
    if kind == "dle" and sorted(est.loss_models) != sorted(LOSS_TARGETS):
        raise ValueError(f"a dle estimator needs loss models {list(LOSS_TARGETS)}, not {sorted(est.loss_models)}")
    return est


def unavailable(task: str, reason: str, classes: Sequence[Any] = (), **meta: Any) -> FittedEstimator:
    """An estimator that says why there is no estimate (the check reports it; it never alarms)."""
    return FittedEstimator(kind="unavailable", task=task, classes=list(classes), reason=reason, **meta)


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


def fit_classifier_estimator(
    y: np.ndarray,
    probabilities: np.ndarray | None,
    labels: np.ndarray | None,
    classes: Sequence[Any],
    *,
    method: CalibrationMethod = "isotonic",
    seed: int = 0,
    model: str = "",
    version: int | None = None,
) -> FittedEstimator:
    """CBPE from the holdout's labels ``y`` (class indices) and the model's out-of-sample outputs."""
    task = "classification"
    meta: dict[str, Any] = {"model": model, "version": version}
    if probabilities is None or labels is None:
        reason = "the model gives no class probabilities, so they cannot be calibrated"
        return unavailable(task, reason, classes, **meta)
    y = np.asarray(y, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    if y.size < MIN_CALIBRATION_ROWS:
        return unavailable(
            task, f"the holdout has {y.size} rows; calibration needs at least {MIN_CALIBRATION_ROWS}", classes, **meta
        )
    if probs.ndim != 2 or probs.shape != (y.size, len(classes)):
        return unavailable(task, f"probabilities of shape {probs.shape} do not match {len(classes)} classes", **meta)
    one_vs_rest = [1] if len(classes) == 2 else list(range(len(classes)))
    absent = [classes[c] for c in one_vs_rest if not np.any(y == c) or np.all(y == c)]
    if absent:
        return unavailable(
            task, f"the holdout lacks rows of, or holds only, class(es) {absent}: no calibration", classes, **meta
        )
    cals = [fit_calibration(y == c, probs[:, c], method) for c in one_vs_rest]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(CALIBRATION_DRAWS):
        i = rng.integers(0, y.size, y.size)
        if all(np.any(y[i] == c) and not np.all(y[i] == c) for c in one_vs_rest):
            draws.append([fit_calibration(y[i] == c, probs[i, c], method) for c in one_vs_rest])
    reference = realized_metrics(y, probs, np.asarray(labels, dtype=np.int64))
    return FittedEstimator(
        kind="cbpe",
        task=task,
        classes=list(classes),
        calibrations=cals,
        calibration_draws=draws,
        reference=_finite(reference),
        reference_rows=int(y.size),
        **meta,
    )


def fit_regressor_estimator(
    X: np.ndarray,
    prediction: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    threads: int | None = 1,
    model: str = "",
    version: int | None = None,
) -> FittedEstimator:
    """DLE from the holdout's encoded features, the model's predictions and the true values."""
    from driftline.estimation.dle import fit_loss_models

    meta: dict[str, Any] = {"model": model, "version": version}
    y = np.asarray(y, dtype=np.float64)
    if y.size < MIN_CALIBRATION_ROWS:
        return unavailable(
            "regression", f"the holdout has {y.size} rows; a loss model needs at least {MIN_CALIBRATION_ROWS}", **meta
        )
    yhat = np.asarray(prediction, dtype=np.float64).reshape(-1)
    err = y - yhat
    models = fit_loss_models(X, yhat, y, seed=seed, threads=threads)
    reference = {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}
    return FittedEstimator(
        kind="dle", task="regression", loss_models=models, reference=reference, reference_rows=int(y.size), **meta
    )
