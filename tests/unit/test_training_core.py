"""Training end to end without AWS: pipelines per algorithm, ONNX signature and parity, metrics,
determinism, and every refusal path."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pyarrow as pa
import pytest

from driftline.config import ModelConfig
from driftline.features.schema import FeatureSet, parse_feature_set
from driftline.training import core, onnx_export
from driftline.training.core import train_model
from driftline.training.errors import TrainingRejectedError
from driftline.training.onnx_export import OnnxModel
from driftline.training.skops_io import UntrustedArtifactError, dump_pipeline, load_pipeline

FAST: dict[str, Any] = {"max_iter": 30}


@pytest.fixture(scope="module")
def credit_table() -> pa.Table:
    from driftline.datasets.credit_default import generate

    return generate(2000, "2026-01-01", "2026-04-01", seed=3)


def cfg(algorithm: str = "hist_gradient_boosting", **params: Any) -> ModelConfig:
    return ModelConfig(
        name="credit-default",
        feature_set="credit_default",
        algorithm=algorithm,  # type: ignore[arg-type]
        params=params,
        retrain={"min_training_rows": 200},  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [
        ("hist_gradient_boosting", FAST),
        ("random_forest", {"n_estimators": 15, "max_depth": 6}),
        ("logistic_regression", {}),
    ],
)
def test_each_classifier_trains_converts_and_matches(
    credit_table: pa.Table, credit_fs: FeatureSet, algorithm: str, params: dict[str, Any]
) -> None:
    tm = train_model(credit_table, credit_fs, cfg(algorithm, **params))
    assert set(tm.metrics) == {"roc_auc", "pr_auc", "f1", "accuracy", "log_loss", "ece"}
    assert 0.65 < tm.metrics["roc_auc"] <= 1.0
    assert 0.0 <= tm.metrics["ece"] < 0.3
    assert tm.parity["max_abs_diff"] <= 1e-5 and tm.parity["label_mismatches"] == 0
    graph = onnx.load_from_string(tm.onnx).graph
    assert [i.name for i in graph.input] == ["X"]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in graph.output] == ["label", "probabilities"]
    pred = OnnxModel(tm.onnx).predict(tm.data.X_val)
    assert pred.labels is not None and pred.labels.dtype == np.int64
    assert pred.probabilities is not None and pred.probabilities.dtype == np.float32
    assert pred.probabilities.shape == (len(tm.data.y_val), 2)
    assert tm.params["random_state"] == 0 if algorithm != "linear_regression" else True


def test_same_inputs_give_same_metrics_and_model(credit_table: pa.Table, credit_fs: FeatureSet) -> None:
    a = train_model(credit_table, credit_fs, cfg(**FAST))
    b = train_model(credit_table, credit_fs, cfg(**FAST))
    assert a.metrics == b.metrics
    assert a.onnx == b.onnx


def test_skops_round_trip_and_untrusted_types_are_refused(credit_table: pa.Table, credit_fs: FeatureSet) -> None:
    tm = train_model(credit_table, credit_fs, cfg("logistic_regression"))
    pipeline = load_pipeline(tm.skops)
    np.testing.assert_allclose(
        pipeline.predict_proba(tm.data.X_val)[:, 1],
        tm.validation_prediction.probabilities[:, 1],  # type: ignore[index]
        atol=1e-5,
    )
    assert not tm.skops.startswith(b"\x80")  # a zip (skops), not a pickle stream
    with pytest.raises(UntrustedArtifactError, match="not scikit-learn/NumPy/SciPy classes"):
        load_pipeline(dump_pipeline({"payload": Foreign()}))
    import hashlib

    assert load_pipeline(tm.skops, hashlib.sha256(tm.skops).hexdigest()) is not None
    with pytest.raises(UntrustedArtifactError, match="SHA-256 differs"):
        load_pipeline(tm.skops, "0" * 64)


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
        ("numpy.dtype", True),
        ("builtins.slice", True),
        ("builtins.eval", False),
        ("builtins.exec", False),
        ("builtins.getattr", False),
        ("builtins.object", False),
        ("numpy.load", False),  # a function of a trusted package, not a class
        ("sklearn.utils.fixes.os", False),
        ("sklearnx.Evil", False),
        ("os.system", False),
        ("numpy.", False),
    ],
)
def test_skops_trust_is_by_exact_class_name(name: str, trusted: bool) -> None:
    """A prefix ('builtins.', 'numpy.') once trusted every name under it (issue 16, item 16)."""
    from driftline.training.skops_io import trusted_type

    assert trusted_type(name) is trusted


class Foreign:
    """A type skops must not instantiate."""


def test_profile_holds_features_and_prediction(credit_table: pa.Table, credit_fs: FeatureSet) -> None:
    from driftline.drift import Profile

    tm = train_model(credit_table, credit_fs, cfg(**FAST))
    profile = Profile.from_json(tm.profile_json(credit_fs, "credit-default", 4, 1000))
    assert "prediction" in profile.numerical
    assert {"age", "employment_type"} <= set(profile.features)
    assert profile.metadata["version"] == 4
    assert profile.metadata["feature_set_fingerprint"] == credit_fs.fingerprint


def regression_fs() -> FeatureSet:
    return parse_feature_set(
        {
            "name": "houses",
            "version": 1,
            "entity": ["id"],
            "timestamp": "ts",
            "features": [
                {"name": "area", "type": "float"},
                {"name": "rooms", "type": "int"},
                {"name": "city", "type": "categorical", "categories": ["a", "b", "c"]},
            ],
            "labels": [{"name": "price", "task": "regression"}],
        }
    )


def regression_table(n: int = 600) -> pa.Table:
    rng = np.random.default_rng(1)
    area = rng.uniform(30, 200, n)
    rooms = rng.integers(1, 7, n)
    city = rng.choice(["a", "b", "c"], n)
    price = area * 3000 + rooms * 10000 + (city == "a") * 50000 + rng.normal(0, 20000, n)
    ts = pa.array(np.arange(n) * 1_000_000, pa.timestamp("us"))
    return pa.table(
        {"id": np.arange(n).astype(str), "ts": ts, "area": area, "rooms": rooms, "city": city, "price": price}
    )


@pytest.mark.parametrize("algorithm", ["linear_regression", "hist_gradient_boosting", "random_forest"])
def test_regression_outputs_variable_and_regression_metrics(algorithm: str) -> None:
    c = ModelConfig(
        name="houses",
        feature_set="houses",
        algorithm=algorithm,  # type: ignore[arg-type]
        params={"max_iter": 30}
        if algorithm == "hist_gradient_boosting"
        else ({"n_estimators": 10} if algorithm == "random_forest" else {}),
        retrain={"min_training_rows": 100},  # type: ignore[arg-type]
    )
    tm = train_model(regression_table(), regression_fs(), c)
    assert set(tm.metrics) == {"rmse", "mae", "r2"}
    assert tm.metrics["r2"] > 0.5
    assert [o.name for o in onnx.load_from_string(tm.onnx).graph.output] == ["variable"]
    assert tm.parity["max_diff_over_tolerance"] <= 1.0


def test_multiclass_probabilities_follow_class_order() -> None:
    fs = parse_feature_set(
        {
            "name": "tiers",
            "version": 1,
            "entity": ["id"],
            "timestamp": "ts",
            "features": [{"name": "score", "type": "float"}],
            "labels": [{"name": "tier", "task": "multiclass_classification", "classes": ["low", "mid", "high"]}],
        }
    )
    rng = np.random.default_rng(2)
    score = rng.uniform(0, 3, 900)
    tier = np.array(["low", "mid", "high"])[np.clip((score + rng.normal(0, 0.3, 900)).astype(int), 0, 2)]
    ts = pa.array(np.arange(900) * 10**6, pa.timestamp("us"))
    table = pa.table({"id": np.arange(900).astype(str), "ts": ts, "score": score, "tier": tier})
    c = ModelConfig(
        name="tiers",
        feature_set="tiers",
        algorithm="logistic_regression",
        retrain={"min_training_rows": 100},  # type: ignore[arg-type]
    )
    tm = train_model(table, fs, c)
    probs = tm.validation_prediction.probabilities
    assert probs is not None and probs.shape[1] == 3
    high = tm.data.X_val[:, 0] > 2.8
    assert (probs[high].argmax(axis=1) == 2).all()  # column 2 is "high", the third class
    assert tm.metrics["accuracy"] > 0.7


@pytest.mark.parametrize(
    ("algorithm", "params", "message"),
    [
        ("xgboost", {}, "unknown model type 'xgboost'; choose one of hist_gradient_boosting"),
        ("linear_regression", {}, "linear_regression cannot learn a binary_classification label"),
        ("hist_gradient_boosting", {"max_itre": 5}, r"unknown parameter\(s\) max_itre for HistGradientBoosting"),
        ("hist_gradient_boosting", {"max_iter": -3}, "invalid parameter"),
        ("hist_gradient_boosting", {"validation_fraction": 2}, "between 0 and 1"),
    ],
)
def test_configuration_mistakes_are_rejected(
    credit_table: pa.Table, credit_fs: FeatureSet, algorithm: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(TrainingRejectedError, match=message):
        train_model(credit_table, credit_fs, cfg(), algorithm=algorithm, params=params)


def test_onnx_conversion_failure_is_a_rejection(
    credit_table: pa.Table, credit_fs: FeatureSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import skl2onnx

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("Unable to find a shape calculator for type 'MyEstimator'")

    monkeypatch.setattr(skl2onnx, "convert_sklearn", boom)
    with pytest.raises(TrainingRejectedError, match=r"ONNX conversion failed \(RuntimeError: Unable to find"):
        train_model(credit_table, credit_fs, cfg(**FAST))


def test_parity_failure_is_a_rejection(
    credit_table: pa.Table, credit_fs: FeatureSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = OnnxModel.predict

    def skewed(self: OnnxModel, X: np.ndarray) -> onnx_export.OnnxPrediction:
        p = real(self, X)
        assert p.probabilities is not None
        return onnx_export.OnnxPrediction(labels=p.labels, probabilities=p.probabilities + 1e-4, values=None)

    monkeypatch.setattr(OnnxModel, "predict", skewed)
    with pytest.raises(TrainingRejectedError, match=r"ONNX parity check failed .*\(limit 1e-05\)"):
        train_model(credit_table, credit_fs, cfg(**FAST))


def test_hist_gradient_boosting_conversion_needs_the_int_cast(
    credit_table: pa.Table, credit_fs: FeatureSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards the skl2onnx/NumPy-2 workaround: without it conversion fails on these versions."""
    monkeypatch.setattr(onnx_export, "sklearn_converters", dict)
    with pytest.raises(TrainingRejectedError, match="ONNX conversion failed"):
        train_model(credit_table, credit_fs, cfg(**FAST))


def test_validation_fraction_from_config_params(credit_table: pa.Table, credit_fs: FeatureSet) -> None:
    tm = train_model(credit_table, credit_fs, cfg(max_iter=10, validation_fraction=0.4))
    total = tm.split["train_rows"] + tm.split["validation_rows"]
    assert abs(tm.split["validation_rows"] / total - 0.4) < 0.01
    assert "validation_fraction" not in tm.params
    assert core.validation_fraction_of(cfg(), 0.3) == 0.3


def test_fit_threads_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_TRAIN_THREADS", raising=False)
    assert core.fit_threads(1_000) == 1  # small fits: one thread (OpenMP spin-wait on shared cores)
    assert core.fit_threads(100_000) is None  # large fits: every core
    assert core.fit_threads(100_000, requested=3) == 3
    monkeypatch.setenv("DRIFTLINE_TRAIN_THREADS", "2")
    assert core.fit_threads(1_000) == 2
