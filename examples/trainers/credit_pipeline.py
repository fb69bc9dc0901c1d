"""An own trainer for ``models[].trainer: "credit_pipeline:build"``: the notebook's pipeline, as code.

Driftline calls ``build(feature_set, params)`` at every training run (drift-triggered retraining,
``driftline train``, the training image, the local platform), fits what it returns on the training
rows of ``driftline.load_training_set`` (feature columns by name) and registers it through the
quality gate like any candidate.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def build(feature_set: Any, params: dict[str, Any]) -> Pipeline:
    """Impute + scale the numbers, impute + one-hot the categories, then gradient boosting."""
    numeric = [f.name for f in feature_set.features if f.type in ("int", "float", "bool")]
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
    model = HistGradientBoostingClassifier(
        max_iter=int(params.get("max_iter", 100)), learning_rate=float(params.get("learning_rate", 0.1)), random_state=0
    )
    return Pipeline([("prep", prep), ("model", model)])
