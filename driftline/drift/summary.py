"""Current-window summaries: counts against the reference profile that add up across shards.

A large window is summarized in pieces (in parallel, or as files arrive) and the pieces merged;
the merged summary equals a one-pass summary of the whole window because every field is a count,
a sum, a min or a max. What each test can take from a summary:
- KS: exact. The two-sample statistic only needs, for each reference value v, how many current
  values are < v and <= v (between reference values the reference ECDF is flat).
- chi-squared, z-test, Jensen-Shannon, PSI: exact (counts per category, value or bin).
- Wasserstein: exact where the two ECDFs do not cross inside a reference interval, otherwise it
  assumes the interval's current values sit at their mean (exact with one value per interval).
  :func:`driftline.drift.check_drift` on raw data computes it exactly instead.
- Multivariate reconstruction error: exact (a count, a sum and a sum of squares of row errors,
  :class:`driftline.drift.multivariate.ErrorSums`), when the profile holds a fitted model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.contracts import SEGMENT_OTHER
from driftline.drift.columns import extract, row_key_array, take_rows
from driftline.drift.errors import DriftInputError
from driftline.drift.methods import VALUE_COUNT_LIMIT
from driftline.drift.multivariate import ErrorSums, MultivariateModel, reconstruction_sums
from driftline.drift.profile import NumericProfile, Profile, distinct_counts, histogram_sorted

FORMAT = "driftline.drift.summary/1"
MAX_NEW_VALUES = 1000
"""Distinct unseen values kept per low-cardinality numeric column; the rest are counted together."""


@dataclass
class NumericSummary:
    n: int
    n_missing: int
    total: float
    min: float
    max: float
    lt: np.ndarray
    """lt[i] = number of current values < profile.values[i]"""
    le: np.ndarray
    """le[i] = number of current values <= profile.values[i]"""
    seg_sums: np.ndarray
    """Sum of current values in (-inf, v0), [v0, v1), ..., [v_last, inf)."""
    bin_counts: np.ndarray
    hist_counts: np.ndarray
    new_values: dict[float, int] = field(default_factory=dict)
    new_overflow: int = 0
    kind: str = "numerical"

    def merge(self, o: NumericSummary) -> NumericSummary:
        new = dict(self.new_values)
        overflow = self.new_overflow + o.new_overflow
        for v, c in o.new_values.items():
            if v in new:
                new[v] += c
            elif len(new) < MAX_NEW_VALUES:
                new[v] = c
            else:
                overflow += c
        return NumericSummary(
            n=self.n + o.n,
            n_missing=self.n_missing + o.n_missing,
            total=self.total + o.total,
            min=min(self.min, o.min),
            max=max(self.max, o.max),
            lt=self.lt + o.lt,
            le=self.le + o.le,
            seg_sums=self.seg_sums + o.seg_sums,
            bin_counts=self.bin_counts + o.bin_counts,
            hist_counts=self.hist_counts + o.hist_counts,
            new_values=new,
            new_overflow=overflow,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "n_missing": self.n_missing,
            "total": self.total,
            "min": _num(self.min),
            "max": _num(self.max),
            "lt": self.lt.tolist(),
            "le": self.le.tolist(),
            "seg_sums": self.seg_sums.tolist(),
            "bin_counts": self.bin_counts.tolist(),
            "hist_counts": self.hist_counts.tolist(),
            "new_values": [[v, c] for v, c in self.new_values.items()],
            "new_overflow": self.new_overflow,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericSummary:
        return cls(
            n=int(d["n"]),
            n_missing=int(d["n_missing"]),
            total=float(d["total"]),
            min=_unnum(d["min"], np.inf),
            max=_unnum(d["max"], -np.inf),
            lt=np.asarray(d["lt"], dtype=np.int64),
            le=np.asarray(d["le"], dtype=np.int64),
            seg_sums=np.asarray(d["seg_sums"], dtype=np.float64),
            bin_counts=np.asarray(d["bin_counts"], dtype=np.int64),
            hist_counts=np.asarray(d["hist_counts"], dtype=np.int64),
            new_values={float(v): int(c) for v, c in d["new_values"]},
            new_overflow=int(d["new_overflow"]),
        )


@dataclass
class CategoricalSummary:
    n: int
    n_missing: int
    counts: dict[str, int]
    kind: str = "categorical"

    def merge(self, o: CategoricalSummary) -> CategoricalSummary:
        counts = dict(self.counts)
        for k, c in o.counts.items():
            counts[k] = counts.get(k, 0) + c
        return CategoricalSummary(n=self.n + o.n, n_missing=self.n_missing + o.n_missing, counts=counts)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "n": self.n, "n_missing": self.n_missing, "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalSummary:
        return cls(
            n=int(d["n"]),
            n_missing=int(d["n_missing"]),
            counts={str(k): int(v) for k, v in d["counts"].items()},
        )


ColumnSummary = NumericSummary | CategoricalSummary


@dataclass
class Summary:
    """One window (or shard) of current data, summarized against one profile."""

    profile_id: str
    n_rows: int
    columns: dict[str, ColumnSummary]
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)
    multivariate: ErrorSums | None = None
    """Reconstruction error sums (None when the profile has no multivariate model)."""
    multivariate_problem: str = ""
    """Why the reconstruction error could not be computed (a model column missing or mistyped)."""
    segments: dict[str, dict[str, Summary]] = field(default_factory=dict)
    """Per segment column and segment value, the summary of the window's rows in that segment, made
    against that segment's reference profile (:class:`driftline.drift.profile.SegmentSet`); merged
    shard by shard like the rest."""
    segment_problems: dict[str, str] = field(default_factory=dict)
    """Segment column -> why its rows could not be split (the column missing or not categorical)."""

    def merge(self, other: Summary) -> Summary:
        """Combine two shards; equal to summarizing their concatenation in one pass."""
        if other.profile_id != self.profile_id:
            raise DriftInputError(
                f"cannot merge summaries made against different profiles ({self.profile_id} and "
                f"{other.profile_id}); summarize every shard with the same profile"
            )
        problems = {**other.problems, **self.problems}
        columns: dict[str, ColumnSummary] = {}
        for name in {*self.columns, *other.columns}:
            if name in problems:
                continue
            a, b = self.columns.get(name), other.columns.get(name)
            if a is None or b is None:
                continue
            columns[name] = a.merge(b)  # type: ignore[arg-type]
        mv = self.multivariate.merge(other.multivariate) if self.multivariate and other.multivariate else None
        problem = self.multivariate_problem or other.multivariate_problem
        segments: dict[str, dict[str, Summary]] = {}
        for column in {*self.segments, *other.segments}:
            a_seg, b_seg = self.segments.get(column, {}), other.segments.get(column, {})
            merged = {v: a_seg[v].merge(b_seg[v]) if v in b_seg else a_seg[v] for v in a_seg}
            merged.update({v: b for v, b in b_seg.items() if v not in a_seg})
            segments[column] = merged
        seg_problems = {**other.segment_problems, **self.segment_problems}
        return Summary(
            self.profile_id, self.n_rows + other.n_rows, columns, problems, mv, problem, segments, seg_problems
        )

    @staticmethod
    def merge_all(summaries: Iterable[Summary]) -> Summary:
        items = list(summaries)
        if not items:
            raise DriftInputError("no summaries to merge")
        out = items[0]
        for s in items[1:]:
            out = out.merge(s)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "profile_id": self.profile_id,
            "n_rows": self.n_rows,
            "columns": {k: v.to_dict() for k, v in self.columns.items()},
            "problems": {k: list(v) for k, v in self.problems.items()},
            "multivariate": self.multivariate.to_dict() if self.multivariate else None,
            "multivariate_problem": self.multivariate_problem,
            "segments": {c: {v: x.to_dict() for v, x in seg.items()} for c, seg in self.segments.items()},
            "segment_problems": dict(self.segment_problems),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Summary:
        if d.get("format") != FORMAT:
            raise DriftInputError(f"not a driftline drift summary (format {d.get('format')!r}, expected {FORMAT!r})")
        columns: dict[str, ColumnSummary] = {}
        for k, v in d["columns"].items():
            columns[k] = NumericSummary.from_dict(v) if v["kind"] == "numerical" else CategoricalSummary.from_dict(v)
        problems = {k: (str(v[0]), str(v[1])) for k, v in d.get("problems", {}).items()}
        mv = ErrorSums.from_dict(d["multivariate"]) if d.get("multivariate") else None
        segments = _segments_from(d.get("segments"))
        return cls(
            str(d["profile_id"]),
            int(d["n_rows"]),
            columns,
            problems,
            mv,
            str(d.get("multivariate_problem") or ""),
            segments,
            _segment_problems(d.get("segment_problems")),
        )


def _segments_from(doc: Any) -> dict[str, dict[str, Summary]]:
    """The per-segment summaries of a summary document, a damaged one refused with the format error."""
    if doc is None:
        return {}
    if not isinstance(doc, Mapping) or not all(isinstance(seg, Mapping) for seg in doc.values()):
        raise DriftInputError("damaged drift summary: segments must map a column to {value: summary}")
    out: dict[str, dict[str, Summary]] = {}
    for column, seg in doc.items():
        for value, x in seg.items():
            if not isinstance(x, Mapping):
                raise DriftInputError(f"damaged drift summary: segment {column}={value} is not a summary")
            out.setdefault(str(column), {})[str(value)] = Summary.from_dict(x)
    return out


def _segment_problems(doc: Any) -> dict[str, str]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise DriftInputError("damaged drift summary: segment_problems must map a column to its reason")
    return {str(k): str(v) for k, v in doc.items()}


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _unnum(x: Any, default: float) -> float:
    return default if x is None else float(x)


# ---------------------------------------------------------------- building summaries
def summarize(profile: Profile, data: Any) -> Summary:
    """Summarize one shard of current data against ``profile`` (see :meth:`Summary.merge`)."""
    return summarize_with_values(profile, data)


def summarize_with_values(
    profile: Profile,
    data: Any,
    on_values: Callable[[str, np.ndarray, NumericSummary], None] | None = None,
) -> Summary:
    """Like :func:`summarize`; ``on_values(name, sorted_finite_values, column_summary)`` sees each
    numeric column's sorted current values before they are dropped (one column in memory at a time)."""
    mv, mv_problem = None, ""
    if isinstance(profile.multivariate, MultivariateModel):  # first, so its matrix is freed before the columns
        try:
            mv = reconstruction_sums(profile.multivariate, data)
        except DriftInputError as e:
            mv_problem = str(e)
    cols = extract(data, profile.numerical, profile.categorical)
    columns: dict[str, ColumnSummary] = {}
    for name in list(cols.numeric):
        raw = cols.numeric.pop(name)
        p = profile.columns[name]
        assert isinstance(p, NumericProfile)
        srt = np.sort(raw)
        start = int(np.searchsorted(srt, -np.inf, side="right"))
        stop = int(np.searchsorted(srt, np.inf, side="left"))
        vals = srt[start:stop]
        col = numeric_summary(p, vals, int(raw.size - vals.size))
        columns[name] = col
        if on_values is not None:
            on_values(name, vals, col)
        del raw, srt, vals
    for name, cc in cols.categorical.items():
        columns[name] = CategoricalSummary(
            n=cc.n, n_missing=cc.n_missing, counts=dict(zip(cc.keys, cc.counts.tolist(), strict=True))
        )
    out = Summary(profile.id, cols.n_rows, columns, dict(cols.problems), mv, mv_problem)
    if profile.segments:
        out.segments, out.segment_problems = summarize_segments(profile, data)
    return out


def summarize_segments(profile: Profile, data: Any) -> tuple[dict[str, dict[str, Summary]], dict[str, str]]:
    """Each segment's rows of ``data`` summarized against that segment's reference profile.

    Every segment of the reference gets a summary, also one without rows in this window, so shard
    summaries merge to the same set of segments however the rows were split."""
    out: dict[str, dict[str, Summary]] = {}
    problems: dict[str, str] = {}
    for column, seg in profile.segments.items():
        keys = row_key_array(data, column)
        if keys is None:
            problems[column] = f"segment column {column!r} is not in the current data or not categorical"
            continue
        codes = seg.codes(keys)
        out[column] = {}
        names = [*seg.values, SEGMENT_OTHER]
        for value, sub in seg.profiles.items():
            rows = np.flatnonzero(codes == names.index(value))
            part = take_rows(data, list(sub.columns), rows)
            if not part:  # none of the segment's columns is in the data: an empty frame of the right length
                part = {column: np.empty(rows.size, dtype=object)}
            out[column][value] = summarize_with_values(sub, part) if rows.size else _empty(sub)
    return out, problems


def _empty(profile: Profile) -> Summary:
    """The summary of no rows (a segment absent from a window or shard)."""
    return summarize_with_values(
        profile,
        {c: np.empty(0, dtype=np.float64 if p.kind == "numerical" else object) for c, p in profile.columns.items()},
    )


def numeric_summary(p: NumericProfile, vals: np.ndarray, n_missing: int) -> NumericSummary:
    """Summary of sorted finite values ``vals`` against one numeric profile column."""
    m = int(vals.size)
    lt = np.searchsorted(vals, p.values, side="left").astype(np.int64)
    le = np.searchsorted(vals, p.values, side="right").astype(np.int64)
    bounds = np.concatenate(([0], lt, [m]))
    seg_sums = np.zeros(bounds.size - 1)
    nonempty = np.flatnonzero(bounds[1:] > bounds[:-1])
    if nonempty.size:
        seg_sums[nonempty] = np.add.reduceat(vals, bounds[nonempty])
    if p.bin_edges.size:
        bin_counts = np.diff(np.concatenate(([0], np.searchsorted(vals, p.bin_edges, side="left"), [m])))
    else:
        bin_counts = np.empty(0, dtype=np.int64)
    new_values: dict[float, int] = {}
    overflow = 0
    if p.n_distinct <= VALUE_COUNT_LIMIT and m:
        distinct, counts = distinct_counts(vals)
        unseen = ~np.isin(distinct, p.values)
        if unseen.any():
            dv, dc = distinct[unseen], counts[unseen]
            keep = min(dv.size, MAX_NEW_VALUES)
            new_values = dict(zip(dv[:keep].tolist(), dc[:keep].tolist(), strict=True))
            overflow = int(dc[keep:].sum())
    return NumericSummary(
        n=m,
        n_missing=n_missing,
        total=float(vals.sum()),
        min=float(vals[0]) if m else np.inf,
        max=float(vals[-1]) if m else -np.inf,
        lt=lt,
        le=le,
        seg_sums=seg_sums,
        bin_counts=bin_counts.astype(np.int64),
        hist_counts=histogram_sorted(vals, p.hist_edges),
        new_values=new_values,
        new_overflow=overflow,
    )
