"""The training table as a pandas DataFrame in natural dtypes: what a notebook fits on.

Built-in training works on the encoded float32 matrix; a data scientist's own pipeline works on a
DataFrame with one column per feature. Two frames come from here, and both follow the feature set:

- :func:`training_frame` — what :func:`driftline.load_training_set` returns: labelled rows only,
  the entity and timestamp columns, every model feature (categoricals as strings, ``NaN`` for
  null; floats as ``float32``; ints as ``int64``, or ``float64`` when the column has nulls or values
  beyond 2**24 (rounded as float32 rounds them, which is what the endpoint computes on); booleans
  as ``bool``, or ``float64`` 1.0/0.0/NaN when nulls occur), the label (class values as the feature
  set names them) and a ``split`` column holding the built-in training's time split
  (``train``/``validation``). Floats are float32 because the endpoint computes on float32 inputs:
  a tree fitted on float64 values puts thresholds between values that float32 cannot tell apart, so
  a request could go down another branch than the notebook's row did.
- :func:`served_frame` — the rows exactly as serving will feed them, decoded back from the float32
  model input (numbers rounded to float32, unknown categories as null). Parity checks compare the
  scikit-learn pipeline and its ONNX graph on these rows, so "parity holds" means "the endpoint
  answers what the notebook's ``predict`` answers for the same request".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.encoding import model_features
from driftline.features.schema import FeatureSet
from driftline.training.dataset import label_targets, timestamps_us, to_arrow, training_split
from driftline.training.errors import TrainingRejectedError

__all__ = ["SPLIT_COLUMN", "TRAIN", "VALIDATION", "label_values", "served_frame", "training_frame"]

FLOAT32_EXACT_INT = 2**24
"""Integers up to this magnitude are exact in the float32 model input."""
SPLIT_COLUMN = "split"
"""Column of :func:`training_frame` holding ``train`` or ``validation`` (the built-in time split)."""
TRAIN, VALIDATION = "train", "validation"


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    """float64 values, NaN for null (Arrow's cast; values of an untyped column coerced one by one)."""
    try:
        return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return np.asarray(pd.to_numeric(pd.Series(col.to_pylist(), dtype=object), errors="coerce"), dtype=np.float64)


def _natural(col: pa.ChunkedArray, kind: str) -> np.ndarray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if kind == "categorical":
        values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)
        values[pd.isna(values)] = np.nan
        return values
    if kind == "bool":
        if col.null_count == 0 and pa.types.is_boolean(col.type):
            return np.asarray(col.to_numpy(zero_copy_only=False), dtype=bool)
        return _floats(col)
    if kind == "int" and col.null_count == 0 and pa.types.is_integer(col.type):
        ints = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
        if ints.size == 0 or np.abs(ints).max() <= FLOAT32_EXACT_INT:
            return ints
        return ints.astype(np.float32).astype(np.float64)  # as served: beyond 2**24 float32 rounds
    values = _floats(col)
    # as served: the model input is float32 (ints beyond 2**24 round there too)
    return values.astype(np.float32) if kind == "float" else values.astype(np.float32).astype(np.float64)


def label_values(fs: FeatureSet, codes: np.ndarray) -> np.ndarray:
    """Class indices (as :func:`label_targets` gives them) -> the feature set's class values."""
    label = fs.label
    assert label is not None
    if label.task == "regression":
        return np.asarray(codes, dtype=np.float64)
    classes = np.asarray(list(label.class_values), dtype=object)
    out = classes[np.asarray(codes, dtype=np.int64)]
    if all(isinstance(c, int) for c in label.class_values):
        return out.astype(np.int64)
    return out


def training_frame(data: Any, fs: FeatureSet, validation_fraction: float) -> pd.DataFrame:
    """Labelled rows of ``data`` as a DataFrame with the built-in time split in ``split``.

    Raises :class:`TrainingRejectedError` when the table cannot be trained on (no label column, no
    timestamps, a single timestamp), with the same messages as built-in training.
    """
    label = fs.label
    if label is None:
        raise TrainingRejectedError(f"feature set {fs.name!r} defines no label; add one under 'labels' to train on it")
    table = to_arrow(data)
    if fs.timestamp not in table.column_names:
        raise TrainingRejectedError(
            f"the training table lacks the timestamp column {fs.timestamp!r} (columns: {', '.join(table.column_names)})"
        )
    y = label_targets(table, label)
    labelled = ~np.isnan(y)
    if not labelled.all():
        table = table.filter(pa.array(labelled))
        y = y[labelled]
    if table.num_rows == 0:
        raise TrainingRejectedError(f"no labelled rows: every value of {label.name!r} is null")
    ts = timestamps_us(table, fs.timestamp)
    split = training_split(table, ts, validation_fraction, fs.timestamp)
    columns: dict[str, Any] = {}
    for name in fs.entity:
        if name in table.column_names:
            columns[name] = table.column(name).to_pandas()
    columns[fs.timestamp] = pd.to_datetime(ts, unit="us", utc=True)
    for f in model_features(fs.input_schema()):
        if f["name"] not in table.column_names:
            raise TrainingRejectedError(f"the training table lacks feature column {f['name']!r}")
        columns[f["name"]] = _natural(table.column(f["name"]), f["type"])
    columns[label.name] = label_values(fs, y)
    which = np.full(table.num_rows, TRAIN, dtype=object)
    which[split.validation] = VALIDATION
    columns[SPLIT_COLUMN] = which
    frame = pd.DataFrame(columns)
    frame.attrs["driftline"] = {
        "feature_set": fs.name,
        "feature_set_version": fs.version,
        "split": split.describe(ts),
        "validation_fraction": validation_fraction,
    }
    return frame


def served_frame(schema: Mapping[str, Any], X: np.ndarray) -> pd.DataFrame:
    """The model input ``X`` (float32, as serving builds it) decoded into one column per feature."""
    columns: dict[str, Any] = {}
    for j, f in enumerate(model_features(schema)):
        col = np.asarray(X[:, j], dtype=np.float64)
        if f["type"] == "categorical":
            cats = np.asarray([*list(f["categories"] or ()), np.nan], dtype=object)
            codes = np.where(np.isnan(col), len(cats) - 1, col).astype(np.int64)
            codes[(codes < 0) | (codes >= len(cats))] = len(cats) - 1
            columns[f["name"]] = cats[codes]
        else:
            columns[f["name"]] = col
    return pd.DataFrame(columns)
