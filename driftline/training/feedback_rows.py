"""Feedback labels as training rows: captured features joined to the labels that count for them.

A capture holds the features exactly as the model saw them when it predicted, so a capture joined to
its label (by the row id the answer returned and the label names) is point-in-time correct by
construction: nothing the model could not have known at prediction time is in the row. The rows take
the shape of the feature-store training table (entity, timestamp, labels, features,
``feature_timestamp``), so the same training core fits them, plus the sample-weight column
(:data:`~driftline.training.dataset.WEIGHT_COLUMN`) the core passes to the estimator's ``fit``.

What counts is decided once, elsewhere: the captures reader (:class:`driftline.captures_store.CapturesStore`)
de-duplicates deliveries, and the label binding (:mod:`driftline.serving.labels`) keeps a label only when
its submitter made the prediction or is a configured labeler, the first one stored winning. This module
adds the training rules:

- a row of a test request (``X-Driftline-Test``) is never trained on; its labels are counted;
- a label of the wrong type for the feature set's label (not a finite number for a regression target,
  not one of the classes for a classifier) is counted and never trained on;
- a label whose request id names no capture in the window is counted as unknown;
- a prediction answered by several versions (shadow, canary) is one row: the features are the same;
- any model version's captures are used: the features are what matters, not who answered;
- a feedback row whose entity and timestamp equal an uploaded row's is dropped: the upload is the
  curated record of that event (captures rarely carry the entity, so this is rare);
- fewer usable labels than ``min_labels``: no feedback row is used, and the lineage says why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.capture_format import is_test
from driftline.captures_store import CapturesStore, ReadStats, label_for
from driftline.contracts import record_time
from driftline.features.schema import FeatureSet, Label
from driftline.features.tables import curated_schema
from driftline.features.training_set import FEATURE_TIMESTAMP
from driftline.serving.labels import Labels
from driftline.training.dataset import FEEDBACK_COLUMN, WEIGHT_COLUMN

__all__ = [
    "FeedbackStats",
    "combine",
    "feedback_rows",
    "label_problem",
    "read_feedback_rows",
    "table_schema",
]


@dataclass
class FeedbackStats:
    """What the join saw; the ``feedback`` entry of the training-set lineage."""

    weight: float
    labels_read: int = 0
    """Request ids with at least one label stored in the window."""
    used: int = 0
    """Feedback rows trained on."""
    usable: int = 0
    """Rows the join produced (before ``min_labels`` and the de-duplication against uploads)."""
    unknown_request_ids: int = 0
    """Labelled request ids with no capture in the window."""
    wrong_type: int = 0
    """Captures whose label that counts is not a valid value of the feature set's label."""
    test_traffic_skipped: int = 0
    """Labelled request ids of test-traffic captures."""
    not_counted: int = 0
    """Captures that had labels, none of them from the caller or a labeler (label binding)."""
    malformed_features: int = 0
    """Captures without a features object, or with feature values that do not fit the feature set."""
    duplicates_of_uploads: int = 0
    """Feedback rows dropped because an uploaded row has the same entity and timestamp."""
    captures_read: int = 0
    truncated: bool = False
    """The capture read stopped at ``max_rows``: labels of older captures may show as unknown."""
    window: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None
    """Why no feedback row was used, when none was."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label_problem(value: Any, label: Label) -> str | None:
    """Why ``value`` cannot train ``label`` (None: it can). Booleans are never numbers or classes here."""
    if isinstance(value, bool):
        return "a boolean"
    if label.task == "regression":
        if not isinstance(value, int | float) or not math.isfinite(value):
            return f"{type(value).__name__} {value!r}, not a finite number"
        return None
    if not isinstance(value, float) and value in label.class_values:  # the feedback route's rule
        return None
    return f"{value!r}, not one of the classes {list(label.class_values)}"


def _class_value(value: Any, label: Label) -> Any:
    """The label as the training table stores it (the class as the feature set names it)."""
    return float(value) if label.task == "regression" else value


def table_schema(fs: FeatureSet) -> pa.Schema:
    """The training table's columns as :func:`~driftline.features.training_set.build_training_set`
    writes them (every field nullable: feedback rows may lack the entity), plus the weight."""
    curated = curated_schema(fs)
    names = [*fs.entity, fs.timestamp, *(lb.name for lb in fs.labels), *fs.feature_names]
    fields = [curated.field(n).with_nullable(True) for n in names]
    fields.append(pa.field(FEATURE_TIMESTAMP, curated.field(fs.timestamp).type))
    fields.append(pa.field(WEIGHT_COLUMN, pa.float64()))
    fields.append(pa.field(FEEDBACK_COLUMN, pa.bool_()))
    return pa.schema(fields)


def _column(values: list[Any], typ: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """The values as ``typ``, and which rows had a value that does not fit (kept as null)."""
    bad = np.zeros(len(values), dtype=bool)
    try:
        return pa.array(values, type=typ), bad
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    fixed: list[Any] = []
    for i, v in enumerate(values):
        try:
            pa.array([v], type=typ)
            fixed.append(v)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            fixed.append(None)
            bad[i] = True
    return pa.array(fixed, type=typ), bad


def _rows_table(fs: FeatureSet, rows: list[tuple[datetime, Mapping[str, Any], Any]], weight: float) -> pa.Table:
    schema = table_schema(fs)
    assert fs.label is not None
    label_name = fs.label.name
    arrays: dict[str, pa.Array] = {}
    bad = np.zeros(len(rows), dtype=bool)
    stamps = pa.array([ts for ts, _, _ in rows], type=schema.field(fs.timestamp).type)
    carried = [f for f in schema if f.name in fs.entity or f.name in fs.feature_names]
    try:  # the common case in one pass in Arrow: every value fits its column
        direct: pa.Table | None = pa.Table.from_pylist([feats for _, feats, _ in rows], schema=pa.schema(carried))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        direct = None  # some value does not fit: column by column, finding the rows
    for f in schema:
        if f.name in (fs.timestamp, FEATURE_TIMESTAMP):
            arrays[f.name] = stamps
        elif f.name == WEIGHT_COLUMN:
            arrays[f.name] = pa.array(np.full(len(rows), weight, dtype=np.float64))
        elif f.name == FEEDBACK_COLUMN:
            arrays[f.name] = pa.array(np.ones(len(rows), dtype=bool))
        elif f.name == label_name:
            arrays[f.name], _ = _column([value for _, _, value in rows], f.type)
        elif direct is not None:
            arrays[f.name] = direct.column(f.name).combine_chunks()
        elif f.name in fs.entity or f.name not in fs.feature_names:  # entity: only if the request carried it
            arrays[f.name], _ = _column([feats.get(f.name) for _, feats, _ in rows], f.type)
        else:
            arrays[f.name], wrong = _column([feats.get(f.name) for _, feats, _ in rows], f.type)
            bad |= wrong
    table = pa.table(arrays, schema=schema)
    return table.filter(pa.array(~bad)) if bad.any() else table


def feedback_rows(
    fs: FeatureSet, captures: Iterable[Mapping[str, Any]], labels: Labels, *, weight: float
) -> tuple[pa.Table, FeedbackStats]:
    """Join captured rows (row views of :meth:`CapturesStore.captures`, test rows included) to the labels
    that count for them.

    Parameters
    ----------
    fs:
        The model's feature set (its label decides which label values are valid).
    captures:
        Capture row views (``request_id``, ``ts``, ``features``, optional ``caller`` and ``test``).
    labels:
        The labels of the window, bound to callers.
    weight:
        The sample weight of every row.

    Returns
    -------
    tuple[pyarrow.Table, FeedbackStats]
        The rows in :func:`table_schema`, sorted by timestamp, and the counts.
    """
    label = fs.label
    if label is None:
        raise ValueError(f"feature set {fs.name!r} defines no label")
    stats = FeedbackStats(weight=weight)
    labelled = labels.request_ids()
    stats.labels_read = len(labelled)
    seen: set[str] = set()
    test_ids: set[str] = set()
    rows: list[tuple[datetime, Mapping[str, Any], Any]] = []
    for cap in captures:
        rid = cap.get("request_id")
        if not isinstance(rid, str) or rid in seen:
            continue
        seen.add(rid)
        stats.captures_read += 1
        if is_test(cap):
            test_ids.add(rid)
            continue
        found, value = label_for(labels, cap)
        if not found:
            stats.not_counted += rid in labelled
            continue
        if label_problem(value, label) is not None:
            stats.wrong_type += 1
            continue
        ts, feats = record_time(cap.get("ts")), cap.get("features")
        if ts is None or not isinstance(feats, Mapping):
            stats.malformed_features += 1
            continue
        rows.append((ts.astimezone(UTC), feats, _class_value(value, label)))
    stats.test_traffic_skipped = len(labelled & test_ids)
    stats.unknown_request_ids = len(labelled - seen)
    table = _rows_table(fs, rows, weight)
    stats.malformed_features += len(rows) - table.num_rows
    stats.usable = stats.used = table.num_rows
    return table.sort_by([(fs.timestamp, "ascending")]), stats


def read_feedback_rows(
    fs: FeatureSet,
    bucket: str,
    model: str,
    *,
    now: datetime,
    max_age_days: int,
    max_rows: int,
    weight: float,
    labelers: Iterable[str] = (),
    client: Any | None = None,
) -> tuple[pa.Table, FeedbackStats]:
    """Read the last ``max_age_days`` of captures and labels of ``model`` and join them.

    Captures are read a day at a time from the newest day back, so when ``max_rows`` cuts the read the
    rows kept are the most recent (what a retraining after drift needs). Labels are read over the whole
    window: a label for a capture the budget left out is then counted as unknown, and ``truncated`` says so.
    """
    store = CapturesStore(bucket, client)
    start = now - timedelta(days=max_age_days)
    labels = store.labels(model, start, now, labelers=labelers)
    read = ReadStats()

    def captured() -> Iterable[dict[str, Any]]:
        end, left = now, max_rows
        while end > start and left > 0:
            day_start = max(start, end - timedelta(days=1))
            for row in store.captures(
                model, day_start, end, stats=read, max_records=left, include_end=end == now, include_test=True
            ):
                left -= 1
                yield row
            end = day_start
        read.truncated = left <= 0

    table, stats = feedback_rows(fs, captured(), labels, weight=weight)
    stats.truncated = read.truncated
    stats.window = {"start": start.isoformat(), "end": now.isoformat()}
    return table, stats


def _keys(table: pa.Table, fs: FeatureSet, rows: pa.Array | None = None) -> set[tuple[Any, ...]]:
    cols = [*fs.entity, fs.timestamp]
    part = table.select(cols) if rows is None else table.select(cols).filter(rows)
    return set(zip(*(part.column(c).to_pylist() for c in cols), strict=True))


def combine(
    uploads: pa.Table | None, feedback: pa.Table, fs: FeatureSet, stats: FeedbackStats, *, min_labels: int
) -> pa.Table:
    """The training table: the uploads' rows (weight 1) and the feedback rows that are used.

    Feedback rows are dropped when there are fewer than ``min_labels`` of them (``stats.skipped`` says
    so) and where an uploaded row has the same entity and timestamp. Returns the uploads unchanged
    (without a weight column) when no feedback row is used.
    """
    if feedback.num_rows < min_labels:
        stats.used = 0
        stats.skipped = f"{feedback.num_rows} usable label(s), fewer than training.feedback.min_labels ({min_labels})"
        if uploads is None:
            return feedback.slice(0, 0)
        return uploads
    if uploads is None:
        return feedback
    schema = table_schema(fs)
    base = uploads.select([f.name for f in schema if f.name not in (WEIGHT_COLUMN, FEEDBACK_COLUMN)])
    base = base.append_column(WEIGHT_COLUMN, pa.array(np.ones(base.num_rows, dtype=np.float64)))
    base = base.append_column(FEEDBACK_COLUMN, pa.array(np.zeros(base.num_rows, dtype=bool)))
    base = base.cast(schema)
    if all(feedback.column(e).null_count < feedback.num_rows for e in fs.entity):
        same_time = pc.is_in(base.column(fs.timestamp), value_set=feedback.column(fs.timestamp).combine_chunks())
        taken = _keys(base, fs, same_time)
        if taken:
            keep = [
                k not in taken
                for k in zip(*(feedback.column(c).to_pylist() for c in [*fs.entity, fs.timestamp]), strict=True)
            ]
            stats.duplicates_of_uploads = keep.count(False)
            feedback = feedback.filter(pa.array(keep))
    stats.used = feedback.num_rows
    return pa.concat_tables([base, feedback])
