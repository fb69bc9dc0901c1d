"""Multivariate drift: a change in how the features relate to each other, which per-column tests miss.

Two measures, both fitted once on the reference when the profile is built and stored in it as plain
arrays (no pickle):

- **Data reconstruction error** (NannyML's ``DataReconstructionDriftCalculator``): every row is
  encoded (numerical columns imputed with the reference median; categorical columns replaced by
  the reference share of their category, as NannyML's count encoder does, missing values by the
  most frequent category's share and unseen categories by 0), standardized with the reference
  mean and standard deviation, projected on the principal components that explain
  ``variance`` (0.65, NannyML's default) of the reference variance and projected back. The
  Euclidean distance between a row and its reconstruction is that row's error. When the
  relationship between features changes (two columns that moved together now move apart) the
  rows leave the reference's principal subspace and the mean error rises, although every
  marginal distribution may be unchanged.

  Threshold, as NannyML: the reference is cut into ``chunks`` (10) contiguous chunks; the bounds
  are the mean of the chunk-mean errors +/- ``sigmas`` (3) standard deviations of them. Unlike
  NannyML, the scaler and components are fitted on every other reference row and the chunks are
  made of the rows in between: with many weakly related features the components fit the noise of
  the rows they were fitted on, so in-sample errors sit below what any new window from the same
  distribution shows and every clean window would alarm (21 independent features, 3,000 rows:
  nine clean windows in ten did). A window
  smaller than a reference chunk varies more than a chunk does, so its standard deviation is
  scaled by ``sqrt(chunk_rows / window_rows)``; a larger window keeps the chunk's (never
  narrower), so the in-sample fit of the components cannot make a huge window alarm on its own.

  The window's mean error is a sum and a count (:class:`ErrorSums`), so shards of a large window
  are summarized separately and added up (:meth:`driftline.drift.summary.Summary.merge`).

- **Domain classifier** (NannyML's ``DomainClassifierCalculator``), for small windows: a gradient
  boosting classifier learns to tell a stored sample of encoded reference rows from the window's
  rows (both capped); its 5-fold cross-validated ROC AUC is 0.5 when they cannot be told apart.
  The window drifted when the AUC exceeds ``auc_threshold`` (0.65, NannyML's upper bound). It needs
  scikit-learn and the window's rows, so it runs in-process only (not in the drift function,
  whose zip has numpy and pyarrow only, and not on merged shard summaries); where it cannot run
  it is reported ``unavailable`` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.drift.columns import _is_pandas, extract
from driftline.drift.errors import DriftInputError, ProfileFormatError

__all__ = [
    "DEFAULT_AUC_THRESHOLD",
    "DEFAULT_CHUNKS",
    "DEFAULT_SAMPLE_ROWS",
    "DEFAULT_SIGMAS",
    "DEFAULT_VARIANCE",
    "METHODS",
    "MIN_REFERENCE_ROWS",
    "ErrorSums",
    "MultivariateModel",
    "MultivariateResult",
    "domain_classifier_check",
    "encode",
    "fit_multivariate",
    "reconstruction_check",
    "reconstruction_sums",
    "unavailable",
]

Method = Literal["pca", "domain_classifier", "off"]
METHODS: tuple[str, ...] = ("pca", "domain_classifier", "off")
FORMAT = "driftline.drift.multivariate/1"
DEFAULT_VARIANCE = 0.65
"""Share of the reference variance the kept components explain (NannyML's ``n_components``)."""
DEFAULT_CHUNKS = 10
"""Reference chunks the threshold is computed from (NannyML's default chunker makes 10)."""
DEFAULT_SIGMAS = 3.0
"""Bounds: mean of the reference chunk errors +/- this many standard deviations (NannyML's rule)."""
DEFAULT_SAMPLE_ROWS = 1000
"""Encoded reference rows kept for the domain classifier (and the cap on the window's rows it uses)."""
DEFAULT_AUC_THRESHOLD = 0.65
"""Domain classifier: drift above this cross-validated ROC AUC (NannyML's ``ConstantThreshold`` upper)."""
MIN_REFERENCE_ROWS = 200
"""Below this the reference's own variability (10 chunks of its held-out half) is too noisy to set a threshold from."""
MIN_WINDOW_ROWS = 10
"""A window with fewer encoded rows gets ``insufficient_data`` (5 cross-validation folds need 5 per side)."""
CV_FOLDS = 5
BLOCK_ROWS = 65_536
"""Rows encoded and reconstructed at a time, so memory stays ``BLOCK_ROWS x columns`` whatever the window."""
SAMPLE_DECIMALS = 5
"""The stored reference sample is standardized; 5 decimals keep it exact enough and the JSON small."""
OK, UNAVAILABLE, INSUFFICIENT = "ok", "unavailable", "insufficient_data"


# ---------------------------------------------------------------- the fitted transform
@dataclass
class MultivariateModel:
    """The encoder, scaler, principal components and threshold fitted on the reference.

    Attributes
    ----------
    numerical, categorical : list of str
        Encoded columns, in matrix order (numerical first).
    medians : ndarray of shape (n_numerical,)
        Reference medians, used for missing numerical values.
    shares : list of dict
        Per categorical column, the reference share of each category (the encoding).
    fills : ndarray of shape (n_categorical,)
        Encoding of a missing category: the share of the most frequent one.
    means, stds : ndarray of shape (n_columns,)
        Standardization of the encoded columns (``stds`` of constant columns is 1).
    components : ndarray of shape (n_components, n_columns)
        Orthonormal principal axes of the standardized reference.
    explained : float
        Share of the reference variance the components explain.
    error_mean, chunk_std : float
        Mean reconstruction error of the reference chunks and the standard deviation of the chunk means.
    chunk_rows : int
        Rows per reference chunk (the size ``chunk_std`` belongs to).
    sample : ndarray of shape (n_sample, n_columns)
        Standardized encoded reference rows for the domain classifier (a seeded random sample).
    """

    numerical: list[str]
    categorical: list[str]
    medians: np.ndarray
    shares: list[dict[str, float]]
    fills: np.ndarray
    means: np.ndarray
    stds: np.ndarray
    components: np.ndarray
    explained: float
    variance: float
    error_mean: float
    chunk_std: float
    chunk_rows: int
    n_chunks: int
    sigmas: float
    n_reference: int
    sample: np.ndarray

    @property
    def columns(self) -> list[str]:
        return [*self.numerical, *self.categorical]

    def bounds(self, n_rows: int) -> tuple[float, float]:
        """(lower, upper) mean error for a window of ``n_rows`` rows (see the module docstring)."""
        scale = math.sqrt(self.chunk_rows / max(1, min(n_rows, self.chunk_rows)))
        half = self.sigmas * self.chunk_std * scale
        return max(0.0, self.error_mean - half), self.error_mean + half

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "status": OK,
            "numerical": list(self.numerical),
            "categorical": list(self.categorical),
            "medians": self.medians.tolist(),
            "shares": [dict(s) for s in self.shares],
            "fills": self.fills.tolist(),
            "means": self.means.tolist(),
            "stds": self.stds.tolist(),
            "components": self.components.tolist(),
            "explained": self.explained,
            "variance": self.variance,
            "error_mean": self.error_mean,
            "chunk_std": self.chunk_std,
            "chunk_rows": self.chunk_rows,
            "n_chunks": self.n_chunks,
            "sigmas": self.sigmas,
            "n_reference": self.n_reference,
            "sample": np.round(self.sample, SAMPLE_DECIMALS).tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MultivariateModel:
        """Read :meth:`to_dict` output; :class:`ProfileFormatError` when it is damaged."""
        if d.get("format") != FORMAT:
            raise ProfileFormatError(f"multivariate model format is {d.get('format')!r}, expected {FORMAT!r}")
        try:
            numerical = [str(c) for c in d["numerical"]]
            categorical = [str(c) for c in d["categorical"]]
            width = len(numerical) + len(categorical)
            model = cls(
                numerical=numerical,
                categorical=categorical,
                medians=np.asarray(d["medians"], dtype=np.float64).reshape(len(numerical)),
                shares=[{str(k): float(v) for k, v in s.items()} for s in d["shares"]],
                fills=np.asarray(d["fills"], dtype=np.float64).reshape(len(categorical)),
                means=np.asarray(d["means"], dtype=np.float64).reshape(width),
                stds=np.asarray(d["stds"], dtype=np.float64).reshape(width),
                components=np.asarray(d["components"], dtype=np.float64).reshape(-1, width),
                explained=float(d["explained"]),
                variance=float(d["variance"]),
                error_mean=float(d["error_mean"]),
                chunk_std=float(d["chunk_std"]),
                chunk_rows=int(d["chunk_rows"]),
                n_chunks=int(d["n_chunks"]),
                sigmas=float(d["sigmas"]),
                n_reference=int(d["n_reference"]),
                sample=np.asarray(d["sample"], dtype=np.float64).reshape(-1, width),
            )
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise ProfileFormatError(
                f"damaged multivariate model ({type(e).__name__}: {e}); rebuild the profile"
            ) from None
        if len(model.shares) != len(categorical) or not np.all(model.stds > 0):
            raise ProfileFormatError("damaged multivariate model (shares or scales do not fit the columns)")
        arrays = (model.medians, model.fills, model.means, model.stds, model.components, model.sample)
        scalars = (model.explained, model.variance, model.error_mean, model.chunk_std, model.sigmas)
        if not (all(np.all(np.isfinite(a)) for a in arrays) and all(math.isfinite(v) for v in scalars)):
            # a fit never stores NaN or inf; one read back would make every window's error NaN: never an alarm
            raise ProfileFormatError("damaged multivariate model (NaN or infinite numbers); rebuild the profile")
        return model


def unavailable(reason: str) -> dict[str, Any]:
    """What a profile stores (and a check reports) when no multivariate model could be fitted."""
    return {"format": FORMAT, "status": UNAVAILABLE, "reason": reason}


# ---------------------------------------------------------------- encoding
def _row_count(data: Any) -> int:
    return extract(data, [], []).n_rows


def _column(data: Any, name: str) -> Any:
    if _is_pandas(data, "DataFrame") or isinstance(data, Mapping):
        return data[name]
    if isinstance(data, pa.Table | pa.RecordBatch):
        return data.column(name)
    raise DriftInputError(f"unsupported data of type {type(data).__name__}")


def _canonical(value: Any) -> str:
    """The profile's category key of one value (``true``/``false``, ``1`` for 1.0), see columns.py."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value)
    return {"True": "true", "False": "false"}.get(text, text)


def _category_shares(col: Any, shares: Mapping[str, float], fill: float) -> np.ndarray:
    """Each row's reference share of its category: 0 for unseen ones, ``fill`` for missing ones."""
    if _is_pandas(col, "Series"):
        arr = pa.Array.from_pandas(col)
    elif isinstance(col, pa.ChunkedArray):
        arr = col.combine_chunks()
    elif isinstance(col, pa.Array):
        arr = col
    else:
        obj = col if isinstance(col, np.ndarray) else np.asarray(col, dtype=object)
        try:
            arr = pa.array(obj, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            as_obj = obj.astype(object)
            missing = np.asarray([v is None or (isinstance(v, float) and math.isnan(v)) for v in as_obj], dtype=bool)
            arr = pa.array([str(v) for v in as_obj], mask=missing, type=pa.string())
    if pa.types.is_floating(arr.type):
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    assert isinstance(arr, pa.DictionaryArray)
    lookup = np.asarray([shares.get(_canonical(v), 0.0) for v in arr.dictionary.to_pylist()] + [fill])
    idx = np.asarray(pc.fill_null(arr.indices, len(arr.dictionary)).to_numpy(zero_copy_only=False), dtype=np.int64)
    return lookup[idx]


def encode(model: MultivariateModel, data: Any) -> np.ndarray:
    """The standardized encoded matrix (rows x columns) of ``data`` under ``model``.

    Parameters
    ----------
    model : MultivariateModel
        The fitted transform.
    data : DataFrame, pyarrow Table or dict of arrays
        Must hold every column of ``model``.

    Returns
    -------
    ndarray of shape (n_rows, n_columns)

    Raises
    ------
    DriftInputError
        A column is missing or a numerical column holds non-numbers.
    """
    raw = _raw_matrix(model.numerical, model.categorical, data, model.medians, model.shares, model.fills)
    raw -= model.means
    raw /= model.stds
    return raw


def _raw_matrix(
    numerical: Sequence[str],
    categorical: Sequence[str],
    data: Any,
    medians: np.ndarray,
    shares: Sequence[Mapping[str, float]],
    fills: np.ndarray,
) -> np.ndarray:
    cols = extract(data, numerical, [])
    missing = sorted(set(numerical) & set(cols.problems))
    if missing:
        raise DriftInputError("; ".join(cols.problems[c][1] for c in missing))
    out = np.empty((cols.n_rows, len(numerical) + len(categorical)), dtype=np.float64)
    for j, name in enumerate(numerical):
        v = cols.numeric.pop(name)
        out[:, j] = np.where(np.isfinite(v), v, medians[j])
    available = _names(data)
    for i, name in enumerate(categorical):
        if name not in available:
            raise DriftInputError(f"column {name!r} is not in the data")
        out[:, len(numerical) + i] = _category_shares(_column(data, name), shares[i], float(fills[i]))
    return out


def _take_rows(data: Any, idx: np.ndarray) -> Any:
    """The rows ``idx`` of a DataFrame, pyarrow Table/RecordBatch or dict of columns, same kind."""
    if _is_pandas(data, "DataFrame"):
        return data.iloc[idx]
    if isinstance(data, pa.Table | pa.RecordBatch):
        return data.take(pa.array(idx))
    if isinstance(data, Mapping):
        return {k: _take_column(v, idx) for k, v in data.items()}
    raise DriftInputError(f"unsupported data of type {type(data).__name__}")


def _take_column(col: Any, idx: np.ndarray) -> Any:
    if _is_pandas(col, "Series"):
        return col.iloc[idx]
    if isinstance(col, pa.Array | pa.ChunkedArray):
        return col.take(pa.array(idx))
    arr = col if isinstance(col, np.ndarray) else np.asarray(col, dtype=object)
    return arr[idx]


def _names(data: Any) -> set[str]:
    if _is_pandas(data, "DataFrame"):
        return {str(c) for c in data.columns}
    if isinstance(data, pa.Table | pa.RecordBatch):
        return set(data.schema.names)
    if isinstance(data, Mapping):
        return {str(k) for k in data}
    raise DriftInputError(f"unsupported data of type {type(data).__name__}")


def _errors(model_components: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distance between standardized rows and their reconstruction, in blocks."""
    out = np.empty(z.shape[0])
    for start in range(0, z.shape[0], BLOCK_ROWS):
        block = z[start : start + BLOCK_ROWS]
        resid = block - (block @ model_components.T) @ model_components
        out[start : start + BLOCK_ROWS] = np.sqrt(np.einsum("ij,ij->i", resid, resid))
    return out


# ---------------------------------------------------------------- fitting
def fit_multivariate(
    reference: Any,
    numerical: Sequence[str],
    categorical: Sequence[str],
    category_counts: Mapping[str, tuple[Sequence[str], Sequence[int]]],
    *,
    variance: float = DEFAULT_VARIANCE,
    chunks: int = DEFAULT_CHUNKS,
    sigmas: float = DEFAULT_SIGMAS,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
) -> MultivariateModel | dict[str, Any]:
    """Fit the reconstruction model on the reference (called by :func:`driftline.drift.build_profile`).

    Parameters
    ----------
    reference : DataFrame, pyarrow Table or dict of arrays
        The reference rows.
    numerical, categorical : sequence of str
        Feature columns to encode (model outputs are left out by the caller).
    category_counts : mapping
        Per categorical column, ``(keys, counts)`` as the profile stores them: the encoding is
        each category's share of the reference.
    variance : float
        Share of the variance the kept components must explain, in (0, 1).
    chunks, sigmas : int, float
        The threshold rule (see the module docstring).
    sample_rows : int
        Encoded reference rows stored for the domain classifier (0 keeps none).
    seed : int
        Seed of the sample.

    Returns
    -------
    MultivariateModel, or the :func:`unavailable` document with the reason when the reference
    cannot support one (fewer than two columns, or fewer than ``MIN_REFERENCE_ROWS`` rows).

    Raises
    ------
    DriftInputError
        A setting is out of range.
    """
    if not 0.0 < variance < 1.0:
        raise DriftInputError(f"multivariate variance={variance} must be between 0 and 1 (default {DEFAULT_VARIANCE})")
    if not 2 <= chunks <= 1000:
        raise DriftInputError(f"multivariate chunks={chunks} must be between 2 and 1000 (default {DEFAULT_CHUNKS})")
    if not sigmas > 0:
        raise DriftInputError(f"multivariate sigmas={sigmas} must be > 0 (default {DEFAULT_SIGMAS})")
    if sample_rows < 0:
        raise DriftInputError(f"multivariate sample_rows={sample_rows} must be >= 0 (default {DEFAULT_SAMPLE_ROWS})")
    numerical, categorical = list(numerical), list(categorical)
    if len(numerical) + len(categorical) < 2:
        return unavailable("multivariate drift needs at least two feature columns; the profile has fewer")
    n_rows = _row_count(reference)
    if n_rows < max(MIN_REFERENCE_ROWS, chunks * 4):
        return unavailable(
            f"the reference has {n_rows} rows; multivariate drift needs at least "
            f"{max(MIN_REFERENCE_ROWS, chunks * 4)} to set its threshold from {chunks} reference chunks"
        )
    medians = np.zeros(len(numerical))
    cols = extract(reference, numerical, [])
    for j, name in enumerate(numerical):
        v = cols.numeric.pop(name)
        finite = v[np.isfinite(v)]
        medians[j] = float(np.median(finite)) if finite.size else 0.0
    del cols
    shares: list[dict[str, float]] = []
    fills = np.zeros(len(categorical))
    for i, name in enumerate(categorical):
        keys, counts = category_counts[name]
        total = float(sum(counts)) or 1.0
        shares.append({str(k): float(c) / total for k, c in zip(keys, counts, strict=True)})
        fills[i] = max(shares[-1].values(), default=0.0)
    x = _raw_matrix(numerical, categorical, reference, medians, shares, fills)
    fit, held = x[0::2], x[1::2]  # fit on every other row, set the threshold on the rows in between
    means = fit.mean(axis=0)
    stds = fit.std(axis=0)
    stds[~(stds > 1e-12)] = 1.0
    x -= means
    x /= stds
    fit, held = x[0::2], x[1::2]
    cov = (fit.T @ fit) / fit.shape[0]
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = np.clip(eigvals[order], 0.0, None), eigvecs[:, order]
    total = float(eigvals.sum())
    ratio = np.cumsum(eigvals) / total if total > 0 else np.ones_like(eigvals)
    k = int(min(np.searchsorted(ratio, variance, side="right") + 1, eigvals.size))
    components = eigvecs[:, :k].T.copy()
    errors = _errors(components, held)
    bounds = np.linspace(0, held.shape[0], chunks + 1).astype(np.int64)
    chunk_means = np.add.reduceat(errors, bounds[:-1]) / np.diff(bounds)
    sample = np.empty((0, x.shape[1]))
    if sample_rows:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(n_rows, size=min(sample_rows, n_rows), replace=False))
        sample = x[pick]
    return MultivariateModel(
        numerical=numerical,
        categorical=categorical,
        medians=medians,
        shares=shares,
        fills=fills,
        means=means,
        stds=stds,
        components=components,
        explained=float(ratio[k - 1]),
        variance=variance,
        error_mean=float(chunk_means.mean()),
        chunk_std=float(chunk_means.std(ddof=1)),
        chunk_rows=int(held.shape[0] // chunks),
        n_chunks=chunks,
        sigmas=sigmas,
        n_reference=n_rows,
        sample=sample,
    )


# ---------------------------------------------------------------- checking
@dataclass
class ErrorSums:
    """The window's reconstruction errors as sums that add up across shards."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def merge(self, other: ErrorSums) -> ErrorSums:
        return ErrorSums(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "total": self.total, "total_sq": self.total_sq}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ErrorSums:
        return cls(int(d["n"]), float(d["total"]), float(d["total_sq"]))


@dataclass
class MultivariateResult:
    """One window's multivariate verdict (``to_dict`` is what the result JSON carries).

    ``statistic`` is the mean reconstruction error (``pca``) or the cross-validated ROC AUC
    (``domain_classifier``); ``lower``/``upper`` the bounds it is judged by.
    """

    method: str
    status: str
    statistic: float | None = None
    lower: float | None = None
    upper: float | None = None
    drifted: bool = False
    n_current: int = 0
    n_reference: int = 0
    n_components: int | None = None
    explained_variance: float | None = None
    reference_error: float | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        return {
            "method": self.method,
            "status": self.status,
            "statistic": num(self.statistic),
            "lower": num(self.lower),
            "upper": num(self.upper),
            "drifted": self.drifted,
            "n_current": self.n_current,
            "n_reference": self.n_reference,
            "n_components": self.n_components,
            "explained_variance": num(self.explained_variance),
            "reference_error": num(self.reference_error),
            "message": self.message,
        }


def reconstruction_sums(model: MultivariateModel, data: Any) -> ErrorSums:
    """Sum, sum of squares and count of the rows' reconstruction errors (mergeable across shards).

    Raises
    ------
    DriftInputError
        A column of the model is missing from ``data`` or holds the wrong type.
    """
    n = _row_count(data)
    if n == 0:
        return ErrorSums()
    errors = _errors(model.components, encode(model, data))
    return ErrorSums(int(errors.size), float(errors.sum()), float(np.dot(errors, errors)))


def reconstruction_check(model: MultivariateModel, sums: ErrorSums, *, min_rows: int = 1) -> MultivariateResult:
    """Judge a window's (merged) error sums against the reference bounds."""
    res = MultivariateResult(
        method="pca",
        status=OK,
        n_current=sums.n,
        n_reference=model.n_reference,
        n_components=int(model.components.shape[0]),
        explained_variance=model.explained,
        reference_error=model.error_mean,
    )
    if sums.n < max(1, min_rows):
        res.status = INSUFFICIENT
        res.message = f"{sums.n} rows; the reconstruction error needs at least {max(1, min_rows)}"
        return res
    res.statistic = sums.mean
    res.lower, res.upper = model.bounds(sums.n)
    assert res.statistic is not None
    res.drifted = bool(res.statistic > res.upper or res.statistic < res.lower)
    res.message = (
        f"mean reconstruction error {res.statistic:.4f} vs reference {model.error_mean:.4f} "
        f"(bounds {res.lower:.4f} to {res.upper:.4f}, {model.components.shape[0]} components)"
    )
    return res


def domain_classifier_check(
    model: MultivariateModel,
    data: Any,
    *,
    auc_threshold: float = DEFAULT_AUC_THRESHOLD,
    max_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
) -> MultivariateResult:
    """Can a classifier tell the window's rows from the reference sample? (cross-validated ROC AUC)

    Parameters
    ----------
    model : MultivariateModel
        Holds the encoder and the encoded reference sample.
    data : DataFrame, pyarrow Table or dict of arrays
        The window.
    auc_threshold : float
        Drift when the AUC exceeds it, in (0.5, 1].
    max_rows : int
        The window's rows are sampled down to this many (seeded), so the cost is bounded.

    Returns
    -------
    MultivariateResult
        ``unavailable`` when scikit-learn is not installed or the profile kept no sample,
        ``insufficient_data`` when either side has fewer than ``MIN_WINDOW_ROWS`` rows.

    Raises
    ------
    DriftInputError
        A bad setting, or a column of the model missing from ``data``.
    """
    if not 0.5 < auc_threshold <= 1.0:
        raise DriftInputError(f"auc_threshold={auc_threshold} must be in (0.5, 1] (default {DEFAULT_AUC_THRESHOLD})")
    if max_rows < MIN_WINDOW_ROWS:
        raise DriftInputError(f"max_rows={max_rows} must be at least {MIN_WINDOW_ROWS}")
    res = MultivariateResult(
        method="domain_classifier", status=OK, n_reference=int(model.sample.shape[0]), upper=auc_threshold
    )
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from threadpoolctl import threadpool_limits
    except ImportError:
        res.status = UNAVAILABLE
        res.message = "the domain classifier needs scikit-learn, which is not installed where this check runs"
        return res
    n_rows = _row_count(data)
    if n_rows > max_rows:  # sample the rows before encoding them: the cost stays max_rows whatever the window
        rng = np.random.default_rng(seed)
        data = _take_rows(data, np.sort(rng.choice(n_rows, size=max_rows, replace=False)))
    current = encode(model, data)
    res.n_current = int(current.shape[0])
    if model.sample.shape[0] < MIN_WINDOW_ROWS or current.shape[0] < MIN_WINDOW_ROWS:
        res.status = INSUFFICIENT if model.sample.shape[0] >= MIN_WINDOW_ROWS else UNAVAILABLE
        res.message = (
            f"the domain classifier needs at least {MIN_WINDOW_ROWS} rows on each side "
            f"(reference sample {model.sample.shape[0]}, window {current.shape[0]})"
        )
        return res
    x = np.vstack((model.sample, current))
    y = np.concatenate((np.zeros(model.sample.shape[0]), np.ones(current.shape[0])))
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    clf = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=seed)
    with threadpool_limits(limits=1):  # small fits: threads only spin on shared cores
        proba = cross_val_predict(clf, x, y, cv=folds, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, proba))
    res.statistic = auc
    res.drifted = auc > auc_threshold
    res.message = (
        f"a classifier tells the window from the reference with cross-validated ROC AUC {auc:.3f} "
        f"(drift above {auc_threshold}; 0.5 = indistinguishable)"
    )
    return res
