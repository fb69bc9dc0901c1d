"""Data-quality checks per window (issue 21 item 3): missing, out-of-range and unseen-category rates
against the feature set recorded in the profile, each with its own threshold; shard counts merge."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from driftline.drift import Profile, build_profile_for_feature_set, check_drift, summarize
from driftline.drift.profile import NumericProfile
from driftline.drift.quality import (
    QualityCounts,
    QualityThresholds,
    check_quality,
    count_quality,
    evaluate_quality,
    quality_from_summary,
)
from driftline.drift.report import render_html
from driftline.features.schema import FeatureSet, parse_feature_set


def _fs() -> FeatureSet:
    return parse_feature_set(
        {
            "name": "shop",
            "version": 1,
            "entity": ["id"],
            "timestamp": "ts",
            "features": [
                {"name": "price", "type": "float", "min": 0, "max": 1000},
                {"name": "age", "type": "float"},
                {"name": "region", "type": "categorical", "categories": ["n", "s", "e"]},
                {"name": "member", "type": "bool"},
            ],
        }
    )


def _data(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.uniform(20, 60, n)
    age[: n // 50] = np.nan  # 2 % missing in the reference too
    return {
        "price": rng.uniform(10, 500, n),
        "age": age,
        "region": rng.choice(["n", "s"], n).astype(object),
        "member": rng.random(n) < 0.5,
    }


@pytest.fixture(scope="module")
def profile() -> Profile:
    return build_profile_for_feature_set(_fs(), _data(5000, 0))


def test_a_clean_window_passes(profile: Profile) -> None:
    res = check_quality(profile, _data(2000, 1))
    assert res.status == "ok" and not res.alarm and res.failures == []
    doc = res.to_dict()
    assert doc["columns"]["age"]["missing_rate"] == pytest.approx(0.02)
    assert doc["columns"]["age"]["missing_rate_reference"] == pytest.approx(0.02)
    assert doc["columns"]["price"]["bounds"] == [0.0, 1000.0]  # declared
    age = profile.columns["age"]
    assert isinstance(age, NumericProfile)
    assert doc["columns"]["age"]["bounds"] == [age.min, age.max]  # open: the reference's range
    assert doc["thresholds"] == {"missing_rate": 0.05, "out_of_range_rate": 0.05, "unseen_category_rate": 0.01}


def test_each_check_fails_on_its_own_breakage(profile: Profile) -> None:
    d = _data(1000, 2)
    d["price"] = d["price"] * 100  # cents instead of dollars: most values above the declared max
    d["age"][:200] = np.nan  # 20 % missing vs 2 % in the reference
    d["region"][:30] = "w"  # 3 % of a category the feature set does not declare
    res = check_quality(profile, d)
    assert res.alarm
    failed = {(f["column"], f["check"]) for f in res.failures}
    assert failed == {("price", "out_of_range_rate"), ("age", "missing_rate"), ("region", "unseen_category_rate")}
    cols = res.to_dict()["columns"]
    assert cols["region"]["unseen_category_rate"] == pytest.approx(0.03)
    assert cols["age"]["missing_rate"] == pytest.approx(0.2, abs=0.011)
    assert res.worst("out_of_range_rate") == cols["price"]["out_of_range_rate"] > 0.5


def test_declared_but_unseen_category_is_not_a_quality_problem(profile: Profile) -> None:
    d = _data(1000, 3)
    d["region"][:300] = "e"  # declared in the feature set, absent from the training data: drift, not breakage
    assert not check_quality(profile, d).alarm


def test_thresholds_are_configurable_and_validated(profile: Profile) -> None:
    d = _data(1000, 4)
    d["region"][:30] = "w"
    assert check_quality(profile, d).alarm
    assert not check_quality(profile, d, QualityThresholds.from_mapping({"unseen_category_rate": 0.05})).alarm
    with pytest.raises(ValueError, match="unknown data-quality thresholds missing; known: missing_rate"):
        QualityThresholds.from_mapping({"missing": 0.1})
    with pytest.raises(ValueError, match="from 0 to 1"):
        QualityThresholds(out_of_range_rate=2.0)


def test_small_windows_are_insufficient_and_never_alarm(profile: Profile) -> None:
    d = _data(50, 5)
    d["price"] = d["price"] * 100
    res = check_quality(profile, d, min_rows=200)
    assert res.status == "insufficient_data" and not res.alarm and "50 rows" in res.message


def test_shards_merge_to_the_whole_window_and_summaries_agree(profile: Profile) -> None:
    d = _data(3000, 6)
    d["age"] = d["age"] + 30  # above the reference's max for about three quarters of the values
    d["region"][:100] = "w"
    table = pa.table(d)
    whole = count_quality(profile, table)
    parts = [count_quality(profile, table.slice(i, 1000)) for i in range(0, 3000, 1000)]
    merged = QualityCounts.from_dict(parts[0].merge(parts[1]).merge(parts[2]).to_dict())
    assert merged.to_dict() == whole.to_dict()
    summary = summarize(profile, table)
    from_summary = quality_from_summary(profile, summary)
    assert from_summary.columns["age"] == whole.columns["age"]  # open bounds: the reference range, exact
    assert from_summary.columns["region"] == whole.columns["region"]
    assert from_summary.columns["price"].n_out_of_range is None  # declared bounds: not in a summary
    res = evaluate_quality(profile, from_summary)
    assert res.to_dict()["columns"]["price"]["out_of_range_rate"] is None
    assert {f["check"] for f in res.failures} == {"out_of_range_rate", "unseen_category_rate"}


def test_counts_from_another_profile_are_refused(profile: Profile) -> None:
    other = build_profile_for_feature_set(_fs(), _data(500, 7))
    counts = count_quality(other, _data(100, 8))
    with pytest.raises(ValueError, match="different profiles"):
        count_quality(profile, _data(100, 8)).merge(counts)
    with pytest.raises(ValueError, match="made against profile"):
        evaluate_quality(profile, counts)
    with pytest.raises(ValueError, match="not driftline data-quality counts"):
        QualityCounts.from_dict({"format": "x"})
    with pytest.raises(ValueError, match="damaged"):
        QualityCounts.from_dict({"format": "driftline.drift.quality/1", "columns": {"a": {}}})


def test_the_html_report_shows_quality_and_the_weighting(profile: Profile) -> None:
    d = _data(1000, 9)
    d["price"] = d["price"] * 100
    d["region"][:30] = "w"
    quality = check_quality(profile, d).to_dict()
    weighted = Profile.from_dict(
        {**profile.to_dict(), "metadata": {**profile.metadata, "feature_importance": {"price": 0.9, "age": 0.1}}}
    )
    result = check_drift(weighted, d, weighting="importance", alert_on_columns=["region"])
    html = render_html(result, quality=quality)
    assert "<h2>Data quality</h2>" in html and "2 checks failed" in html
    assert "out of range rate" in html and "unseen category rate" in html
    assert "[0, 1000.0000]" in html  # the declared range of price
    assert "weighted by the model's feature importance" in html and "alert columns region" in html
    assert "<h2>Data quality</h2>" not in render_html(result)


def test_quality_metrics_use_the_contract_names(profile: Profile) -> None:
    from driftline.contracts import DATA_QUALITY_METRIC, QUALITY_RATE_METRICS
    from driftline.monitoring.publish import quality_metrics

    d = _data(1000, 10)
    d["region"][:30] = "w"
    rows = quality_metrics(check_quality(profile, d).to_dict())
    assert rows[0] == (DATA_QUALITY_METRIC, 1.0, [])
    by = {(n, e[0]["Value"]): v for n, v, e in rows[1:]}
    assert by[(QUALITY_RATE_METRICS["unseen_category_rate"], "region")] == pytest.approx(0.03)
    assert by[(QUALITY_RATE_METRICS["out_of_range_rate"], "region")] is None  # not a numeric check
    assert quality_metrics(check_quality(profile, d, min_rows=5000).to_dict()) == []
    assert quality_metrics(None) == []


def test_a_reference_beyond_a_declared_bound_widens_the_range() -> None:
    fs = _fs()
    ref = _data(2000, 11)
    ref["price"] = ref["price"] * 3  # up to 1,500: the training rows already cross the declared max of 1,000
    p = build_profile_for_feature_set(fs, ref)
    d = _data(1000, 12)
    d["price"] = d["price"] * 3
    res = check_quality(p, d)
    assert res.to_dict()["columns"]["price"]["bounds"][1] > 1000 and not res.alarm
