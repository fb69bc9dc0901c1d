"""Metric definitions, checked against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from driftline.training.metrics import classification_metrics, expected_calibration_error, regression_metrics


def test_ece_by_hand() -> None:
    # bin [0.1,0.2): p=0.1,0.1 outcome 0,1 -> |0.5-0.1|*2 ; bin [0.9,1.0]: p=0.9,0.9 outcomes 1,1 -> |1-0.9|*2
    y = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 0.9])
    assert expected_calibration_error(y, p) == pytest.approx((0.4 * 2 + 0.1 * 2) / 4)
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0


def test_binary_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    pos = np.clip(y * 0.3 + rng.uniform(0, 0.7, 500), 0, 1)
    proba = np.column_stack([1 - pos, pos]).astype(np.float32)
    labels = (pos >= 0.5).astype(np.int64)
    m = classification_metrics(y, proba, labels)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, pos), abs=1e-6)
    assert m["accuracy"] == pytest.approx(float((labels == y).mean()))
    assert 0 < m["log_loss"] < 1.5 and 0 <= m["ece"] <= 1


def test_multiclass_metrics_use_macro_averages_and_top_label_ece() -> None:
    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])
    labels = proba.argmax(axis=1)
    m = classification_metrics(y, proba, labels)
    assert m["accuracy"] == 0.75
    assert m["ece"] == pytest.approx((abs(1 - 0.8) * 3 + abs(0 - 0.6)) / 4)


def test_regression_metrics() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["rmse"] == pytest.approx(np.sqrt(4 / 3))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["r2"] == pytest.approx(1 - 4 / 2)
    assert regression_metrics(np.ones(3), np.ones(3))["r2"] in (0.0, 1.0)  # finite, JSON-safe
