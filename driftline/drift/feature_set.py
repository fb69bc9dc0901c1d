"""Profiles from a feature-set definition: the columns, kinds and per-feature overrides come from
the YAML, so training (which calls this) and monitoring agree on what is checked and how.

Training profiles the features of the rows the model learned from (train + holdout, evenly
subsampled to ``reference_rows``) and the ``prediction`` column from the holdout only: a small
holdout alone made unchanged columns look drifted (its own sampling noise is as large as the
Wasserstein threshold), while in-sample predictions are sharper than anything serving will see.
The profile also carries what monitoring needs besides distributions: the model's normalized
feature importances (importance-weighted drift share) and the feature set's declared bounds and
categories (data-quality checks, :mod:`driftline.drift.quality`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from driftline.drift.columns import _is_pandas
from driftline.drift.errors import DriftInputError
from driftline.drift.profile import DEFAULT_SAMPLE_SIZE, Profile, build_profile

if TYPE_CHECKING:
    from driftline.features.schema import FeatureSet

PREDICTION_COLUMN = "prediction"
DEFAULT_REFERENCE_ROWS = 100_000
"""Training rows profiled at most (evenly spaced over the table): beyond this the reference ECDF's
sampling error (about 1/sqrt(n)) is far below any drift threshold, and the profile of a
multi-million-row training set stays quick to build in the training function."""
IMPORTANCE_KEY = "feature_importance"
"""Profile metadata: feature -> normalized weight (the weights sum to 1), the model's importance."""
REFERENCE_KEY = "reference"
"""Profile metadata: which rows the profile came from (lineage)."""
BOUNDS_KEY = "bounds"
"""Profile metadata: numeric feature -> [min, max] declared by the feature set (either may be None)."""
CATEGORIES_KEY = "categories"
"""Profile metadata: categorical feature -> the categories the feature set declares."""


def feature_set_metadata(fs: FeatureSet, model: str | None = None, version: int | None = None) -> dict[str, Any]:
    """The metadata a profile carries so that checks can refuse a profile from another version."""
    meta: dict[str, Any] = {
        "feature_set": fs.name,
        "feature_set_version": fs.version,
        "feature_set_fingerprint": fs.fingerprint,
    }
    if model is not None:
        meta["model"] = model
    if version is not None:
        meta["version"] = int(version)
    return meta


def drift_columns(fs: FeatureSet) -> tuple[list[str], list[str], dict[str, dict[str, Any]]]:
    """(numerical, categorical, overrides) for the features whose drift check is enabled."""
    numerical, categorical, overrides = [], [], {}
    for f in fs.features:
        if not f.drift.enabled:
            continue
        if f.type in ("int", "float"):
            numerical.append(f.name)
        elif f.type in ("categorical", "bool"):
            categorical.append(f.name)
        else:
            continue  # string and timestamp features are not distributions we test
        o: dict[str, Any] = {}
        if f.drift.method != "auto":
            o["method"] = f.drift.method
        if f.drift.threshold is not None:
            o["threshold"] = f.drift.threshold
        if o:
            overrides[f.name] = o
    return numerical, categorical, overrides


def build_profile_for_feature_set(
    fs: FeatureSet,
    data: Any,
    predictions: Any = None,
    *,
    model: str | None = None,
    version: int | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    metadata: Mapping[str, Any] | None = None,
    holdout_predictions: Any = None,
    feature_importance: Mapping[str, float] | None = None,
    reference_rows: int | None = None,
    **kwargs: Any,
) -> Profile:
    """Profile ``data`` for the feature set's drift columns, plus a numerical ``prediction`` column.

    ``predictions`` are the model outputs for the same rows: the positive-class probability for
    binary classifiers (an ``[N, 2]`` probability matrix is accepted) or the regression value.
    ``holdout_predictions`` are outputs for *other* rows (the holdout) when ``data`` holds the
    training rows, whose in-sample predictions would be too sharp; give one of the two.
    ``feature_importance`` (feature -> importance, any scale) is stored normalized for
    importance-weighted drift. ``reference_rows`` caps the rows profiled (evenly spaced; None: all).
    """
    numerical, categorical, overrides = drift_columns(fs)
    if PREDICTION_COLUMN in fs.feature_names:
        raise DriftInputError(
            f"feature set {fs.name!r} has a feature named {PREDICTION_COLUMN!r}, which is reserved "
            f"for model outputs in drift profiles; rename the feature"
        )
    if predictions is not None and holdout_predictions is not None:
        raise DriftInputError("give predictions (for the profiled rows) or holdout_predictions (other rows), not both")
    features = [*numerical, *categorical]
    source, n_total = _subsample(data, features, reference_rows)
    prediction: list[str] = []
    if predictions is not None:
        pred = _prediction_values(predictions)
        if reference_rows is not None and n_total > reference_rows and pred.shape[0] == n_total:
            pred = pred[even_rows(n_total, reference_rows)]
        source = _with_column(source, features, PREDICTION_COLUMN, pred)
        numerical = [*numerical, PREDICTION_COLUMN]
        prediction = [PREDICTION_COLUMN]
    meta: dict[str, Any] = {**feature_set_metadata(fs, model, version), **quality_metadata(fs), **(metadata or {})}
    if feature_importance is not None:
        meta[IMPORTANCE_KEY] = normalized_importance(feature_importance, features)
    profile = build_profile(
        source,
        numerical,
        categorical,
        overrides=overrides,
        prediction=prediction,
        sample_size=sample_size,
        metadata=meta,
        **kwargs,
    )
    lineage = dict(profile.metadata.get(REFERENCE_KEY) or {})
    lineage.update({"rows_available": n_total, "rows_profiled": profile.n_rows})
    if holdout_predictions is not None:
        held = build_profile(
            {PREDICTION_COLUMN: _prediction_values(holdout_predictions)},
            [PREDICTION_COLUMN],
            prediction=[PREDICTION_COLUMN],
            sample_size=sample_size,
        )
        profile.columns[PREDICTION_COLUMN] = held.columns[PREDICTION_COLUMN]
        lineage["prediction_rows"] = held.n_rows
    profile.metadata[REFERENCE_KEY] = lineage
    return profile


def quality_metadata(fs: FeatureSet) -> dict[str, Any]:
    """The feature set's declared bounds and categories, for the data-quality checks of windows."""
    bounds = {f.name: [f.min, f.max] for f in fs.features if f.is_numeric and (f.min is not None or f.max is not None)}
    cats = {f.name: list(f.categories) for f in fs.features if f.categories}
    out: dict[str, Any] = {}
    if bounds:
        out[BOUNDS_KEY] = bounds
    if cats:
        out[CATEGORIES_KEY] = cats
    return out


def normalized_importance(importance: Mapping[str, float], columns: list[str]) -> dict[str, float]:
    """Non-negative weights over ``columns`` summing to 1 (negative or non-finite importances count 0).

    Refuses names that are not profiled columns (a weight for a column that is never tested would
    silently vanish); all-zero importances give an empty mapping, which means uniform weights.
    """
    unknown = sorted(set(importance) - set(columns))
    if unknown:
        raise DriftInputError(
            f"feature importance names columns that are not profiled: {', '.join(unknown)}; "
            f"profiled: {', '.join(columns)}"
        )
    clean = {}
    for name, value in importance.items():
        v = float(value)
        clean[name] = v if np.isfinite(v) and v > 0 else 0.0
    total = sum(clean.values())
    if total <= 0:
        return {}
    return {name: v / total for name, v in clean.items()}


def _prediction_values(predictions: Any) -> np.ndarray:
    pred = np.asarray(predictions, dtype=np.float64)
    if pred.ndim == 2 and pred.shape[1] == 2:
        pred = pred[:, 1]
    elif pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred[:, 0]
    if pred.ndim != 1:
        raise DriftInputError(
            f"predictions must be one value per row (or an [N, 2] probability matrix), got shape {pred.shape}"
        )
    return pred


def even_rows(n: int, k: int) -> np.ndarray:
    """``k`` row indices spread evenly over ``n`` rows (a time-ordered table keeps every period)."""
    return ((np.arange(k) + 0.5) * (n / k)).astype(np.int64)


def _subsample(data: Any, columns: list[str], limit: int | None) -> tuple[Any, int]:
    """``data`` (or at most ``limit`` evenly spaced rows of it) and its row count."""
    if limit is not None and limit < 1:
        raise DriftInputError(f"reference_rows={limit} must be at least 1 (or None for every row)")
    if isinstance(data, pa.Table | pa.RecordBatch):
        n = data.num_rows
        return (data.take(pa.array(even_rows(n, limit))) if limit is not None and n > limit else data), n
    if _is_pandas(data, "DataFrame"):
        n = len(data)
        return (data.iloc[even_rows(n, limit)] if limit is not None and n > limit else data), n
    if isinstance(data, Mapping):
        n = len(next(iter(data.values()))) if data else 0
        if limit is None or n <= limit:
            return data, n
        idx = even_rows(n, limit)
        return {c: np.asarray(data[c])[idx] for c in columns if c in data}, n
    return data, 0  # build_profile names the unsupported type


def _with_column(data: Any, columns: list[str], name: str, values: np.ndarray) -> dict[str, Any]:
    """A column mapping of ``data`` plus one extra column, without copying the data."""
    out: dict[str, Any]
    if _is_pandas(data, "DataFrame"):
        present = set(map(str, data.columns))
        out = {c: data[c] for c in columns if c in present}
        n = len(data)
    elif isinstance(data, pa.Table | pa.RecordBatch):
        out = {c: data.column(c) for c in columns if c in data.schema.names}
        n = data.num_rows
    elif isinstance(data, Mapping):
        out = {c: data[c] for c in columns if c in data}
        n = len(next(iter(data.values()))) if data else 0
    else:
        raise DriftInputError(
            f"unsupported data of type {type(data).__name__}; pass a pandas DataFrame, a pyarrow "
            f"Table or a dict of column name -> numpy array"
        )
    if values.shape[0] != n:
        raise DriftInputError(f"predictions have {values.shape[0]} values but the data has {n} rows")
    out[name] = values
    return out
