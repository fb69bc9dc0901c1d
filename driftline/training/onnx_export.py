"""scikit-learn pipeline -> ONNX (the serving artifact), and the parity check that guards it.

The ONNX signature is the contract in docs/architecture.md: one float32 input ``X`` [N, F];
classifiers output ``label`` (int64 [N], class index) and ``probabilities`` (float32 [N, C], zipmap
off); regressors output ``variable`` (float32 [N, 1]).

HistGradientBoosting goes through skl2onnx's converter wrapped (for this call only, through
``custom_conversion_functions``) to correct two things:

- skl2onnx 1.20 under NumPy 2 emits NumPy integers and Python bools in the tree attributes, which
  ``onnx.helper.make_attribute`` refuses: those attribute lists are cast to plain ints.
- Split thresholds. scikit-learn compares the float64 feature value with a float64 threshold;
  ONNX Runtime compares the float32 input with the threshold stored as float32. skl2onnx rounds a
  HistGradientBoosting threshold to the *nearest* float32 (it corrects the rounding for
  DecisionTree/RandomForest, not for HGB), and HGB thresholds are float64 midpoints between bin
  edges, so about half of them round up: an input equal to that float32 neighbour goes left in
  ONNX and right in scikit-learn, which moves a prediction by a whole leaf path (0.8 in probability
  on penguins, 19.8 on diabetes). For a float32 input ``x``, ``x <= t`` holds exactly when
  ``x <= t'`` with ``t'`` the largest float32 not above ``t``; the converter is given a copy of the
  estimator whose thresholds are those ``t'``, which makes every split decide as scikit-learn does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from driftline.features.encoding import ONNX_INPUT_NAME
from driftline.training.errors import TrainingRejectedError

PARITY_TOLERANCE = 1e-5
CLASSIFIER_OUTPUTS = ("label", "probabilities")
REGRESSOR_OUTPUTS = ("variable",)


def _plain(value: Any) -> Any:
    if isinstance(value, bool | np.integer | np.bool_):
        return int(value)
    if isinstance(value, list):
        return [int(v) if isinstance(v, bool | np.integer | np.bool_) else v for v in value]
    return value


class _PlainIntContainer:
    """Forwards to skl2onnx's container, casting NumPy ints / bools in node attributes to int."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def add_node(self, *args: Any, **attrs: Any) -> Any:
        return self._inner.add_node(*args, **{k: _plain(v) for k, v in attrs.items()})


def float32_thresholds(thresholds: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold (as float64).

    For every float32 ``x``: ``x <= t`` exactly when ``x <= float32_thresholds(t)``, so a tree
    stored with these thresholds in float32 splits float32 inputs as the float64 tree does.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    rounded = t.astype(np.float32)
    with np.errstate(invalid="ignore"):
        above = rounded.astype(np.float64) > t
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded.astype(np.float64)


def _with_float32_thresholds(estimator: Any) -> Any:
    """A copy of a fitted HistGradientBoosting estimator whose split thresholds are float32-exact."""
    adjusted = copy.copy(estimator)
    predictors = []
    for iteration in estimator._predictors:
        trees = []
        for tree in iteration:
            clone = copy.copy(tree)
            nodes = tree.nodes.copy()
            split = nodes["is_leaf"] == 0
            nodes["num_threshold"][split] = float32_thresholds(nodes["num_threshold"][split])
            clone.nodes = nodes
            trees.append(clone)
        predictors.append(trees)
    adjusted._predictors = predictors
    return adjusted


def sklearn_converters() -> dict[type, Any]:
    """``custom_conversion_functions`` for skl2onnx: the corrected HistGradientBoosting converters.

    Used for every scikit-learn conversion (built-in training and imported pipelines alike), so a
    HistGradientBoosting step anywhere in a pipeline converts with exact splits.
    """
    from skl2onnx.common.data_types import guess_numpy_type
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )

    def wrap(convert: Any) -> Any:
        def converter(scope: Any, operator: Any, container: Any, **kwargs: Any) -> None:
            if guess_numpy_type(operator.inputs[0].type) != np.float64:
                operator.raw_operator = _with_float32_thresholds(operator.raw_operator)
            convert(scope, operator, _PlainIntContainer(container), **kwargs)

        return converter

    return {
        HistGradientBoostingClassifier: wrap(convert_sklearn_random_forest_classifier),
        HistGradientBoostingRegressor: wrap(convert_sklearn_random_forest_regressor_converter),
    }


def to_onnx(pipeline: Pipeline, n_features: int, classifier: bool, name: str = "driftline") -> bytes:
    """Convert a fitted pipeline; any converter failure becomes a rejection with the reason."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    try:
        model = convert_sklearn(
            pipeline,
            name=name,
            initial_types=[(ONNX_INPUT_NAME, FloatTensorType([None, n_features]))],
            options={"zipmap": False} if classifier else None,
            custom_conversion_functions=sklearn_converters(),
        )
    except Exception as e:  # skl2onnx raises many types (RuntimeError, NotImplementedError, ValueError...)
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise TrainingRejectedError(
            f"ONNX conversion failed ({type(e).__name__}: {first}); the pipeline "
            f"cannot be served, so it is not registered"
        ) from None
    data: bytes = model.SerializeToString()
    OnnxModel(data).check_signature(n_features, classifier)
    return data


@dataclass(frozen=True)
class OnnxPrediction:
    labels: np.ndarray | None  # int64 [N] (classification)
    probabilities: np.ndarray | None  # float32 [N, C]
    values: np.ndarray | None  # float32 [N] (regression)


class OnnxModel:
    """An ONNX Runtime session over model bytes (CPU, no graph dumps).

    One intra-op thread by default: tree-ensemble sums are then always added in the same order, so
    a model scores the same rows identically whether it is the candidate or, later, the champion
    (with more threads the last bits of float32 probabilities can differ between runs).
    """

    def __init__(self, data: bytes, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise TrainingRejectedError(
                f"the ONNX model cannot be loaded by onnxruntime ({type(e).__name__}: {str(e)[:300]})"
            ) from None
        self.outputs = [o.name for o in self.session.get_outputs()]

    def check_signature(self, n_features: int, classifier: bool) -> None:
        inputs = self.session.get_inputs()
        expected = CLASSIFIER_OUTPUTS if classifier else REGRESSOR_OUTPUTS
        problems = []
        if len(inputs) != 1 or inputs[0].name != ONNX_INPUT_NAME or inputs[0].type != "tensor(float)":
            problems.append(
                f"inputs {[(i.name, i.type) for i in inputs]} (expected one float tensor {ONNX_INPUT_NAME!r})"
            )
        elif inputs[0].shape[1] != n_features:
            problems.append(f"input width {inputs[0].shape[1]} (expected {n_features})")
        if tuple(self.outputs) != expected:
            problems.append(f"outputs {self.outputs} (expected {list(expected)})")
        if problems:
            raise TrainingRejectedError("the ONNX model breaks the serving signature: " + "; ".join(problems))

    def predict(self, X: np.ndarray) -> OnnxPrediction:
        """Run the graph; a graph that fails or answers in the wrong shape is refused, never a crash."""
        try:
            res = self.session.run(None, {ONNX_INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})
        except Exception as e:  # onnxruntime's own Fail/InvalidArgument/RuntimeException types
            raise TrainingRejectedError(
                f"the ONNX model fails on {len(X)} row(s) ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
            ) from None
        named = dict(zip(self.outputs, res, strict=True))
        if "probabilities" in named:
            labels, probs = np.asarray(named["label"]).reshape(-1), np.asarray(named["probabilities"])
            if probs.ndim != 2 or probs.shape[0] != len(X) or labels.shape[0] != len(X):
                raise TrainingRejectedError(
                    f"the ONNX model answers {len(X)} row(s) with probabilities of shape "
                    f"{probs.shape} and {labels.shape[0]} label(s)"
                )
            return OnnxPrediction(labels=labels, probabilities=probs, values=None)
        values = np.asarray(named["variable"])
        if values.size != len(X):
            raise TrainingRejectedError(f"the ONNX model answers {len(X)} row(s) with {values.size} value(s)")
        return OnnxPrediction(labels=None, probabilities=None, values=values.reshape(-1))


def parity(pipeline: Pipeline, model: OnnxModel, X: np.ndarray, classifier: bool) -> dict[str, Any]:
    """Compare scikit-learn and ONNX Runtime on ``X``; refuse unless they agree.

    Classification: max |Δ probability| ≤ 1e-5 and identical labels wherever scikit-learn's top two
    probabilities differ by more than twice that (exact ties are decided by float32 rounding). Regression: |Δ value| ≤
    1e-5 · max(1, |value|) (float32 outputs cannot hold 1e-5 absolute above ~100).
    """
    onnx_pred = model.predict(X)
    if classifier:
        assert onnx_pred.probabilities is not None and onnx_pred.labels is not None
        ref = pipeline.predict_proba(X)
        diff = float(np.max(np.abs(ref - onnx_pred.probabilities))) if len(X) else 0.0
        ref_labels = np.asarray(pipeline.predict(X)).astype(np.int64)
        # A label counts as mismatched unless scikit-learn's top two probabilities tie within the
        # tolerance: an exact tie (a forest's 10 of 20 votes) is split by float32 rounding in ONNX.
        top2 = np.sort(ref, axis=1)[:, -2:] if ref.shape[1] > 1 else np.zeros((len(X), 2))
        decided = (top2[:, 1] - top2[:, 0]) > 2 * PARITY_TOLERANCE
        mismatched = int(np.sum((ref_labels != onnx_pred.labels) & decided))
        ok = diff <= PARITY_TOLERANCE and mismatched == 0
        report: dict[str, Any] = {
            "rows": len(X),
            "max_abs_diff": diff,
            "label_mismatches": mismatched,
            "tolerance": PARITY_TOLERANCE,
        }
    else:
        assert onnx_pred.values is not None
        ref_v = np.asarray(pipeline.predict(X), dtype=np.float64)
        abs_diff = np.abs(ref_v - onnx_pred.values)
        allowed = PARITY_TOLERANCE * np.maximum(1.0, np.abs(ref_v))
        diff = float(abs_diff.max()) if len(X) else 0.0
        worst = float((abs_diff / allowed).max()) if len(X) else 0.0
        ok = worst <= 1.0
        report = {
            "rows": len(X),
            "max_abs_diff": diff,
            "max_diff_over_tolerance": worst,
            "tolerance": f"{PARITY_TOLERANCE} * max(1, |value|)",
        }
        mismatched = 0
    if not ok:
        what = (
            f"max |probability difference| {diff:.3g} (limit {PARITY_TOLERANCE}), {mismatched} label mismatch(es)"
            if classifier
            else f"max |value difference| {diff:.3g} exceeds {PARITY_TOLERANCE} x max(1, |value|)"
        )
        raise TrainingRejectedError(
            f"ONNX parity check failed on {len(X)} validation rows: {what}; the "
            f"ONNX model would not serve what was evaluated, so it is refused"
        )
    return report
