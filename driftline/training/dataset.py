"""From a training table to model matrices: checks, encoding and the time split.

The input is a pyarrow Table or pandas DataFrame holding the entity, timestamp, feature and label
columns of a feature set. Everything a model sees goes through
:func:`driftline.features.encoding.encode_columns`, the mapping serving uses; this module only feeds
it whole NumPy columns (numerics) or each categorical column's distinct values (then expands the
codes), so large tables encode without a per-value Python loop and without a second mapping.

Problems with the data raise :class:`TrainingRejectedError` with the column, the count and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.encoding import encode_columns, model_features
from driftline.features.schema import FeatureSet, Label
from driftline.training.errors import TrainingRejectedError

WEIGHT_COLUMN = "_driftline_weight"
"""Training-table column of per-row sample weights (feedback rows: ``training.feedback.weight``; absent:
every row weighs 1). Only the fit is weighted: validation metrics count every holdout row once."""
FEEDBACK_COLUMN = "_driftline_feedback"
"""Training-table column, true on the rows made from feedback labels (absent: there are none). The time
split runs within each source (:func:`training_split`)."""


def to_arrow(data: Any) -> pa.Table:
    """Accept a pyarrow Table or a pandas DataFrame (anything with ``to_arrow``-like conversion)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is in the training image
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"training data must be a pyarrow Table or a pandas DataFrame, not {type(data).__name__}")


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col


def timestamps_us(table: pa.Table, name: str) -> np.ndarray:
    """Epoch microseconds (int64) of a timestamp, date or ISO-8601 string column; nulls refused."""
    col = _column(table, name)
    try:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.cast(col, pa.timestamp("us", tz="UTC"))
        elif pa.types.is_date(col.type):
            col = pc.cast(pc.cast(col, pa.date32()), pa.timestamp("us"))
        elif pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.timestamp("us", tz=col.type.tz))
        else:
            raise TypeError(col.type)
    except (pa.ArrowInvalid, TypeError) as e:
        raise TrainingRejectedError(
            f"timestamp column {name!r} has type {col.type} and cannot be read as "
            f"a time ({e}); store it as a timestamp or an ISO-8601 string"
        ) from None
    nulls = col.null_count
    if nulls:
        raise TrainingRejectedError(
            f"timestamp column {name!r} has {nulls} null value(s); every training "
            f"row needs an event time for the time split (fix or drop those rows)"
        )
    return np.asarray(pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _feature_values(feature: Mapping[str, Any], col: pa.ChunkedArray) -> np.ndarray:
    """One feature encoded through ``encode_columns`` (codes of distinct values, then expanded)."""
    schema = {"features": [feature]}
    name = feature["name"]
    kind = feature["type"]
    if kind in ("int", "float"):
        t = col.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
            if pa.types.is_boolean(col.type):
                col = pc.cast(col, pa.int8())
            else:
                raise TrainingRejectedError(
                    f"feature {name!r} is declared {kind} but the column has type "
                    f"{col.type}; fix the data or the feature set definition"
                )
        values = col.to_numpy(zero_copy_only=False)
        if values.dtype == object:  # an all-null column
            values = np.full(len(values), np.nan)
        return encode_columns(schema, {name: values})[:, 0]
    if kind == "bool" and pa.types.is_boolean(col.type) and col.null_count == 0:
        return encode_columns(schema, {name: col.to_numpy(zero_copy_only=False)})[:, 0]
    # categorical (and bool with nulls): encode each distinct value once, then gather by index
    encoded = pc.dictionary_encode(col.combine_chunks())
    distinct = encoded.dictionary.to_pylist()
    codes = encode_columns(schema, {name: distinct})[:, 0] if distinct else np.zeros(0, np.float32)
    idx = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    out = np.full(len(col), np.nan, dtype=np.float32)  # null -> NaN, as encode_columns maps None
    present = idx >= 0
    out[present] = codes[idx[present]]
    return out


def encode_table(schema: Mapping[str, Any], table: pa.Table) -> np.ndarray:
    """The [N, F] float32 model input for ``table`` under ``schema`` (an ``input_schema`` dict)."""
    feats = model_features(schema)
    missing = [f["name"] for f in feats if f["name"] not in table.column_names]
    if missing:
        raise TrainingRejectedError(
            f"the training table lacks model feature column(s) {', '.join(missing)}; "
            f"columns present: {', '.join(table.column_names)}"
        )
    out = np.empty((table.num_rows, len(feats)), dtype=np.float32)
    for j, f in enumerate(feats):
        out[:, j] = _feature_values(f, _column(table, f["name"]))
    return out


def label_targets(table: pa.Table, label: Label) -> np.ndarray:
    """Targets: class index (float, NaN for null) for classification, float value for regression."""
    if label.name not in table.column_names:
        raise TrainingRejectedError(
            f"no labels: the label column {label.name!r} is not in the training "
            f"table (columns: {', '.join(table.column_names)}); ingest labelled data"
        )
    col = _column(table, label.name)
    if col.null_count == len(col):
        raise TrainingRejectedError(
            f"no labels: every value of the label column {label.name!r} is null "
            f"({len(col)} rows); ingest labelled data first"
        )
    if label.task == "regression":
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            raise TrainingRejectedError(
                f"label {label.name!r} is a regression target but the column has type {col.type}; it must be numeric"
            )
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    classes = label.class_values
    index: dict[Any, int] = {}
    for i, c in enumerate(classes):
        index[c] = i
        index[str(c)] = i
    encoded = pc.dictionary_encode(col.combine_chunks())
    codes = np.full(len(encoded.dictionary), np.nan)
    unknown: dict[Any, int] = {}
    idx = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
    counts = np.bincount(idx[idx >= 0], minlength=len(codes))
    for d, v in enumerate(encoded.dictionary.to_pylist()):
        key = int(v) if isinstance(v, bool) or (isinstance(v, float) and v.is_integer()) else v
        found = index.get(v, index.get(key))
        if found is None:
            unknown[v] = int(counts[d])
        else:
            codes[d] = found
    out = np.full(len(idx), np.nan)
    out[idx >= 0] = codes[idx[idx >= 0]]
    if unknown:
        shown = ", ".join(f"{v!r} ({n}x)" for v, n in list(unknown.items())[:5])
        raise TrainingRejectedError(
            f"label {label.name!r} has value(s) outside its classes "
            f"{list(classes)}: {shown}; fix the data or the label's 'classes'"
        )
    return out


def _weights(table: pa.Table) -> np.ndarray | None:
    """The :data:`WEIGHT_COLUMN` values (None when absent); a null, negative or non-finite weight is refused."""
    if WEIGHT_COLUMN not in table.column_names:
        return None
    col = table.column(WEIGHT_COLUMN)
    try:
        w = np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise TrainingRejectedError(f"the weight column {WEIGHT_COLUMN!r} has type {col.type}, not a number") from None
    bad = int((~np.isfinite(w) | (w <= 0)).sum())
    if bad:
        raise TrainingRejectedError(
            f"the weight column {WEIGHT_COLUMN!r} has {bad} null, non-finite or non-positive value(s); "
            "every row needs a weight above 0"
        )
    return w


@dataclass(frozen=True)
class Split:
    """A time split: train on rows before ``cutoff_us``, validate on the rest."""

    train: np.ndarray  # row indices
    validation: np.ndarray
    cutoff_us: int
    feedback_cutoff_us: int | None = None
    """The feedback rows' own cutoff (:func:`training_split`); None: one split over all rows."""

    def describe(self, ts: np.ndarray) -> dict[str, Any]:
        def iso(us: int) -> str:
            return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat()

        per_source = {} if self.feedback_cutoff_us is None else {"feedback_cutoff": iso(self.feedback_cutoff_us)}
        return {
            "strategy": "time" if self.feedback_cutoff_us is None else "time_per_source",
            **per_source,
            "cutoff": iso(self.cutoff_us),
            "train_rows": int(self.train.size),
            "validation_rows": int(self.validation.size),
            "train_range": [iso(int(ts[self.train].min())), iso(int(ts[self.train].max()))],
            "validation_range": [iso(int(ts[self.validation].min())), iso(int(ts[self.validation].max()))],
        }


def time_split(ts: np.ndarray, validation_fraction: float, timestamp: str) -> Split:
    """Older rows train, the newest ``validation_fraction`` validate; equal timestamps stay together."""
    if not 0.0 < validation_fraction < 1.0:
        raise TrainingRejectedError(
            f"validation_fraction must be between 0 and 1 (exclusive), not "
            f"{validation_fraction}; set params.validation_fraction in the model config"
        )
    order = np.argsort(ts, kind="stable")
    n = ts.size
    k = min(n - 1, max(1, round(n * (1.0 - validation_fraction))))
    cutoff = int(ts[order[k]])
    train = np.flatnonzero(ts < cutoff)
    validation = np.flatnonzero(ts >= cutoff)
    if train.size == 0 or validation.size == 0:
        raise TrainingRejectedError(
            f"cannot split by time: the {n} labelled rows span only "
            f"{np.unique(ts).size} distinct value(s) of {timestamp!r}; training "
            f"needs older rows to learn from and newer rows to validate on"
        )
    return Split(train=train, validation=validation, cutoff_us=cutoff)


def training_split(table: pa.Table, ts: np.ndarray, validation_fraction: float, timestamp: str) -> Split:
    """The time split, run within each source when the table holds feedback rows (:data:`FEEDBACK_COLUMN`).

    Feedback rows are the newest rows there are (recent traffic), so one split over all rows would put
    them all in the holdout whenever they are fewer than ``validation_fraction`` of the table, and the
    model would never train on them. Within each source, the older rows train and the newest validate:
    every holdout row is still newer than the training rows of its own source, and the holdout holds the
    newest traffic the model will serve. Feedback rows whose times cannot be split (one distinct
    timestamp) all train. Without uploads, or without feedback rows, this is :func:`time_split`.
    """
    if FEEDBACK_COLUMN not in table.column_names:
        return time_split(ts, validation_fraction, timestamp)
    flags = pc.fill_null(table.column(FEEDBACK_COLUMN), False)
    fb = np.asarray(flags.to_numpy(zero_copy_only=False), dtype=bool)
    if fb.all() or not fb.any():
        return time_split(ts, validation_fraction, timestamp)
    uploads, feedback = np.flatnonzero(~fb), np.flatnonzero(fb)
    up = time_split(ts[uploads], validation_fraction, timestamp)
    try:
        own = time_split(ts[feedback], validation_fraction, timestamp)
        fb_train, fb_val, fb_cutoff = feedback[own.train], feedback[own.validation], own.cutoff_us
    except TrainingRejectedError:
        fb_train, fb_val, fb_cutoff = feedback, feedback[:0], int(ts[feedback].max()) + 1
    return Split(
        train=np.sort(np.concatenate([uploads[up.train], fb_train])),
        validation=np.sort(np.concatenate([uploads[up.validation], fb_val])),
        cutoff_us=up.cutoff_us,
        feedback_cutoff_us=fb_cutoff,
    )


@dataclass(frozen=True)
class PreparedData:
    """Everything the fit and the evaluation need, already encoded."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    validation_table: pa.Table
    split: dict[str, Any]
    rows_total: int
    rows_unlabeled: int
    w_train: np.ndarray | None = None
    """Sample weights of the training rows (None: the table has no weight column, every row weighs 1)."""


def prepare(data: Any, fs: FeatureSet, *, min_rows: int, validation_fraction: float) -> PreparedData:
    """Check the table, drop unlabelled rows, encode and split it by time."""
    table = to_arrow(data)
    label = fs.label
    if label is None:
        raise TrainingRejectedError(f"feature set {fs.name!r} defines no label; add one under 'labels' to train on it")
    if fs.timestamp not in table.column_names:
        raise TrainingRejectedError(
            f"the training table lacks the timestamp column {fs.timestamp!r} "
            f"needed for the time split (columns: {', '.join(table.column_names)})"
        )
    y_all = label_targets(table, label)
    labelled = ~np.isnan(y_all)
    weights = _weights(table)
    rows_total = table.num_rows
    if not labelled.all():
        table = table.filter(pa.array(labelled))
        y_all = y_all[labelled]
        weights = None if weights is None else weights[labelled]
    n = table.num_rows
    if n < min_rows:
        raise TrainingRejectedError(
            f"only {n} labelled row(s) (of {rows_total}); at least {min_rows} are "
            f"required (retrain.min_training_rows in the model config)"
        )
    schema = fs.input_schema()
    X = encode_table(schema, table)
    names = [f["name"] for f in model_features(schema)]
    empty = [names[j] for j in np.flatnonzero(np.isnan(X).all(axis=0))]
    if empty:
        raise TrainingRejectedError(
            f"feature(s) {', '.join(empty)} are null in all {n} labelled rows (or "
            f"hold only values outside their categories); fix the upstream data or "
            f"drop the feature"
        )
    if label.task != "regression":
        present = np.unique(y_all).astype(int)
        if present.size < 2:
            only = label.class_values[present[0]]
            raise TrainingRejectedError(
                f"one class only: every labelled row has {label.name} = {only!r}; "
                f"a classifier needs examples of at least two classes"
            )
    ts = timestamps_us(table, fs.timestamp)
    split = training_split(table, ts, validation_fraction, fs.timestamp)
    y_train, y_val = y_all[split.train], y_all[split.validation]
    if label.task != "regression":
        for part, y in (("training", y_train), ("validation", y_val)):
            if np.unique(y).size < 2:
                only = label.class_values[int(y[0])]
                raise TrainingRejectedError(
                    f"the {part} period (time split at {split.describe(ts)['cutoff']}) has only "
                    f"{label.name} = {only!r}; both periods need at least two classes: add data or change "
                    f"params.validation_fraction ({validation_fraction})"
                )
        y_train, y_val = y_train.astype(np.int64), y_val.astype(np.int64)
    described = split.describe(ts)
    if weights is not None:  # rows not weighing 1 (feedback rows) in each period
        described["weighted_rows"] = {
            "train": int((weights[split.train] != 1.0).sum()),
            "validation": int((weights[split.validation] != 1.0).sum()),
        }
    return PreparedData(
        X_train=X[split.train],
        y_train=y_train,
        X_val=X[split.validation],
        y_val=y_val,
        validation_table=table.take(pa.array(split.validation)),
        split=described,
        rows_total=rows_total,
        rows_unlabeled=rows_total - n,
        w_train=None if weights is None else weights[split.train],
    )
