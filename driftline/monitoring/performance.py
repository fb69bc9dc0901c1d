"""Prediction quality on labeled captures, against the metrics the version was registered with.

numpy only (the drift Lambda has no scikit-learn); each metric is defined as scikit-learn defines
it so the numbers are comparable with the training metrics stored on the version. Below
``min_labels`` labeled predictions the result is ``too_few_labels`` instead of a noisy number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HIGHER_IS_BETTER = frozenset({"roc_auc", "pr_auc", "accuracy", "f1", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "ece"})
_EPS = 1e-15


# ---------------------------------------------------------------- metrics
def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC AUC (ties get average ranks, as scikit-learn's Mann-Whitney form). NaN if one class."""
    y = np.asarray(y, dtype=bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score, dtype=np.float64)[order]
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    ends = np.append(starts[1:], s.size)
    avg_rank = (starts + ends + 1) / 2.0  # 1-based average rank of each tie group
    ranks = np.empty(s.size)
    ranks[order] = np.repeat(avg_rank, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def f1_binary(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(y & pred))
    fp = float(np.sum(~y & pred))
    fn = float(np.sum(y & ~pred))
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else 2 * tp / denom


def classification_metrics(y: np.ndarray, proba: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """``y``/``pred`` class indices, ``proba`` [N, C] (rows need not sum to 1; they are normalized)."""
    p = np.clip(np.asarray(proba, dtype=np.float64), _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    n_classes = p.shape[1]
    out: dict[str, float] = {"accuracy": float(np.mean(y == pred))}
    out["log_loss"] = float(-np.mean(np.log(p[np.arange(y.size), y])))
    if n_classes == 2:
        out["roc_auc"] = roc_auc(y == 1, p[:, 1])
        out["f1"] = f1_binary(y == 1, pred == 1)
    else:
        present = np.unique(y)
        aucs = [roc_auc(y == c, p[:, c]) for c in present]
        out["roc_auc"] = float(np.mean(aucs)) if len(present) > 1 else math.nan
        out["f1"] = float(
            np.mean([f1_binary(y == c, pred == c) for c in range(n_classes) if np.any(y == c) or np.any(pred == c)])
        )
    return out


def regression_metrics(y: np.ndarray, yhat: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=np.float64)
    yhat = np.asarray(yhat, dtype=np.float64)
    err = y - yhat
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = (1.0 if ss_res == 0 else 0.0) if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return {"rmse": math.sqrt(ss_res / y.size), "mae": float(np.mean(np.abs(err))), "r2": r2}


# ---------------------------------------------------------------- comparison with the baseline
@dataclass
class PerformanceResult:
    status: str
    """ok | too_few_labels | no_labels | no_baseline"""
    n_labels: int
    min_labels: int
    tolerance: float
    primary_metric: str | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    degraded: bool = False
    message: str = ""
    n_unmatched_labels: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "n_labels": self.n_labels,
            "min_labels": self.min_labels,
            "tolerance": self.tolerance,
            "primary_metric": self.primary_metric,
            "metrics": self.metrics,
            "degraded": self.degraded,
            "message": self.message,
            "n_unmatched_labels": self.n_unmatched_labels,
        }


def is_degraded(name: str, current: float, baseline: float, tolerance: float) -> bool:
    """Bounded scores (AUC, accuracy, F1, R²) may fall by ``tolerance`` (absolute); error metrics
    (log loss, RMSE, MAE) may rise by ``tolerance`` relative to the baseline."""
    if not (math.isfinite(current) and math.isfinite(baseline)):
        return False
    if name in HIGHER_IS_BETTER:
        return current < baseline - tolerance
    if name in LOWER_IS_BETTER:
        return current > baseline * (1.0 + tolerance) + 1e-12
    return False


def compare(
    current: Mapping[str, float], baseline: Mapping[str, Any], tolerance: float, primary: str | None
) -> tuple[dict[str, dict[str, Any]], bool, str | None]:
    """Per-metric comparison and whether the primary metric (or, lacking one, any metric) degraded."""
    table: dict[str, dict[str, Any]] = {}
    for name, value in current.items():
        base = baseline.get(name)
        base_f = float(base) if isinstance(base, int | float) and not isinstance(base, bool) else None
        finite = math.isfinite(value)
        table[name] = {
            "current": value if finite else None,
            "baseline": base_f,
            "delta": (value - base_f) if (finite and base_f is not None) else None,
            "degraded": base_f is not None and is_degraded(name, value, base_f, tolerance),
        }
    if primary not in table or table[primary]["baseline"] is None:
        primary = next(
            (m for m in ("roc_auc", "r2", "accuracy", "rmse") if m in table and table[m]["baseline"] is not None), None
        )
    degraded = bool(table[primary]["degraded"]) if primary else False
    return table, degraded, primary


def evaluate(
    task: str,
    classes: Sequence[Any],
    labels: Sequence[Any],
    predictions: Sequence[Mapping[str, Any]],
    baseline: Mapping[str, Any],
    *,
    min_labels: int,
    tolerance: float,
    primary_metric: str | None,
) -> PerformanceResult:
    """Metrics over the labeled predictions (``labels[i]`` belongs to ``predictions[i]``)."""
    res = PerformanceResult(status="ok", n_labels=len(labels), min_labels=min_labels, tolerance=tolerance)
    if not labels:
        res.status, res.message = "no_labels", "no feedback labels matched this window's predictions"
        return res
    if task == "regression":
        y = np.asarray([_float(v) for v in labels])
        yhat = np.asarray([_float(p.get("value")) for p in predictions])
        ok = np.isfinite(y) & np.isfinite(yhat)
        res.n_unmatched_labels = int((~ok).sum())
        res.n_labels = int(ok.sum())
        if res.n_labels < min_labels:
            return _too_few(res)
        current = regression_metrics(y[ok], yhat[ok])
    else:
        index = {_label_key(c): i for i, c in enumerate(classes)}
        y_idx = np.asarray([index.get(_label_key(v), -1) for v in labels])
        pred_idx = np.asarray([index.get(_label_key(p.get("label")), -1) for p in predictions])
        proba = np.asarray([_proba_row(p, classes) for p in predictions], dtype=np.float64).reshape(-1, len(classes))
        ok = (y_idx >= 0) & (pred_idx >= 0) & np.all(np.isfinite(proba), axis=1)
        res.n_unmatched_labels = int((~ok).sum())
        res.n_labels = int(ok.sum())
        if res.n_labels < min_labels:
            return _too_few(res)
        current = classification_metrics(y_idx[ok], proba[ok], pred_idx[ok])
    if not any(isinstance(baseline.get(k), int | float) for k in current):
        res.status = "no_baseline"
        res.message = "the model version has no training metrics to compare with"
    res.metrics, res.degraded, res.primary_metric = compare(current, baseline, tolerance, primary_metric)
    if res.degraded and res.primary_metric:
        m = res.metrics[res.primary_metric]
        res.message = (
            f"{res.primary_metric} {m['current']:.4f} vs {m['baseline']:.4f} at training (tolerance {tolerance})"
        )
    return res


def _too_few(res: PerformanceResult) -> PerformanceResult:
    res.status = "too_few_labels"
    res.message = f"{res.n_labels} labeled predictions; at least {res.min_labels} are needed for a reliable number"
    return res


def _label_key(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _float(v: Any) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    return math.nan


def _proba_row(pred: Mapping[str, Any], classes: Sequence[Any]) -> list[float]:
    probs = pred.get("probabilities")
    if isinstance(probs, Mapping):
        by_key = {_label_key(k): v for k, v in probs.items()}
        return [_float(by_key.get(_label_key(c))) for c in classes]
    p = _float(pred.get("probability"))
    if len(classes) == 2:
        return [1.0 - p, p]
    return [math.nan] * len(classes)
