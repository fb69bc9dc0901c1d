"""The reference profile: everything a drift check needs from the training data, built once.

Users of existing tools complain that reference statistics are recomputed every run; here they
are computed at training time, stored with the model version and reused by every check.

Per numerical column the profile keeps (all computed from the full reference):
- ``values``/``counts``: the distinct values and their counts. When the column has at most
  ``sample_size`` distinct values this *is* the reference (exact, whatever the row count).
  Otherwise it is an evenly spaced quantile sample of ``sample_size`` order statistics, whose ECDF
  is within ``1/sample_size`` of the reference ECDF everywhere (a random sample of the same size
  would be off by ~1/sqrt(sample_size)). KS and Wasserstein are then approximate; everything else
  stays exact.
- ``n``, ``n_missing``, ``mean``, ``std`` (ddof=0, Evidently's norm), ``min``, ``max``,
  ``n_distinct``: exact.
- ``bin_edges``/``bin_counts``: quantile bins (open-ended outer bins) with exact counts, used by
  PSI and Jensen-Shannon for columns with more than 20 distinct values.
- ``hist_edges``/``hist_counts``: an equal-width histogram for the report.

Per categorical column: every category and its count (exact), plus missing counts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.contracts import DEFAULT_MAX_SEGMENTS, SEGMENT_OTHER
from driftline.drift.columns import WRONG_TYPE, CategoryCounts, extract, row_key_array, take_rows
from driftline.drift.errors import DriftInputError, ProfileFormatError
from driftline.drift.methods import VALUE_COUNT_LIMIT, Kind, validate_method
from driftline.drift.multivariate import DEFAULT_SAMPLE_ROWS, MultivariateModel, fit_multivariate

FORMAT = "driftline.drift.profile/1"
DEFAULT_SAMPLE_SIZE = 5000
DEFAULT_BINS = 20
HIST_BINS = 30
MAX_CATEGORIES = 10_000
ROLES = ("feature", "prediction")
SEGMENT_SAMPLE_SIZE = 1000
"""Quantile-sample size of a segment's numeric columns (at most the profile's): ECDF within 0.1 %."""
MIN_SEGMENT_REFERENCE_ROWS = 30
"""A segment value with fewer reference rows gets no reference (its tests would compare noise)."""


@dataclass
class NumericProfile:
    name: str
    role: str
    method: str
    threshold: float | None
    n: int
    n_missing: int
    mean: float
    std: float
    min: float
    max: float
    n_distinct: int
    exact: bool
    values: np.ndarray
    counts: np.ndarray
    bin_edges: np.ndarray
    bin_counts: np.ndarray
    hist_edges: np.ndarray
    hist_counts: np.ndarray
    kind: Kind = "numerical"

    @property
    def sample_n(self) -> int:
        """Number of values the stored sample stands for (``n`` when exact)."""
        return int(self.counts.sum())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "role": self.role,
            "method": self.method,
            "threshold": self.threshold,
            "n": self.n,
            "n_missing": self.n_missing,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "n_distinct": self.n_distinct,
            "exact": self.exact,
            "values": self.values.tolist(),
            "counts": self.counts.tolist(),
            "bin_edges": self.bin_edges.tolist(),
            "bin_counts": self.bin_counts.tolist(),
            "hist_edges": self.hist_edges.tolist(),
            "hist_counts": self.hist_counts.tolist(),
        }

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> NumericProfile:
        return cls(
            name=name,
            role=str(d.get("role", "feature")),
            method=str(d.get("method", "auto")),
            threshold=None if d.get("threshold") is None else float(d["threshold"]),
            n=int(d["n"]),
            n_missing=int(d["n_missing"]),
            mean=float(d["mean"]),
            std=float(d["std"]),
            min=float(d["min"]),
            max=float(d["max"]),
            n_distinct=int(d["n_distinct"]),
            exact=bool(d["exact"]),
            values=np.asarray(d["values"], dtype=np.float64),
            counts=np.asarray(d["counts"], dtype=np.int64),
            bin_edges=np.asarray(d["bin_edges"], dtype=np.float64),
            bin_counts=np.asarray(d["bin_counts"], dtype=np.int64),
            hist_edges=np.asarray(d["hist_edges"], dtype=np.float64),
            hist_counts=np.asarray(d["hist_counts"], dtype=np.int64),
        )


@dataclass
class CategoricalProfile:
    name: str
    role: str
    method: str
    threshold: float | None
    n: int
    n_missing: int
    keys: list[str]
    counts: np.ndarray
    kind: Kind = "categorical"

    @property
    def n_distinct(self) -> int:
        return len(self.keys)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "role": self.role,
            "method": self.method,
            "threshold": self.threshold,
            "n": self.n,
            "n_missing": self.n_missing,
            "keys": list(self.keys),
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> CategoricalProfile:
        return cls(
            name=name,
            role=str(d.get("role", "feature")),
            method=str(d.get("method", "auto")),
            threshold=None if d.get("threshold") is None else float(d["threshold"]),
            n=int(d["n"]),
            n_missing=int(d["n_missing"]),
            keys=[str(k) for k in d["keys"]],
            counts=np.asarray(d["counts"], dtype=np.int64),
        )


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass
class Profile:
    """A reference profile. Build with :func:`build_profile`; store with :meth:`save`."""

    columns: dict[str, ColumnProfile]
    n_rows: int
    sample_size: int = DEFAULT_SAMPLE_SIZE
    n_bins: int = DEFAULT_BINS
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Identifies this profile; summaries record it so they are never checked against another one."""
    multivariate: MultivariateModel | dict[str, Any] | None = None
    """The fitted multivariate drift model (:mod:`driftline.drift.multivariate`), or the document saying
    why there is none; None for profiles built before it existed."""
    segments: dict[str, SegmentSet] = field(default_factory=dict)
    """Per-segment references (``drift.segments``): for each segment column, a profile of the reference rows
    of each of its most frequent values; empty for profiles built without segments (or before they existed)."""

    @property
    def numerical(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.kind == "numerical"]

    @property
    def categorical(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.kind == "categorical"]

    @property
    def features(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.role == "feature"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "id": self.id,
            "created_at": self.created_at,
            "n_rows": self.n_rows,
            "sample_size": self.sample_size,
            "n_bins": self.n_bins,
            "metadata": dict(self.metadata),
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
            **({} if self.multivariate is None else {"multivariate": _multivariate_dict(self.multivariate)}),
            **({"segments": {c: seg.to_dict() for c, seg in self.segments.items()}} if self.segments else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "profile") -> Profile:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ProfileFormatError(
                f"{source}: not a driftline drift profile (format is {found!r}, expected "
                f"{FORMAT!r}); build one with driftline.drift.build_profile"
            )
        try:
            columns: dict[str, ColumnProfile] = {}
            for name, col in data["columns"].items():
                if col["kind"] == "numerical":
                    columns[name] = NumericProfile.from_dict(name, col)
                elif col["kind"] == "categorical":
                    columns[name] = CategoricalProfile.from_dict(name, col)
                else:
                    raise ProfileFormatError(f"{source}: column {name!r} has unknown kind {col['kind']!r}")
            return cls(
                columns=columns,
                n_rows=int(data["n_rows"]),
                sample_size=int(data["sample_size"]),
                n_bins=int(data["n_bins"]),
                metadata=dict(data.get("metadata") or {}),
                created_at=str(data["created_at"]),
                id=str(data["id"]),
                multivariate=_read_multivariate(data.get("multivariate"), source),
                segments=_read_segments(data.get("segments"), columns, source),
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:  # a list for an object; 1e400
            if isinstance(e, ProfileFormatError):
                raise
            raise ProfileFormatError(f"{source}: damaged drift profile ({type(e).__name__}: {e}); rebuild it") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "profile") -> Profile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProfileFormatError(f"{source}: not valid JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
        return cls.from_dict(data, source)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ProfileFormatError(f"{path}: profile file not found") from None
        return cls.from_json(text, str(path))


@dataclass
class SegmentSet:
    """The reference of one segment column: a profile per kept value (and ``__other__``).

    ``values`` are the column's most frequent reference categories (at most ``max_segments``); every
    other category, and a missing value, falls in :data:`~driftline.contracts.SEGMENT_OTHER`. A value
    whose reference could not be profiled (too few rows, a column without values in it) is listed in
    ``unavailable`` with the reason instead of a profile, so its windows say why."""

    column: str
    values: list[str]
    max_segments: int
    profiles: dict[str, Profile] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def segments(self) -> list[str]:
        """Every segment of the column, in reference-frequency order (``__other__`` last)."""
        return [*self.profiles, *(k for k in self.unavailable if k not in self.profiles)]

    def codes(self, keys: np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Each row's segment as an index into ``values`` (``len(values)``: ``__other__``), from its category
        key (None: missing), computed in Arrow (a million rows would take a Python loop seconds)."""
        arr = keys if isinstance(keys, pa.Array | pa.ChunkedArray) else pa.array(keys, type=pa.string())
        idx = pc.fill_null(pc.index_in(arr, value_set=pa.array(self.values, type=pa.string())), len(self.values))
        return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)

    def labels(self, keys: np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Each row's segment from its category key (None: missing): a kept value or ``__other__``."""
        names = np.asarray([*self.values, SEGMENT_OTHER], dtype=object)
        out: np.ndarray = names[self.codes(keys)]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "max_segments": self.max_segments,
            "profiles": {v: p.to_dict() for v, p in self.profiles.items()},
            "unavailable": dict(self.unavailable),
        }

    @classmethod
    def from_dict(cls, column: str, d: Mapping[str, Any], source: str) -> SegmentSet:
        return cls(
            column=column,
            values=[str(v) for v in d["values"]],
            max_segments=int(d["max_segments"]),
            profiles={str(v): Profile.from_dict(p, f"{source} segment {column}={v}") for v, p in d["profiles"].items()},
            unavailable={str(k): str(v) for k, v in d.get("unavailable", {}).items()},
        )


def _read_segments(doc: Any, columns: Mapping[str, ColumnProfile], source: str) -> dict[str, SegmentSet]:
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ProfileFormatError(f"{source}: damaged drift profile (segments is {type(doc).__name__}); rebuild it")
    out = {}
    for column, d in doc.items():
        if not isinstance(columns.get(column), CategoricalProfile):
            raise ProfileFormatError(f"{source}: segment column {column!r} is not a categorical column; rebuild it")
        out[str(column)] = SegmentSet.from_dict(str(column), d, source)
    return out


def _multivariate_dict(mv: MultivariateModel | dict[str, Any]) -> dict[str, Any]:
    return mv.to_dict() if isinstance(mv, MultivariateModel) else dict(mv)


def _read_multivariate(doc: Any, source: str) -> MultivariateModel | dict[str, Any] | None:
    if doc is None:
        return None
    if not isinstance(doc, Mapping):
        raise ProfileFormatError(f"{source}: damaged drift profile (multivariate is {type(doc).__name__}); rebuild it")
    if doc.get("status") != "ok":
        return {"status": str(doc.get("status", "unavailable")), "reason": str(doc.get("reason", ""))}
    try:
        return MultivariateModel.from_dict(doc)
    except ProfileFormatError as e:
        raise ProfileFormatError(f"{source}: {e}") from None


# ---------------------------------------------------------------- building
def build_profile(
    reference: Any,
    numerical: Sequence[str] = (),
    categorical: Sequence[str] = (),
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    prediction: Sequence[str] = (),
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    n_bins: int = DEFAULT_BINS,
    metadata: Mapping[str, Any] | None = None,
    multivariate: bool = True,
    multivariate_sample_rows: int = DEFAULT_SAMPLE_ROWS,
    segments: Sequence[str] = (),
    max_segments: int = DEFAULT_MAX_SEGMENTS,
) -> Profile:
    """Summarize ``reference`` (DataFrame, pyarrow Table or dict of arrays) once for later checks.

    ``overrides`` maps a column to ``{"method": ..., "threshold": ..., "enabled": ...}``;
    ``prediction`` names columns that are model outputs (reported as prediction drift and kept out
    of the dataset-level share of drifted features). ``multivariate`` also fits the multivariate
    drift model on the feature columns (:mod:`driftline.drift.multivariate`), keeping
    ``multivariate_sample_rows`` encoded reference rows for the domain classifier.
    ``segments`` names categorical feature columns whose ``max_segments`` most frequent values each get
    their own reference profile (:class:`SegmentSet`), so a check can compare a segment of a window with
    the same segment of the reference.
    """
    numerical, categorical = list(numerical), list(categorical)
    _validate_columns(numerical, categorical, prediction)
    if sample_size < 100:
        raise DriftInputError(
            f"sample_size={sample_size} is too small; use at least 100 (default {DEFAULT_SAMPLE_SIZE})"
        )
    if not 2 <= n_bins <= 1000:
        raise DriftInputError(f"n_bins={n_bins} must be between 2 and 1000 (default {DEFAULT_BINS})")
    settings = _settings(overrides or {}, numerical, categorical)
    numerical = [c for c in numerical if settings[c][2]]
    categorical = [c for c in categorical if settings[c][2]]
    cols = extract(reference, numerical, categorical)
    for name, (status, message) in cols.problems.items():
        hint = "pass it as categorical" if status == WRONG_TYPE and name in numerical else "check the column list"
        raise DriftInputError(f"reference data: {message}; {hint}")
    if cols.n_rows == 0:
        raise DriftInputError("reference data has no rows; a profile needs the data the model was trained on")
    columns: dict[str, ColumnProfile] = {}
    for name in numerical:
        method, threshold, _ = settings[name]
        role = "prediction" if name in prediction else "feature"
        columns[name] = _numeric_profile(
            name, role, method, threshold, cols.numeric[name], sample_size=sample_size, n_bins=n_bins
        )
    for name in categorical:
        method, threshold, _ = settings[name]
        role = "prediction" if name in prediction else "feature"
        columns[name] = _categorical_profile(name, role, method, threshold, cols.categorical[name])
    mv: MultivariateModel | dict[str, Any] | None = None
    if multivariate:
        feats = [c for c in columns.values() if c.role == "feature"]
        mv = fit_multivariate(
            reference,
            [c.name for c in feats if isinstance(c, NumericProfile)],
            [c.name for c in feats if isinstance(c, CategoricalProfile)],
            {c.name: (c.keys, c.counts.tolist()) for c in feats if isinstance(c, CategoricalProfile)},
            sample_rows=multivariate_sample_rows,
        )
    return Profile(
        columns=columns,
        n_rows=cols.n_rows,
        sample_size=sample_size,
        n_bins=n_bins,
        metadata=dict(metadata or {}),
        multivariate=mv,
        segments=build_segments(
            reference, columns, segments, max_segments, overrides or {}, sample_size, n_bins, metadata or {}
        ),
    )


def build_segments(
    reference: Any,
    columns: Mapping[str, ColumnProfile],
    segment_columns: Sequence[str],
    max_segments: int,
    overrides: Mapping[str, Mapping[str, Any]],
    sample_size: int,
    n_bins: int,
    metadata: Mapping[str, Any],
) -> dict[str, SegmentSet]:
    """The per-segment references of ``segment_columns`` (refused unless categorical feature columns).

    Each segment profiles the other feature columns of its reference rows (the segment column is constant
    within a segment, and predictions are profiled from other rows than the features), with the quantile
    sample capped at :data:`SEGMENT_SAMPLE_SIZE` so that a profile with many segments stays small. Each
    segment keeps the profile's ``metadata`` (feature importance for the weighted share, declared bounds and
    categories for the data-quality checks). A column without any value in a segment's reference rows (a
    feature only some regions have) is left out of that segment instead of losing the whole segment."""
    if isinstance(segment_columns, str):
        raise DriftInputError(f"segments must be a list of column names, not the string {segment_columns!r}")
    allowed = [n for n, c in columns.items() if c.role == "feature" and isinstance(c, CategoricalProfile)]
    wrong = [c for c in segment_columns if c not in allowed]
    if wrong:
        raise DriftInputError(
            f"segments names {', '.join(map(repr, wrong))}, not a categorical feature column of the profile; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    if segment_columns and not 1 <= max_segments <= MAX_CATEGORIES:
        raise DriftInputError(f"max_segments={max_segments} must be between 1 and {MAX_CATEGORIES}")
    out: dict[str, SegmentSet] = {}
    for name in dict.fromkeys(segment_columns):
        col = columns[name]
        assert isinstance(col, CategoricalProfile)
        seg = SegmentSet(name, list(col.keys[:max_segments]), max_segments)
        keys = row_key_array(reference, name)
        assert keys is not None  # the column was profiled as categorical
        labels = seg.labels(keys)
        others = [c for c, p in columns.items() if c != name and p.role == "feature"]
        numerical = [c for c in others if isinstance(columns[c], NumericProfile)]
        categorical = [c for c in others if isinstance(columns[c], CategoricalProfile)]
        kept = {c: o for c, o in overrides.items() if c in others}
        for value in [*seg.values, SEGMENT_OTHER]:
            rows = np.flatnonzero(labels == value)
            if value == SEGMENT_OTHER and rows.size == 0:
                continue
            if rows.size < MIN_SEGMENT_REFERENCE_ROWS or not others:
                why = "no other feature column to check" if not others else f"{rows.size} reference rows"
                seg.unavailable[value] = f"the reference has too little for this segment ({why})"
                continue
            part = take_rows(reference, others, rows)
            present = extract(part, numerical, categorical)  # a column without values here is left out
            num = [c for c in numerical if c in present.numeric and np.isfinite(present.numeric[c]).any()]
            cat = [c for c in categorical if c in present.categorical and present.categorical[c].n > 0]
            if not num and not cat:
                seg.unavailable[value] = "the reference rows of this segment have no values in the other columns"
                continue
            try:
                seg.profiles[value] = build_profile(
                    part,
                    num,
                    cat,
                    overrides={c: o for c, o in kept.items() if c in num or c in cat},
                    sample_size=min(sample_size, SEGMENT_SAMPLE_SIZE),
                    n_bins=n_bins,
                    metadata=metadata,
                    multivariate=False,
                )
            except DriftInputError as e:
                seg.unavailable[value] = f"the reference of this segment cannot be profiled: {e}"
        out[name] = seg
    return out


def _validate_columns(numerical: list[str], categorical: list[str], prediction: Sequence[str]) -> None:
    if not numerical and not categorical:
        raise DriftInputError("no columns to profile; pass numerical=[...] and/or categorical=[...]")
    both = sorted(set(numerical) & set(categorical))
    if both:
        raise DriftInputError(f"columns listed as both numerical and categorical: {', '.join(both)}")
    for group in (numerical, categorical):
        dupes = sorted({c for c in group if group.count(c) > 1})
        if dupes:
            raise DriftInputError(f"columns listed twice: {', '.join(dupes)}")
    unknown = sorted(set(prediction) - set(numerical) - set(categorical))
    if unknown:
        raise DriftInputError(
            f"prediction columns {', '.join(unknown)} must also be listed as numerical or categorical"
        )


def _settings(
    overrides: Mapping[str, Mapping[str, Any]], numerical: list[str], categorical: list[str]
) -> dict[str, tuple[str, float | None, bool]]:
    out: dict[str, tuple[str, float | None, bool]] = {}
    known = set(numerical) | set(categorical)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise DriftInputError(f"overrides name columns that are not profiled: {', '.join(unknown)}")
    for name in [*numerical, *categorical]:
        o = dict(overrides.get(name) or {})
        extra = sorted(set(o) - {"method", "threshold", "enabled"})
        if extra:
            raise DriftInputError(
                f"override for column {name!r} has unknown keys {', '.join(extra)}; allowed: method, threshold, enabled"
            )
        method = str(o.get("method") or "auto")
        kind: Kind = "numerical" if name in numerical else "categorical"
        try:
            validate_method(name, kind, method)
        except ValueError as e:
            raise DriftInputError(str(e)) from None
        threshold = o.get("threshold")
        if threshold is not None:
            try:
                threshold = float(threshold)
            except (TypeError, ValueError):
                raise DriftInputError(
                    f"override for column {name!r}: threshold {threshold!r} is not a number"
                ) from None
            if not threshold >= 0:
                raise DriftInputError(f"override for column {name!r}: threshold must be >= 0, got {threshold}")
        out[name] = (method, threshold, bool(o.get("enabled", True)))
    return out


def _numeric_profile(
    name: str,
    role: str,
    method: str,
    threshold: float | None,
    raw: np.ndarray,
    *,
    sample_size: int,
    n_bins: int,
) -> NumericProfile:
    srt = np.sort(raw)
    start = int(np.searchsorted(srt, -np.inf, side="right"))
    stop = int(np.searchsorted(srt, np.inf, side="left"))  # NaN sorts last
    vals = srt[start:stop]
    n = int(vals.size)
    if n == 0:
        raise DriftInputError(
            f"reference column {name!r} has no values (all missing); drop it from the profile or fix the reference data"
        )
    distinct, dcounts = distinct_counts(vals)
    exact = distinct.size <= sample_size
    if exact:
        values, counts = distinct, dcounts
    else:
        idx = ((np.arange(sample_size) + 0.5) * (n / sample_size)).astype(np.int64)
        values, counts = distinct_counts(vals[idx])
    if distinct.size > VALUE_COUNT_LIMIT:
        q = np.arange(1, n_bins) / n_bins
        pos = q * (n - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n - 1)
        edges = np.unique(vals[lo] + (pos - lo) * (vals[hi] - vals[lo]))
        bin_counts = np.diff(np.concatenate(([0], np.searchsorted(vals, edges, side="left"), [n])))
    else:
        edges = np.empty(0)
        bin_counts = np.empty(0, dtype=np.int64)
    vmin, vmax = float(vals[0]), float(vals[-1])
    hist_edges = np.linspace(vmin, vmax, HIST_BINS + 1) if vmax > vmin else np.asarray([vmin, vmin])
    hist_counts = histogram_sorted(vals, hist_edges)
    return NumericProfile(
        name=name,
        role=role,
        method=method,
        threshold=threshold,
        n=n,
        n_missing=int(raw.size - n),
        mean=float(np.mean(vals)),
        std=float(np.std(vals)),
        min=vmin,
        max=vmax,
        n_distinct=int(distinct.size),
        exact=bool(exact),
        values=values,
        counts=counts.astype(np.int64),
        bin_edges=edges,
        bin_counts=bin_counts.astype(np.int64),
        hist_edges=hist_edges,
        hist_counts=hist_counts,
    )


def distinct_counts(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and their counts, in one pass."""
    if sorted_values.size == 0:
        return sorted_values, np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    counts = np.diff(np.append(starts, sorted_values.size))
    return sorted_values[starts], counts.astype(np.int64)


def histogram_sorted(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts for [under, bin_1 .. bin_k, over] with numpy's rule (last bin closed on the right)."""
    m = sorted_values.size
    if edges.size < 2 or edges[0] == edges[-1]:
        at = int(np.searchsorted(sorted_values, edges[0], side="left"))
        at_r = int(np.searchsorted(sorted_values, edges[0], side="right"))
        return np.asarray([at, at_r - at, m - at_r], dtype=np.int64)
    left = np.searchsorted(sorted_values, edges, side="left")
    last = int(np.searchsorted(sorted_values, edges[-1], side="right"))
    inner = np.diff(left)
    inner[-1] = last - left[-2]
    return np.concatenate(([left[0]], inner, [m - last])).astype(np.int64)


def _categorical_profile(
    name: str, role: str, method: str, threshold: float | None, cc: CategoryCounts
) -> CategoricalProfile:
    if cc.n == 0:
        raise DriftInputError(
            f"reference column {name!r} has no values (all missing); drop it from the profile or fix the reference data"
        )
    if len(cc.keys) > MAX_CATEGORIES:
        raise DriftInputError(
            f"reference column {name!r} has {len(cc.keys)} distinct values; a categorical drift "
            f"column may have at most {MAX_CATEGORIES} (declare it numerical or leave it out)"
        )
    order = np.argsort(-cc.counts, kind="stable")
    return CategoricalProfile(
        name=name,
        role=role,
        method=method,
        threshold=threshold,
        n=cc.n,
        n_missing=cc.n_missing,
        keys=[cc.keys[i] for i in order],
        counts=cc.counts[order].astype(np.int64),
    )
