"""scikit-learn pipelines chosen by ``ModelConfig.algorithm``, with preprocessing from the feature set.

Every pipeline takes the float32 matrix of :func:`driftline.features.encoding.encode_columns`
(categoricals as category indices, NaN for null) and must convert to ONNX with identical results,
which decides the preprocessing:

- ``hist_gradient_boosting``: no preprocessing; NaN is handled natively and categorical codes are
  used as ordered numbers (skl2onnx ignores HistGradientBoosting's native categorical splits, so
  ``categorical_features`` would break parity).
- ``random_forest``: median imputation for numbers, -1 for missing categories/booleans (skl2onnx's
  forest converter does not reproduce scikit-learn's NaN routing).
- ``logistic_regression`` / ``linear_regression``: median imputation + standard scaling for numbers,
  most-frequent imputation for booleans, one-hot encoding of categories (unknown/missing -> all zeros).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from driftline.features.encoding import model_features
from driftline.training.errors import TrainingRejectedError

ALGORITHMS = ("hist_gradient_boosting", "random_forest", "logistic_regression", "linear_regression")
RESERVED_PARAMS = ("validation_fraction",)
"""Keys of ``ModelConfig.params`` that configure training rather than the estimator."""

_ESTIMATORS: dict[tuple[str, bool], Any] = {
    ("hist_gradient_boosting", True): HistGradientBoostingClassifier,
    ("hist_gradient_boosting", False): HistGradientBoostingRegressor,
    ("random_forest", True): RandomForestClassifier,
    ("random_forest", False): RandomForestRegressor,
    ("logistic_regression", True): LogisticRegression,
    ("linear_regression", False): LinearRegression,
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "hist_gradient_boosting": {},
    "random_forest": {"n_estimators": 100},
    "logistic_regression": {"max_iter": 1000},
    "linear_regression": {},
}


def _column_groups(schema: Mapping[str, Any]) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Positions in the model input of numeric, bool and (categorical, n_categories) columns."""
    numeric: list[int] = []
    boolean: list[int] = []
    categorical: list[tuple[int, int]] = []
    for j, f in enumerate(model_features(schema)):
        if f["type"] == "categorical":
            categorical.append((j, len(f["categories"] or ())))
        elif f["type"] == "bool":
            boolean.append(j)
        else:
            numeric.append(j)
    return numeric, boolean, categorical


def _preprocessing(algorithm: str, schema: Mapping[str, Any]) -> ColumnTransformer | None:
    numeric, boolean, categorical = _column_groups(schema)
    if algorithm == "hist_gradient_boosting":
        return None
    parts: list[tuple[str, Any, list[int]]] = []
    if algorithm == "random_forest":
        if numeric:
            parts.append(("numeric", SimpleImputer(strategy="median"), numeric))
        coded = boolean + [j for j, _ in categorical]
        if coded:
            parts.append(("coded", SimpleImputer(strategy="constant", fill_value=-1.0), coded))
        return ColumnTransformer(parts)
    if numeric:
        parts.append(
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric)
        )
    if boolean:
        parts.append(("bool", SimpleImputer(strategy="most_frequent"), boolean))
    for j, k in categorical:
        onehot = OneHotEncoder(
            categories=[np.arange(k, dtype=np.float64)], handle_unknown="ignore", sparse_output=False
        )
        parts.append(
            (
                f"cat{j}",
                Pipeline([("impute", SimpleImputer(strategy="constant", fill_value=-1.0)), ("onehot", onehot)]),
                [j],
            )
        )
    return ColumnTransformer(parts)


def estimator_params(algorithm: str, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Defaults, then the configured params (minus training-level keys), then the fixed seed."""
    out = dict(_DEFAULTS.get(algorithm, {}))
    out.update({k: v for k, v in params.items() if k not in RESERVED_PARAMS})
    if algorithm in ("hist_gradient_boosting", "random_forest", "logistic_regression"):
        out.setdefault("random_state", seed)
    return out


def build_pipeline(
    algorithm: str, task: str, schema: Mapping[str, Any], params: Mapping[str, Any], seed: int = 0
) -> Pipeline:
    """The unfitted pipeline for ``algorithm`` and the label's ``task``; bad choices are rejected."""
    if algorithm not in ALGORITHMS:
        raise TrainingRejectedError(f"unknown model type {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    classifier = task != "regression"
    cls = _ESTIMATORS.get((algorithm, classifier))
    if cls is None:
        fits = [a for (a, c) in _ESTIMATORS if c == classifier]
        raise TrainingRejectedError(
            f"{algorithm} cannot learn a {task} label; for {task} choose one of {', '.join(fits)}"
        )
    kwargs = estimator_params(algorithm, params, seed)
    valid = set(cls().get_params())
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise TrainingRejectedError(
            f"unknown parameter(s) {', '.join(unknown)} for {cls.__name__} (from the "
            f"model config's params); valid: {', '.join(sorted(valid))}"
        )
    try:
        estimator = cls(**kwargs)
        validate = getattr(estimator, "_validate_params", None)  # fail before a long fit, not after
        if validate is not None:
            validate()
    except (ValueError, TypeError) as e:
        raise TrainingRejectedError(f"invalid parameter for {cls.__name__}: {e}") from None
    pre = _preprocessing(algorithm, schema)
    steps: list[tuple[str, Any]] = [] if pre is None else [("preprocess", pre)]
    steps.append(("model", estimator))
    return Pipeline(steps)
