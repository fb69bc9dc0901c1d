"""Segments (issue 21 item 6): drift, data quality and estimated performance per value of a categorical
feature, so a shift confined to one region shows there when the whole window does not move.

The data: twelve regions of unequal size; in the current window ``x1`` and ``x2`` move by one standard
deviation in ``north`` only (8 % of the rows), which moves the whole window's distributions by well under
the Wasserstein threshold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from driftline.config import ConfigError, DriftSettings, load
from driftline.contracts import SEGMENT_DRIFT_METRIC, SEGMENT_OTHER, SEGMENT_SHARE_METRIC
from driftline.drift import DriftInputError, Profile, build_profile, check_drift
from driftline.drift.columns import row_keys
from driftline.drift.engine import check_summary
from driftline.drift.summary import Summary, summarize
from driftline.monitoring import publish
from driftline.monitoring.check import segment_lines

REGIONS = np.array(["north", "south", "east", "west", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "r12"])
SHARES = np.array([0.08, 0.2, 0.2, 0.2, 0.1, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.005])


def _rows(n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, n, p=SHARES / SHARES.sum())
    north = region == "north"
    return {
        "region": region.astype(object),
        "x1": rng.normal(0, 1, n) + np.where(north, shift, 0.0),
        "x2": rng.normal(5, 2, n) + np.where(north, 2 * shift, 0.0),
        "c": rng.choice(["a", "b", "c"], n).astype(object),
    }


@pytest.fixture(scope="module")
def profile() -> Profile:
    built = build_profile(_rows(20_000, 0), ["x1", "x2"], ["region", "c"], segments=["region"], max_segments=8)
    return Profile.from_json(built.to_json())  # what the check reads back from S3


def _check(profile: Profile, data: Any, min_segment_rows: int = 100) -> dict[str, Any]:
    res = check_drift(profile, data, distance_above=1000, segments=["region"], min_segment_rows=min_segment_rows)
    out: dict[str, Any] = res.to_dict()
    return out


def test_a_shift_in_one_segment_is_seen_there_and_not_in_the_whole_window(profile: Profile) -> None:
    doc = _check(profile, _rows(3000, 1, shift=1.0))
    assert doc["drifted_columns"] == [] and not doc["dataset_drifted"]  # the whole window: nothing
    assert doc["columns"]["x1"]["statistic"] < doc["columns"]["x1"]["threshold"]
    seg = doc["segments"]["region"]
    assert seg["status"] == "ok" and seg["drifted_segments"] == ["north"]
    assert doc["drifted_segments"] == ["region=north"]
    north = seg["values"]["north"]
    assert north["dataset_drifted"] and sorted(north["drifted_columns"]) == ["x1", "x2"]
    assert (
        north["columns"]["x1"]["method"] == "ks" and north["columns"]["x1"]["score"] < 1e-6
    )  # a p-value: a small segment
    assert north["quality"]["status"] == "ok"
    assert north["rows"] == int(np.sum(_rows(3000, 1)["region"] == "north"))
    calm = _check(profile, _rows(3000, 2))
    assert calm["drifted_segments"] == []


def test_segments_are_bounded_and_small_ones_are_insufficient(profile: Profile) -> None:
    seg = profile.segments["region"]
    assert set(seg.values) == {"south", "east", "west", "r5", "r6", "north", "r7", "r8"}  # the 8 most frequent
    assert seg.segments[-1] == SEGMENT_OTHER  # r9..r12 and missing values together
    doc = _check(profile, _rows(3000, 3), min_segment_rows=200)
    values = doc["segments"]["region"]["values"]
    assert list(values) == seg.segments and sum(v["rows"] for v in values.values()) == 3000
    small = [v for v, r in values.items() if r["rows"] < 200]
    assert small and all(values[v]["status"] == "insufficient_data" and not values[v]["dataset_drifted"] for v in small)


def test_missing_and_unseen_values_fall_in_other(profile: Profile) -> None:
    data = _rows(600, 4)
    data["region"][:50] = None
    data["region"][50:80] = "atlantis"
    values = _check(profile, data)["segments"]["region"]["values"]
    expected = int(np.isin(_rows(600, 4)["region"][80:], ["r9", "r10", "r11", "r12"]).sum()) + 80
    assert values[SEGMENT_OTHER]["rows"] == expected


def test_workflow_summaries_give_the_in_process_segment_verdicts(profile: Profile) -> None:
    data = _rows(3000, 1, shift=1.0)
    whole = _check(profile, data)
    shards = [Summary.from_dict(summarize(profile, {k: v[i::4] for k, v in data.items()}).to_dict()) for i in range(4)]
    merged = check_summary(
        profile, Summary.merge_all(shards), distance_above=1000, segments=["region"], min_segment_rows=100
    ).to_dict()
    assert merged["drifted_segments"] == whole["drifted_segments"] == ["region=north"]
    for value, r in whole["segments"]["region"]["values"].items():
        m = merged["segments"]["region"]["values"][value]
        assert (m["rows"], m["status"], m["dataset_drifted"], m["drifted_columns"]) == (
            r["rows"],
            r["status"],
            r["dataset_drifted"],
            r["drifted_columns"],
        )
        assert m["share_drifted"] == r["share_drifted"] and m["quality"] == r["quality"]
        for col, c in r["columns"].items():
            assert m["columns"][col]["score"] == pytest.approx(c["score"], rel=1e-9, abs=1e-12)


def test_a_profile_without_segments_still_checks_and_says_why(profile: Profile) -> None:
    old_doc = profile.to_dict()
    del old_doc["segments"]  # a profile built before segments existed
    old = Profile.from_dict(old_doc)
    doc = _check(old, _rows(3000, 1, shift=1.0))
    seg = doc["segments"]["region"]
    assert seg["status"] == "unavailable" and "retrain" in seg["message"] and seg["values"] == {}
    assert doc["status"] == "ok" and doc["drifted_segments"] == []
    assert check_drift(old, _rows(300, 1)).to_dict()["segments"] == {}  # no segments asked: none reported


def test_segment_columns_are_refused_unless_categorical_features(profile: Profile) -> None:
    with pytest.raises(DriftInputError, match=r"'x1', not a categorical feature column.*allowed: region, c"):
        check_drift(profile, _rows(300, 1), segments=["x1"])
    with pytest.raises(DriftInputError, match="not the string"):
        check_drift(profile, _rows(300, 1), segments="region")
    with pytest.raises(DriftInputError, match=r"'nope', not a categorical feature column.*allowed: region, c"):
        build_profile(_rows(500, 1), ["x1", "x2"], ["region", "c"], segments=["nope"])
    with pytest.raises(DriftInputError, match="max_segments=0"):
        build_profile(_rows(500, 1), ["x1"], ["region"], segments=["region"], max_segments=0)


def test_a_segment_with_too_few_reference_rows_is_unavailable_with_the_reason() -> None:
    data = _rows(2000, 5)
    built = build_profile(data, ["x1", "x2"], ["region", "c"], segments=["region"], max_segments=12)
    assert (
        "r11" in built.segments["region"].unavailable
        and "reference rows" in built.segments["region"].unavailable["r11"]
    )
    values = check_drift(built, _rows(2000, 6), segments=["region"]).to_dict()["segments"]["region"]["values"]
    assert values["r11"]["status"] == "unavailable" and "reference rows" in values["r11"]["message"]


def test_segment_keys_match_the_category_counts_of_every_input_type() -> None:
    raw = ["a", "b", None, "a"]
    for data in (
        {"r": np.asarray(raw, dtype=object)},
        pd.DataFrame({"r": pd.Categorical(raw)}),
        pa.table({"r": raw}),
    ):
        assert row_keys(data, "r").tolist() == ["a", "b", None, "a"]  # type: ignore[union-attr]
    assert row_keys({"r": np.asarray([True, False])}, "r").tolist() == ["true", "false"]  # type: ignore[union-attr]
    assert row_keys({"r": np.asarray([1.0, np.nan])}, "r").tolist() == ["1", None]  # type: ignore[union-attr]
    assert row_keys({"r": np.asarray([1.0])}, "nope") is None


def test_outputs_name_the_drifted_segment(profile: Profile) -> None:
    doc = _check(profile, _rows(3000, 1, shift=1.0))
    lines = segment_lines(doc)
    assert len(lines) == 1 and lines[0].startswith("Segment region=north drifted")
    assert "x1" in lines[0] and "the whole window is not dataset drift" in lines[0]
    metrics = publish.metric_data("m", 1, doc, None, pd.Timestamp("2026-12-01", tz="UTC").to_pydatetime())
    seg = [m for m in metrics if m["MetricName"] in (SEGMENT_SHARE_METRIC, SEGMENT_DRIFT_METRIC)]
    judged = [v for v, r in doc["segments"]["region"]["values"].items() if r["status"] == "ok"]
    assert len(seg) == 2 * len(judged) <= 2 * (profile.segments["region"].max_segments + 1)
    north = [m for m in seg if {"Name": "Segment", "Value": "north"} in m["Dimensions"]]
    assert {m["MetricName"]: m["Value"] for m in north}[SEGMENT_DRIFT_METRIC] == 1.0
    json.dumps(doc, allow_nan=False)  # result.json stays valid JSON


def test_alarm_reason_segment_drift_even_when_the_window_is_not_drifted(profile: Profile) -> None:
    from driftline.config import ModelConfig
    from driftline.monitoring.check import _alarm_state, _subject
    from driftline.monitoring.window import Window

    doc = _check(profile, _rows(3000, 1, shift=1.0))
    mc = ModelConfig(name="m", feature_set="fs", drift=DriftSettings(segments=("region",)))
    start = pd.Timestamp("2026-12-01T00:00", tz="UTC").to_pydatetime()
    end = pd.Timestamp("2026-12-01T01:00", tz="UTC").to_pydatetime()
    entry = _alarm_state("m", 1, Window(start, end), doc, None, None, mc)
    assert entry.reasons == ["segment_drift"] and entry.alarm and not entry.dataset_drifted
    assert _subject("m", 1, entry) == "Driftline: segment drift on m v1"


# ---------------------------------------------------------------- configuration
def _cdk(tmp_path: Path, drift: dict[str, Any]) -> Path:
    fs_dir = tmp_path / "feature_sets"
    fs_dir.mkdir(parents=True)
    (fs_dir / "shop.yaml").write_text(
        "name: shop\nversion: 1\nentity: [id]\ntimestamp: ts\nfeatures:\n"
        "  - {name: price, type: float}\n  - {name: note, type: string}\n"
        "  - {name: region, type: categorical, categories: [n, s]}\n  - {name: vip, type: bool}\n"
    )
    env = {"feature_sets_dir": "feature_sets", "models": [{"name": "shop", "feature_set": "shop", "drift": drift}]}
    path = tmp_path / "cdk.json"
    path.write_text(json.dumps({"context": {"driftline:environments": {"dev": env}}}))
    return path


def test_config_refuses_segment_columns_not_categorical_features(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"'models\[0\].drift.segments': 'zip', 'note' not a drift-checked categorical .*allowed: region, vip",
    ):
        load(_cdk(tmp_path / "a", {"segments": ["zip", "note"]}))
    with pytest.raises(ConfigError, match=r"'price' not a drift-checked categorical.*\('price' numerical\)"):
        load(_cdk(tmp_path / "b", {"segments": ["price"]}))
    with pytest.raises(ConfigError, match="max_segments"):
        load(_cdk(tmp_path / "c", {"segments": ["region"], "max_segments": 51}))
    with pytest.raises(ConfigError, match="segments"):
        load(_cdk(tmp_path / "d", {"segments": ["region", "vip", "region"]}))


def test_config_accepts_categorical_segments_and_documents_defaults(tmp_path: Path) -> None:
    cfg = load(_cdk(tmp_path, {"segments": ["region", "vip"], "max_segments": 5}))
    assert cfg.models[0].drift.segments == ("region", "vip") and cfg.models[0].drift.max_segments == 5
    d = DriftSettings()
    assert (d.segments, d.max_segments, d.min_segment_rows) == ((), 10, 200)


def test_a_column_without_values_in_a_segment_is_left_out_of_that_segment_only() -> None:
    data = _rows(4000, 8)
    data["x2"] = np.where(data["region"] == "south", np.nan, data["x2"])  # a feature south never has
    built = build_profile(data, ["x1", "x2"], ["region", "c"], segments=["region"], max_segments=4)
    profiles = built.segments["region"].profiles
    assert "x2" not in profiles["south"].columns and "x2" in profiles["east"].columns
    values = check_drift(built, _rows(2000, 9), segments=["region"]).to_dict()["segments"]["region"]["values"]
    assert values["south"]["status"] == "ok" and set(values["south"]["columns"]) == {"x1", "c"}


def test_a_window_without_the_segment_column_reports_it_unavailable(profile: Profile) -> None:
    data = _rows(600, 10)
    del data["region"]
    doc = check_drift(profile, data, segments=["region"]).to_dict()
    assert doc["columns"]["region"]["status"] == "missing_column"
    seg = doc["segments"]["region"]
    assert seg["status"] == "unavailable" and "not in the current data" in seg["message"]


def test_segment_metric_dimensions_are_valid_for_any_category() -> None:
    doc = {
        "segments": {"region": {"values": {"": {"status": "ok", "share_drifted": 0.0}, "x" * 2000: {"status": "ok"}}}}
    }
    dims = [d["Value"] for _, _, extra in publish.segment_metrics(doc["segments"]) for d in extra]
    assert "(empty)" in dims and all(1 <= len(v) <= 1024 for v in dims)


@pytest.mark.parametrize(
    ("field", "bad"),
    [("segments", [1]), ("segments", {"region": [1]}), ("segments", {"region": {"a": [1]}}), ("segment_problems", [1])],
)
def test_a_damaged_shard_summary_is_a_format_error(profile: Profile, field: str, bad: Any) -> None:
    doc = summarize(profile, _rows(300, 11)).to_dict()
    doc[field] = bad
    with pytest.raises(DriftInputError, match="damaged drift summary"):
        Summary.from_dict(doc)


def test_small_segments_use_p_value_tests_also_with_the_engine_defaults(profile: Profile) -> None:
    values = check_drift(profile, _rows(3000, 12), segments=["region"]).to_dict()["segments"]["region"]["values"]
    for r in values.values():
        if r["status"] == "ok":  # every segment here has at most 1,000 rows
            assert {c["method"] for c in r["columns"].values()} <= {"ks", "chisquare", "z"}, r
    big = check_drift(profile, _rows(20_000, 13), segments=["region"]).to_dict()["segments"]["region"]["values"]
    assert big["south"]["rows"] > 1000 and big["south"]["columns"]["x1"]["method"] == "wasserstein"
