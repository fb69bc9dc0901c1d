"""The one mapping from feature values to the model's numeric input.

Training and serving both call this, so a category can never mean one code at training time and
another at serving time. NumPy only (no pandas, no pyarrow): it runs on the serving fast path.

Encoding, in ``input_schema["features"]`` order:
- int/float: the value as float32; null -> NaN.
- bool: 1.0 / 0.0; null -> NaN.
- categorical: the index of the value in the feature's ``categories``; null or unknown -> NaN.
- string/timestamp features are not model inputs (they are skipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MODEL_INPUT_TYPES = ("int", "float", "bool", "categorical")
ONNX_INPUT_NAME = "X"
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest magnitude the float32 model input holds: ingest refuses larger numbers, serving too."""


def model_features(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The features (from an ``input_schema`` dict) that are model inputs, in order."""
    return [f for f in schema["features"] if f["type"] in MODEL_INPUT_TYPES]


def category_index(feature: Mapping[str, Any]) -> dict[Any, float]:
    """value -> code for one categorical feature (codes are positions in ``categories``)."""
    return {c: float(i) for i, c in enumerate(feature["categories"] or ())}


def encode_columns(schema: Mapping[str, Any], columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
    """Encode whole columns (lists or numpy arrays, None/NaN for null) into an [N, F] float32 matrix.

    Unknown categories become NaN here; rejecting them is the caller's policy decision.
    """
    feats = model_features(schema)
    n = len(next(iter(columns.values()))) if columns else 0
    out = np.full((n, len(feats)), np.nan, dtype=np.float32)
    for j, f in enumerate(feats):
        col = columns[f["name"]]
        if f["type"] == "categorical":
            codes = category_index(f)
            out[:, j] = [codes.get(v, np.nan) if v is not None else np.nan for v in col]
        elif f["type"] == "bool":
            if isinstance(col, np.ndarray) and col.dtype.kind == "b":  # null-free bool array: no loop
                out[:, j] = col
                continue
            arr = np.asarray(col, dtype=object)
            out[:, j] = [
                np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else (1.0 if v else 0.0) for v in arr
            ]
        elif isinstance(col, np.ndarray) and col.dtype.kind in "fiu":  # numeric array: same cast, no loop
            out[:, j] = col
        else:
            arr = np.asarray([np.nan if v is None else v for v in col], dtype=np.float64)
            out[:, j] = arr
    return out
