"""Data-quality checks of a window: missing values, out-of-range values and unseen categories.

Drift asks whether the inputs changed; data quality asks whether they are broken: a feature that
stopped arriving, a unit change that puts every value outside the range the feature set declares,
a new code the model cannot encode. Those deserve their own alert with their own thresholds,
because retraining on them (what a drift alarm triggers) would teach the model the breakage.

Per feature column of the profile, against the feature set recorded in the profile's metadata:

- missing rate: the share of missing (null, NaN, infinite) values; it fails when it rises more
  than ``missing_rate`` above the reference's own missing rate.
- out-of-range rate (numeric columns): the share of values outside the declared ``min``/``max``
  widened to the reference's own range (an open side is the reference's extreme), so a column whose
  training rows already cross a declared bound does not fail every window.
- unseen-category rate (categorical columns): the share of values outside the declared
  ``categories`` (the reference's categories when none are declared, e.g. bool features).

Everything is a count, so shard counts add up (:meth:`QualityCounts.merge`). From raw rows
(:func:`count_quality`) every rate is exact. From a merged drift :class:`~driftline.drift.summary.Summary`
(:func:`quality_from_summary`, the scale-out path) missing and unseen-category rates are exact,
and out-of-range rates are exact where the bounds are the reference's range (the summary's
histogram counts values beyond it); a column with a declared bound that differs reports ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.drift.columns import extract
from driftline.drift.errors import DriftInputError
from driftline.drift.feature_set import BOUNDS_KEY, CATEGORIES_KEY
from driftline.drift.profile import CategoricalProfile, NumericProfile, Profile
from driftline.drift.summary import CategoricalSummary, NumericSummary, Summary

__all__ = [
    "CHECKS",
    "ColumnCounts",
    "ColumnQuality",
    "QualityCounts",
    "QualityResult",
    "QualityThresholds",
    "check_quality",
    "count_quality",
    "evaluate_quality",
    "quality_from_summary",
]

FORMAT = "driftline.drift.quality/1"
CHECKS = ("missing_rate", "out_of_range_rate", "unseen_category_rate")
OK = "ok"
INSUFFICIENT = "insufficient_data"


@dataclass(frozen=True)
class QualityThresholds:
    """The limit of each rate (see the module docstring for what each one compares)."""

    missing_rate: float = 0.05
    out_of_range_rate: float = 0.05
    unseen_category_rate: float = 0.01

    def __post_init__(self) -> None:
        for name in CHECKS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise DriftInputError(f"data-quality threshold {name}={value!r} must be a number from 0 to 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> QualityThresholds:
        """From a config mapping (``drift.quality``); unknown keys are refused with the known ones."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(CHECKS))
        if unknown:
            raise DriftInputError(f"unknown data-quality thresholds {', '.join(unknown)}; known: {', '.join(CHECKS)}")
        return cls(**{k: float(v) for k, v in values.items()})


@dataclass
class ColumnCounts:
    """One column's counts in one window or shard."""

    kind: str
    n: int
    """Non-missing values."""
    n_missing: int
    n_out_of_range: int | None = None
    """Numeric columns; None when the source cannot tell (see :func:`quality_from_summary`)."""
    n_unseen: int | None = None
    """Categorical columns."""

    def merge(self, o: ColumnCounts) -> ColumnCounts:
        return ColumnCounts(
            kind=self.kind,
            n=self.n + o.n,
            n_missing=self.n_missing + o.n_missing,
            n_out_of_range=_add(self.n_out_of_range, o.n_out_of_range),
            n_unseen=_add(self.n_unseen, o.n_unseen),
        )


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


@dataclass
class QualityCounts:
    """Counts of one window (or shard) against one profile; shards merge by adding."""

    profile_id: str
    n_rows: int
    columns: dict[str, ColumnCounts] = field(default_factory=dict)

    def merge(self, other: QualityCounts) -> QualityCounts:
        if other.profile_id != self.profile_id:
            raise DriftInputError(
                f"cannot merge data-quality counts made against different profiles ({self.profile_id} and "
                f"{other.profile_id}); count every shard with the same profile"
            )
        names = [c for c in self.columns if c in other.columns]
        return QualityCounts(
            self.profile_id, self.n_rows + other.n_rows, {c: self.columns[c].merge(other.columns[c]) for c in names}
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "profile_id": self.profile_id,
            "n_rows": self.n_rows,
            "columns": {k: vars(v).copy() for k, v in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QualityCounts:
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            found = d.get("format") if isinstance(d, Mapping) else type(d).__name__
            raise DriftInputError(f"not driftline data-quality counts (format {found!r}, expected {FORMAT!r})")
        try:
            columns = {
                str(k): ColumnCounts(
                    kind=str(v["kind"]),
                    n=int(v["n"]),
                    n_missing=int(v["n_missing"]),
                    n_out_of_range=None if v.get("n_out_of_range") is None else int(v["n_out_of_range"]),
                    n_unseen=None if v.get("n_unseen") is None else int(v["n_unseen"]),
                )
                for k, v in d["columns"].items()
            }
            out = cls(str(d["profile_id"]), int(d["n_rows"]), columns)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise DriftInputError(f"damaged data-quality counts ({type(e).__name__}: {e})") from None
        counts = [out.n_rows] + [v for c in columns.values() for v in vars(c).values() if isinstance(v, int)]
        if min(counts) < 0:  # a negative count would make a rate below 0 or above 1: a verdict from nothing
            raise DriftInputError(f"damaged data-quality counts (a negative count: {min(counts)})")
        return out


@dataclass
class ColumnQuality:
    """One column's rates, the bounds or categories they were measured against and what failed."""

    column: str
    kind: str
    n: int
    n_missing: int
    missing_rate: float | None
    missing_rate_reference: float | None
    out_of_range_rate: float | None = None
    unseen_category_rate: float | None = None
    bounds: tuple[float, float] | None = None
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "n_missing": self.n_missing,
            "missing_rate": self.missing_rate,
            "missing_rate_reference": self.missing_rate_reference,
            "out_of_range_rate": self.out_of_range_rate,
            "unseen_category_rate": self.unseen_category_rate,
            "bounds": list(self.bounds) if self.bounds else None,
            "failed": list(self.failed),
        }


@dataclass
class QualityResult:
    """The window's data-quality verdict: ``alarm`` when any column fails any check."""

    status: str
    n_rows: int
    thresholds: QualityThresholds
    columns: dict[str, ColumnQuality]
    message: str = ""

    @property
    def failures(self) -> list[dict[str, Any]]:
        """Each failed (column, check) with its rate and limit, worst first."""
        out = []
        for c in self.columns.values():
            for check in c.failed:
                out.append(
                    {"column": c.column, "check": check, "rate": getattr(c, check), "threshold": self.limit(check)}
                )
        return sorted(out, key=lambda f: -(f["rate"] or 0.0))

    @property
    def alarm(self) -> bool:
        return self.status == OK and any(c.failed for c in self.columns.values())

    def limit(self, check: str) -> float:
        """The configured threshold of ``check``."""
        return float(getattr(self.thresholds, check))

    def worst(self, check: str) -> float | None:
        """The highest rate of ``check`` over the columns (the metric a dashboard plots)."""
        rates = [getattr(c, check) for c in self.columns.values() if getattr(c, check) is not None]
        return max(rates) if rates else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "alarm": self.alarm,
            "n_rows": self.n_rows,
            "thresholds": {k: self.limit(k) for k in CHECKS},
            "worst": {k: self.worst(k) for k in CHECKS},
            "failures": self.failures,
            "columns": {k: v.to_dict() for k, v in self.columns.items()},
        }


# ---------------------------------------------------------------- counting
def _features(profile: Profile) -> list[str]:
    return [n for n, c in profile.columns.items() if c.role == "feature"]


def _bounds(profile: Profile, p: NumericProfile) -> tuple[float, float]:
    """The declared [min, max] of the column widened to the reference's range (open sides: the reference's)."""
    declared = (profile.metadata.get(BOUNDS_KEY) or {}).get(p.name) or [None, None]
    low = p.min if declared[0] is None else min(float(declared[0]), p.min)
    high = p.max if declared[1] is None else max(float(declared[1]), p.max)
    return low, high


def _allowed(profile: Profile, p: CategoricalProfile) -> set[str]:
    declared = (profile.metadata.get(CATEGORIES_KEY) or {}).get(p.name)
    return {str(c) for c in declared} if declared else set(p.keys)


def count_quality(profile: Profile, data: Any) -> QualityCounts:
    """Count one window (or shard) of raw rows (DataFrame, pyarrow Table or dict of arrays)."""
    names = _features(profile)
    numerical = [n for n in names if isinstance(profile.columns[n], NumericProfile)]
    categorical = [n for n in names if isinstance(profile.columns[n], CategoricalProfile)]
    cols = extract(data, numerical, categorical)
    out: dict[str, ColumnCounts] = {}
    for name, raw in cols.numeric.items():
        p = profile.columns[name]
        assert isinstance(p, NumericProfile)
        finite = raw[np.isfinite(raw)]
        low, high = _bounds(profile, p)
        outside = int(np.count_nonzero((finite < low) | (finite > high)))
        out[name] = ColumnCounts("numerical", int(finite.size), int(raw.size - finite.size), n_out_of_range=outside)
    for name, cc in cols.categorical.items():
        p = profile.columns[name]
        assert isinstance(p, CategoricalProfile)
        allowed = _allowed(profile, p)
        unseen = sum(int(c) for k, c in zip(cc.keys, cc.counts.tolist(), strict=True) if k not in allowed)
        out[name] = ColumnCounts("categorical", int(cc.n), int(cc.n_missing), n_unseen=unseen)
    return QualityCounts(profile.id, cols.n_rows, out)


def quality_from_summary(profile: Profile, summary: Summary) -> QualityCounts:
    """The same counts from a (merged) drift summary, for windows checked from shard summaries."""
    if summary.profile_id != profile.id:
        raise DriftInputError(
            f"the summary was made against profile {summary.profile_id}, not {profile.id}; "
            f"summarize the data with the profile you check against"
        )
    out: dict[str, ColumnCounts] = {}
    for name in _features(profile):
        p, s = profile.columns[name], summary.columns.get(name)
        if isinstance(p, NumericProfile) and isinstance(s, NumericSummary):
            low, high = _bounds(profile, p)
            outside: int | None = None
            if (low, high) == (p.min, p.max) and s.hist_counts.size >= 2:
                outside = int(s.hist_counts[0] + s.hist_counts[-1])  # below the reference min, above its max
            out[name] = ColumnCounts("numerical", s.n, s.n_missing, n_out_of_range=outside)
        elif isinstance(p, CategoricalProfile) and isinstance(s, CategoricalSummary):
            allowed = _allowed(profile, p)
            unseen = sum(c for k, c in s.counts.items() if k not in allowed)
            out[name] = ColumnCounts("categorical", s.n, s.n_missing, n_unseen=unseen)
    return QualityCounts(profile.id, summary.n_rows, out)


# ---------------------------------------------------------------- judging
def evaluate_quality(
    profile: Profile, counts: QualityCounts, thresholds: QualityThresholds | None = None, *, min_rows: int = 1
) -> QualityResult:
    """Rates and verdicts from counts; windows below ``min_rows`` are ``insufficient_data`` (no alarm)."""
    thresholds = thresholds or QualityThresholds()
    if counts.profile_id != profile.id:
        raise DriftInputError(
            f"the data-quality counts were made against profile {counts.profile_id}, not {profile.id}"
        )
    columns: dict[str, ColumnQuality] = {}
    for name, c in counts.columns.items():
        p = profile.columns[name]
        total = c.n + c.n_missing
        ref_total = p.n + p.n_missing
        q = ColumnQuality(
            column=name,
            kind=c.kind,
            n=c.n,
            n_missing=c.n_missing,
            missing_rate=c.n_missing / total if total else None,
            missing_rate_reference=p.n_missing / ref_total if ref_total else None,
        )
        if isinstance(p, NumericProfile):
            q.bounds = _bounds(profile, p)
            q.out_of_range_rate = c.n_out_of_range / c.n if c.n and c.n_out_of_range is not None else None
        else:
            q.unseen_category_rate = c.n_unseen / c.n if c.n and c.n_unseen is not None else None
        if q.missing_rate is not None and q.missing_rate - (q.missing_rate_reference or 0.0) > thresholds.missing_rate:
            q.failed.append("missing_rate")
        if q.out_of_range_rate is not None and q.out_of_range_rate > thresholds.out_of_range_rate:
            q.failed.append("out_of_range_rate")
        if q.unseen_category_rate is not None and q.unseen_category_rate > thresholds.unseen_category_rate:
            q.failed.append("unseen_category_rate")
        columns[name] = q
    status, message = OK, ""
    if counts.n_rows < min_rows:
        status = INSUFFICIENT
        message = f"the window has {counts.n_rows} rows; at least {min_rows} are needed for data-quality checks"
        for q in columns.values():
            q.failed = []
    return QualityResult(status, counts.n_rows, thresholds, columns, message)


def check_quality(
    profile: Profile, data: Any, thresholds: QualityThresholds | None = None, *, min_rows: int = 1
) -> QualityResult:
    """Count and judge one window of raw rows in one call (the in-process check)."""
    return evaluate_quality(profile, count_quality(profile, data), thresholds, min_rows=min_rows)
