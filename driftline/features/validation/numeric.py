"""Coercion of raw columns to float64 and int64 (see :mod:`~driftline.features.validation.coerced`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.arrow_columns import is_text
from driftline.features.validation.arrays import as_numpy_mask, plain_text, present_rows
from driftline.features.validation.coerced import Coerced

__all__ = ["coerce_float", "coerce_int"]

_FLOAT_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def _from_text_number(arr: pa.Array) -> Coerced:
    s = pc.utf8_trim_whitespace(arr)
    ok = pc.match_substring_regex(s, _FLOAT_RE)
    empty = pc.equal(s, "")
    bad = present_rows(arr) & ~as_numpy_mask(ok) & ~as_numpy_mask(empty)
    return pc.cast(pc.if_else(ok, s, pa.scalar(None, pa.string())), pa.float64()), bad


def coerce_float(arr: pa.Array) -> Coerced:
    arr = plain_text(arr)
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return pa.nulls(n, pa.float64()), np.zeros(n, dtype=bool)
    if is_text(t):
        f, bad = _from_text_number(arr)
    elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        f, bad = pc.cast(arr, pa.float64()), np.zeros(n, dtype=bool)
    else:
        return pa.nulls(n, pa.float64()), present_rows(arr)
    nan = pc.is_nan(f)
    if pc.any(nan).as_py():
        f = pc.if_else(nan, pa.scalar(None, pa.float64()), f)  # NaN means missing
    is_inf = pc.is_inf(f)
    if pc.any(is_inf).as_py():
        inf = as_numpy_mask(is_inf)
        bad = bad | inf
        f = pc.if_else(pa.array(inf), pa.scalar(None, pa.float64()), f)
    return f, bad


def coerce_int(arr: pa.Array) -> Coerced:
    arr = plain_text(arr)
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return pa.nulls(n, pa.int64()), np.zeros(n, dtype=bool)
    if pa.types.is_signed_integer(t):
        return pc.cast(arr, pa.int64()), np.zeros(n, dtype=bool)
    if pa.types.is_unsigned_integer(t):
        too_big = (
            as_numpy_mask(pc.greater(arr, pa.scalar(2**63 - 1, pa.uint64())))
            if t == pa.uint64()
            else np.zeros(n, dtype=bool)
        )
        clean = pc.if_else(pa.array(too_big), pa.scalar(None, t), arr) if too_big.any() else arr
        return pc.cast(clean, pa.int64()), too_big
    if not (is_text(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        return pa.nulls(n, pa.int64()), present_rows(arr)
    f, bad = coerce_float(arr)
    integral = pc.and_(pc.equal(pc.floor(f), f), pc.less(pc.abs(f), 2.0**63))
    not_integral = present_rows(f) & ~as_numpy_mask(integral)
    bad = bad | not_integral
    f = pc.if_else(pa.array(not_integral), pa.scalar(None, pa.float64()), f)
    return pc.cast(f, pa.int64()), bad
