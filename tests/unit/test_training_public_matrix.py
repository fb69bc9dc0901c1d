"""Every built-in algorithm trains on real public datasets, every task, with exact ONNX parity.

The datasets ship inside installed packages (palmerpenguins, scikit-learn). Several time splits
(seeds) per dataset: HistGradientBoosting's float32 threshold rounding flipped splits on some
splits only (penguins seeds 3-4, diabetes seeds 0, 1 and 4 before the fix).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from driftline.config import ModelConfig
from driftline.training.core import train_model
from driftline.training.estimators import ALGORITHMS
from driftline.training.onnx_export import OnnxModel, float32_thresholds, to_onnx
from tests.fixtures.public_datasets import PublicDataset, all_datasets

SEEDS = {
    "hist_gradient_boosting": range(5),
    "random_forest": range(2),
    "logistic_regression": range(2),
    "linear_regression": range(2),
}
PARAMS: dict[str, dict[str, Any]] = {"random_forest": {"n_estimators": 30}}


def _valid(algorithm: str, task: str) -> bool:
    if algorithm == "logistic_regression":
        return task != "regression"
    if algorithm == "linear_regression":
        return task == "regression"
    return True


CASES = [(a, i, s) for a in ALGORITHMS for i, d in enumerate(all_datasets()) if _valid(a, d.task) for s in SEEDS[a]]


def _dataset(index: int, seed: int) -> PublicDataset:
    return all_datasets(seed)[index]


@pytest.mark.parametrize(
    ("algorithm", "index", "seed"), CASES, ids=[f"{a}-{all_datasets()[i].name}-s{s}" for a, i, s in CASES]
)
def test_builtin_algorithm_trains_with_exact_parity(algorithm: str, index: int, seed: int) -> None:
    ds = _dataset(index, seed)
    cfg = ModelConfig(
        name=ds.name.replace("_", "-"),
        feature_set=ds.name,
        algorithm=algorithm,  # type: ignore[arg-type]
        params=PARAMS.get(algorithm, {}),
    )
    trained = train_model(ds.frame, ds.feature_set, cfg, min_rows=50)
    assert trained.parity["rows"] > 0
    if ds.task == "regression":
        assert trained.parity["max_diff_over_tolerance"] <= 1.0
    else:
        assert trained.parity["max_abs_diff"] <= 1e-5
        assert trained.parity["label_mismatches"] == 0
    assert trained.metrics


def test_float32_thresholds_decide_as_float64() -> None:
    rng = np.random.default_rng(0)
    t = np.concatenate(
        [
            rng.normal(size=2000) * 10.0 ** rng.integers(-8, 8, size=2000),
            [0.0, -0.0, 1.0, 42.39999961853027, 0.06519601307809353],
        ]
    )
    adjusted = float32_thresholds(t).astype(np.float32)
    t32 = t.astype(np.float32)
    for x in (t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf))):
        assert np.array_equal(x.astype(np.float64) <= t, x <= adjusted)


@pytest.mark.parametrize("classifier", [True, False])
def test_hgb_onnx_splits_values_on_both_float32_neighbours_of_every_threshold(classifier: bool) -> None:
    """Inputs placed exactly at and next to each float32-rounded threshold: ONNX equals scikit-learn."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) if classifier else X @ np.arange(1, 5) * 10.0
    est = (HistGradientBoostingClassifier if classifier else HistGradientBoostingRegressor)(
        max_iter=20, random_state=0
    ).fit(X, y)
    probes = []
    for predictors in est._predictors:
        for tree in predictors:
            for node in tree.nodes[tree.nodes["is_leaf"] == 0]:
                t32 = np.float32(node["num_threshold"])
                for v in (t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf))):
                    row = np.zeros(4, dtype=np.float32)
                    row[node["feature_idx"]] = v
                    probes.append(row)
    P = np.asarray(probes, dtype=np.float32)
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("model", est)])
    runtime = OnnxModel(to_onnx(pipe, 4, classifier))
    got = runtime.predict(P)
    if classifier:
        assert got.probabilities is not None
        assert np.abs(got.probabilities - est.predict_proba(P)).max() <= 1e-5
    else:
        assert got.values is not None
        ref = est.predict(P)
        assert (np.abs(got.values - ref) <= 1e-5 * np.maximum(1, np.abs(ref))).all()
    assert est._predictors[0][0].nodes["num_threshold"].dtype == np.float64  # the estimator is untouched
