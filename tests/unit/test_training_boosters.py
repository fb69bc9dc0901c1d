"""LightGBM and XGBoost model files: converted with exact thresholds and checked against the booster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftline.notebook import read_artifact
from driftline.training.dataset import prepare
from driftline.training.imported import _convert
from driftline.training.onnx_export import OnnxModel, parity
from tests.fixtures.public_datasets import PublicDataset, penguins, sklearn_dataset

DATASETS = {
    "breast_cancer": lambda: sklearn_dataset("breast_cancer", 0),
    "wine": lambda: sklearn_dataset("wine", 1),
    "diabetes": lambda: sklearn_dataset("diabetes", 0),
    "penguins": lambda: penguins("multiclass_classification", 3),
}


def _check(ds: PublicDataset, path: Path) -> dict[str, object]:
    schema = ds.feature_set.input_schema()
    prepared = prepare(ds.frame, ds.feature_set, min_rows=2, validation_fraction=0.2)
    imported = read_artifact(path)
    onnx_bytes, reference = _convert(imported, schema)
    runtime = OnnxModel(onnx_bytes)
    classifier = ds.task != "regression"
    runtime.check_signature(prepared.X_val.shape[1], classifier)
    assert reference is not None
    return parity(reference, runtime, np.concatenate([prepared.X_val, prepared.X_train]), classifier)


@pytest.mark.parametrize("name", list(DATASETS))
def test_lightgbm_text_models(tmp_path: Path, name: str) -> None:
    """breast_cancer once registered with served probabilities 0.0046 off the booster's (rounded thresholds)."""
    import lightgbm as lgb

    ds = DATASETS[name]()
    prepared = prepare(ds.frame, ds.feature_set, min_rows=2, validation_fraction=0.2)
    est = (lgb.LGBMRegressor if ds.task == "regression" else lgb.LGBMClassifier)(n_estimators=30, verbose=-1, n_jobs=1)
    est.fit(prepared.X_train, prepared.y_train)
    est.booster_.save_model(tmp_path / "m.txt")
    _check(ds, tmp_path / "m.txt")


@pytest.mark.parametrize("name", list(DATASETS))
@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_xgboost_models(tmp_path: Path, name: str, suffix: str) -> None:
    """XGBoost files were always refused (the converted graph declares no default opset)."""
    import xgboost as xgb

    ds = DATASETS[name]()
    prepared = prepare(ds.frame, ds.feature_set, min_rows=2, validation_fraction=0.2)
    est = (xgb.XGBRegressor if ds.task == "regression" else xgb.XGBClassifier)(n_estimators=20, n_jobs=1)
    est.fit(prepared.X_train, prepared.y_train)
    est.get_booster().save_model(tmp_path / f"m{suffix}")
    _check(ds, tmp_path / f"m{suffix}")
