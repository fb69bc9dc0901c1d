"""A tiny ONNX model with a known formula, for any input schema (tests, demos, smoke checks).

``p = sigmoid(sum_j w_j * x_j + b)`` over the encoded input with NaN replaced by 0, output
``probabilities = [1 - p, p]`` (or ``variable = logit`` for regression), following the ONNX
signature in docs/architecture.md. Because the formula is known, a caller can compute the exact
expected answer with numpy (:func:`expected`) and check what the endpoint returns.

Needs the ``onnx`` package, so it is never imported by the serving handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from driftline.features.encoding import ONNX_INPUT_NAME, model_features


def weights(schema: Mapping[str, Any], seed: int = 0) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    n = len(model_features(schema))
    return (rng.normal(0, 1, n) / np.sqrt(n) * 0.001).astype(np.float32), float(rng.normal(0, 0.1))


def build(schema: Mapping[str, Any], seed: int = 0, task: str = "classification") -> bytes:
    """Serialized ONNX bytes of the reference model for ``schema``."""
    from onnx import TensorProto, helper

    w, b = weights(schema, seed)
    n = len(w)
    init = [
        helper.make_tensor("W", TensorProto.FLOAT, [n, 1], w.tolist()),
        helper.make_tensor("B", TensorProto.FLOAT, [1], [b]),
        helper.make_tensor("ZERO", TensorProto.FLOAT, [1], [0.0]),
        helper.make_tensor("ONE", TensorProto.FLOAT, [1], [1.0]),
    ]
    nodes = [
        helper.make_node("IsNaN", [ONNX_INPUT_NAME], ["isnan"]),
        helper.make_node("Where", ["isnan", "ZERO", ONNX_INPUT_NAME], ["x0"]),
        helper.make_node("MatMul", ["x0", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["logit"]),
    ]
    if task == "regression":
        nodes.append(helper.make_node("Identity", ["logit"], ["variable"]))
        outputs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])]
    else:
        nodes += [
            helper.make_node("Sigmoid", ["logit"], ["p1"]),
            helper.make_node("Sub", ["ONE", "p1"], ["p0"]),
            helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label2d"], axis=1, keepdims=1),
            helper.make_node("Flatten", ["label2d"], ["labelf"], axis=0),
            helper.make_node("Squeeze", ["labelf", "AX0"], ["label"]),
        ]
        init.append(helper.make_tensor("AX0", TensorProto.INT64, [1], [0]))
        outputs = [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ]
    graph = helper.make_graph(
        nodes,
        "driftline_reference",
        [helper.make_tensor_value_info(ONNX_INPUT_NAME, TensorProto.FLOAT, [None, n])],
        outputs,
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="driftline")
    model.ir_version = 8
    return bytes(model.SerializeToString())


def expected(schema: Mapping[str, Any], X: np.ndarray, seed: int = 0) -> np.ndarray:
    """The positive-class probability (or regression value) the model gives for encoded ``X``."""
    w, b = weights(schema, seed)
    x0 = np.where(np.isnan(X), np.float32(0), X).astype(np.float32)
    logit = (x0 @ w.reshape(-1, 1)).reshape(-1) + np.float32(b)
    return np.asarray(1.0 / (1.0 + np.exp(-logit.astype(np.float64))))


def example_rows(schema: Mapping[str, Any], n: int, seed: int = 0, null_share: float = 0.1) -> list[dict[str, Any]]:
    """``n`` random records that satisfy ``schema`` (ranges, categories, nullability), JSON-ready."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for _ in range(n):
        row: dict[str, Any] = {}
        for f in schema["features"]:
            if f.get("nullable", True) and rng.random() < null_share:
                row[f["name"]] = None
                continue
            t = f["type"]
            lo = 0.0 if f.get("min") is None else float(f["min"])
            hi = lo + 1000.0 if f.get("max") is None else float(f["max"])
            if t == "int":
                row[f["name"]] = int(rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1))
            elif t == "float":
                row[f["name"]] = round(float(rng.uniform(lo, hi)), 4)
            elif t == "bool":
                row[f["name"]] = bool(rng.random() < 0.5)
            elif t == "categorical":
                cats = list(f["categories"])
                row[f["name"]] = cats[int(rng.integers(0, len(cats)))]
            elif t == "timestamp":
                row[f["name"]] = "2026-01-01T00:00:00+00:00"
            else:
                row[f["name"]] = f"s{int(rng.integers(0, 1000))}"
        rows.append(row)
    return rows
