"""Test statistics computed from counts (vectorized numpy; no per-row Python, no scipy).

Each function mirrors the formula scipy (and Evidently on top of it) uses, so results agree with
``ks_2samp``, ``wasserstein_distance``, ``jensenshannon`` and ``chisquare`` to rounding.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


def ks_statistic(cum_ref: np.ndarray, n_sample: int, lt: np.ndarray, le: np.ndarray, m: int) -> float:
    """Two-sample KS statistic sup |F_ref - F_cur| from counts.

    ``cum_ref[i]`` counts reference values <= v_i (v sorted distinct); ``lt``/``le`` count current
    values < v_i and <= v_i. F_ref is flat on [v_i, v_(i+1)) while F_cur rises from le[i]/m to
    lt[i+1]/m, so the supremum is attained at one of those ends.
    """
    r = cum_ref / n_sample
    at = np.abs(r - le / m)
    d = float(at.max()) if at.size else 0.0
    if lt.size:
        d = max(d, float(lt[0]) / m)
    if lt.size > 1:
        d = max(d, float(np.max(np.abs(r[:-1] - lt[1:] / m))))
    return d


@lru_cache(maxsize=4)
def _ecdf_steps(m: int) -> np.ndarray:
    """(1..m)/m, shared by the columns of a window (they usually have the same size)."""
    steps = np.arange(1, m + 1, dtype=np.float64) / m
    steps.flags.writeable = False
    return steps


def wasserstein_exact(
    values: np.ndarray, counts: np.ndarray, cur_sorted: np.ndarray, lt: np.ndarray | None = None
) -> float:
    """W1 between the weighted reference values and the (sorted, finite) current values.

    W1 = sum of |F_ref - F_cur| * gap over the merged sorted points (as scipy computes it), done
    without materializing the merge: F_ref is constant over each run of current values between two
    reference values. ``lt`` (current values < each reference value) may be passed if known.
    """
    m = cur_sorted.size
    if m == 0:
        return float("nan")
    if lt is None:
        lt = np.searchsorted(cur_sorted, values, side="left")
    f_ref = np.concatenate(([0.0], np.cumsum(counts) / counts.sum()))  # F_ref after the first r values
    next_ref = np.append(values, np.inf)
    run = np.diff(np.concatenate(([0], lt, [m])))
    # gaps that start at a current value end at the next current value or the next reference value
    ref_after = np.repeat(next_ref, run)
    gap = np.empty(m)
    np.minimum(cur_sorted[1:], ref_after[:-1], out=gap[:-1])
    gap[-1] = ref_after[-1]
    gap -= cur_sorted
    gap[-1] = 0.0 if not np.isfinite(gap[-1]) else gap[-1]  # nothing follows the last value
    diff = np.repeat(f_ref, run)
    diff -= _ecdf_steps(m)
    np.abs(diff, out=diff)
    diff *= gap
    w = float(np.sum(diff))  # not np.dot: BLAS threads stall on a busy machine
    # gaps that start at a reference value end at the next reference value or current value
    first_cur = cur_sorted[np.minimum(lt, m - 1)]
    first_cur[lt >= m] = np.inf
    rgap = np.minimum(next_ref[1:], first_cur) - values
    rgap[~np.isfinite(rgap)] = 0.0
    return w + float(np.sum(np.abs(f_ref[1:] - lt / m) * rgap))


def wasserstein_from_counts(
    values: np.ndarray, counts: np.ndarray, *, lt: np.ndarray, le: np.ndarray, seg_sums: np.ndarray, m: int
) -> float:
    """W1 from a summary: exact per interval unless the ECDFs cross inside it (see summary.py)."""
    k = values.size
    r = np.cumsum(counts) / counts.sum()
    # outside the reference range: F_ref is 0 below v0 and 1 above v_last
    w = (lt[0] * values[0] - seg_sums[0]) / m
    n_top = m - le[-1]
    top_sum = seg_sums[-1] - (le[-1] - lt[-1]) * values[-1]
    w += (top_sum - n_top * values[-1]) / m
    if k > 1:
        left, right = values[:-1], values[1:]
        length = right - left
        rr = r[:-1]
        a = le[:-1] / m  # F_cur at the left edge (ties included)
        b = lt[1:] / m  # F_cur just before the right edge
        q = lt[1:] - le[:-1]  # current values strictly inside
        inside_sum = seg_sums[1:-1] - (le[:-1] - lt[:-1]) * left
        integral_f = a * length + (q * right - inside_sum) / m
        above = rr >= b
        below = rr <= a
        cross = ~(above | below)
        part = np.where(above, rr * length - integral_f, integral_f - rr * length)
        if cross.any():
            qc = q[cross]
            mean = inside_sum[cross] / qc
            part[cross] = np.abs(rr[cross] - a[cross]) * (mean - left[cross]) + np.abs(rr[cross] - b[cross]) * (
                right[cross] - mean
            )
        w += float(np.sum(part))
    return float(max(w, 0.0))


def jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log), as ``scipy.spatial.distance.jensenshannon``."""
    p = p / p.sum()
    q = q / q.sum()
    mid = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / mid), 0.0)
        right = np.where(q > 0, q * np.log(q / mid), 0.0)
    js = float(np.sum(left) + np.sum(right))
    return math.sqrt(max(js, 0.0) / 2.0)


def _fill_zeros(p: np.ndarray) -> np.ndarray:
    """Evidently's zero replacement before PSI: the smallest share / 1e6, or 1e-4."""
    nonzero = p[p != 0]
    if nonzero.size == 0:
        return p
    smallest = float(nonzero.min())
    fill = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(p == 0, fill, p)


def psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    """Population stability index sum (r - c) * ln(r / c) with Evidently's zero handling."""
    r = _fill_zeros(ref_share)
    c = _fill_zeros(cur_share)
    return float(np.sum((r - c) * np.log(r / c)))


def chisquare_gof(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, int]:
    """Evidently's chi-squared: current counts against reference counts scaled to the current size.

    Returns (statistic, degrees of freedom); a category unseen in the reference makes it infinite.
    """
    n_ref, n_cur = ref_counts.sum(), cur_counts.sum()
    expected = ref_counts * (n_cur / n_ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (cur_counts - expected) ** 2 / expected
    terms = np.where((expected == 0) & (cur_counts == 0), 0.0, terms)
    return float(np.sum(terms)), int(ref_counts.size - 1)


def z_two_proportion(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """z statistic for the share of 'not the first key' in reference vs current (Evidently's z-test)."""
    n1, n2 = float(ref_counts.sum()), float(cur_counts.sum())
    p1 = float(ref_counts[1:].sum()) / n1
    p2 = float(cur_counts[1:].sum()) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    denom = math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    if denom == 0.0:
        return 0.0 if p1 == p2 else math.inf
    return (p1 - p2) / denom
