"""The drift engine's public API: profiles, checks, defaults, overrides and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from driftline.drift import (
    DriftInputError,
    Profile,
    ProfileFormatError,
    ProfileMismatchError,
    build_profile,
    build_profile_for_feature_set,
    check_drift,
)


def frame(n: int, seed: int, shift: float = 0.0, p_new: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]).astype(object)
    if p_new:
        region[rng.random(n) < p_new] = "mars"
    income = rng.lognormal(10 + shift, 0.5, n)
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": income,
            "kids": rng.integers(0, 3, n),
            "region": region,
            "autopay": rng.random(n) < 0.6,
        }
    )


NUM, CAT = ["age", "income", "kids"], ["region", "autopay"]


def test_profile_round_trips_through_json(tmp_path: Path) -> None:
    ref = frame(3000, 1)
    prof = build_profile(ref, NUM, CAT, metadata={"model": "m"})
    path = prof.save(tmp_path / "profile.json")
    loaded = Profile.load(path)
    assert loaded.to_dict() == prof.to_dict()
    cur = frame(500, 2, shift=0.3)
    assert check_drift(loaded, cur).to_dict() == check_drift(prof, cur).to_dict()
    json.dumps(check_drift(loaded, cur).to_dict(), allow_nan=False)  # strictly valid JSON


def test_dataframe_arrow_and_dict_inputs_agree() -> None:
    ref, cur = frame(1500, 3), frame(700, 4, shift=0.2, p_new=0.05)
    as_arrow = pa.Table.from_pandas(ref, preserve_index=False)
    as_dict = {c: ref[c].to_numpy() for c in ref.columns}
    profiles = [build_profile(x, NUM, CAT) for x in (ref, as_arrow, as_dict)]
    dicts = [p.to_dict() for p in profiles]
    for d in dicts:
        d.pop("id"), d.pop("created_at")
    assert dicts[0] == dicts[1] == dicts[2]
    cur_inputs = [
        cur,
        pa.Table.from_pandas(cur, preserve_index=False),
        {c: cur[c].to_numpy() for c in cur.columns},
    ]
    results = [check_drift(profiles[0], c).to_dict() for c in cur_inputs]
    assert results[0] == results[1] == results[2]


def test_defaults_follow_evidently_selection() -> None:
    small = check_drift(build_profile(frame(800, 5), NUM, CAT), frame(400, 6)).to_dict()["columns"]
    assert {k: v["method"] for k, v in small.items()} == {
        "age": "ks",
        "income": "ks",
        "kids": "chisquare",
        "region": "chisquare",
        "autopay": "z",
    }
    large = check_drift(build_profile(frame(1500, 5), NUM, CAT), frame(400, 6)).to_dict()["columns"]
    assert {k: v["method"] for k, v in large.items()} == {
        "age": "wasserstein",
        "income": "wasserstein",
        "kids": "jensenshannon",
        "region": "jensenshannon",
        "autopay": "jensenshannon",
    }
    assert {k: v["threshold"] for k, v in small.items()} == dict.fromkeys(small, 0.05)
    assert {k: v["threshold"] for k, v in large.items()} == dict.fromkeys(large, 0.1)


def test_selection_counts_reference_values_not_rows() -> None:
    ref = frame(1500, 7)
    ref.loc[:600, "income"] = np.nan  # 1500 rows but fewer than 1000 non-missing incomes
    col = check_drift(build_profile(ref, NUM, CAT), frame(300, 8)).to_dict()["columns"]["income"]
    assert col["method"] == "ks"


def test_shifted_columns_drift_and_others_do_not() -> None:
    ref = frame(20_000, 9)
    cur = frame(20_000, 10)
    cur["age"] = cur["age"] + 8
    cur["region"] = np.random.default_rng(0).choice(["north", "south", "east"], len(cur), p=[0.2, 0.3, 0.5])
    res = check_drift(build_profile(ref, NUM, CAT), cur).to_dict()
    assert res["drifted_columns"] == ["age", "region"]
    assert res["share_drifted"] == pytest.approx(2 / 5)
    assert res["dataset_drifted"] is False
    assert res["n_reference"] == 20_000 and res["n_current"] == 20_000


def test_overrides_choose_method_and_threshold() -> None:
    prof = build_profile(
        frame(1500, 11),
        NUM,
        CAT,
        overrides={
            "age": {"method": "psi", "threshold": 0.2},
            "region": {"method": "chisquare"},
            "kids": {"enabled": False},
        },
    )
    cols = check_drift(prof, frame(500, 12)).to_dict()["columns"]
    assert cols["age"]["method"] == "psi" and cols["age"]["threshold"] == 0.2
    assert cols["region"]["method"] == "chisquare" and cols["region"]["p_value"] is not None
    assert "kids" not in cols


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"region": {"method": "ks"}}, "needs a numerical column"),
        ({"age": {"method": "magic"}}, "unknown drift method 'magic'"),
        ({"nope": {"method": "ks"}}, "not profiled: nope"),
        ({"age": {"threshold": -1}}, "threshold must be >= 0"),
        ({"age": {"methd": "ks"}}, "unknown keys methd"),
    ],
)
def test_bad_overrides_are_refused_clearly(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DriftInputError, match=fragment):
        build_profile(frame(100, 1), NUM, CAT, overrides=overrides)


def test_bad_reference_is_refused_clearly() -> None:
    ref = frame(100, 1)
    with pytest.raises(DriftInputError, match="'salary' is not in the data"):
        build_profile(ref, ["salary"])
    with pytest.raises(DriftInputError, match="'region' should be numerical"):
        build_profile(ref, ["region"])
    with pytest.raises(DriftInputError, match="both numerical and categorical"):
        build_profile(ref, ["age"], ["age"])
    with pytest.raises(DriftInputError, match="has no rows"):
        build_profile(ref.iloc[:0], NUM, CAT)
    with pytest.raises(DriftInputError, match="unsupported data of type list"):
        build_profile([1, 2, 3], ["x"])
    with pytest.raises(DriftInputError, match="different lengths"):
        build_profile({"a": np.ones(3), "b": np.ones(4)}, ["a", "b"])


def test_missing_and_mistyped_current_columns_are_reported_not_fatal() -> None:
    prof = build_profile(frame(1500, 13), NUM, CAT)
    cur = frame(300, 14).drop(columns=["kids"])
    cur["age"] = "forty"
    res = check_drift(prof, cur).to_dict()
    assert res["columns"]["kids"]["status"] == "missing_column"
    assert res["columns"]["age"]["status"] == "wrong_type"
    assert "should be numerical" in res["columns"]["age"]["message"]
    assert res["status"] == "ok" and res["n_columns_tested"] == 3


def test_empty_and_small_windows_are_insufficient_data() -> None:
    prof = build_profile(frame(1500, 15), NUM, CAT)
    empty = check_drift(prof, frame(0, 16)).to_dict()
    assert empty["status"] == "insufficient_data" and empty["dataset_drifted"] is False
    assert all(c["status"] == "insufficient_data" for c in empty["columns"].values())
    small = check_drift(prof, frame(50, 16, shift=3), min_rows=200).to_dict()
    assert small["status"] == "insufficient_data" and "at least 200" in small["message"]
    assert small["drifted_columns"] == [] and small["share_drifted"] == 0.0


def test_missing_rates_and_new_and_vanished_categories() -> None:
    prof = build_profile(frame(2000, 17), NUM, CAT)
    cur = frame(1000, 18, p_new=0.1)
    cur = cur[cur["region"] != "east"]
    cur.loc[cur.index[:500], "income"] = np.nan
    cols = check_drift(prof, cur).to_dict()["columns"]
    assert cols["region"]["new_categories"] == ["mars"]
    assert cols["region"]["vanished_categories"] == ["east"]
    assert cols["income"]["missing_rate_reference"] == pytest.approx(0.1, abs=0.02)
    assert cols["income"]["missing_rate_current"] > 0.5


def test_profile_from_another_model_is_refused() -> None:
    prof = build_profile(frame(200, 19), NUM, CAT, metadata={"model": "credit-default", "feature_set_fingerprint": "a"})
    check_drift(prof, frame(50, 20), expected_metadata={"model": "credit-default", "feature_set_fingerprint": "a"})
    with pytest.raises(ProfileMismatchError, match="feature_set_fingerprint: the profile has 'a', expected 'b'"):
        check_drift(prof, frame(50, 20), expected_metadata={"feature_set_fingerprint": "b"})
    with pytest.raises(ProfileMismatchError, match="version: the profile has none"):
        check_drift(prof, frame(50, 20), expected_metadata={"version": 3})


def test_sampled_reference_is_close_to_the_full_statistic() -> None:
    rng = np.random.default_rng(21)
    ref, cur = rng.normal(size=50_000), rng.normal(0.05, 1, size=3000)
    prof = build_profile({"x": ref}, ["x"], overrides={"x": {"method": "ks"}}, sample_size=2000)
    assert not prof.to_dict()["columns"]["x"]["exact"]
    res = check_drift(prof, {"x": cur})
    full = stats.ks_2samp(ref, cur)
    assert res.columns["x"].statistic == pytest.approx(full.statistic, abs=1 / 2000)
    assert any("quantile sample" in n for n in res.notes)
    w = check_drift(build_profile({"x": ref}, ["x"], sample_size=2000), {"x": cur}).columns["x"].statistic
    assert w == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), abs=0.01)


def test_booleans_mean_the_same_from_every_source() -> None:
    prof = build_profile({"b": np.array([True, False] * 600)}, categorical=["b"])
    assert sorted(prof.to_dict()["columns"]["b"]["keys"]) == ["false", "true"]
    for cur in (
        {"b": pa.array([True, False] * 50)},
        {"b": np.array(["True", "False"] * 50, dtype=object)},
        pd.DataFrame({"b": [True, False] * 50}),
    ):
        col = check_drift(prof, cur).to_dict()["columns"]["b"]
        assert col["new_categories"] == [] and col["drifted"] is False


def test_prediction_column_is_reported_separately(credit_fs: Any) -> None:
    rng = np.random.default_rng(22)
    n = 1200
    data: dict[str, Any] = {f.name: rng.normal(size=n) for f in credit_fs.features if f.type in ("int", "float")}
    for f in credit_fs.features:
        if f.type == "categorical":
            data[f.name] = rng.choice(list(f.categories), n).astype(object)
        elif f.type == "bool":
            data[f.name] = rng.random(n) < 0.5
    preds = rng.beta(2, 5, n)
    prof = build_profile_for_feature_set(credit_fs, data, preds, model="credit-default", version=3)
    meta = prof.metadata
    assert meta["model"] == "credit-default" and meta["version"] == 3
    assert meta["feature_set_fingerprint"] == credit_fs.fingerprint
    assert prof.columns["online_sessions_30d"].method == "psi"
    assert prof.columns["online_sessions_30d"].threshold == 0.2
    assert prof.columns["prediction"].role == "prediction"
    cur = {k: v[:400] for k, v in data.items()}
    cur["prediction"] = rng.beta(5, 2, 400)
    res = check_drift(prof, cur, expected_metadata={"model": "credit-default", "version": 3})
    assert res.prediction_drifted is True
    n_features = len(prof.columns) - 1
    assert "prediction" not in res.drifted_columns
    assert res.share_drifted == pytest.approx(len(res.drifted_columns) / n_features)


def test_profile_files_that_are_not_profiles_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileFormatError, match="not valid JSON"):
        Profile.load(bad)
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ProfileFormatError, match="not a driftline drift profile"):
        Profile.load(bad)
    with pytest.raises(ProfileFormatError, match="not found"):
        Profile.load(tmp_path / "missing.json")


def test_distance_above_keeps_huge_windows_off_p_values() -> None:
    ref = frame(800, 23)
    cur = frame(5000, 24)
    cur["age"] = cur["age"] + 0.6  # a trivial shift (0.06 sd) that KS flags on a large window
    prof = build_profile(ref, NUM, CAT)
    default = check_drift(prof, cur).to_dict()["columns"]["age"]
    assert default["method"] == "ks"
    guarded = check_drift(prof, cur, distance_above=1000).to_dict()["columns"]
    assert guarded["age"]["method"] == "wasserstein" and guarded["age"]["drifted"] is False
    assert guarded["region"]["method"] == "jensenshannon"
    small = check_drift(prof, cur.iloc[:500], distance_above=1000).to_dict()["columns"]["age"]
    assert small["method"] == "ks"
