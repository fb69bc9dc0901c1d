"""Alarms that mean something (issue 21 item 3): the reference comes from the training rows, drift is
weighted by the model's feature importance, and ``alert_on_columns`` alarms on one named feature.

The two findings are reproduced on public-like data: a holdout-only reference (88 rows of
scikit-learn's 442-row diabetes set) flags unchanged columns on a resample of the same data, and a
+2 sd shift of the one feature a 30-feature model relies on is detected but, counted uniformly (1 of
30 columns), raises no dataset drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from driftline.config import ConfigError, DriftSettings, ModelConfig, load
from driftline.drift import DriftInputError, Profile, build_profile_for_feature_set, check_drift
from driftline.drift.feature_set import IMPORTANCE_KEY, REFERENCE_KEY, normalized_importance
from driftline.drift.methods import drift_share
from driftline.features.schema import FeatureSet, parse_feature_set
from driftline.training.core import feature_importance, train_model
from tests.fixtures.public_datasets import sklearn_dataset

N_FEATURES = 30


# ---------------------------------------------------------------- finding 1: holdout-only reference
def _diabetes_profiles(seed: int) -> tuple[Profile, Profile, pd.DataFrame]:
    ds = sklearn_dataset("diabetes", seed)
    cfg = ModelConfig(name="diabetes", feature_set=ds.feature_set.name, params={"max_iter": 30})
    tm = train_model(ds.frame, ds.feature_set, cfg, min_rows=50)
    training = Profile.from_json(tm.profile_json(ds.feature_set, "diabetes", 1, 5000))
    tm.reference_table = None  # what every version got before: the holdout only
    holdout = Profile.from_json(tm.profile_json(ds.feature_set, "diabetes", 1, 5000))
    return training, holdout, ds.frame


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holdout_reference_flags_unchanged_columns_training_reference_does_not(seed: int) -> None:
    training, holdout, frame = _diabetes_profiles(seed)
    assert (holdout.n_rows, training.n_rows) == (88, 442)
    rng = np.random.default_rng(100 + seed)
    window = frame.iloc[rng.integers(0, len(frame), 2000)]  # the same population, nothing shifted
    before = check_drift(holdout, window, distance_above=1000)  # as the scheduled check runs it
    after = check_drift(training, window, distance_above=1000)
    assert len(before.drifted_columns) >= 2, before.drifted_columns
    assert after.drifted_columns == []
    assert training.metadata[REFERENCE_KEY] == {
        "source": "train+holdout",
        "split": training.metadata[REFERENCE_KEY]["split"],
        "rows_available": 442,
        "rows_profiled": 442,
        "prediction_rows": 88,
    }
    assert holdout.metadata[REFERENCE_KEY]["source"] == "holdout"
    assert training.columns["prediction"].n == 88  # out-of-sample predictions only


def test_reference_rows_caps_the_profiled_rows_evenly() -> None:
    ds = sklearn_dataset("diabetes", 0)
    cfg = ModelConfig(
        name="diabetes",
        feature_set=ds.feature_set.name,
        params={"max_iter": 10},
        drift={"reference_rows": 200},  # type: ignore[arg-type]
    )
    tm = train_model(ds.frame, ds.feature_set, cfg, min_rows=50)
    profile = Profile.from_json(tm.profile_json(ds.feature_set, "diabetes", 1, 5000))
    assert profile.n_rows == 200
    assert profile.metadata[REFERENCE_KEY]["rows_available"] == 442
    assert profile.metadata[REFERENCE_KEY]["rows_profiled"] == 200


def test_unlabelled_rows_stay_out_of_the_reference() -> None:
    ds = sklearn_dataset("diabetes", 0)
    frame = ds.frame.copy()
    frame.loc[frame.index[:42], "target"] = np.nan
    cfg = ModelConfig(name="diabetes", feature_set=ds.feature_set.name, params={"max_iter": 10})
    tm = train_model(frame, ds.feature_set, cfg, min_rows=50)
    assert tm.reference_table is not None and tm.reference_table.num_rows == 400


# ---------------------------------------------------------------- finding 2: one important feature
def _wide_fs() -> FeatureSet:
    return parse_feature_set(
        {
            "name": "wide",
            "version": 1,
            "entity": ["id"],
            "timestamp": "ts",
            "features": [{"name": f"x{i}", "type": "float"} for i in range(N_FEATURES)],
            "labels": [{"name": "y", "task": "regression"}],
        }
    )


def _wide(n: int, seed: int, shift: dict[int, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    for j, by in (shift or {}).items():
        X[:, j] += by
    y = 3.0 * X[:, 0] + 0.2 * X[:, 1:5].sum(axis=1) + rng.normal(0, 0.5, n)
    df = pd.DataFrame({f"x{i}": X[:, i] for i in range(N_FEATURES)})
    df.insert(0, "id", [str(i) for i in range(n)])
    df["ts"] = pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC")
    df["y"] = y
    return df


@pytest.fixture(scope="module")
def wide_profile() -> Profile:
    fs = _wide_fs()
    cfg = ModelConfig(name="wide", feature_set="wide", params={"max_iter": 50})
    tm = train_model(_wide(3000, 0), fs, cfg, min_rows=100)
    assert tm.importance_method == "permutation"
    return Profile.from_json(tm.profile_json(fs, "wide", 1, 5000))


def test_one_shifted_important_feature_alarms_only_when_weighted(wide_profile: Profile) -> None:
    weights = wide_profile.metadata[IMPORTANCE_KEY]
    assert max(weights, key=weights.get) == "x0" and weights["x0"] > 0.5
    window = _wide(2000, 7, shift={0: 2.0})
    uniform = check_drift(wide_profile, window, distance_above=1000)
    assert uniform.drifted_columns == ["x0"]  # detected ...
    assert not uniform.dataset_drifted  # ... but 1 of 30 columns is below the 0.5 share: no alarm
    weighted = check_drift(wide_profile, window, distance_above=1000, weighting="importance")
    assert weighted.dataset_drifted and weighted.weighting == "importance"
    doc = weighted.to_dict()
    assert doc["share_drifted"] == pytest.approx(weights["x0"])
    assert doc["share_drifted_unweighted"] == pytest.approx(1 / N_FEATURES)
    assert sum(doc["weights"].values()) == pytest.approx(1.0)


def test_unchanged_window_and_ignored_features_do_not_alarm_when_weighted(wide_profile: Profile) -> None:
    same = check_drift(wide_profile, _wide(2000, 8), distance_above=1000, weighting="importance")
    assert same.drifted_columns == [] and not same.dataset_drifted
    ignored = {j: 2.0 for j in range(10, 30)}  # 20 of 30 columns the model does not use
    window = _wide(2000, 9, shift=ignored)
    assert check_drift(wide_profile, window, distance_above=1000).dataset_drifted  # uniform: 2/3 drifted
    weighted = check_drift(wide_profile, window, distance_above=1000, weighting="importance")
    assert len(weighted.drifted_columns) == 20
    assert weighted.share_drifted < 0.5 and not weighted.dataset_drifted


def test_alert_on_columns_alarms_on_one_listed_feature(wide_profile: Profile) -> None:
    window = _wide(2000, 10, shift={20: 2.0})  # a feature the model ignores
    plain = check_drift(wide_profile, window, distance_above=1000, weighting="importance")
    assert plain.drifted_columns == ["x20"] and not plain.dataset_drifted
    listed = check_drift(wide_profile, window, distance_above=1000, alert_on_columns=["x20", "x3"])
    assert listed.dataset_drifted
    assert listed.to_dict()["alert_columns_drifted"] == ["x20"]
    quiet = check_drift(wide_profile, _wide(2000, 11), distance_above=1000, alert_on_columns=["x20"])
    assert not quiet.dataset_drifted


def test_alert_on_columns_refuses_unknown_names(wide_profile: Profile) -> None:
    with pytest.raises(DriftInputError, match=r"'nope', not a feature column.*allowed: x0, x1"):
        check_drift(wide_profile, _wide(300, 1), alert_on_columns=["nope"])
    with pytest.raises(DriftInputError, match="prediction"):
        check_drift(wide_profile, _wide(300, 1), alert_on_columns=["prediction"])
    with pytest.raises(DriftInputError, match="not the string"):
        check_drift(wide_profile, _wide(300, 1), alert_on_columns="x0")
    with pytest.raises(DriftInputError, match="weighting='equal' is not one of importance, uniform"):
        check_drift(wide_profile, _wide(300, 1), weighting="equal")


def test_profile_without_importance_keeps_uniform_behaviour(wide_profile: Profile) -> None:
    old = Profile.from_dict({**wide_profile.to_dict(), "metadata": {"model": "wide"}})
    window = _wide(2000, 7, shift={0: 2.0})
    res = check_drift(old, window, distance_above=1000, weighting="importance")
    assert res.weighting == "uniform" and not res.dataset_drifted
    assert res.share_drifted == pytest.approx(1 / N_FEATURES)


# ---------------------------------------------------------------- pieces
def test_drift_share_renormalizes_over_the_tested_columns() -> None:
    weights = {"a": 0.6, "b": 0.3, "c": 0.1}
    share, how, used = drift_share({"a": False, "b": True}, "importance", weights)
    assert how == "importance" and share == pytest.approx(1 / 3)
    assert used == pytest.approx({"a": 2 / 3, "b": 1 / 3})
    share, how, _ = drift_share({"a": True, "b": True, "c": False}, "uniform", weights)
    assert (how, round(share, 6)) == ("uniform", round(2 / 3, 6))
    assert drift_share({"d": True, "e": False}, "importance", weights)[:2] == (0.5, "uniform")  # no weight: uniform
    assert drift_share({}, "importance", weights) == (0.0, "uniform", {})
    with pytest.raises(ValueError, match="weighting"):
        drift_share({"a": True}, "other", None)


def test_normalized_importance_clips_and_refuses_unknown_columns() -> None:
    assert normalized_importance({"a": 3.0, "b": -1.0, "c": 1.0}, ["a", "b", "c"]) == {"a": 0.75, "b": 0.0, "c": 0.25}
    assert normalized_importance({"a": 0.0, "b": float("nan")}, ["a", "b"]) == {}
    with pytest.raises(DriftInputError, match="not profiled: z; profiled: a, b"):
        normalized_importance({"z": 1.0}, ["a", "b"])


def test_feature_importance_falls_back_to_the_estimators_own() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = 5 * X[:, 1] + 0.1 * X[:, 2]
    pipe = Pipeline([("model", LinearRegression())]).fit(X, y)
    perm, how = feature_importance(pipe, X, y, ["a", "b", "c"], seed=0)
    assert how == "permutation" and perm is not None and max(perm, key=lambda k: perm[k]) == "b"
    own, how = feature_importance(pipe, X, y, ["a", "b", "c"], seed=0, permute=False)
    assert how == "coefficients" and own is not None and own["b"] == pytest.approx(5.0)
    assert feature_importance(object(), X, y, ["a", "b", "c"], seed=0, permute=False) == (None, "none")


def test_profile_records_declared_bounds_and_categories() -> None:
    fs = parse_feature_set(
        {
            "name": "shop",
            "version": 1,
            "entity": ["id"],
            "timestamp": "ts",
            "features": [
                {"name": "price", "type": "float", "min": 0},
                {"name": "region", "type": "categorical", "categories": ["n", "s"]},
            ],
        }
    )
    data = {"price": np.arange(10.0), "region": np.array(["n", "s"] * 5, dtype=object)}
    p = build_profile_for_feature_set(fs, data, feature_importance={"price": 2.0, "region": 2.0})
    assert p.metadata["bounds"] == {"price": [0.0, None]}
    assert p.metadata["categories"] == {"region": ["n", "s"]}
    assert p.metadata[IMPORTANCE_KEY] == {"price": 0.5, "region": 0.5}
    assert p.metadata[REFERENCE_KEY] == {"rows_available": 10, "rows_profiled": 10}
    with pytest.raises(DriftInputError, match="not both"):
        build_profile_for_feature_set(fs, data, np.zeros(10), holdout_predictions=np.zeros(3))
    with pytest.raises(DriftInputError, match="reference_rows=0"):
        build_profile_for_feature_set(fs, data, reference_rows=0)
    small = build_profile_for_feature_set(fs, pa.table(data), np.arange(10.0), reference_rows=5)
    assert small.n_rows == 5 and small.columns["prediction"].n == 5


# ---------------------------------------------------------------- configuration
def _cdk(tmp_path: Path, drift: dict[str, Any]) -> Path:
    fs_dir = tmp_path / "feature_sets"
    fs_dir.mkdir()
    (fs_dir / "shop.yaml").write_text(
        "name: shop\nversion: 1\nentity: [id]\ntimestamp: ts\nfeatures:\n"
        "  - {name: price, type: float}\n  - {name: note, type: string}\n"
        "  - {name: region, type: categorical, categories: [n, s]}\n"
    )
    env = {"feature_sets_dir": "feature_sets", "models": [{"name": "shop", "feature_set": "shop", "drift": drift}]}
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps({"context": {"driftline:environments": {"dev": env}}}))
    return path


def test_config_refuses_alert_columns_not_in_the_feature_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'note', 'zip' not in the drift-checked features .*allowed: price, region"):
        load(_cdk(tmp_path, {"alert_on_columns": ["price", "note", "zip"]}))


def test_config_accepts_known_alert_columns_and_documents_defaults(tmp_path: Path) -> None:
    cfg = load(_cdk(tmp_path, {"alert_on_columns": ["region"], "weighting": "uniform"}))
    assert cfg.models[0].drift.alert_on_columns == ("region",)
    d = DriftSettings()
    assert (d.weighting, d.reference_rows, d.alert_on_columns) == ("importance", 100_000, ())
    with pytest.raises(ValueError, match="more than once"):
        DriftSettings(alert_on_columns=("a", "a"))
    with pytest.raises(ValueError, match="importance"):
        DriftSettings(weighting="equal")  # type: ignore[arg-type]
