"""Monitoring logic without AWS: numpy-only performance metrics, baselines, windows, import discipline."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from sklearn import metrics as skm

from driftline.monitoring import performance as perf
from driftline.monitoring.window import MAX_WINDOW, WindowError, resolve

ROOT = Path(__file__).resolve().parents[2]


@settings(max_examples=50, deadline=None)
@given(hs.integers(0, 2**32 - 1), hs.integers(4, 400), hs.booleans())
def test_binary_metrics_equal_scikit_learn(seed: int, n: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    if len(np.unique(y)) < 2:
        y[0], y[1] = 0, 1
    p = rng.random(n)
    if ties:
        p = np.round(p, 1)
    pred = (p > 0.5).astype(int)
    proba = np.column_stack([1 - p, p])
    got = perf.classification_metrics(y, proba, pred)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0), abs=1e-12)
    clipped = np.clip(proba, 1e-15, 1)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, clipped / clipped.sum(1, keepdims=True)), rel=1e-9)


def test_multiclass_and_regression_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 500)
    proba = rng.dirichlet(np.ones(3), 500)
    pred = proba.argmax(1)
    got = perf.classification_metrics(y, proba, pred)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-9)
    onehot = np.eye(3)[y]
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(onehot, proba, average="macro"))
    t = rng.normal(size=300)
    yhat = t + rng.normal(0, 0.3, 300)
    reg = perf.regression_metrics(t, yhat)
    assert reg["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(t, yhat)))
    assert reg["mae"] == pytest.approx(skm.mean_absolute_error(t, yhat))
    assert reg["r2"] == pytest.approx(skm.r2_score(t, yhat))


@pytest.mark.parametrize(
    ("name", "current", "baseline", "degraded"),
    [
        ("roc_auc", 0.74, 0.80, True),
        ("roc_auc", 0.76, 0.80, False),
        ("accuracy", 0.70, 0.70, False),
        ("log_loss", 0.60, 0.50, True),
        ("log_loss", 0.52, 0.50, False),
        ("rmse", 10.6, 10.0, True),
        ("r2", 0.50, 0.56, True),
        ("unknown_metric", 0.0, 1.0, False),
        ("roc_auc", float("nan"), 0.8, False),
    ],
)
def test_degradation_rules(name: str, current: float, baseline: float, degraded: bool) -> None:
    assert perf.is_degraded(name, current, baseline, 0.05) is degraded


def _preds(p: np.ndarray) -> list[dict[str, object]]:
    return [{"label": int(x > 0.5), "probability": float(x), "probabilities": {"0": 1 - x, "1": x}} for x in p]


def test_evaluate_joins_labels_and_judges_the_primary_metric() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    good = np.clip(y * 0.7 + rng.random(300) * 0.3, 0, 1)
    baseline = {"roc_auc": 0.9, "accuracy": 0.8, "f1": 0.8, "log_loss": 0.4}
    res = perf.evaluate(
        "classification",
        [0, 1],
        y.tolist(),
        _preds(good),
        baseline,
        min_labels=100,
        tolerance=0.05,
        primary_metric="roc_auc",
    )
    assert res.status == "ok" and not res.degraded and res.primary_metric == "roc_auc"
    noise = rng.random(300)
    bad = perf.evaluate(
        "classification",
        [0, 1],
        y.tolist(),
        _preds(noise),
        baseline,
        min_labels=100,
        tolerance=0.05,
        primary_metric="roc_auc",
    )
    assert bad.degraded and "roc_auc" in bad.message
    assert bad.metrics["roc_auc"]["baseline"] == 0.9 and bad.metrics["roc_auc"]["delta"] < -0.05


def test_evaluate_reports_too_few_and_unmatched_labels() -> None:
    preds = _preds(np.full(50, 0.7))
    res = perf.evaluate(
        "classification", ["no", "yes"], ["yes"] * 50, preds, {}, min_labels=100, tolerance=0.05, primary_metric=None
    )
    # labels are class values ("yes"); predictions name classes by the same values (0/1 here do not match)
    assert res.status == "too_few_labels" and res.n_unmatched_labels == 50
    few = perf.evaluate(
        "classification",
        [0, 1],
        [1] * 20,
        _preds(np.full(20, 0.7)),
        {"roc_auc": 0.8},
        min_labels=100,
        tolerance=0.05,
        primary_metric="roc_auc",
    )
    assert few.status == "too_few_labels" and few.n_labels == 20 and "at least 100" in few.message
    none = perf.evaluate("regression", [], [], [], {}, min_labels=10, tolerance=0.05, primary_metric=None)
    assert none.status == "no_labels"


NOW = datetime(2026, 11, 26, 12, 30, 5, 123, tzinfo=UTC)


def test_window_defaults_and_follow_ups() -> None:
    w, notes = resolve(None, None, None, NOW)
    assert w.end == NOW.replace(microsecond=0) and w.end - w.start == timedelta(hours=1) and not notes
    w, _ = resolve(None, None, "2026-11-26T11:00:00+00:00", NOW)
    assert w.start_iso == "2026-11-26T11:00:00+00:00"
    w, notes = resolve(None, None, "2026-10-01T00:00:00+00:00", NOW)
    assert w.end - w.start == MAX_WINDOW and "only the last 7 days" in notes[0]
    w, _ = resolve("2026-11-26T01:00:00Z", "2026-11-26T02:00:00", None, NOW)
    assert w.start_iso == "2026-11-26T01:00:00+00:00" and w.end_iso == "2026-11-26T02:00:00+00:00"
    assert w.contains(w.start) and not w.contains(w.end)


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        ("tomorrow", None, "is not an ISO-8601 time"),
        ("2026-11-26T03:00:00Z", "2026-11-26T02:00:00Z", "is not before"),
        ("2026-10-01T00:00:00Z", "2026-11-26T00:00:00Z", "longer than 7 days"),
    ],
)
def test_bad_windows_are_refused(start: str, end: str | None, fragment: str) -> None:
    with pytest.raises(WindowError, match=fragment):
        resolve(start, end, None, NOW)


def test_drift_lambda_imports_no_pandas_sklearn_or_scipy() -> None:
    code = (
        "import sys; import lambdas.drift; import driftline.monitoring; "
        "print(sorted(m for m in ('pandas', 'sklearn', 'scipy', 'evidently') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "POWERTOOLS_TRACE_DISABLED": "1", "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "[]", out.stderr
