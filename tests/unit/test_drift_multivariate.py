"""Multivariate drift: a flipped correlation that no per-column test sees, and what must stay quiet."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from driftline.drift import DriftInputError, Profile, ProfileFormatError, build_profile, check_drift, check_summary
from driftline.drift.multivariate import (
    ErrorSums,
    MultivariateModel,
    domain_classifier_check,
    reconstruction_check,
    reconstruction_sums,
)
from driftline.drift.summary import Summary, summarize

NUMERICAL = ["a", "b", "c"]
CATEGORICAL = ["region"]


def window(n: int, rho: float, seed: int) -> dict[str, np.ndarray]:
    """a and b standard normal with correlation ``rho``; c and region independent of them."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    region = rng.choice(["north", "south", "east"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    return {"a": a, "b": b, "c": rng.exponential(size=n), "region": region}


@pytest.fixture(scope="module")
def profile() -> Profile:
    return build_profile(window(4000, 0.9, 0), NUMERICAL, CATEGORICAL)


def model_of(profile: Profile) -> MultivariateModel:
    assert isinstance(profile.multivariate, MultivariateModel)
    return profile.multivariate


def test_a_flipped_correlation_passes_every_column_test_but_not_the_reconstruction_error(profile: Profile) -> None:
    flipped = window(2000, -0.9, 1)
    result = check_drift(profile, flipped)
    assert result.drifted_columns == []  # the point: every marginal is unchanged
    assert not result.dataset_drifted
    mv = result.to_dict()["multivariate"]
    assert mv["method"] == "pca" and mv["status"] == "ok" and mv["drifted"]
    assert mv["statistic"] > mv["upper"] > mv["reference_error"]
    assert mv["n_components"] < 4 and mv["explained_variance"] >= 0.65


@pytest.mark.parametrize("n", [50, 500, 5000])
def test_unchanged_windows_raise_no_alarm_over_many_seeds(profile: Profile, n: int) -> None:
    model = model_of(profile)
    alarms = [
        reconstruction_check(model, reconstruction_sums(model, window(n, 0.9, seed))).drifted for seed in range(1, 31)
    ]
    assert sum(alarms) == 0


def test_many_independent_features_do_not_alarm_from_the_fit_itself() -> None:
    """Components fitted on the reference also fit its noise; a threshold from those same rows made nine
    clean windows in ten alarm on the monitoring check's credit data of this shape (21 features, 3,000
    rows), which is why the threshold comes from held-out rows."""
    rng = np.random.default_rng(0)

    def rows(n: int) -> dict[str, np.ndarray]:
        return {f"f{j}": rng.gamma(2.0, 1.0, n) for j in range(21)}

    profile = build_profile(rows(3000), [f"f{j}" for j in range(21)])
    model = model_of(profile)
    assert model.components.shape[0] > 5  # many components fitted to noise
    assert not any(reconstruction_check(model, reconstruction_sums(model, rows(1000))).drifted for _ in range(20))


def test_the_bound_widens_for_windows_smaller_than_a_reference_chunk_and_never_narrows(profile: Profile) -> None:
    model = model_of(profile)
    small, chunk, huge = model.bounds(10), model.bounds(model.chunk_rows), model.bounds(10**7)
    assert small[1] - small[0] > chunk[1] - chunk[0]
    assert huge == chunk


def test_shard_summaries_merged_equal_the_whole_window(profile: Profile) -> None:
    data = window(3000, -0.9, 2)
    parts = [summarize(profile, {k: v[i : i + 700] for k, v in data.items()}) for i in range(0, 3000, 700)]
    merged = Summary.merge_all([Summary.from_dict(json.loads(json.dumps(p.to_dict()))) for p in parts])
    whole = summarize(profile, data)
    assert merged.multivariate is not None and whole.multivariate is not None
    assert merged.multivariate.n == whole.multivariate.n == 3000
    assert merged.multivariate.total == pytest.approx(whole.multivariate.total, rel=1e-12)
    assert merged.multivariate.total_sq == pytest.approx(whole.multivariate.total_sq, rel=1e-12)
    from_shards = check_summary(profile, merged).to_dict()["multivariate"]
    in_process = check_drift(profile, data).to_dict()["multivariate"]
    assert from_shards["drifted"] and in_process["drifted"]
    assert from_shards["statistic"] == pytest.approx(in_process["statistic"], rel=1e-12)


def test_the_profile_json_round_trip_keeps_the_fitted_transform(profile: Profile) -> None:
    text = profile.to_json()
    assert "pickle" not in text
    again = Profile.from_json(text)
    a, b = model_of(profile), model_of(again)
    assert a.columns == b.columns == [*NUMERICAL, *CATEGORICAL]
    np.testing.assert_allclose(a.components, b.components)
    np.testing.assert_allclose(a.means, b.means)
    np.testing.assert_allclose(a.sample, b.sample, atol=1e-5)
    data = window(800, -0.9, 3)
    assert reconstruction_sums(a, data).total == pytest.approx(reconstruction_sums(b, data).total, rel=1e-12)


def test_an_old_profile_reports_multivariate_unavailable_with_the_reason(profile: Profile) -> None:
    doc = profile.to_dict()
    del doc["multivariate"]
    old = Profile.from_dict(doc)
    mv = check_drift(old, window(500, -0.9, 4)).to_dict()["multivariate"]
    assert mv["status"] == "unavailable" and not mv["drifted"]
    assert "built before multivariate drift existed" in mv["message"]


def test_a_damaged_model_in_the_profile_is_refused_with_a_message(profile: Profile) -> None:
    doc = profile.to_dict()
    doc["multivariate"]["components"] = [[1.0, 2.0]]
    with pytest.raises(ProfileFormatError, match="damaged multivariate model"):
        Profile.from_dict(doc)
    doc["multivariate"] = "yes"
    with pytest.raises(ProfileFormatError, match="multivariate is str"):
        Profile.from_dict(doc)


def test_too_few_columns_or_rows_give_the_reason_instead_of_a_model() -> None:
    one = build_profile(window(500, 0.9, 0), ["a"])
    assert isinstance(one.multivariate, dict) and one.multivariate["status"] == "unavailable"
    assert "at least two feature columns" in one.multivariate["reason"]
    tiny = Profile.from_json(build_profile(window(150, 0.9, 0), NUMERICAL).to_json())
    mv = check_drift(tiny, window(150, -0.9, 1)).to_dict()["multivariate"]
    assert mv["status"] == "unavailable" and "the reference has 150 rows" in mv["message"]


def test_a_window_missing_a_model_column_is_reported_not_raised(profile: Profile) -> None:
    data = window(400, -0.9, 5)
    del data["b"]
    result = check_drift(profile, data).to_dict()
    assert result["columns"]["b"]["status"] == "missing_column"
    assert result["multivariate"]["status"] == "unavailable"
    assert "'b' is not in the data" in result["multivariate"]["message"]


def test_categories_encode_as_the_profile_keys_them_whatever_the_container(profile: Profile) -> None:
    model = model_of(profile)
    data = window(300, 0.9, 6)
    as_dict = reconstruction_sums(model, data)
    as_arrow = reconstruction_sums(model, pa.table({k: pa.array(list(v)) for k, v in data.items()}))
    assert as_arrow.total == pytest.approx(as_dict.total, rel=1e-12)
    unseen = dict(data, region=np.asarray(["mars"] * 300, dtype=object))
    assert reconstruction_sums(model, unseen).total != pytest.approx(as_dict.total)


def test_hostile_settings_get_precise_messages(profile: Profile) -> None:
    with pytest.raises(DriftInputError, match="multivariate='umap' is not one of pca, domain_classifier, off"):
        check_drift(profile, window(100, 0.9, 1), multivariate="umap")
    with pytest.raises(DriftInputError, match=r"auc_threshold=0\.4"):
        domain_classifier_check(model_of(profile), window(100, 0.9, 1), auc_threshold=0.4)
    assert check_drift(profile, window(100, 0.9, 1), multivariate="off").multivariate is None


def test_small_windows_below_min_rows_never_alarm(profile: Profile) -> None:
    mv = check_drift(profile, window(50, -0.9, 7), min_rows=200).to_dict()["multivariate"]
    assert mv["status"] == "insufficient_data" and not mv["drifted"]
    assert reconstruction_check(model_of(profile), ErrorSums()).status == "insufficient_data"


def test_the_domain_classifier_tells_a_small_shifted_window_from_the_reference(profile: Profile) -> None:
    pytest.importorskip("sklearn")
    shifted = check_drift(profile, window(150, -0.9, 8), multivariate="domain_classifier").to_dict()["multivariate"]
    assert shifted["method"] == "domain_classifier" and shifted["status"] == "ok"
    assert shifted["drifted"] and shifted["statistic"] > 0.65
    same = check_drift(profile, window(150, 0.9, 9), multivariate="domain_classifier").to_dict()["multivariate"]
    assert not same["drifted"] and same["statistic"] < 0.65
    summary = summarize(profile, window(150, -0.9, 8))
    off = check_summary(profile, summary, multivariate="domain_classifier").to_dict()["multivariate"]
    assert off["status"] == "unavailable" and "needs the window's rows" in off["message"]


def _keys(d: dict[str, Any]) -> list[str]:
    return sorted(d)


def test_the_result_json_has_the_multivariate_fields(profile: Profile) -> None:
    doc = check_drift(profile, window(300, 0.9, 10)).to_dict()
    json.dumps(doc, allow_nan=False)
    assert _keys(doc["multivariate"]) == sorted(
        [
            "method",
            "status",
            "statistic",
            "lower",
            "upper",
            "drifted",
            "n_current",
            "n_reference",
            "n_components",
            "explained_variance",
            "reference_error",
            "message",
        ]
    )


def test_the_report_shows_the_multivariate_section_and_the_metrics_carry_it(profile: Profile) -> None:
    from datetime import UTC, datetime

    from driftline.contracts import MULTIVARIATE_DRIFT_METRIC, MULTIVARIATE_SCORE_METRIC
    from driftline.drift.report import render_html
    from driftline.monitoring.publish import metric_data

    result = check_drift(profile, window(500, -0.9, 11))
    html = render_html(result)
    assert "<h2>Multivariate drift</h2>" in html and "mean reconstruction error" in html
    old = profile.to_dict()
    del old["multivariate"]
    assert "built before multivariate drift existed" in render_html(
        check_drift(Profile.from_dict(old), window(500, 0.9, 1))
    )
    metrics = {m["MetricName"]: m for m in metric_data("m", 1, result.to_dict(), None, datetime.now(UTC))}
    assert metrics[MULTIVARIATE_DRIFT_METRIC]["Value"] == 1.0
    assert metrics[MULTIVARIATE_SCORE_METRIC]["Value"] == pytest.approx(result.to_dict()["multivariate"]["statistic"])
    assert {"Name": "Method", "Value": "pca"} in metrics[MULTIVARIATE_SCORE_METRIC]["Dimensions"]


def test_the_scale_out_shard_documents_carry_the_reconstruction_error(profile: Profile) -> None:
    from driftline.monitoring.scale.shards import summarize_shard

    data = window(1500, -0.9, 12)
    docs = []
    for i in range(0, 1500, 500):
        part = {k: v[i : i + 500] for k, v in data.items()}
        table = pa.table(
            {
                "request_id": [f"r{i + j}" for j in range(500)],
                "output": [{"probability": 0.5}] * 500,
                **{k: pa.array(list(v)) for k, v in part.items()},
            }
        )
        docs.append(json.loads(json.dumps(summarize_shard(profile, table))))
    merged = Summary.merge_all(Summary.from_dict(d["summary"]) for d in docs)
    from_shards = check_summary(profile, merged).to_dict()["multivariate"]
    assert from_shards["drifted"] and from_shards["n_current"] == 1500
    assert from_shards["statistic"] == pytest.approx(check_drift(profile, data).to_dict()["multivariate"]["statistic"])


def test_a_bad_multivariate_setting_is_refused_at_config_load_with_the_allowed_values() -> None:
    from pathlib import Path

    from driftline.config import ConfigError, from_context

    context = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]
    env = context["driftline:env"]
    context["driftline:environments"][env].setdefault("monitoring", {}).update(
        {"multivariate": "umap", "multivariate_auc_threshold": 0.3}
    )
    with pytest.raises(ConfigError) as err:
        from_context(context, env)
    assert "'pca', 'domain_classifier' or 'off'" in str(err.value)
    assert "multivariate_auc_threshold': 0.3 is not allowed: Input should be greater than 0.5" in str(err.value)
