"""Evaluation metrics on the validation period.

Classification: ROC AUC, PR AUC (average precision), F1, accuracy, log loss and expected calibration
error (ECE, 10 equal-width bins; the positive-class probability for binary labels, the top-label
confidence for multiclass). Multiclass ROC AUC / PR AUC / F1 are macro one-vs-rest averages.
Regression: RMSE, MAE, R². Everything is a plain float so it serializes to JSON as-is.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

HIGHER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "f1": True,
    "accuracy": True,
    "log_loss": False,
    "ece": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}


def expected_calibration_error(
    y_true: np.ndarray, confidence: np.ndarray, correct: np.ndarray | None = None, bins: int = 10
) -> float:
    """Σ_b (n_b / N) · |observed rate_b - mean confidence_b| over equal-width confidence bins.

    Binary: ``confidence`` is P(positive) and the observed rate is the share of positives.
    Top-label (multiclass): pass ``correct`` (prediction right or wrong) as the observed outcome.
    """
    outcome = (y_true if correct is None else correct).astype(np.float64)
    conf = np.clip(confidence.astype(np.float64), 0.0, 1.0)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    n = np.bincount(which, minlength=bins).astype(np.float64)
    sum_conf = np.bincount(which, weights=conf, minlength=bins)
    sum_out = np.bincount(which, weights=outcome, minlength=bins)
    used = n > 0
    return float(np.sum(np.abs(sum_out[used] - sum_conf[used])) / conf.size)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``y_true`` class indices, ``proba`` [N, C] probabilities, ``labels`` the predicted indices."""
    n_classes = proba.shape[1]
    p = np.clip(proba.astype(np.float64), 1e-15, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    out: dict[str, float] = {}
    if n_classes == 2:
        pos = p[:, 1]
        out["roc_auc"] = float(roc_auc_score(y_true, pos))
        out["pr_auc"] = float(average_precision_score(y_true, pos))
        out["f1"] = float(f1_score(y_true, labels, zero_division=0))
        out["ece"] = expected_calibration_error(y_true, pos)
    else:
        present = np.unique(y_true)
        onehot = np.eye(n_classes)[y_true]
        out["roc_auc"] = float(roc_auc_score(onehot[:, present], p[:, present], average="macro"))
        out["pr_auc"] = float(average_precision_score(onehot[:, present], p[:, present], average="macro"))
        out["f1"] = float(f1_score(y_true, labels, average="macro", zero_division=0))
        out["ece"] = expected_calibration_error(y_true, p.max(axis=1), correct=(labels == y_true))
    out["accuracy"] = float(accuracy_score(y_true, labels))
    out["log_loss"] = float(log_loss(y_true, p, labels=np.arange(n_classes)))
    return {k: _finite(v) for k, v in out.items()}


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    y = y_true.astype(np.float64)
    yhat = predicted.astype(np.float64).reshape(-1)
    return {
        k: _finite(v)
        for k, v in {
            "rmse": float(math.sqrt(mean_squared_error(y, yhat))),
            "mae": float(mean_absolute_error(y, yhat)),
            "r2": float(r2_score(y, yhat)),
        }.items()
    }


def _finite(v: float) -> float:
    """JSON has no NaN; an undefined metric (e.g. R² of a constant target) is reported as 0.0."""
    return v if math.isfinite(v) else 0.0
