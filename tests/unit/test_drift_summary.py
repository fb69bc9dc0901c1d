"""Shard summaries: merging shards equals one pass; checks from summaries match raw checks."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from scipy import stats

from driftline.drift import DriftInputError, Summary, build_profile, check_drift, check_summary, summarize


def _data(rng: np.random.Generator, n: int, shift: float) -> dict[str, np.ndarray]:
    x = rng.normal(shift, 1, n)
    x[rng.random(n) < 0.05] = np.nan
    return {
        "x": x,
        "k": rng.integers(0, 4 + int(shift > 0.5), n).astype(np.float64),
        "c": rng.choice(["a", "b", "c", "d"] if shift < 0.5 else ["a", "b", "e"], n).astype(object),
    }


@hs.composite
def sharded(draw: hs.DrawFn) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[int]]:
    rng = np.random.default_rng(draw(hs.integers(0, 2**32 - 1)))
    ref = _data(rng, draw(hs.integers(20, 1500)), 0.0)
    n = draw(hs.integers(1, 600))
    cur = _data(rng, n, draw(hs.floats(0, 1)))
    cuts = sorted(draw(hs.lists(hs.integers(0, n), max_size=5)))
    return ref, cur, cuts


def _shards(cur: dict[str, np.ndarray], cuts: list[int]) -> list[dict[str, np.ndarray]]:
    bounds = [0, *cuts, len(cur["x"])]
    return [{k: v[a:b] for k, v in cur.items()} for a, b in itertools.pairwise(bounds)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sharded())
def test_merging_shards_equals_one_pass(
    case: tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[int]],
) -> None:
    ref, cur, cuts = case
    prof = build_profile(ref, ["x", "k"], ["c"], overrides={"k": {"method": "psi"}}, sample_size=300)
    whole = summarize(prof, cur)
    merged = Summary.merge_all(summarize(prof, s) for s in _shards(cur, cuts))
    a, b = whole.to_dict(), merged.to_dict()
    for name in ("x", "k"):
        ca, cb = a["columns"][name], b["columns"][name]
        for key in ("n", "n_missing", "lt", "le", "bin_counts", "hist_counts", "new_overflow"):
            assert ca[key] == cb[key], (name, key)
        assert sorted(ca["new_values"]) == sorted(cb["new_values"])
        assert cb["total"] == pytest.approx(ca["total"], rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(cb["seg_sums"], ca["seg_sums"], rtol=1e-12, atol=1e-9)
    assert a["columns"]["c"]["counts"] == b["columns"]["c"]["counts"]
    assert a["n_rows"] == b["n_rows"]
    ra, rb = check_summary(prof, whole).to_dict(), check_summary(prof, merged).to_dict()
    for name, col in ra["columns"].items():
        other = rb["columns"][name]
        assert (col["method"], col["drifted"], col["status"]) == (
            other["method"],
            other["drifted"],
            other["status"],
        )
        for key in ("statistic", "p_value"):
            if col[key] is None:
                assert other[key] is None
            else:
                assert other[key] == pytest.approx(col[key], rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(hs.integers(0, 2**32 - 1), hs.integers(20, 800), hs.integers(1, 3000), hs.floats(0, 1))
def test_summary_checks_match_raw_checks(seed: int, n_ref: int, n_cur: int, shift: float) -> None:
    """KS, chi-squared, z, JS and PSI are exact from counts; Wasserstein stays close."""
    rng = np.random.default_rng(seed)
    ref, cur = _data(rng, n_ref, 0.0), _data(rng, n_cur, shift)
    prof = build_profile(ref, ["x", "k"], ["c"], overrides={"x": {"method": "ks"}})
    raw, summ = check_drift(prof, cur).to_dict(), check_summary(prof, summarize(prof, cur)).to_dict()
    for name in ("x", "k", "c"):
        for key in ("statistic", "p_value", "drifted"):
            assert summ["columns"][name][key] == raw["columns"][name][key]
    x = ref["x"][np.isfinite(ref["x"])]
    y = cur["x"][np.isfinite(cur["x"])]
    if y.size:
        assert raw["columns"]["x"]["statistic"] == pytest.approx(stats.ks_2samp(x, y).statistic, abs=1e-12)
    wprof = build_profile(ref, ["x"], overrides={"x": {"method": "wasserstein"}})
    exact = check_drift(wprof, cur).columns["x"].statistic
    approx = check_summary(wprof, summarize(wprof, cur)).columns["x"].statistic
    if exact is not None and approx is not None:
        # the error is at most sum over reference intervals of width * (share of current values inside)
        v = wprof.columns["x"].values  # type: ignore[union-attr]
        inside = np.histogram(y, bins=v)[0] if v.size > 1 else np.zeros(0)
        bound = float(np.sum(np.diff(v) * inside) / max(y.size, 1)) / max(float(np.std(x)), 0.001)
        assert abs(approx - exact) <= bound + 1e-9


def test_wasserstein_from_summary_is_exact_when_intervals_hold_one_value() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=3000), rng.normal(0.3, 1.2, 40)
    prof = build_profile({"x": ref}, ["x"])
    exact = stats.wasserstein_distance(ref, cur) / np.std(ref)
    approx = check_summary(prof, summarize(prof, {"x": cur})).columns["x"].statistic
    assert approx == pytest.approx(exact, rel=1e-9)


def test_summary_survives_json_and_refuses_other_profiles() -> None:
    rng = np.random.default_rng(6)
    ref, cur = _data(rng, 500, 0.0), _data(rng, 200, 0.7)
    prof = build_profile(ref, ["x", "k"], ["c"])
    s = summarize(prof, cur)
    again = Summary.from_dict(json.loads(json.dumps(s.to_dict(), allow_nan=False)))
    assert check_summary(prof, again).to_dict() == check_summary(prof, s).to_dict()
    other = build_profile(ref, ["x", "k"], ["c"])
    with pytest.raises(DriftInputError, match="different profiles"):
        s.merge(summarize(other, cur))
    with pytest.raises(DriftInputError, match="summarize the data with the profile"):
        check_summary(other, s)


def test_a_column_missing_from_one_shard_is_reported() -> None:
    rng = np.random.default_rng(7)
    ref, cur = _data(rng, 500, 0.0), _data(rng, 200, 0.0)
    prof = build_profile(ref, ["x", "k"], ["c"])
    shard: dict[str, Any] = {k: v[:100] for k, v in cur.items() if k != "c"}
    merged = summarize(prof, shard).merge(summarize(prof, {k: v[100:] for k, v in cur.items()}))
    res = check_summary(prof, merged).to_dict()
    assert res["columns"]["c"]["status"] == "missing_column"
    assert res["n_current"] == 200
