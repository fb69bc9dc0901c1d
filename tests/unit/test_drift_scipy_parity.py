"""Our statistics and p-values equal scipy's on randomized data (reference under the sample cap)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from scipy import special, stats
from scipy.spatial import distance

from driftline.drift import build_profile, check_drift
from driftline.drift import distributions as D

TOL = 1e-9
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sample(draw: hs.DrawFn, n_min: int, n_max: int) -> np.ndarray:
    n = draw(hs.integers(n_min, n_max))
    seed = draw(hs.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = draw(hs.sampled_from(["normal", "ties", "exponential", "shifted"]))
    if shape == "ties":
        return rng.integers(0, draw(hs.integers(2, 40)), n).astype(np.float64)
    if shape == "exponential":
        return rng.exponential(draw(hs.floats(0.1, 10)), n)
    loc = draw(hs.floats(-1, 1)) if shape == "shifted" else 0.0
    return rng.normal(loc, draw(hs.floats(0.1, 5)), n)


@hs.composite
def pairs(draw: hs.DrawFn, n_max: int = 300) -> tuple[np.ndarray, np.ndarray]:
    return _sample(draw, 6, n_max), _sample(draw, 1, n_max)


def _check(ref: np.ndarray, cur: np.ndarray, method: str) -> dict[str, object]:
    prof = build_profile(
        {"x": ref}, numerical=["x"], overrides={"x": {"method": method}}, sample_size=max(5000, ref.size)
    )
    return check_drift(prof, {"x": cur}).to_dict()["columns"]["x"]  # type: ignore[no-any-return]


@SETTINGS
@given(pairs())
def test_ks_matches_scipy_ks_2samp_auto(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    col = _check(ref, cur, "ks")
    want = stats.ks_2samp(ref, cur)
    assert col["statistic"] == pytest.approx(float(want.statistic), abs=TOL)
    assert col["p_value"] == pytest.approx(float(want.pvalue), abs=TOL)
    assert col["drifted"] == (want.pvalue <= 0.05)


@pytest.mark.parametrize(
    ("n1", "n2", "shift"),
    [(9_000, 10_001, 0.02), (400, 12_000, 0.0), (10_500, 10_500, 0.05), (300, 10_001, 0.3)],
)
def test_ks_asymptotic_branch_matches_scipy(n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(n1 + n2)
    ref, cur = rng.normal(size=n1), rng.normal(shift, size=n2)
    col = _check(ref, cur, "ks")
    want = stats.ks_2samp(ref, cur)  # max(n1, n2) > 10000: scipy's auto picks the asymptotic law
    assert col["statistic"] == pytest.approx(float(want.statistic), abs=TOL)
    assert col["p_value"] == pytest.approx(float(want.pvalue), abs=TOL)


@pytest.mark.parametrize(("n1", "n2"), [(50, 80), (100, 100), (1000, 300), (777, 1000)])
def test_ks_exact_branch_at_realistic_sizes(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * n2)
    for shift in (0.0, 0.1, 0.4):
        ref, cur = rng.normal(size=n1), rng.normal(shift, size=n2)
        d = stats.ks_2samp(ref, cur)
        got_d, got_p = D.ks_2samp_pvalues([d.statistic], n1, n2)
        assert got_d[0] == pytest.approx(float(d.statistic), abs=TOL)
        assert got_p[0] == pytest.approx(float(d.pvalue), abs=TOL)


@SETTINGS
@given(pairs(n_max=400))
def test_wasserstein_matches_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    col = _check(ref, cur, "wasserstein")
    want = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
    assert col["statistic"] == pytest.approx(want, rel=TOL, abs=TOL)
    assert col["p_value"] is None
    assert col["drifted"] == (want >= 0.1)


@hs.composite
def category_pairs(draw: hs.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    k = draw(hs.integers(2, 8))
    seed = draw(hs.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    labels = np.asarray([f"c{i}" for i in range(k)], dtype=object)
    p_ref = rng.dirichlet(np.ones(k))
    p_cur = rng.dirichlet(np.ones(k)) if draw(hs.booleans()) else p_ref
    ref = labels[rng.choice(k, draw(hs.integers(5, 500)), p=p_ref)]
    cur = labels[rng.choice(k, draw(hs.integers(1, 500)), p=p_cur)]
    return ref, cur


def _cat_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys = sorted(set(ref) | set(cur))
    r = np.asarray([np.sum(ref == k) for k in keys], dtype=float)
    c = np.asarray([np.sum(cur == k) for k in keys], dtype=float)
    return r, c


def _check_cat(ref: np.ndarray, cur: np.ndarray, method: str) -> dict[str, object]:
    prof = build_profile({"c": ref}, categorical=["c"], overrides={"c": {"method": method}})
    return check_drift(prof, {"c": cur}).to_dict()["columns"]["c"]  # type: ignore[no-any-return]


@SETTINGS
@given(category_pairs())
def test_jensenshannon_matches_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    r, c = _cat_counts(ref, cur)
    want = float(distance.jensenshannon(r / r.sum(), c / c.sum()))
    assert _check_cat(ref, cur, "jensenshannon")["statistic"] == pytest.approx(want, abs=TOL)


@SETTINGS
@given(category_pairs())
def test_chisquare_matches_scipy_goodness_of_fit(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    r, c = _cat_counts(ref, cur)
    col = _check_cat(ref, cur, "chisquare")
    with np.errstate(divide="ignore", invalid="ignore"):
        want = stats.chisquare(c, r * (c.sum() / r.sum()))
    if r.size == 1:  # one category on both sides: scipy says nan (df = 0); we say "no evidence of drift"
        assert col["p_value"] == 1.0 and col["drifted"] is False
    elif math.isinf(want.statistic):
        assert col["statistic"] is None and col["p_value"] == 0.0
    else:
        assert col["statistic"] == pytest.approx(float(want.statistic), rel=TOL, abs=TOL)
        assert col["p_value"] == pytest.approx(float(want.pvalue), abs=TOL)


@SETTINGS
@given(
    hs.integers(5, 2000),
    hs.integers(1, 2000),
    hs.floats(0.05, 0.95),
    hs.floats(0.05, 0.95),
    hs.integers(0, 2**32 - 1),
)
def test_z_test_equals_uncorrected_chi2_contingency(n1: int, n2: int, p1: float, p2: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = np.where(rng.random(n1) < p1, "yes", "no").astype(object)
    cur = np.where(rng.random(n2) < p2, "yes", "no").astype(object)
    col = _check_cat(ref, cur, "z")
    r, c = _cat_counts(ref, cur)
    if (r > 0).sum() == 1 and (c > 0).sum() == 1 and np.argmax(r) == np.argmax(c):
        assert col["p_value"] == 1.0
        return
    table = np.vstack([r, c])
    want = stats.chi2_contingency(table, correction=False).pvalue
    assert col["p_value"] == pytest.approx(float(want), abs=TOL)
    assert float(col["statistic"]) ** 2 == pytest.approx(  # type: ignore[arg-type]
        float(stats.chi2_contingency(table, correction=False).statistic), rel=1e-9
    )


@SETTINGS
@given(category_pairs())
def test_psi_matches_the_evidently_formula(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    r, c = _cat_counts(ref, cur)
    rs, cs = r / r.sum(), c / c.sum()
    for arr in (rs, cs):  # Evidently's zero filling
        nz = arr[arr != 0].min()
        arr[arr == 0] = nz / 1e6 if nz <= 1e-4 else 1e-4
    want = float(np.sum((rs - cs) * np.log(rs / cs)))
    assert _check_cat(ref, cur, "psi")["statistic"] == pytest.approx(want, rel=TOL, abs=TOL)


# ---------------------------------------------------------------- the distributions themselves
@pytest.mark.parametrize("df", [1, 2, 3, 7, 30, 200, 3000])
def test_chi2_sf_matches_scipy(df: int) -> None:
    for x in (0.01, 0.5, 1.0, 3.0, 10.0, 50.0, 200.0, 2500.0, 3500.0):
        assert D.chi2_sf(x, df) == pytest.approx(float(stats.chi2.sf(x, df)), abs=TOL)


@pytest.mark.parametrize("n", [1, 3, 10, 60, 140, 141, 500, 5_000, 40_000, 150_000, 2_000_000])
def test_kolmogorov_sf_matches_scipy_kstwo(n: int) -> None:
    for x in np.linspace(0.0008, 0.99, 120 if n < 10_000 else 30):
        assert D.kolmogorov_sf(n, float(x)) == pytest.approx(float(stats.kstwo.sf(x, n)), abs=TOL)


@pytest.mark.parametrize("n", [2, 7, 50, 999, 20_000])
def test_smirnov_sf_matches_scipy(n: int) -> None:
    for x in np.linspace(0.001, 0.999, 80):
        assert D.smirnov_sf(n, float(x)) == pytest.approx(float(special.smirnov(n, x)), abs=TOL)
