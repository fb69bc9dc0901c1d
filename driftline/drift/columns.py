"""Turn a pandas DataFrame, a pyarrow Table or a dict of arrays into what the engine computes on.

Numerical columns become float64 numpy arrays (NaN for missing); categorical columns become value
counts keyed by a canonical string (``"true"``/``"false"`` for booleans, ``"1"`` for 1 and 1.0),
so a category means the same thing whether it came from pandas, Arrow or JSON captures.
pandas is never imported here: a DataFrame is recognised by its type's module, and its own
methods do the work (the drift Lambda has only numpy and pyarrow).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.drift.errors import DriftInputError

MISSING_COLUMN = "missing_column"
WRONG_TYPE = "wrong_type"


@dataclass
class CategoryCounts:
    keys: list[str]
    counts: np.ndarray
    n_missing: int

    @property
    def n(self) -> int:
        return int(self.counts.sum())


@dataclass
class Columns:
    """The requested columns of one data set, plus the ones that could not be read."""

    n_rows: int
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, CategoryCounts] = field(default_factory=dict)
    problems: dict[str, tuple[str, str]] = field(default_factory=dict)
    """column -> (status, message) for missing columns and columns of the wrong type."""


def _is_pandas(obj: Any, name: str) -> bool:
    t = type(obj)
    return t.__module__.startswith("pandas") and t.__name__ == name


def extract(data: Any, numerical: Sequence[str], categorical: Sequence[str]) -> Columns:
    """Read the requested columns; missing or mistyped ones are recorded in ``problems``."""
    getter, n_rows, available = _accessor(data)
    out = Columns(n_rows=n_rows)
    for name in numerical:
        if name not in available:
            out.problems[name] = (MISSING_COLUMN, f"column {name!r} is not in the data")
            continue
        col = getter(name)
        values = _numeric(col)
        if values is None:
            out.problems[name] = (
                WRONG_TYPE,
                f"column {name!r} should be numerical but holds {_type_name(col)}",
            )
            continue
        if values.shape[0] != n_rows:
            raise DriftInputError(
                f"column {name!r} has {values.shape[0]} values but the data has {n_rows} rows; "
                f"all columns must have the same length"
            )
        out.numeric[name] = values
    for name in categorical:
        if name not in available:
            out.problems[name] = (MISSING_COLUMN, f"column {name!r} is not in the data")
            continue
        col = getter(name)
        counts = _categories(col)
        if counts is None:
            out.problems[name] = (
                WRONG_TYPE,
                f"column {name!r} should be categorical but holds {_type_name(col)}",
            )
            continue
        if counts.n + counts.n_missing != n_rows:
            raise DriftInputError(
                f"column {name!r} has {counts.n + counts.n_missing} values but the data has "
                f"{n_rows} rows; all columns must have the same length"
            )
        out.categorical[name] = counts
    return out


def column_names(data: Any) -> list[str]:
    return list(_accessor(data)[2])


def _accessor(data: Any) -> tuple[Any, int, Sequence[str]]:
    if _is_pandas(data, "DataFrame"):
        names = [str(c) for c in data.columns]
        return (lambda n: data[n]), len(data), names
    if isinstance(data, pa.Table | pa.RecordBatch):
        return data.column, data.num_rows, data.schema.names
    if isinstance(data, Mapping):
        lengths = {len(v) for v in data.values()} if data else {0}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}={len(v)}" for k, v in list(data.items())[:6])
            raise DriftInputError(
                f"the columns of the data have different lengths ({sizes}); every column must have one value per row"
            )
        return data.__getitem__, lengths.pop(), [str(k) for k in data]
    raise DriftInputError(
        f"unsupported data of type {type(data).__name__}; pass a pandas DataFrame, a pyarrow Table "
        f"or a dict of column name -> numpy array"
    )


def _type_name(col: Any) -> str:
    if isinstance(col, pa.Array | pa.ChunkedArray):
        return f"Arrow {col.type} values"
    dtype = getattr(col, "dtype", None)
    if dtype is not None:
        return f"{dtype} values"
    return f"{type(col).__name__} values"


# ---------------------------------------------------------------- numerical
def _numeric(col: Any) -> np.ndarray | None:
    """float64 values with NaN for missing, or None when the column is not numerical."""
    if isinstance(col, pa.Array | pa.ChunkedArray):
        t = col.type
        if pa.types.is_null(t):
            return np.full(len(col), np.nan)
        if pa.types.is_dictionary(t):
            return None
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)):
            return None
        return np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if _is_pandas(col, "Series"):
        kind = col.dtype.kind
        if isinstance(col.dtype, np.dtype) and kind in "biuf":
            values: np.ndarray = col.to_numpy()  # no copy for float64; NaN already means missing
            return values if values.dtype == np.float64 else values.astype(np.float64)
        if kind in "biuf" or (kind == "O" and str(col.dtype) != "category"):
            try:
                return np.asarray(col.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
            except (TypeError, ValueError):
                return None
        return None
    arr = col if isinstance(col, np.ndarray) else np.asarray(col, dtype=object)
    if arr.dtype.kind in "biuf":
        return arr.astype(np.float64, copy=False)
    if arr.dtype.kind == "O":
        try:
            return np.asarray(arr, dtype=np.float64)  # None -> NaN
        except (TypeError, ValueError):
            return None
    return None


# ---------------------------------------------------------------- categorical
def _categories(col: Any) -> CategoryCounts | None:
    if _is_pandas(col, "Series"):
        return _pandas_categories(col)
    if isinstance(col, pa.Array | pa.ChunkedArray):
        return _arrow_categories(col)
    arr = col if isinstance(col, np.ndarray) else np.asarray(col, dtype=object)
    if arr.dtype.kind in "MmV":
        return None
    if arr.dtype.kind == "O":
        fast = _shared_object_counts(arr)
        if fast is not None:
            return fast
    try:
        parr = pa.array(arr, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        parr = _mixed_to_arrow(arr)
    return _arrow_categories(parr)


def _mixed_to_arrow(arr: np.ndarray) -> pa.Array:
    """Object arrays mixing types (e.g. 1 and "1"): compare by string form, None/NaN missing."""
    obj = arr.astype(object)
    is_none = np.asarray(obj == None)  # noqa: E711 - elementwise comparison on an object array
    is_nan = np.asarray(obj != obj)  # noqa: PLR0124 - only NaN differs from itself
    missing = is_none | is_nan
    return pa.array(obj.astype(str), mask=missing, type=pa.string())


def _arrow_categories(col: pa.Array | pa.ChunkedArray) -> CategoryCounts | None:
    t = col.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if not (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_null(t)
    ):
        return None
    n_missing = col.null_count
    if pa.types.is_floating(t):
        # NaN is missing, like None
        nan_mask = pc.is_nan(col)
        n_missing += int(pc.sum(pc.fill_null(nan_mask, False)).as_py() or 0)
        col = pc.if_else(nan_mask, pa.scalar(None, col.type), col)
    vc = pc.value_counts(col)
    values = vc.field("values")
    counts = np.asarray(vc.field("counts").to_numpy(zero_copy_only=False), dtype=np.int64)
    valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    keys = pc.cast(values, pa.string()).to_pylist()
    return _canonical([k for k, ok in zip(keys, valid, strict=True) if ok], counts[valid], n_missing)


def _pandas_categories(col: Any) -> CategoryCounts | None:
    kind = col.dtype.kind
    if kind in "Mm":
        return None
    if kind == "O" and isinstance(col.dtype, np.dtype):
        fast = _shared_object_counts(col.to_numpy())
        if fast is not None:
            return fast
    vc = col.value_counts(dropna=True, sort=False)
    counts = np.asarray(vc.to_numpy(), dtype=np.int64)
    n_missing = len(col) - int(counts.sum())
    keep = counts > 0  # a pandas categorical lists unused categories with count 0
    keys = [_key(v) for v, k in zip(vc.index.tolist(), keep, strict=True) if k]
    return _canonical(keys, counts[keep], n_missing)


def _shared_object_counts(arr: np.ndarray) -> CategoryCounts | None:
    """Value counts of an object array by object identity, when equal values share one object.

    pandas and pyarrow (``to_pandas`` deduplicates strings) hand over category columns whose equal
    values are the same Python object, so counting the object pointers (a read-only integer view of
    the array's memory, sorted in C) replaces hashing every string. Objects are only touched once
    per distinct pointer; equal values held by different objects are merged afterwards. Returns
    None (use the general path) when values are not shared that way.
    """
    n = arr.size
    if n == 0 or arr.ndim != 1 or not arr.flags.c_contiguous or arr.itemsize != ctypes.sizeof(ctypes.c_void_p):
        return None
    pointers = np.ctypeslib.as_array((ctypes.c_uint64 * n).from_address(arr.ctypes.data))
    srt = np.sort(pointers)
    starts = np.flatnonzero(np.concatenate(([True], srt[1:] != srt[:-1])))
    if starts.size > max(64, n // 50):
        return None
    counts = np.diff(np.append(starts, n))
    objects = [arr[int(np.argmax(pointers == p))] for p in srt[starts]]
    merged: dict[str, int] = {}
    missing = 0
    for obj, c in zip(objects, counts.tolist(), strict=True):
        if obj is None or (isinstance(obj, float) and math.isnan(obj)):
            missing += c
            continue
        k = _key(obj)
        merged[k] = merged.get(k, 0) + c
    return _canonical(list(merged), np.asarray(list(merged.values()), dtype=np.int64), missing)


def _key(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _canonical(keys: list[str], counts: np.ndarray, n_missing: int) -> CategoryCounts:
    """Merge keys that collapse to the same canonical string (``True``/``true``, ``1``/``1.0``)."""
    fixed = [{"True": "true", "False": "false"}.get(k, k) for k in keys]
    if len(set(fixed)) == len(fixed):
        return CategoryCounts(fixed, counts, n_missing)
    merged: dict[str, int] = {}
    for k, c in zip(fixed, counts.tolist(), strict=True):
        merged[k] = merged.get(k, 0) + int(c)
    return CategoryCounts(list(merged), np.asarray(list(merged.values()), dtype=np.int64), n_missing)


# ---------------------------------------------------------------- rows (segments)
def row_keys(data: Any, name: str) -> np.ndarray | None:
    """Each row's canonical category key of column ``name`` (None where missing), the same strings
    :func:`extract` counts, so a row falls in the segment its category is counted under; None when
    the column is absent or not categorical."""
    keys = row_key_array(data, name)
    return None if keys is None else np.asarray(keys.to_numpy(zero_copy_only=False), dtype=object)


def row_key_array(data: Any, name: str) -> pa.Array | pa.ChunkedArray | None:
    """:func:`row_keys` as an Arrow string array (no Python object per row)."""
    getter, n_rows, available = _accessor(data)
    if name not in available:
        return None
    col = getter(name)
    arr: pa.Array | pa.ChunkedArray
    if isinstance(col, pa.Array | pa.ChunkedArray):
        arr = col
    else:
        values = col.to_numpy() if _is_pandas(col, "Series") and col.dtype.kind != "O" else np.asarray(col)
        if _is_pandas(col, "Series") and str(col.dtype) == "category":
            values = np.asarray(col.astype(object))
        if values.dtype.kind in "MmV":
            return None
        try:
            arr = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            arr = _mixed_to_arrow(values.astype(object))
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = pc.cast(arr, t.value_type)
        t = t.value_type
    if not (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_null(t)
    ):
        return None
    if pa.types.is_floating(t):
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, t), arr)
    keys = pc.cast(arr, pa.string())
    keys = pc.if_else(pc.equal(keys, "True"), "true", pc.if_else(pc.equal(keys, "False"), "false", keys))
    if len(keys) != n_rows:
        raise DriftInputError(f"column {name!r} has {len(keys)} values but the data has {n_rows} rows")
    return keys


def take_rows(data: Any, names: Sequence[str], rows: np.ndarray) -> dict[str, Any]:
    """The columns ``names`` of ``data`` (those present) restricted to the row indices ``rows``."""
    getter, _, available = _accessor(data)
    out: dict[str, Any] = {}
    for name in names:
        if name not in available:
            continue
        col = getter(name)
        if isinstance(col, pa.Array | pa.ChunkedArray):
            out[name] = col.take(pa.array(rows, type=pa.int64()))
        elif _is_pandas(col, "Series"):
            out[name] = col.iloc[rows]
        else:
            out[name] = np.asarray(col)[rows] if not isinstance(col, np.ndarray) else col[rows]
    return out
