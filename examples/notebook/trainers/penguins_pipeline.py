"""The notebook's pipeline as a trainer: ``models[].trainer: "penguins_pipeline:build"``.

Every retraining (drift-triggered, scheduled, ``driftline retrain``, ``driftline train``) calls
``build`` for a fresh, unfitted pipeline and fits it on the training rows Driftline selects.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def build(feature_set: Any, params: dict[str, Any]) -> Pipeline:
    numeric = [f.name for f in feature_set.features if f.type in ("int", "float")]
    categorical = [f.name for f in feature_set.features if f.type == "categorical"]
    prep = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            ),
        ]
    )
    model = HistGradientBoostingClassifier(max_iter=int(params.get("max_iter", 100)), random_state=0)
    return Pipeline([("prep", prep), ("model", model)])
