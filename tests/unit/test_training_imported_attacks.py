"""Reproductions from an attack on the bring-your-own-model path: each once crashed, served something
else than the notebook, or ran code; each must now convert exactly or be refused with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from driftline.features.encoding import encode_columns
from driftline.training.conversion import check_estimator, convert_estimator
from driftline.training.dataset import prepare
from driftline.training.errors import TrainingRejectedError
from driftline.training.frames import training_frame
from driftline.training.imported import EstimatorOnServedRows, parity_on_served_rows
from driftline.training.onnx_export import OnnxModel
from tests.fixtures.public_datasets import PublicDataset, penguins

NUM = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]


@pytest.fixture(scope="module")
def peng() -> PublicDataset:
    return penguins("multiclass_classification", 0)


def _fit(ds: PublicDataset, encoder: Any, label: Any = None, model: Any = None) -> Any:
    frame = training_frame(ds.frame, ds.feature_set, 0.2)
    train = frame[frame.split == "train"]
    pipe = make_pipeline(
        ColumnTransformer([("n", make_pipeline(SimpleImputer(), StandardScaler()), NUM), ("c", encoder, ["island"])]),
        model or LogisticRegression(max_iter=3000),
    )
    return pipe.fit(train[[*NUM, "island"]], train["species"] if label is None else label(train["species"]))


@pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")  # handle_unknown="warn" warns
@pytest.mark.parametrize("handle_unknown", ["error", "warn", "ignore"])
def test_null_in_a_category_never_null_in_training_is_served(peng: PublicDataset, handle_unknown: str) -> None:
    """island is nullable but never null in the data: ONNX Runtime used to fail every such request."""
    pipe = _fit(peng, OneHotEncoder(handle_unknown=handle_unknown))
    schema = peng.feature_set.input_schema()
    runtime = OnnxModel(convert_estimator(pipe, schema))
    prepared = prepare(peng.frame, peng.feature_set, min_rows=2, validation_fraction=0.2)
    report = parity_on_served_rows(EstimatorOnServedRows(pipe, schema), runtime, prepared.X_val, schema, True)
    row: dict[str, list[Any]] = {f["name"]: [None] for f in schema["features"]}
    row.update(
        {
            "bill_length_mm": [40.0],
            "bill_depth_mm": [18.0],
            "flipper_length_mm": [190.0],
            "body_mass_g": [3800.0],
            "year": [2008],
        }
    )
    got = runtime.predict(encode_columns(schema, row))
    assert got.probabilities is not None and np.isclose(got.probabilities.sum(), 1.0, atol=1e-5)
    if handle_unknown != "error":
        assert report["null_probes"] > 0  # scikit-learn answers those rows: the graph matched it on them


def test_float_labels_and_classifiers_without_probabilities(peng: PublicDataset) -> None:
    ds = penguins("binary_classification", 0)  # classes female/male: labels as floats 0.0/1.0 would not match
    schema = ds.feature_set.input_schema()
    frame = training_frame(ds.frame, ds.feature_set, 0.2)
    numeric = frame[frame.split == "train"][NUM].fillna(0)
    with pytest.raises(TrainingRejectedError, match="has no predict_proba"):
        check_estimator(SVC().fit(numeric, frame[frame.split == "train"]["sex"]), schema)
    wine = penguins("multiclass_classification", 1)
    pipe = _fit(wine, OneHotEncoder(handle_unknown="ignore"))
    ref = EstimatorOnServedRows(pipe, wine.feature_set.input_schema())
    assert ref.order == [0, 1, 2]


def test_int_coded_float_labels_match_int_classes() -> None:
    from tests.fixtures.public_datasets import sklearn_dataset

    ds = sklearn_dataset("breast_cancer", 0)
    schema = ds.feature_set.input_schema()
    frame = training_frame(ds.frame, ds.feature_set, 0.2)
    train = frame[frame.split == "train"]
    cols = [f["name"] for f in schema["features"]]
    est = LogisticRegression(max_iter=5000).fit(train[cols], train["target"].astype(float))
    prepared = prepare(ds.frame, ds.feature_set, min_rows=2, validation_fraction=0.2)
    ref = EstimatorOnServedRows(est, schema)
    assert set(ref.predict(prepared.X_val).tolist()) <= {0, 1}
    parity_on_served_rows(ref, OnnxModel(convert_estimator(est, schema)), prepared.X_val, schema, True)


def test_empty_string_category_is_refused(peng: PublicDataset) -> None:
    doc = peng.feature_set.model_dump(mode="json")
    for f in doc["features"]:
        if f["name"] == "island":
            f["categories"] = [*f["categories"], ""]
    from driftline.features.schema import parse_feature_set

    fs = parse_feature_set(doc)
    with pytest.raises(TrainingRejectedError, match="empty string as a category"):
        check_estimator(_fit(peng, OneHotEncoder(handle_unknown="ignore")), fs.input_schema())


def test_onnx_probabilities_of_the_wrong_width_are_refused(peng: PublicDataset) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from driftline.training.conversion import adapt_onnx

    schema = peng.feature_set.input_schema()
    frame = training_frame(peng.frame, peng.feature_set, 0.2).dropna(subset=["bill_length_mm"])
    two = frame[frame.species != "Gentoo"]
    est = LogisticRegression().fit(two[["bill_length_mm"]], two["species"].map({"Adelie": 0, "Chinstrap": 1}))
    onx = convert_sklearn(
        est, initial_types=[("bill_length_mm", FloatTensorType([None, 1]))], options={"zipmap": False}
    )
    with pytest.raises(TrainingRejectedError):
        adapt_onnx(onx.SerializeToString(), schema)


def test_skops_trust_never_runs_a_module(capsys: pytest.CaptureFixture[str]) -> None:
    from driftline.training.skops_io import trusted_type

    assert trusted_type("numpy.f2py.__main__.X") is False
    assert trusted_type("numpy.tests.test_x.Y") is False
    assert "f2py" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("numpy:array", "no module 'numpy' in the trainers folder"),
        ("json:loads", "no module 'json' in the trainers folder"),
        ("driftline.training.frames:served_frame", "no module 'driftline' in the trainers folder"),
    ],
)
def test_trainer_specs_cannot_name_installed_modules(tmp_path: Path, spec: str, message: str) -> None:
    import numpy

    from driftline.training.trainers import load_trainer

    with pytest.raises(TrainingRejectedError, match=message):
        load_trainer(spec, tmp_path)
    assert numpy.array is np.array  # nothing evicted


def test_trainer_returning_a_class(tmp_path: Path) -> None:
    from driftline.training.trainers import make_estimator

    (tmp_path / "cls.py").write_text("from sklearn.linear_model import Ridge\ndef build(fs, p):\n    return Ridge\n")
    with pytest.raises(TrainingRejectedError, match="returned the class Ridge"):
        make_estimator("cls:build", None, {}, tmp_path)


@pytest.mark.parametrize("model", ["lr", "rf"])
def test_imputer_with_missing_indicator(peng: PublicDataset, model: str) -> None:
    """add_indicator=True once broke the float64 imputer (refused with the blame elsewhere, or a crash)."""
    from sklearn.ensemble import RandomForestClassifier

    est = LogisticRegression(max_iter=3000) if model == "lr" else RandomForestClassifier(20, random_state=0)
    frame = training_frame(peng.frame, peng.feature_set, 0.2)
    train = frame[frame.split == "train"]
    pipe = make_pipeline(
        ColumnTransformer(
            [
                ("n", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), NUM),
                ("c", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"]),
            ]
        ),
        est,
    )
    pipe.fit(train[[*NUM, "island", "sex"]], train["species"])
    schema = peng.feature_set.input_schema()
    prepared = prepare(peng.frame, peng.feature_set, min_rows=2, validation_fraction=0.2)
    parity_on_served_rows(
        EstimatorOnServedRows(pipe, schema),
        OnnxModel(convert_estimator(pipe, schema)),
        np.concatenate([prepared.X_val, prepared.X_train]),
        schema,
        True,
    )


@pytest.mark.parametrize("step", ["kbins", "poly"])
def test_converters_that_only_build_float_graphs(peng: PublicDataset, step: str) -> None:
    """KBinsDiscretizer / PolynomialFeatures have no float64 graph in skl2onnx: converted in float32."""
    from sklearn.preprocessing import KBinsDiscretizer, PolynomialFeatures

    num = make_pipeline(
        SimpleImputer(),
        KBinsDiscretizer(n_bins=4, encode="onehot-dense", quantile_method="linear")
        if step == "kbins"
        else PolynomialFeatures(2),
    )
    frame = training_frame(peng.frame, peng.feature_set, 0.2)
    train = frame[frame.split == "train"]
    pipe = make_pipeline(ColumnTransformer([("n", num, NUM[:4])]), LogisticRegression(max_iter=5000))
    pipe.fit(train[NUM[:4]], train["species"])
    schema = peng.feature_set.input_schema()
    runtime = OnnxModel(convert_estimator(pipe, schema))
    prepared = prepare(peng.frame, peng.feature_set, min_rows=2, validation_fraction=0.2)
    got = runtime.predict(prepared.X_val)
    assert got.probabilities is not None and got.probabilities.shape == (len(prepared.X_val), 3)
