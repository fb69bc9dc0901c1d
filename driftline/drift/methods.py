"""Which test runs on a column, its default threshold and how a score becomes a drift decision.

The defaults are Evidently's (``DataDriftPreset``), because they are what users know and compare
against: reference <= 1000 rows -> p-value tests (KS for numeric columns with more than 5 distinct
values, chi-squared for more than 2 categories, two-proportion z-test for 2), otherwise distances
(Wasserstein normed by the reference std for numeric columns with more than 5 distinct values,
Jensen-Shannon for the rest). Distances on large samples keep huge windows from alarming on
trivial shifts, which p-values do not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Kind = Literal["numerical", "categorical"]

METHODS = ("auto", "ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi")
P_VALUE_METHODS = frozenset({"ks", "chisquare", "z"})
NUMERICAL_ONLY = frozenset({"ks", "wasserstein"})

SMALL_REFERENCE_ROWS = 1000
"""At or below this many reference values the defaults are p-value tests (Evidently's cut)."""
FEW_VALUES = 5
"""Numeric columns with at most this many distinct values are tested like categories."""
VALUE_COUNT_LIMIT = 20
"""Numeric columns with at most this many distinct reference values are binned by value for
Jensen-Shannon and PSI (Evidently's rule); above it they use the profile's quantile bins."""

DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "wasserstein": 0.1,
    "jensenshannon": 0.1,
    "psi": 0.1,
}
DEFAULT_SHARE_THRESHOLD = 0.5
"""Dataset drift when at least this share of the tested feature columns drifted."""


@dataclass(frozen=True)
class MethodInfo:
    name: str
    display: str
    has_p_value: bool
    rule: str
    """How the score is compared with the threshold, in words (shown in reports)."""


INFO: dict[str, MethodInfo] = {
    "ks": MethodInfo("ks", "Kolmogorov-Smirnov", True, "p-value <= threshold"),
    "chisquare": MethodInfo("chisquare", "chi-squared", True, "p-value < threshold"),
    "z": MethodInfo("z", "two-proportion z-test", True, "p-value < threshold"),
    "wasserstein": MethodInfo("wasserstein", "Wasserstein (normed by reference std)", False, "distance >= threshold"),
    "jensenshannon": MethodInfo("jensenshannon", "Jensen-Shannon distance", False, "distance >= threshold"),
    "psi": MethodInfo("psi", "population stability index", False, "PSI >= threshold"),
}


def validate_method(column: str, kind: Kind, method: str) -> None:
    """Refuse a method that does not exist or does not apply to the column's kind."""
    if method not in METHODS:
        raise ValueError(f"column {column!r}: unknown drift method {method!r}; choose one of {', '.join(METHODS)}")
    if kind == "categorical" and method in NUMERICAL_ONLY:
        raise ValueError(
            f"column {column!r}: method {method!r} needs a numerical column, but {column!r} is "
            f"categorical; use chisquare, z, jensenshannon or psi"
        )


def select_method(kind: Kind, n_reference: int, n_distinct: int) -> str:
    """Evidently's default test for a column.

    ``n_reference`` counts the reference's non-missing values; ``n_distinct`` is the number of
    distinct values in reference and current together (Evidently looks at both).
    """
    if n_reference <= SMALL_REFERENCE_ROWS:
        if kind == "numerical" and n_distinct > FEW_VALUES:
            return "ks"
        return "chisquare" if n_distinct > 2 else "z"
    if kind == "numerical" and n_distinct > FEW_VALUES:
        return "wasserstein"
    return "jensenshannon"


def is_drift(method: str, score: float, threshold: float) -> bool:
    """Evidently's comparison for each method (note the strict ``<`` for chi-squared and z)."""
    if math.isnan(score):  # the test could not say anything
        return False
    if method == "ks":
        return score <= threshold
    if method in ("chisquare", "z"):
        return score < threshold
    return score >= threshold


WEIGHTINGS = ("importance", "uniform")
"""How per-column verdicts add up to the dataset share (see :func:`drift_share`)."""


def drift_share(
    drifted: Mapping[str, bool], weighting: str, weights: Mapping[str, float] | None
) -> tuple[float, str, dict[str, float]]:
    """The share of drift over the tested feature columns, the weighting used and the weights.

    ``uniform`` counts every column the same (Evidently's share). ``importance`` weighs each column by
    the model's feature importance, renormalized over the columns tested in this window, so the
    share is "how much of what the model relies on drifted": one shifted feature carrying most of
    the model's importance alarms alone, while columns the model ignores cannot alarm it. Without
    weights (an old profile) or when the tested columns carry no importance, it is ``uniform``.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r} is not one of {', '.join(WEIGHTINGS)}")
    if not drifted:
        return 0.0, "uniform", {}
    if weighting == "importance" and weights:
        w = {c: max(float(weights.get(c, 0.0)), 0.0) for c in drifted}
        total = sum(w.values())
        if total > 0 and math.isfinite(total):
            norm = {c: v / total for c, v in w.items()}
            return min(1.0, sum(norm[c] for c, d in drifted.items() if d)), "importance", norm
    uniform = {c: 1.0 / len(drifted) for c in drifted}
    return sum(drifted.values()) / len(drifted), "uniform", uniform
