"""Coercion of raw columns to UTC timestamps (see :mod:`~driftline.features.validation.coerced`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.arrow_columns import is_text
from driftline.features.tables import TIMESTAMP_TYPE
from driftline.features.validation.arrays import plain_text, present_rows
from driftline.features.validation.coerced import Coerced

__all__ = ["coerce_timestamp"]

_ISO_RE = (
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[T ](?P<hms>\d{2}:\d{2}(?::\d{2})?)(?P<frac>\.\d{1,9})?)?"
    r"\s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)


def _parse_iso(arr: pa.Array) -> Coerced:
    """ISO 8601 text -> UTC timestamps, vectorized; mixed offsets and precisions allowed."""
    s = pc.utf8_trim_whitespace(arr)
    for target in (TIMESTAMP_TYPE, pa.timestamp("us")):  # fast paths: all with offsets, or all naive
        try:
            return pc.cast(pc.cast(s, target), TIMESTAMP_TYPE), np.zeros(len(arr), dtype=bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    ok = pc.match_substring_regex(s, _ISO_RE)
    parts = pc.extract_regex(pc.if_else(ok, s, pa.scalar(None, pa.string())), _ISO_RE)
    day, hms, frac, tz = (pc.struct_field(parts, [i]) for i in range(4))
    hms = pc.if_else(pc.equal(hms, ""), "00:00:00", hms)
    hms = pc.if_else(pc.equal(pc.utf8_length(hms), 5), pc.binary_join_element_wise(hms, ":00", ""), hms)
    naive = pc.strptime(
        pc.binary_join_element_wise(day, hms, " "), format="%Y-%m-%d %H:%M:%S", unit="us", error_is_null=True
    )
    # strptime rolls 2026-02-30 over to March: a date that does not print back the same is invalid
    real_day = pc.equal(pc.strftime(naive, format="%Y-%m-%d"), day)
    naive = pc.if_else(real_day, naive, pa.scalar(None, naive.type))
    micros = pc.cast(naive, pa.int64())
    digits = pc.utf8_rpad(pc.utf8_slice_codeunits(frac, 1, 7), 6, "0")
    micros = pc.add(micros, pc.cast(pc.if_else(pc.equal(frac, ""), "0", digits), pa.int64()))
    tz_digits = pc.replace_substring(pc.utf8_slice_codeunits(tz, 1, 10), ":", "")
    has_offset = pc.and_(pc.not_equal(tz, ""), pc.not_equal(pc.utf8_lower(tz), "z"))
    hours = pc.cast(pc.if_else(has_offset, pc.utf8_slice_codeunits(tz_digits, 0, 2), "0"), pa.int64())
    minutes_txt = pc.utf8_slice_codeunits(tz_digits, 2, 4)
    minutes = pc.cast(pc.if_else(pc.equal(minutes_txt, ""), "0", minutes_txt), pa.int64())
    sign = pc.if_else(pc.starts_with(tz, "-"), -1, 1)
    offset = pc.multiply(sign, pc.add(pc.multiply(hours, 3_600_000_000), pc.multiply(minutes, 60_000_000)))
    utc = pc.cast(pc.subtract(micros, offset), TIMESTAMP_TYPE)
    return utc, present_rows(arr) & ~present_rows(utc)


def coerce_timestamp(arr: pa.Array) -> Coerced:
    arr = plain_text(arr)
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return pa.nulls(n, TIMESTAMP_TYPE), np.zeros(n, dtype=bool)
    if pa.types.is_timestamp(t):  # naive timestamps are taken as UTC; ns are truncated to µs
        return pc.cast(arr, TIMESTAMP_TYPE, safe=False), np.zeros(n, dtype=bool)
    if pa.types.is_date(t):
        return pc.cast(arr, TIMESTAMP_TYPE), np.zeros(n, dtype=bool)
    if is_text(t):
        return _parse_iso(arr)
    return pa.nulls(n, TIMESTAMP_TYPE), present_rows(arr)
