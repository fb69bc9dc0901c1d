"""Coercion of raw columns to bool (see :mod:`~driftline.features.validation.coerced`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.arrow_columns import is_text
from driftline.features.validation.arrays import as_numpy_mask, plain_text, present_rows
from driftline.features.validation.coerced import Coerced

__all__ = ["coerce_bool"]

_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]


def coerce_bool(arr: pa.Array) -> Coerced:
    arr = plain_text(arr)
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return pa.nulls(n, pa.bool_()), np.zeros(n, dtype=bool)
    if pa.types.is_boolean(t):
        return arr, np.zeros(n, dtype=bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        f = pc.cast(arr, pa.float64())
        is_one, is_zero = pc.equal(f, 1.0), pc.equal(f, 0.0)
        ok = pc.or_(is_one, is_zero)
        return pc.if_else(ok, is_one, pa.scalar(None, pa.bool_())), present_rows(arr) & ~as_numpy_mask(ok)
    if is_text(t):
        s = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        is_true = pc.is_in(s, value_set=pa.array(_TRUE))
        is_false = pc.is_in(s, value_set=pa.array(_FALSE))
        empty = pc.equal(s, "")
        ok = pc.or_(is_true, is_false)
        bad = present_rows(arr) & ~as_numpy_mask(ok) & ~as_numpy_mask(empty)
        return pc.if_else(ok, is_true, pa.scalar(None, pa.bool_())), bad
    return pa.nulls(n, pa.bool_()), present_rows(arr)
