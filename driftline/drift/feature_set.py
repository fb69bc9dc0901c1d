"""Profiles from a feature-set definition: the columns, kinds and per-feature overrides come from
the YAML, so training (which calls this) and monitoring agree on what is checked and how."""

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
    **kwargs: Any,
) -> Profile:
    """Profile ``data`` for the feature set's drift columns, plus a numerical ``prediction`` column.

    ``predictions`` are the model outputs for the same rows: the positive-class probability for
    binary classifiers (an ``[N, 2]`` probability matrix is accepted) or the regression value.
    """
    numerical, categorical, overrides = drift_columns(fs)
    if PREDICTION_COLUMN in fs.feature_names:
        raise DriftInputError(
            f"feature set {fs.name!r} has a feature named {PREDICTION_COLUMN!r}, which is reserved "
            f"for model outputs in drift profiles; rename the feature"
        )
    source = data
    prediction: list[str] = []
    if predictions is not None:
        pred = np.asarray(predictions, dtype=np.float64)
        if pred.ndim == 2 and pred.shape[1] == 2:
            pred = pred[:, 1]
        elif pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if pred.ndim != 1:
            raise DriftInputError(
                f"predictions must be one value per row (or an [N, 2] probability matrix), got shape {pred.shape}"
            )
        source = _with_column(data, [*numerical, *categorical], PREDICTION_COLUMN, pred)
        numerical = [*numerical, PREDICTION_COLUMN]
        prediction = [PREDICTION_COLUMN]
    meta = {**feature_set_metadata(fs, model, version), **(metadata or {})}
    return build_profile(
        source,
        numerical,
        categorical,
        overrides=overrides,
        prediction=prediction,
        sample_size=sample_size,
        metadata=meta,
        **kwargs,
    )


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
