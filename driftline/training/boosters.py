"""LightGBM and XGBoost model files -> ONNX with one float input (onnxmltools converts them).

A booster file carries no column names Driftline can match by type, so a booster is trained on the
feature set's encoded matrix: the model features in feature-set order, categoricals as category
codes and NaN for nulls (:func:`driftline.features.encoding.encode_columns`; the notebook helper
``driftline.training.dataset.encode_table`` builds it). Classifiers are trained on class indices
(the position of each class in the feature set's ``classes``).

Two corrections make the served graph decide as the booster does:

- thresholds: LightGBM compares ``x <= t`` with ``t`` in float64, while the converted tree ensemble
  stores ``t`` rounded to the *nearest* float32. For float32 inputs the exact float32 threshold is
  the largest float32 not above ``t``; the booster's own float64 thresholds (from its dump) are
  matched to the graph's nodes by feature and rounded value, and replaced. (XGBoost keeps float32
  thresholds itself: its graph is exact as converted.)
- parity: the graph is checked against the booster's own ``predict`` on the validation rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from driftline.training.errors import TrainingRejectedError

__all__ = ["ONNXMLTOOLS_OPSET", "Booster", "booster_to_onnx", "read_booster"]

ONNXMLTOOLS_OPSET = 15
"""The newest default-domain opset onnxmltools' booster converters support."""


@dataclass(frozen=True)
class Booster:
    """A loaded booster: its ONNX graph, its own predict (probabilities [N, C] or values [N])."""

    onnx: bytes
    predict: Callable[[np.ndarray], np.ndarray]
    classifier: bool


def _missing(package: str) -> TrainingRejectedError:
    return TrainingRejectedError(
        f"registering this file needs {package} and onnxmltools: pip install 'driftline[boosters]'"
    )


def _lightgbm_thresholds(booster: Any) -> Iterator[tuple[int, float]]:
    def walk(node: dict[str, Any]) -> Iterator[tuple[int, float]]:
        if "split_feature" in node:
            yield int(node["split_feature"]), float(node["threshold"])
            yield from walk(node["left_child"])
            yield from walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        yield from walk(tree["tree_structure"])


def exact_thresholds(model: Any, thresholds: list[tuple[int, float]]) -> int:
    """Replace each tree node's float32 threshold by the exact one for the booster's float64 threshold.

    Returns the number of nodes changed. A rounded value that several float64 thresholds of the same
    feature share, with different exact answers, is left as it is (the parity check decides).
    """
    from onnx import helper

    exact: dict[tuple[int, float, str], set[float]] = {}
    for feature, t in thresholds:
        with np.errstate(over="ignore"):  # a threshold beyond float32's range becomes +-inf, which compares exactly
            t32 = np.float32(t)
        below = t32 if float(t32) <= t else np.nextafter(t32, np.float32(-np.inf))
        above = t32 if float(t32) >= t else np.nextafter(t32, np.float32(np.inf))
        exact.setdefault((feature, float(t32), "BRANCH_LEQ"), set()).add(float(below))
        exact.setdefault((feature, float(t32), "BRANCH_LT"), set()).add(float(above))
    changed = 0
    for node in model.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: a for a in node.attribute}
        if "nodes_values" not in attrs:
            continue
        features = list(attrs["nodes_featureids"].ints)
        modes = [m.decode() for m in attrs["nodes_modes"].strings]
        values = list(attrs["nodes_values"].floats)
        for i, (f, mode, v) in enumerate(zip(features, modes, values, strict=True)):
            options = exact.get((f, float(np.float32(v)), mode))
            if options is not None and len(options) == 1:
                (new,) = options
                if new != values[i]:
                    values[i] = new
                    changed += 1
        node.attribute.remove(attrs["nodes_values"])
        node.attribute.append(helper.make_attribute("nodes_values", np.asarray(values, dtype=np.float32)))
    return changed


def read_booster(path: Path, data: bytes) -> Booster:
    """Load a LightGBM text model (``.txt``) or an XGBoost JSON/UBJ model (``.json``/``.ubj``).

    Raises
    ------
    TrainingRejectedError
        The library is not installed, or the file is not a model of that kind.
    """
    try:
        import onnx
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        raise _missing("onnxmltools") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".txt":
            try:
                import lightgbm
            except ImportError:
                raise _missing("lightgbm") from None
            booster = lightgbm.Booster(model_str=data.decode("utf-8"))
            width = int(booster.num_feature())
            objective = str(booster.dump_model().get("objective", ""))
            classifier = objective.startswith(("binary", "multiclass"))
            model = onnxmltools.convert_lightgbm(
                booster,
                initial_types=[("X", FloatTensorType([None, width]))],
                zipmap=False,
                target_opset=ONNXMLTOOLS_OPSET,
            )
            thresholds = list(_lightgbm_thresholds(booster))

            def predict(X: np.ndarray) -> np.ndarray:
                return np.asarray(booster.predict(X.astype(np.float64)))
        else:
            try:
                import xgboost
            except ImportError:
                raise _missing("xgboost") from None
            xb = xgboost.Booster()
            xb.load_model(bytearray(data))
            width = int(xb.num_features())
            objective = json.loads(xb.save_config())["learner"]["objective"]["name"]
            classifier = objective.startswith(("binary:", "multi:"))
            model = onnxmltools.convert_xgboost(
                xb, initial_types=[("X", FloatTensorType([None, width]))], target_opset=ONNXMLTOOLS_OPSET
            )
            thresholds = []  # XGBoost's thresholds are float32 already: the converted graph is exact

            def predict(X: np.ndarray) -> np.ndarray:
                return np.asarray(xb.predict(xgboost.DMatrix(X.astype(np.float32))))
    except TrainingRejectedError:
        raise
    except Exception as e:  # the libraries raise their own error types for corrupt files
        kind = "LightGBM text" if suffix == ".txt" else "XGBoost"
        raise TrainingRejectedError(
            f"{path.name}: not a readable {kind} model ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None
    exact_thresholds(model, thresholds)
    onnx.checker.check_model(model)

    def probabilities(X: np.ndarray) -> np.ndarray:
        out = predict(X)
        if classifier and out.ndim == 1:  # binary objectives answer P(class 1)
            return np.column_stack([1.0 - out, out])
        return out

    return Booster(onnx=bytes(model.SerializeToString()), predict=probabilities, classifier=classifier)


def booster_to_onnx(path: Path, data: bytes) -> bytes:
    """The ONNX graph of a booster file (see :func:`read_booster`)."""
    return read_booster(path, data).onnx
