"""Coercion of raw columns to text: entity keys, categories and string features
(see :mod:`~driftline.features.validation.coerced`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.arrow_columns import is_text, is_text_dictionary
from driftline.features.validation.arrays import chunks_of, plain_text, present_rows, shaped_like
from driftline.features.validation.coerced import Coerced
from driftline.features.validation.numeric import coerce_int

__all__ = ["coerce_text"]


def _dictionary_text(arr: pa.Array | pa.ChunkedArray) -> Coerced:
    """Dictionary-encoded text kept encoded: blank values are found among the distinct values and
    their rows become null (missing); the dictionary becomes ``string``."""
    pieces = []
    for chunk in chunks_of(arr):
        values = chunk.dictionary
        if not pa.types.is_string(values.type):
            values = values.cast(pa.string())
        indices = chunk.indices
        blank = pc.or_(pc.equal(pc.binary_length(values), 0), pc.utf8_is_space(values))
        if pc.any(blank).as_py():
            indices = pc.if_else(pc.take(blank, indices), pa.scalar(None, indices.type), indices)
        pieces.append(pa.DictionaryArray.from_arrays(indices, values))
    t = pa.dictionary(arr.type.index_type, pa.string())
    return shaped_like(pieces, arr, t), np.zeros(len(arr), dtype=bool)


def coerce_text(arr: pa.Array, *, lenient: bool = False, keep_dictionary: bool = False) -> Coerced:
    """Text for keys and categories: strings, integers and integral floats (``7.0`` -> ``"7"``).

    ``lenient`` (free-text ``string`` features) also renders any other scalar as text.
    ``keep_dictionary`` (categorical features) leaves dictionary-encoded text encoded (see
    :func:`~driftline.features.validation.arrays.decode_text`), so its checks run over the distinct values.
    """
    if keep_dictionary and is_text_dictionary(arr.type):
        return _dictionary_text(arr)
    arr = plain_text(arr)
    t = arr.type
    n = len(arr)
    none = np.zeros(n, dtype=bool)
    if pa.types.is_null(t):
        return pa.nulls(n, pa.string()), none
    if is_text(t):  # blank text means missing; checked without copying the strings
        blank = pc.or_(pc.equal(pc.binary_length(arr), 0), pc.utf8_is_space(arr))
        if pc.any(blank).as_py():
            return pc.if_else(blank, pa.scalar(None, pa.string()), arr), none
        return arr, none
    if pa.types.is_integer(t):
        return pc.cast(arr, pa.string()), none
    if pa.types.is_floating(t) and not lenient:
        i, bad = coerce_int(arr)
        return pc.cast(i, pa.string()), bad
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        try:
            return pc.cast(arr, pa.string()), none
        except pa.ArrowInvalid:
            return pa.nulls(n, pa.string()), present_rows(arr)
    if lenient:
        try:
            return pc.cast(arr, pa.string()), none
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pa.nulls(n, pa.string()), present_rows(arr)
