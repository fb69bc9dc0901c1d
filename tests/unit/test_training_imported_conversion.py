"""Notebook pipelines (DataFrame in, string categoricals, nulls) convert to the serving signature
with exact parity on real datasets, and every unsuitable model is refused with the fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from driftline.training.conversion import adapt_onnx, check_estimator, convert_estimator
from driftline.training.dataset import prepare
from driftline.training.errors import TrainingRejectedError
from driftline.training.frames import training_frame
from driftline.training.imported import EstimatorOnServedRows
from driftline.training.onnx_export import OnnxModel, parity
from tests.fixtures.public_datasets import PublicDataset, penguins, sklearn_dataset


def _pipeline(ds: PublicDataset, estimator: Any, scale: bool = True) -> tuple[Pipeline, pd.DataFrame, list[str]]:
    fs = ds.feature_set
    frame = training_frame(ds.frame, fs, 0.2)
    features = [f.name for f in fs.features]
    numeric = [f.name for f in fs.features if f.type in ("int", "float")]
    cats = [f.name for f in fs.features if f.type == "categorical"]
    num_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        num_steps.append(("scale", StandardScaler()))
    parts: list[tuple[str, Any, list[str]]] = [("num", Pipeline(num_steps), numeric)]
    if cats:
        parts.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                cats,
            )
        )
    pipe = Pipeline([("prep", ColumnTransformer(parts)), ("model", estimator)])
    train = frame[frame.split == "train"]
    label = fs.label
    assert label is not None
    pipe.fit(train[features], train[label.name])
    return pipe, frame, features


def _check_parity(ds: PublicDataset, pipe: Any) -> dict[str, Any]:
    schema = ds.feature_set.input_schema()
    prepared = prepare(ds.frame, ds.feature_set, min_rows=2, validation_fraction=0.2)
    runtime = OnnxModel(convert_estimator(pipe, schema))
    classifier = ds.task != "regression"
    runtime.check_signature(prepared.X_val.shape[1], classifier)
    return parity(EstimatorOnServedRows(pipe, schema), runtime, prepared.X_val, classifier)


CLASSIFIERS = [
    lambda: LogisticRegression(max_iter=3000),
    lambda: HistGradientBoostingClassifier(max_iter=40),
    lambda: RandomForestClassifier(n_estimators=25, random_state=0),
    lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
]
REGRESSORS = [
    Ridge,
    lambda: HistGradientBoostingRegressor(max_iter=40),
    lambda: RandomForestRegressor(n_estimators=25, random_state=0),
]


@pytest.mark.parametrize("seed", [0, 3, 4])
@pytest.mark.parametrize("task", ["multiclass_classification", "binary_classification", "regression"])
@pytest.mark.parametrize("which", range(4))
def test_penguins_pipelines_convert_with_exact_parity(task: str, which: int, seed: int) -> None:
    makers = REGRESSORS if task == "regression" else CLASSIFIERS
    if which >= len(makers):
        pytest.skip("no such estimator for this task")
    ds = penguins(task, seed)
    pipe, _, _ = _pipeline(ds, makers[which]())
    report = _check_parity(ds, pipe)
    assert report["rows"] > 50


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
def test_sklearn_datasets_unscaled_trees(name: str) -> None:
    ds = sklearn_dataset(name, seed=1)
    est = (
        RandomForestRegressor(n_estimators=20, random_state=0)
        if ds.task == "regression"
        else RandomForestClassifier(n_estimators=20, random_state=0)
    )
    pipe, _, _ = _pipeline(ds, est, scale=False)
    _check_parity(ds, pipe)


def test_probabilities_follow_the_feature_sets_class_order() -> None:
    """The feature set lists classes in its own order; sklearn sorts them: the graph reorders."""
    ds = penguins("multiclass_classification", 0)
    fs = ds.feature_set.model_copy(
        update={"labels": (ds.feature_set.labels[0].model_copy(update={"classes": ("Gentoo", "Adelie", "Chinstrap")}),)}
    )
    ds2 = PublicDataset(ds.name, ds.task, ds.frame, fs)
    pipe, _, _ = _pipeline(ds2, LogisticRegression(max_iter=3000))
    assert list(pipe.classes_) == ["Adelie", "Chinstrap", "Gentoo"]
    _check_parity(ds2, pipe)


def test_null_categories_reach_the_graph_as_scikit_learn_saw_them() -> None:
    """OneHotEncoder with NaN as its own category (no imputer): the graph maps null the same way."""
    ds = penguins("multiclass_classification", 2)
    fs = ds.feature_set
    frame = training_frame(ds.frame, fs, 0.2)
    assert frame["sex"].isna().any()
    cats = ["island", "sex"]
    numeric = [f.name for f in fs.features if f.type in ("int", "float")]
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("num", SimpleImputer(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), cats)]
                ),
            ),
            ("model", LogisticRegression(max_iter=3000)),
        ]
    )
    train = frame[frame.split == "train"]
    pipe.fit(train[numeric + cats], train["species"])
    _check_parity(ds, pipe)


# ---------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def peng() -> PublicDataset:
    return penguins("multiclass_classification", 0)


def test_function_transformer_is_named_with_a_fix(peng: PublicDataset) -> None:
    fs = peng.feature_set
    frame = training_frame(peng.frame, fs, 0.2)
    numeric = ["bill_length_mm", "bill_depth_mm"]
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("num", Pipeline([("impute", SimpleImputer()), ("log", FunctionTransformer(np.log1p))]), numeric)]
                ),
            ),
            ("model", LogisticRegression(max_iter=2000)),
        ]
    )
    pipe.fit(frame[numeric], frame["species"])
    with pytest.raises(TrainingRejectedError, match=r"step 'prep > num > log' \(FunctionTransformer\).*upstream"):
        convert_estimator(pipe, fs.input_schema())


def test_columns_outside_the_feature_set(peng: PublicDataset) -> None:
    frame = training_frame(peng.frame, peng.feature_set, 0.2)
    est = LogisticRegression(max_iter=2000).fit(
        frame[["bill_length_mm"]].fillna(0).assign(leak=frame["year"]), frame["species"]
    )
    with pytest.raises(TrainingRejectedError, match=r"column\(s\) leak that are not model features"):
        check_estimator(est, peng.feature_set.input_schema())


def test_array_fitted_and_unfitted(peng: PublicDataset) -> None:
    schema = peng.feature_set.input_schema()
    with pytest.raises(TrainingRejectedError, match="not fitted"):
        check_estimator(LogisticRegression(), schema)
    est = LogisticRegression().fit(np.zeros((4, 2)) + np.arange(4)[:, None], ["Adelie", "Gentoo"] * 2)
    with pytest.raises(TrainingRejectedError, match="without column names"):
        check_estimator(est, schema)


def test_wrong_kind_of_estimator_and_classes(peng: PublicDataset) -> None:
    frame = training_frame(peng.frame, peng.feature_set, 0.2).dropna(subset=["bill_length_mm"])
    schema = peng.feature_set.input_schema()
    with pytest.raises(TrainingRejectedError, match="not a classifier"):
        check_estimator(Ridge().fit(frame[["bill_length_mm"]], frame["year"]), schema)
    two = frame[frame.species != "Gentoo"]
    with pytest.raises(TrainingRejectedError, match=r"classes \['Adelie', 'Chinstrap'\] differ"):
        check_estimator(LogisticRegression().fit(two[["bill_length_mm"]], two["species"]), schema)
    reg = penguins("regression", 0)
    with pytest.raises(TrainingRejectedError, match="not a regressor"):
        check_estimator(
            LogisticRegression().fit(frame[["bill_length_mm"]], frame["species"]), reg.feature_set.input_schema()
        )


def test_onnx_files_corrupt_or_with_zipmap(peng: PublicDataset) -> None:
    schema = peng.feature_set.input_schema()
    with pytest.raises(TrainingRejectedError, match="not a valid ONNX model"):
        adapt_onnx(b"\x08\x01garbage", schema)
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    frame = training_frame(peng.frame, peng.feature_set, 0.2).dropna(subset=["bill_length_mm"])
    est = LogisticRegression(max_iter=2000).fit(frame[["bill_length_mm"]], frame["species"])
    zipmapped = convert_sklearn(est, initial_types=[("bill_length_mm", FloatTensorType([None, 1]))])
    with pytest.raises(TrainingRejectedError, match="ZipMap"):
        adapt_onnx(zipmapped.SerializeToString(), schema)
    plain = convert_sklearn(
        est, initial_types=[("bill_length_mm", FloatTensorType([None, 1]))], options={"zipmap": False}
    )
    adapted = OnnxModel(adapt_onnx(plain.SerializeToString(), schema))
    adapted.check_signature(len([f for f in schema["features"]]), True)
    wrong = convert_sklearn(est, initial_types=[("flipper", FloatTensorType([None, 1]))], options={"zipmap": False})
    with pytest.raises(TrainingRejectedError, match=r"single input 'flipper' takes 1 column\(s\), but feature set"):
        adapt_onnx(wrong.SerializeToString(), schema)
