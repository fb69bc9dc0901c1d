"""One window's estimated performance, from its captured outputs (and rows, for DLE), without labels.

The scheduled check calls :func:`estimate_window` with the champion's captures; the outcome is
``ok`` (estimates with bands, compared with the holdout's realized values), ``insufficient_data``
(fewer usable rows than ``min_rows``: a number that noisy would only cause false alarms, so it never
alarms), or ``unavailable`` (the version has no usable estimator; the reason says why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.estimation.artifact import FittedEstimator
from driftline.estimation.cbpe import BAND_SIGMAS, CBPE_METRICS, estimate_cbpe
from driftline.estimation.dle import DLE_METRICS, LossModels, dle_from_losses, expected_losses
from driftline.estimation.rows import EstimationRows

__all__ = [
    "ESTIMATED_METRICS",
    "EstimateResult",
    "default_metric",
    "estimate_rows",
    "estimate_window",
    "window_rows",
]

ESTIMATED_METRICS = (*CBPE_METRICS, *DLE_METRICS)
_HIGHER_IS_BETTER = frozenset(CBPE_METRICS)


def default_metric(task: str) -> str:
    """The metric an alarm watches unless configured: ROC AUC for classifiers, MAE for regressors."""
    return "mae" if task == "regression" else "roc_auc"


@dataclass
class EstimateResult:
    status: str
    """ok | insufficient_data | unavailable"""
    method: str | None
    n_rows: int
    min_rows: int
    metric: str
    tolerance: float
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    degraded: bool = False
    message: str = ""
    n_unusable: int = 0
    """Captured rows without a usable output (no probabilities, an unknown label, a missing value)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "method": self.method,
            "n_rows": self.n_rows,
            "min_rows": self.min_rows,
            "metric": self.metric,
            "tolerance": self.tolerance,
            "metrics": self.metrics,
            "degraded": self.degraded,
            "message": self.message,
            "n_unusable": self.n_unusable,
            "band_sigmas": BAND_SIGMAS,
        }

    def with_realized(self, realized: Mapping[str, Any] | None) -> dict[str, Any]:
        """``to_dict`` with each metric's realized value from labeled predictions (when there are any)."""
        doc = self.to_dict()
        for name, m in doc["metrics"].items():
            r = (realized or {}).get(name) or {}
            m["realized"] = r.get("current") if isinstance(r, Mapping) else None
        return doc


def _is_degraded(name: str, current: float, baseline: float | None, tolerance: float) -> bool:
    """As realized performance is judged: scores may fall by ``tolerance`` (absolute), errors rise
    by ``tolerance`` relative to the holdout's value."""
    if baseline is None or not (math.isfinite(current) and math.isfinite(baseline)):
        return False
    if name in _HIGHER_IS_BETTER:
        return current < baseline - tolerance
    return current > baseline * (1.0 + tolerance) + 1e-12


def _key(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _number(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def classification_outputs(
    predictions: Sequence[Mapping[str, Any]], classes: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities [N, C], predicted class index [N], usable mask [N]) from captured outputs."""
    index = {_key(c): i for i, c in enumerate(classes)}
    n, k = len(predictions), len(classes)
    probs = np.full((n, k), math.nan)
    pred = np.full(n, -1, dtype=np.int64)
    for i, p in enumerate(predictions):
        pred[i] = index.get(_key(p.get("label")), -1)
        by_class = p.get("probabilities")
        if isinstance(by_class, Mapping):
            for c, v in by_class.items():
                j = index.get(_key(c))
                if j is not None:
                    probs[i, j] = _number(v)
        elif k == 2:
            p1 = _number(p.get("probability"))
            probs[i] = (1.0 - p1, p1)
    usable = (pred >= 0) & np.all(np.isfinite(probs), axis=1)
    return probs, pred, usable


def window_rows(
    estimator: FittedEstimator,
    predictions: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Sequence[Any]],
    schema: Mapping[str, Any],
    *,
    keys: np.ndarray | None = None,
) -> EstimationRows:
    """The rows' estimation inputs (:mod:`driftline.estimation.rows`) under a usable ``estimator``;
    ``keys`` their canonical order keys (default: arrival order)."""
    n = len(predictions)
    keys = np.arange(n, dtype=np.uint64) if keys is None else keys
    if estimator.kind == "cbpe":
        probs, pred, usable = classification_outputs(predictions, estimator.classes)
        return EstimationRows("cbpe", keys, probs, pred, usable)
    from driftline.features.encoding import encode_columns, model_features

    names = [f["name"] for f in model_features(schema)]
    cols = {f: list(columns.get(f) or [None] * n) for f in names}
    X = encode_columns(schema, cols) if names else np.zeros((n, 0), np.float32)
    yhat = np.asarray([_number(p.get("value")) for p in predictions])
    usable = np.isfinite(yhat)
    losses = np.full((n, 2), math.nan)
    if usable.any():
        m1, m2 = expected_losses(LossModels.load(estimator.loss_models), X[usable], yhat[usable])
        losses[usable] = np.column_stack([m1, m2])
    return EstimationRows("dle", keys, losses, np.full(n, -1, dtype=np.int64), usable)


def estimate_window(
    estimator: FittedEstimator | None,
    predictions: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Sequence[Any]],
    schema: Mapping[str, Any],
    *,
    metric: str | None,
    tolerance: float,
    min_rows: int,
    seed: int = 0,
) -> EstimateResult:
    """Estimate one window's performance; see the module for the three outcomes."""
    usable = estimator is not None and estimator.kind != "unavailable"
    rows = window_rows(estimator, predictions, columns, schema) if usable and estimator else None
    res = estimate_rows(estimator, rows, metric=metric, tolerance=tolerance, min_rows=min_rows, seed=seed)
    res.n_rows = len(predictions)
    return res


def estimate_rows(
    estimator: FittedEstimator | None,
    rows: EstimationRows | None,
    *,
    metric: str | None,
    tolerance: float,
    min_rows: int,
    seed: int = 0,
) -> EstimateResult:
    """Estimate from the window's rows (:func:`window_rows`, in the order given); ``rows`` may be None
    when the estimator is missing or unavailable."""
    task = estimator.task if estimator else "classification"
    res = EstimateResult(
        status="ok",
        method=estimator.kind if estimator and estimator.kind != "unavailable" else None,
        n_rows=rows.n_rows if rows is not None else 0,
        min_rows=min_rows,
        metric=metric or default_metric(task),
        tolerance=tolerance,
    )
    if estimator is None or estimator.kind == "unavailable" or rows is None:
        res.status = "unavailable"
        res.message = estimator.reason if estimator else "the model version has no estimator"
        return res
    usable = rows.usable
    res.n_unusable = int((~usable).sum())
    if int(usable.sum()) < min_rows:
        return _insufficient(res, int(usable.sum()))
    if estimator.kind == "cbpe":
        found = estimate_cbpe(
            rows.values[usable], rows.pred[usable], estimator.calibrations, draws=estimator.calibration_draws, seed=seed
        )
    else:
        found = dle_from_losses(rows.values[usable, 0], rows.values[usable, 1])
    for name, (value, std) in found.items():
        ref = estimator.reference.get(name)
        finite = math.isfinite(value)
        lo, hi = value - BAND_SIGMAS * std, value + BAND_SIGMAS * std
        if name in _HIGHER_IS_BETTER:
            lo, hi = max(lo, 0.0), min(hi, 1.0)
        res.metrics[name] = {
            "estimate": value if finite else None,
            "std": std if math.isfinite(std) else None,
            "lower": max(lo, 0.0) if math.isfinite(lo) else None,
            "upper": hi if math.isfinite(hi) else None,
            "reference": ref,
            "degraded": _is_degraded(name, value, ref, tolerance),
        }
    chosen = res.metrics.get(res.metric)
    res.degraded = bool(chosen and chosen["degraded"])
    if chosen and chosen["estimate"] is not None:
        res.message = (
            f"estimated {res.metric} {chosen['estimate']:.4f} (band {chosen['lower']:.4f} to {chosen['upper']:.4f}) "
            f"vs {chosen['reference']:.4f} on the holdout (tolerance {tolerance})"
            if chosen["reference"] is not None and chosen["lower"] is not None and chosen["upper"] is not None
            else f"estimated {res.metric} {chosen['estimate']:.4f}"
        )
    return res


def _insufficient(res: EstimateResult, usable: int) -> EstimateResult:
    res.status = "insufficient_data"
    res.message = f"{usable} usable rows; at least {res.min_rows} are needed for an estimate"
    return res
