"""Check a current window against a reference profile: per-column tests and the dataset verdict."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.drift import statistics as st
from driftline.drift.distributions import chi2_sf, ks_2samp_pvalues, normal_two_sided_p
from driftline.drift.errors import DriftInputError, ProfileMismatchError
from driftline.drift.feature_set import IMPORTANCE_KEY
from driftline.drift.methods import (
    DEFAULT_SHARE_THRESHOLD,
    DEFAULT_THRESHOLDS,
    FEW_VALUES,
    INFO,
    SMALL_REFERENCE_ROWS,
    VALUE_COUNT_LIMIT,
    WEIGHTINGS,
    drift_share,
    is_drift,
    select_method,
)
from driftline.drift.multivariate import (
    DEFAULT_AUC_THRESHOLD,
    DEFAULT_SAMPLE_ROWS,
    METHODS,
    MultivariateModel,
    MultivariateResult,
    domain_classifier_check,
    reconstruction_check,
)
from driftline.drift.profile import CategoricalProfile, NumericProfile, Profile
from driftline.drift.quality import QualityResult, QualityThresholds, evaluate_quality, quality_from_summary
from driftline.drift.summary import CategoricalSummary, NumericSummary, Summary, summarize_with_values

OK = "ok"
INSUFFICIENT = "insufficient_data"
MAX_LISTED_CATEGORIES = 50
TOP_CATEGORIES_SHOWN = 20


@dataclass
class ColumnResult:
    column: str
    kind: str
    role: str
    status: str
    method: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    drifted: bool = False
    missing_rate_reference: float | None = None
    missing_rate_current: float | None = None
    new_categories: list[str] = field(default_factory=list)
    vanished_categories: list[str] = field(default_factory=list)
    n_reference: int = 0
    n_current: int = 0
    message: str = ""

    @property
    def score(self) -> float | None:
        """The number compared with the threshold: the p-value for tests, else the distance."""
        return self.p_value if self.method and INFO[self.method].has_p_value else self.statistic

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "role": self.role,
            "status": self.status,
            "method": self.method,
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "missing_rate_reference": self.missing_rate_reference,
            "missing_rate_current": self.missing_rate_current,
            "new_categories": self.new_categories,
            "vanished_categories": self.vanished_categories,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "message": self.message,
        }


@dataclass
class DriftResult:
    status: str
    columns: dict[str, ColumnResult]
    n_reference: int
    n_current: int
    share_drifted: float
    dataset_drifted: bool
    share_threshold: float
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    message: str = ""
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-column reference/current histograms for the HTML report (not part of ``to_dict``)."""
    multivariate: MultivariateResult | None = None
    """The multivariate verdict (:mod:`driftline.drift.multivariate`); None when switched off."""
    weighting: str = "uniform"
    """How ``share_drifted`` was computed: ``importance`` (model feature importance) or ``uniform``."""
    share_unweighted: float = 0.0
    """The plain share of drifted feature columns (equal to ``share_drifted`` when uniform)."""
    weights: dict[str, float] = field(default_factory=dict)
    """The weight of each tested feature column in ``share_drifted``."""
    alert_on_columns: list[str] = field(default_factory=list)
    """Columns whose drift alone is dataset drift (the model's ``drift.alert_on_columns``)."""
    segments: dict[str, SegmentColumnResult] = field(default_factory=dict)
    """Per segment column (``segments=``), each segment's own verdict (:class:`SegmentColumnResult`)."""

    @property
    def drifted_segments(self) -> list[str]:
        """``column=value`` of every segment whose window is dataset drift."""
        return [f"{c}={v}" for c, r in self.segments.items() for v in r.drifted_segments]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns.values() if c.drifted and c.role == "feature"]

    @property
    def alert_columns_drifted(self) -> list[str]:
        """The ``alert_on_columns`` that drifted (each one alone makes the window dataset drift)."""
        drifted = set(self.drifted_columns)
        return [c for c in self.alert_on_columns if c in drifted]

    @property
    def prediction_drifted(self) -> bool | None:
        preds = [c for c in self.columns.values() if c.role == "prediction" and c.status == OK]
        return any(c.drifted for c in preds) if preds else None

    def to_dict(self) -> dict[str, Any]:
        tested = [c for c in self.columns.values() if c.role == "feature" and c.status == OK]
        return {
            "status": self.status,
            "message": self.message,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "share_drifted": self.share_drifted,
            "dataset_drifted": self.dataset_drifted,
            "share_threshold": self.share_threshold,
            "n_columns_tested": len(tested),
            "n_drifted": len(self.drifted_columns),
            "drifted_columns": self.drifted_columns,
            "prediction_drifted": self.prediction_drifted,
            "metadata": dict(self.metadata),
            "notes": list(self.notes),
            "columns": {k: v.to_dict() for k, v in self.columns.items()},
            "multivariate": self.multivariate.to_dict() if self.multivariate else None,
            "weighting": self.weighting,
            "share_drifted_unweighted": self.share_unweighted,
            "weights": dict(self.weights),
            "alert_on_columns": list(self.alert_on_columns),
            "alert_columns_drifted": self.alert_columns_drifted,
            "segments": {c: r.to_dict() for c, r in self.segments.items()},
            "drifted_segments": self.drifted_segments,
        }


@dataclass
class SegmentResult:
    """One segment of a window (the rows whose segment column holds ``value``) against the same segment
    of the reference: the same per-column drift tests and share as the whole window, and data quality."""

    column: str
    value: str
    status: str
    rows: int = 0
    message: str = ""
    drift: DriftResult | None = None
    quality: QualityResult | None = None
    estimate: dict[str, Any] | None = None
    """The segment's estimated performance (filled by the scheduled check, which holds the predictions)."""

    @property
    def dataset_drifted(self) -> bool:
        return bool(self.status == OK and self.drift is not None and self.drift.dataset_drifted)

    def to_dict(self) -> dict[str, Any]:
        d = self.drift
        return {
            "rows": self.rows,
            "status": self.status,
            "message": self.message,
            "share_drifted": d.share_drifted if d and self.status == OK else None,
            "dataset_drifted": self.dataset_drifted,
            "n_columns_tested": len([c for c in d.columns.values() if c.role == "feature" and c.status == OK])
            if d
            else 0,
            "drifted_columns": d.drifted_columns if d else [],
            "alert_columns_drifted": d.alert_columns_drifted if d else [],
            "columns": {
                k: {"status": c.status, "method": c.method, "score": _json_float(c.score), "drifted": c.drifted}
                for k, c in (d.columns.items() if d else ())
            },
            "quality": None
            if self.quality is None
            else {"status": self.quality.status, "alarm": self.quality.alarm, "failures": self.quality.failures},
            "estimated_performance": self.estimate,
        }


@dataclass
class SegmentColumnResult:
    """Every segment of one segment column; ``unavailable`` (with the reason) when the profile has no
    per-segment reference for it (built before segments existed, or without this column)."""

    column: str
    status: str
    message: str = ""
    values: dict[str, SegmentResult] = field(default_factory=dict)

    @property
    def drifted_segments(self) -> list[str]:
        return [v for v, r in self.values.items() if r.dataset_drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "drifted_segments": self.drifted_segments,
            "values": {v: r.to_dict() for v, r in self.values.items()},
        }


def _json_float(x: float | None) -> float | None:
    """JSON has no Infinity/NaN: an infinite statistic (e.g. chi-squared with a new category) is null."""
    if x is None or not math.isfinite(x):
        return None
    return float(x)


# ---------------------------------------------------------------- public entry points
def check_drift(
    profile: Profile,
    current: Any,
    *,
    expected_metadata: Mapping[str, Any] | None = None,
    min_rows: int = 1,
    share_threshold: float = DEFAULT_SHARE_THRESHOLD,
    distance_above: int | None = None,
    multivariate: str = "pca",
    auc_threshold: float = DEFAULT_AUC_THRESHOLD,
    multivariate_max_rows: int = DEFAULT_SAMPLE_ROWS,
    weighting: str = "uniform",
    alert_on_columns: Sequence[str] = (),
    segments: Sequence[str] = (),
    min_segment_rows: int = 1,
    quality_thresholds: QualityThresholds | None = None,
) -> DriftResult:
    """Check ``current`` (DataFrame, pyarrow Table or dict of arrays) against ``profile``.

    ``expected_metadata`` (e.g. ``{"model": ..., "feature_set_fingerprint": ...}``) must match the
    profile's metadata, so a profile from another model or feature-set version is refused.
    Windows with fewer than ``min_rows`` rows get status ``insufficient_data`` and no drift.
    ``distance_above``: when a column has more current values than this, ``auto`` uses the
    distance tests even if the reference is small (p-values flag trivial shifts on huge windows);
    None keeps Evidently's choice, which looks at the reference size only.
    ``multivariate``: ``pca`` (reconstruction error), ``domain_classifier`` (cross-validated ROC AUC
    of a classifier telling ``current`` from the profile's reference sample, drift above
    ``auc_threshold``, at most ``multivariate_max_rows`` current rows) or ``off``.
    ``weighting``: ``uniform`` (every column counts the same, Evidently's share) or ``importance``
    (by the model's feature importance in the profile; see :func:`driftline.drift.methods.drift_share`).
    ``alert_on_columns``: feature columns whose drift alone is dataset drift.
    ``segments``: categorical columns whose segments are each checked against the same segment of the
    reference (:func:`_check_segments`; segments below ``min_segment_rows`` rows are ``insufficient_data``,
    data quality judged with ``quality_thresholds``). Segments are judged from their summaries on this path
    and on the merged-summary path alike, so both give the same segment verdicts.
    """
    verify_metadata(profile, expected_metadata)
    opts = _Options.checked(
        profile, min_rows, share_threshold, distance_above, multivariate, weighting, alert_on_columns
    )
    exact: dict[str, float] = {}

    def wasserstein_now(name: str, values: np.ndarray, s: NumericSummary) -> None:
        """Exact Wasserstein while the column's sorted values are at hand (they are dropped next)."""
        p = profile.columns[name]
        assert isinstance(p, NumericProfile)
        if s.n and _numeric_method(p, s, opts.selection_n(p.n, s.n)) == "wasserstein":
            exact[name] = st.wasserstein_exact(p.values, p.counts, values, s.lt)

    summary = summarize_with_values(profile, current, wasserstein_now)

    def exact_w(name: str) -> float:
        return exact[name]

    result = _evaluate(profile, summary, exact_w, opts)
    if opts.multivariate == "domain_classifier" and isinstance(profile.multivariate, MultivariateModel):
        try:
            mv = domain_classifier_check(
                profile.multivariate, current, auc_threshold=auc_threshold, max_rows=multivariate_max_rows
            )
        except DriftInputError as e:
            mv = MultivariateResult("domain_classifier", "unavailable", message=str(e))
        result.multivariate = _gate(mv, result.status, min_rows)
    if any(isinstance(c, NumericProfile) and not c.exact for c in profile.columns.values()):
        result.notes.append(_sampled_note(profile))
    result.segments = _check_segments(profile, summary, segments, opts, min_segment_rows, quality_thresholds)
    return result


def check_summary(
    profile: Profile,
    summary: Summary,
    *,
    expected_metadata: Mapping[str, Any] | None = None,
    min_rows: int = 1,
    share_threshold: float = DEFAULT_SHARE_THRESHOLD,
    distance_above: int | None = None,
    multivariate: str = "pca",
    weighting: str = "uniform",
    alert_on_columns: Sequence[str] = (),
    segments: Sequence[str] = (),
    min_segment_rows: int = 1,
    quality_thresholds: QualityThresholds | None = None,
) -> DriftResult:
    """Check a (merged) :class:`Summary`; Wasserstein uses the summary's interval approximation.

    ``multivariate="domain_classifier"`` is reported ``unavailable``: it needs the window's rows.
    ``segments`` as in :func:`check_drift`, from the summary's per-segment summaries."""
    verify_metadata(profile, expected_metadata)
    if summary.profile_id != profile.id:
        raise DriftInputError(
            f"the summary was made against profile {summary.profile_id}, not {profile.id}; "
            f"summarize the data with the profile you check against"
        )
    opts = _Options.checked(
        profile, min_rows, share_threshold, distance_above, multivariate, weighting, alert_on_columns
    )
    result = _evaluate(profile, summary, None, opts)
    if any(r.method == "wasserstein" for r in result.columns.values()):
        result.notes.append(
            "Wasserstein distances come from merged shard summaries: exact where the ECDFs do not "
            "cross within a reference interval, interpolated where they do."
        )
    if any(isinstance(c, NumericProfile) and not c.exact for c in profile.columns.values()):
        result.notes.append(_sampled_note(profile))
    result.segments = _check_segments(profile, summary, segments, opts, min_segment_rows, quality_thresholds)
    return result


def _check_segments(
    profile: Profile,
    summary: Summary,
    columns: Sequence[str],
    opts: _Options,
    min_rows: int,
    quality_thresholds: QualityThresholds | None,
) -> dict[str, SegmentColumnResult]:
    """Each segment of each of ``columns``: its summary checked against the same segment of the reference.

    A shift confined to one segment moves the whole window by that segment's share only, which a test on
    the whole window (or the share of drifted columns) can miss; per segment it is the whole shift. Every
    segment's verdict comes from its summary (exact counts; Wasserstein by the interval approximation), so
    the in-process check and merged shard summaries give the same segment results. A column without a
    per-segment reference in the profile is ``unavailable`` with the reason (the drift check goes on).

    A segment is usually a small part of a window, and a distance threshold (Wasserstein 0.1 sd) meant for
    large samples is crossed by the sampling noise of a few hundred rows; so a segment of at most
    ``distance_above`` rows (1,000 when None) is judged by the p-value tests (KS, chi-squared), which
    account for its size, whatever the reference size; larger segments use the distances as the whole
    window does. Testing every
    segment multiplies the chances of a false alarm by the number of segments, so their p-value thresholds
    are divided by it (Bonferroni: the chance that any segment of a calm window alarms on one column stays
    at the single test's level)."""
    if isinstance(columns, str):
        raise DriftInputError(f"segments must be a list of column names, not the string {columns!r}")
    categorical = [n for n, c in profile.columns.items() if c.role == "feature" and c.kind == "categorical"]
    wrong = [c for c in columns if c not in categorical]
    if wrong:
        raise DriftInputError(
            f"segments names {', '.join(map(repr, wrong))}, not a categorical feature column of the profile; "
            f"allowed: {', '.join(categorical) or 'none'}"
        )
    out: dict[str, SegmentColumnResult] = {}
    for column in dict.fromkeys(columns):
        seg = profile.segments.get(column)
        if seg is None:
            why = (
                f"the reference profile has no per-segment reference for {column!r} (built before drift.segments "
                f"named it); retrain to build one"
            )
            out[column] = SegmentColumnResult(column, "unavailable", why)
            continue
        if column in summary.segment_problems or column not in summary.segments:
            why = summary.segment_problems.get(column, "the summary was made without this segment column")
            out[column] = SegmentColumnResult(column, "unavailable", why)
            continue
        res = SegmentColumnResult(column, OK)
        parts = summary.segments[column]
        scale = 1.0 / max(1, len(seg.profiles))
        for value in seg.segments:
            res.values[value] = _segment(
                scale,
                seg.profiles.get(value),
                seg.unavailable.get(value, ""),
                parts.get(value),
                column,
                value,
                opts,
                min_rows,
                quality_thresholds,
            )
        out[column] = res
    return out


def _segment(
    p_scale: float,
    sub: Profile | None,
    unavailable: str,
    part: Summary | None,
    column: str,
    value: str,
    opts: _Options,
    min_rows: int,
    quality_thresholds: QualityThresholds | None,
) -> SegmentResult:
    if sub is None:
        return SegmentResult(column, value, "unavailable", message=unavailable)
    if part is None or part.profile_id != sub.id:
        return SegmentResult(column, value, "unavailable", message="the window's summary has no rows for this segment")
    alert = tuple(c for c in opts.alert_on_columns if c in sub.columns)
    seg_opts = _Options(
        min_rows, opts.share_threshold, opts.distance_above, "off", opts.weighting, alert, True, p_scale
    )
    drift = _evaluate(sub, part, None, seg_opts)
    quality = evaluate_quality(sub, quality_from_summary(sub, part), quality_thresholds, min_rows=min_rows)
    return SegmentResult(column, value, drift.status, part.n_rows, drift.message, drift, quality)


def verify_metadata(profile: Profile, expected: Mapping[str, Any] | None) -> None:
    """Refuse a profile whose metadata differs from what the caller expects."""
    if not expected:
        return
    problems = []
    for key, want in expected.items():
        if want is None:
            continue
        have = profile.metadata.get(key)
        if have is None:
            problems.append(f"{key}: the profile has none, expected {want!r}")
        elif str(have) != str(want):
            problems.append(f"{key}: the profile has {have!r}, expected {want!r}")
    if problems:
        raise ProfileMismatchError(
            "the reference profile does not belong to this model/feature set (" + "; ".join(problems) + "); "
            "use the profile stored with the model version being monitored, or rebuild it from that "
            "version's training data"
        )


def _sampled_note(profile: Profile) -> str:
    cols = [c.name for c in profile.columns.values() if isinstance(c, NumericProfile) and not c.exact]
    return (
        f"The reference of {', '.join(cols)} has more than {profile.sample_size} distinct values, so KS and "
        f"Wasserstein use its {profile.sample_size}-point quantile sample (ECDF within "
        f"{1 / profile.sample_size:.1e} of the full reference); p-values use the full reference size."
    )


# ---------------------------------------------------------------- evaluation
@dataclass
class _KsPending:
    column: str
    statistic: float
    n1: int
    n2: int


@dataclass(frozen=True)
class _Options:
    min_rows: int
    share_threshold: float
    distance_above: int | None
    multivariate: str = "pca"
    weighting: str = "uniform"
    alert_on_columns: tuple[str, ...] = ()
    tests_below: bool = False
    """Windows of at most ``distance_above`` rows (1,000 when None) use the p-value tests whatever the reference
    size (segments)."""
    p_scale: float = 1.0
    """Factor on p-value thresholds: 1 / the number of segments tested together (Bonferroni)."""

    @classmethod
    def checked(
        cls,
        profile: Profile,
        min_rows: int,
        share_threshold: float,
        distance_above: int | None,
        multivariate: str,
        weighting: str,
        alert_on_columns: Sequence[str],
    ) -> _Options:
        """The options of one check, each refused with a message when it is not one the engine knows."""
        return cls(
            min_rows,
            share_threshold,
            distance_above,
            _method(multivariate),
            _weighting(weighting),
            _alert_columns(profile, alert_on_columns),
        )

    def selection_n(self, n_reference: int, n_current: int) -> int:
        """The reference size method selection sees (large when the window alone is large)."""
        if self.distance_above is not None and n_current > self.distance_above:
            return max(n_reference, SMALL_REFERENCE_ROWS + 1)
        below = SMALL_REFERENCE_ROWS if self.distance_above is None else self.distance_above
        if self.tests_below and n_current <= below:
            return min(n_reference, SMALL_REFERENCE_ROWS)
        return n_reference


def _evaluate(
    profile: Profile, summary: Summary, exact_w: Callable[[str], float] | None, opts: _Options
) -> DriftResult:
    min_rows, share_threshold = opts.min_rows, opts.share_threshold
    columns: dict[str, ColumnResult] = {}
    distributions: dict[str, dict[str, Any]] = {}
    pending: list[_KsPending] = []
    for name, p in profile.columns.items():
        base = ColumnResult(
            column=name,
            kind=p.kind,
            role=p.role,
            status=OK,
            n_reference=p.n,
            missing_rate_reference=_rate(p.n_missing, p.n),
        )
        if name in summary.problems:
            status, message = summary.problems[name]
            base.status, base.message = status, message
            columns[name] = base
            continue
        s = summary.columns.get(name)
        if s is None:
            base.status, base.message = "missing_column", f"column {name!r} is not in the current data"
            columns[name] = base
            continue
        base.n_current = s.n
        base.missing_rate_current = _rate(s.n_missing, s.n)
        if s.n == 0:
            base.status = INSUFFICIENT
            base.message = f"column {name!r} has no non-missing values in the current window"
            columns[name] = base
            continue
        if isinstance(p, NumericProfile) and isinstance(s, NumericSummary):
            ks = _numeric(p, s, base, exact_w, opts.selection_n(p.n, s.n))
            if ks is not None:
                pending.append(ks)
            distributions[name] = _numeric_distribution(p, s)
        elif isinstance(p, CategoricalProfile) and isinstance(s, CategoricalSummary):
            _categorical(p, s, base, opts.selection_n(p.n, s.n))
            distributions[name] = _categorical_distribution(p, s)
        else:
            raise DriftInputError(f"column {name!r}: summary kind {s.kind} does not match profile kind {p.kind}")
        columns[name] = base
    _resolve_ks(pending, columns)
    if opts.p_scale != 1.0:
        for c in columns.values():
            if c.method and INFO[c.method].has_p_value and c.p_value is not None and c.threshold is not None:
                c.threshold *= opts.p_scale
                c.drifted = is_drift(c.method, c.p_value, c.threshold)
    features = [c for c in columns.values() if c.role == "feature" and c.status == OK]
    verdicts = {c.column: c.drifted for c in features}
    weights = profile.metadata.get(IMPORTANCE_KEY) if opts.weighting == "importance" else None
    share, weighting, used_weights = drift_share(verdicts, opts.weighting, weights)
    plain = sum(verdicts.values()) / len(verdicts) if verdicts else 0.0
    status, message = OK, ""
    if summary.n_rows < min_rows:
        status = INSUFFICIENT
        message = f"the current window has {summary.n_rows} rows; at least {min_rows} are needed for a drift check"
    elif not features:
        status = INSUFFICIENT
        message = "no feature column could be tested (see each column's status)"
    if status != OK:
        for c in columns.values():
            c.drifted = False
        share = plain = 0.0
    alert_hit = any(verdicts.get(c, False) for c in opts.alert_on_columns)
    return DriftResult(
        status=status,
        columns=columns,
        n_reference=profile.n_rows,
        n_current=summary.n_rows,
        share_drifted=share,
        dataset_drifted=status == OK and (share >= share_threshold or alert_hit),
        share_threshold=share_threshold,
        metadata=dict(profile.metadata),
        message=message,
        distributions=distributions,
        multivariate=_multivariate(profile, summary, opts, status),
        weighting=weighting,
        share_unweighted=plain,
        weights=used_weights,
        alert_on_columns=list(opts.alert_on_columns),
    )


def _weighting(name: str) -> str:
    if name not in WEIGHTINGS:
        raise DriftInputError(f"weighting={name!r} is not one of {', '.join(WEIGHTINGS)}")
    return name


def _alert_columns(profile: Profile, columns: Sequence[str]) -> tuple[str, ...]:
    """The alert columns, refused when one is not a feature column of the profile."""
    if isinstance(columns, str):
        raise DriftInputError(f"alert_on_columns must be a list of column names, not the string {columns!r}")
    features = profile.features
    unknown = [c for c in columns if c not in features]
    if unknown:
        raise DriftInputError(
            f"alert_on_columns names {', '.join(map(repr, unknown))}, not a feature column of the profile; "
            f"allowed: {', '.join(features)}"
        )
    return tuple(columns)


def _method(name: str) -> str:
    if name not in METHODS:
        raise DriftInputError(f"multivariate={name!r} is not one of {', '.join(METHODS)}")
    return name


def _multivariate(profile: Profile, summary: Summary, opts: _Options, status: str) -> MultivariateResult | None:
    """The reconstruction-error verdict from the summary's error sums (``domain_classifier`` needs rows)."""
    if opts.multivariate == "off":
        return None
    mv = profile.multivariate
    if mv is None:
        why = "the profile was built before multivariate drift existed; rebuild it (retrain) to get one"
        return MultivariateResult(opts.multivariate, "unavailable", message=why)
    if not isinstance(mv, MultivariateModel):
        return MultivariateResult(opts.multivariate, "unavailable", message=str(mv.get("reason", "")))
    if opts.multivariate == "domain_classifier":
        why = "the domain classifier needs the window's rows; merged shard summaries hold none"
        return MultivariateResult("domain_classifier", "unavailable", message=why)
    if summary.multivariate_problem or summary.multivariate is None:
        why = summary.multivariate_problem or "the summary has no reconstruction errors"
        return MultivariateResult("pca", "unavailable", message=f"reconstruction error not computed: {why}")
    return _gate(reconstruction_check(mv, summary.multivariate, min_rows=opts.min_rows), status, opts.min_rows)


def _gate(res: MultivariateResult, status: str, min_rows: int) -> MultivariateResult:
    """No multivariate alarm on a window the per-column check judged too small."""
    if status != OK and res.status == OK:
        res.status, res.drifted = INSUFFICIENT, False
        res.message = f"the window has fewer than {min_rows} rows or no testable feature column"
    return res


def _rate(missing: int, present: int) -> float | None:
    total = missing + present
    return missing / total if total else None


def _decide(res: ColumnResult, method: str, threshold: float | None, statistic: float, p_value: float | None) -> None:
    res.method = method
    res.threshold = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    res.statistic = statistic
    res.p_value = p_value
    score = p_value if INFO[method].has_p_value else statistic
    res.drifted = bool(score is not None and is_drift(method, score, res.threshold))


def _numeric(
    p: NumericProfile,
    s: NumericSummary,
    res: ColumnResult,
    exact_w: Callable[[str], float] | None,
    selection_n: int,
) -> _KsPending | None:
    method = _numeric_method(p, s, selection_n)
    if method == "ks":
        d = st.ks_statistic(np.cumsum(p.counts), p.sample_n, s.lt, s.le, s.n)
        res.method = method
        res.threshold = DEFAULT_THRESHOLDS["ks"] if p.threshold is None else p.threshold
        return _KsPending(p.name, d, p.n, s.n)
    if method == "wasserstein":
        if exact_w is not None:
            w = exact_w(p.name)
        else:
            w = st.wasserstein_from_counts(p.values, p.counts, lt=s.lt, le=s.le, seg_sums=s.seg_sums, m=s.n)
        _decide(res, method, p.threshold, w / max(p.std, 0.001), None)
        return None
    ref, cur, keys = _numeric_shares(p, s)
    _discrete(res, method, threshold=p.threshold, ref=ref, cur=cur, keys=keys, sort_keys=lambda k: k)
    return None


def _numeric_method(p: NumericProfile, s: NumericSummary, selection_n: int) -> str:
    if p.method != "auto":
        return p.method
    n_new = len(s.new_values) + (1 if s.new_overflow else 0)
    n_distinct = p.n_distinct + n_new if p.n_distinct <= FEW_VALUES else p.n_distinct
    return select_method("numerical", selection_n, n_distinct)


def _numeric_shares(p: NumericProfile, s: NumericSummary) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Reference and current counts per value (few distinct values) or per quantile bin."""
    if p.n_distinct <= VALUE_COUNT_LIMIT:
        ref = p.counts.astype(np.float64)
        cur = (s.le - s.lt).astype(np.float64)
        keys: list[Any] = p.values.tolist()
        if s.new_values or s.new_overflow:
            extra = list(s.new_values)
            ref = np.concatenate((ref, np.zeros(len(extra) + (1 if s.new_overflow else 0))))
            cur = np.concatenate(
                (
                    cur,
                    np.asarray(list(s.new_values.values()), dtype=np.float64),
                    [float(s.new_overflow)] if s.new_overflow else [],
                )
            )
            keys += extra + (["<other new values>"] if s.new_overflow else [])
        return ref, cur, keys
    return p.bin_counts.astype(np.float64), s.bin_counts.astype(np.float64), list(range(p.bin_counts.size))


def _categorical(p: CategoricalProfile, s: CategoricalSummary, res: ColumnResult, selection_n: int) -> None:
    ref_map = dict(zip(p.keys, p.counts.tolist(), strict=True))
    keys = list(p.keys) + [k for k in s.counts if k not in ref_map]
    ref = np.asarray([ref_map.get(k, 0) for k in keys], dtype=np.float64)
    cur = np.asarray([s.counts.get(k, 0) for k in keys], dtype=np.float64)
    new = sorted((k for k in s.counts if k not in ref_map and s.counts[k] > 0), key=lambda k: -s.counts[k])
    vanished = [k for k in p.keys if s.counts.get(k, 0) == 0]
    res.new_categories = new[:MAX_LISTED_CATEGORIES]
    res.vanished_categories = vanished[:MAX_LISTED_CATEGORIES]
    if len(new) > MAX_LISTED_CATEGORIES or len(vanished) > MAX_LISTED_CATEGORIES:
        res.message = f"{len(new)} new and {len(vanished)} vanished categories (first {MAX_LISTED_CATEGORIES} listed)"
    method = p.method if p.method != "auto" else select_method("categorical", selection_n, len(keys))
    _discrete(res, method, threshold=p.threshold, ref=ref, cur=cur, keys=keys, sort_keys=str)


def _discrete(
    res: ColumnResult,
    method: str,
    *,
    threshold: float | None,
    ref: np.ndarray,
    cur: np.ndarray,
    keys: list[Any],
    sort_keys: Callable[[Any], Any],
) -> None:
    """chi-squared, z, Jensen-Shannon or PSI on aligned reference/current counts."""
    if method == "jensenshannon":
        _decide(res, method, threshold, st.jensenshannon(ref / ref.sum(), cur / cur.sum()), None)
    elif method == "psi":
        _decide(res, method, threshold, st.psi(ref / ref.sum(), cur / cur.sum()), None)
    elif method == "chisquare":
        present = (ref > 0) | (cur > 0)
        stat, df = st.chisquare_gof(ref[present], cur[present])
        p_value = chi2_sf(stat, df) if df > 0 else 1.0
        _decide(res, method, threshold, stat, p_value)
    elif method == "z":
        present = (ref > 0) | (cur > 0)
        r, c = ref[present], cur[present]
        pk = [k for k, keep in zip(keys, present.tolist(), strict=True) if keep]
        order = sorted(range(len(pk)), key=lambda i: _sortable(sort_keys(pk[i])))
        r, c = r[order], c[order]
        if np.count_nonzero(r) == 1 and np.count_nonzero(c) == 1 and np.argmax(r) == np.argmax(c):
            _decide(res, method, threshold, 0.0, 1.0)  # one and the same value on both sides
        else:
            z = st.z_two_proportion(r, c)
            _decide(res, method, threshold, z, normal_two_sided_p(z) if math.isfinite(z) else 0.0)
    else:
        raise DriftInputError(f"column {res.column!r}: method {method!r} does not apply to discrete values")


def _sortable(k: Any) -> tuple[int, Any]:
    return (0, k) if isinstance(k, int | float) else (1, str(k))


def _resolve_ks(pending: list[_KsPending], columns: dict[str, ColumnResult]) -> None:
    """KS p-values, computed together for columns that share sample sizes."""
    groups: dict[tuple[int, int], list[_KsPending]] = {}
    for item in pending:
        groups.setdefault((item.n1, item.n2), []).append(item)
    for (n1, n2), items in groups.items():
        stats, pvals = ks_2samp_pvalues([i.statistic for i in items], n1, n2)
        for item, d, pv in zip(items, stats.tolist(), pvals.tolist(), strict=True):
            res = columns[item.column]
            _decide(res, "ks", res.threshold, d, pv)


# ---------------------------------------------------------------- report data
def _numeric_distribution(p: NumericProfile, s: NumericSummary) -> dict[str, Any]:
    return {
        "kind": "numerical",
        "edges": p.hist_edges.tolist(),
        "reference": p.hist_counts.tolist(),
        "current": s.hist_counts.tolist(),
        "reference_mean": p.mean,
        "current_mean": s.total / s.n if s.n else None,
        "current_min": s.min,
        "current_max": s.max,
    }


def _categorical_distribution(p: CategoricalProfile, s: CategoricalSummary) -> dict[str, Any]:
    ref = dict(zip(p.keys, p.counts.tolist(), strict=True))
    keys = list(dict.fromkeys([*p.keys, *s.counts]))
    ref_n, cur_n = max(p.n, 1), max(s.n, 1)
    keys.sort(key=lambda k: -(ref.get(k, 0) / ref_n + s.counts.get(k, 0) / cur_n))
    shown = keys[:TOP_CATEGORIES_SHOWN]
    return {
        "kind": "categorical",
        "keys": shown,
        "reference": [ref.get(k, 0) / ref_n for k in shown],
        "current": [s.counts.get(k, 0) / cur_n for k in shown],
        "n_other": max(0, len(keys) - len(shown)),
    }
