"""The checks of one column: type (via its coercer), missing values, range, categories, label classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.arrow_columns import valid_bits
from driftline.features.encoding import FLOAT32_MAX
from driftline.features.schema import Feature, Label
from driftline.features.tables import label_type
from driftline.features.validation.arrays import as_numpy_mask, per_chunk, present_rows
from driftline.features.validation.boolean import coerce_bool
from driftline.features.validation.coerced import Coerced
from driftline.features.validation.failures import Failures
from driftline.features.validation.numeric import coerce_float, coerce_int
from driftline.features.validation.text import coerce_text
from driftline.features.validation.timestamp import coerce_timestamp

__all__ = ["check_column", "check_feature", "check_label"]

_MAX_UNKNOWN_VALUES = 10

_COERCE = {
    "int": coerce_int,
    "float": coerce_float,
    "bool": coerce_bool,
    "categorical": coerce_text,
    "timestamp": coerce_timestamp,
}

_TYPE_HINTS = {
    "int": 'write whole numbers (3, "3" or 3.0 are fine; 3.5, "abc" and true are not)',
    "float": "write plain numbers with a dot as decimal separator (1.5, 2e3); leave the cell empty for "
    "missing values; infinities are not allowed",
    "bool": "write true/false (also accepted: 1/0, yes/no, t/f, y/n)",
    "categorical": "write the category as text",
    "string": "write text",
    "timestamp": "write ISO 8601 timestamps such as 2026-01-31T14:05:00Z or 2026-01-31 14:05:00+01:00 "
    "(times without an offset are taken as UTC); epoch numbers are not accepted",
    "entity": "write the entity key as text or a whole number",
}


def check_column(
    run: Failures,
    name: str,
    kind: str,
    fn: Callable[..., Coerced],
    raw_col: pa.Array,
    *,
    required: str | None = None,
    **kw: Any,
) -> pa.Array:
    """Coerce ``raw_col`` to its curated type: type failures, and missing values when ``required``."""
    arr, bad = fn(raw_col, **kw)
    run.fail(
        "type",
        name,
        bad,
        f"{{count}} value(s) of {name!r} are not valid {kind} values (column read as {_type_name(raw_col.type)})",
        _TYPE_HINTS.get(kind, ""),
    )
    if required is not None:  # missing (null, empty or NaN); type failures are counted apart
        missing = ~present_rows(arr) & ~bad
        run.fail(
            "not_null",
            name,
            missing,
            f"{{count}} row(s) have no {required} {name!r}, which is required",
            f"fill in {name!r} in every row"
            + ("" if required != "value for" else " or declare the feature nullable: true"),
        )
    return arr


def check_feature(run: Failures, f: Feature, raw_col: pa.Array) -> pa.Array:
    """Type, missing values, range and categories of one feature."""
    required = None if f.nullable else "value for"
    if f.type == "string":
        arr = check_column(run, f.name, "string", coerce_text, raw_col, required=required, lenient=True)
    elif f.type == "categorical":
        arr = check_column(run, f.name, "categorical", coerce_text, raw_col, required=required, keep_dictionary=True)
    else:
        arr = check_column(run, f.name, f.type, _COERCE[f.type], raw_col, required=required)
    if f.is_numeric:  # what no model input can hold is refused here, not by every later prediction
        beyond = as_numpy_mask(pc.greater(pc.abs(pc.cast(arr, pa.float64())), FLOAT32_MAX))
        if beyond.any():
            run.fail(
                "range",
                f.name,
                beyond,
                f"{{count}} value(s) of {f.name!r} are beyond ±{FLOAT32_MAX:.4g}, the largest number a "
                f"model's float32 input holds",
                "check units; such values could never be served",
            )
    if f.is_numeric and (f.min is not None or f.max is not None):
        below, above = _out_of_range(arr, f.min, f.max)
        if below is not None:
            run.fail(
                "range",
                f.name,
                below,
                f"{{count}} value(s) of {f.name!r} are below the minimum {f.min:g}",
                "check units and sign, or widen 'min' in the feature set if these values are valid",
            )
        if above is not None:
            run.fail(
                "range",
                f.name,
                above,
                f"{{count}} value(s) of {f.name!r} are above the maximum {f.max:g}",
                "check units (e.g. percent vs ratio), or widen 'max' in the feature set if valid",
            )
    if f.type == "categorical" and f.categories:
        unknown = _not_in(arr, pa.array(list(f.categories)))
        if unknown.any():
            run.fail(
                "category",
                f.name,
                unknown,
                f"{{count}} value(s) of {f.name!r} are not among its categories ({', '.join(f.categories)})",
                "categories are case-sensitive; map the values to the defined categories, or add "
                "new categories to the feature set (a new version) before uploading them",
                details={"unknown_values": _unknown_values(arr, unknown)},
            )
    return arr


def _out_of_range(
    arr: pa.Array | pa.ChunkedArray, lo: float | None, hi: float | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Rows below ``lo`` and rows above ``hi`` (None when there are none); masks only when needed.

    Integers: one min/max pass. Floats: one comparison per bound (Arrow's float min/max handles
    NaN value by value and costs far more than a comparison kernel).
    """
    if not pa.types.is_floating(arr.type):
        mm = pc.min_max(arr)
        low, high = mm["min"].as_py(), mm["max"].as_py()
        below = as_numpy_mask(pc.less(arr, lo)) if lo is not None and low is not None and low < lo else None
        above = as_numpy_mask(pc.greater(arr, hi)) if hi is not None and high is not None and high > hi else None
        return below, above
    out: list[np.ndarray | None] = []
    for bound, compare in ((lo, pc.less), (hi, pc.greater)):
        hit = compare(arr, bound) if bound is not None else None
        out.append(as_numpy_mask(hit) if hit is not None and pc.any(hit).as_py() else None)
    return out[0], out[1]


def _not_in(arr: pa.Array | pa.ChunkedArray, values: pa.Array) -> np.ndarray:
    """Rows whose (present) value is not one of ``values``. A dictionary array is looked up once per
    distinct value, and its rows only when some distinct value is unknown."""
    if not pa.types.is_dictionary(arr.type):
        unknown: np.ndarray = present_rows(arr) & ~as_numpy_mask(pc.is_in(arr, value_set=values))
        return unknown

    def one(chunk: pa.Array) -> np.ndarray:
        known = pc.is_in(chunk.dictionary, value_set=values)
        if pc.all(known).as_py():
            return np.zeros(len(chunk), dtype=bool)
        out: np.ndarray = valid_bits(chunk) & ~as_numpy_mask(pc.take(known, chunk.indices))
        return out

    return per_chunk(arr, one)


def check_label(run: Failures, lb: Label, raw_col: pa.Array | None) -> pa.Array:
    """Type and class of one label; an absent label column is all null (labels arrive later)."""
    ltype = label_type(lb)
    if raw_col is None:
        return pa.nulls(run.n, ltype)
    if ltype == pa.float64():
        return check_column(run, lb.name, "float", coerce_float, raw_col)
    if ltype == pa.int64():
        arr = check_column(run, lb.name, "int", coerce_int, raw_col)
    else:
        arr = check_column(run, lb.name, "categorical", coerce_text, raw_col)
    classes = pa.array(list(lb.class_values), ltype)
    bad_class = present_rows(arr) & ~as_numpy_mask(pc.is_in(arr, value_set=classes))
    if bad_class.any():
        run.fail(
            "label_class",
            lb.name,
            bad_class,
            f"{{count}} label value(s) of {lb.name!r} are not one of its classes "
            f"({', '.join(map(str, lb.class_values))})",
            "labels must use exactly the classes of the feature set; leave the cell empty when the "
            "label is not known yet",
            details={"unknown_values": _unknown_values(arr, bad_class)},
        )
    return arr


def _unknown_values(col: pa.Array, mask: np.ndarray) -> dict[str, int]:
    counts = pc.value_counts(col.filter(pa.array(mask)))
    pairs = sorted(
        zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True),
        key=lambda p: (-p[1], str(p[0])),
    )
    return {str(v): int(c) for v, c in pairs[:_MAX_UNKNOWN_VALUES]}


def _type_name(t: pa.DataType) -> str:
    return str(t.value_type) if pa.types.is_dictionary(t) else str(t)
