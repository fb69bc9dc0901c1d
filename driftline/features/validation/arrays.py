"""Arrow and numpy array helpers shared by the coercers, the checks and the result.

Every check works on whole columns; these turn Arrow results into numpy row masks, walk chunked
columns chunk by chunk (so nothing is concatenated), and decode dictionary-encoded text cheaply.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.arrow_columns import bitmap_bits, is_text_dictionary, valid_bits

__all__ = [
    "as_numpy_mask",
    "chunks_of",
    "decode_text",
    "per_chunk",
    "plain_text",
    "present_rows",
    "shaped_like",
    "take_rows",
]


def per_chunk(arr: pa.Array | pa.ChunkedArray, fn: Callable[[pa.Array], np.ndarray]) -> np.ndarray:
    """``fn`` (one chunk -> one numpy array) over every chunk, joined: no chunk is concatenated in Arrow."""
    chunks = chunks_of(arr)
    if len(chunks) == 1:
        return fn(chunks[0])
    return np.concatenate([fn(c) for c in chunks]) if chunks else np.zeros(0, dtype=bool)


def as_numpy_mask(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Arrow boolean (nulls = False) -> numpy bool."""

    def one(chunk: pa.Array) -> np.ndarray:
        values = bitmap_bits(chunk.buffers()[1], chunk.offset, len(chunk))
        return values & valid_bits(chunk) if chunk.null_count else values

    return per_chunk(mask, one)


def present_rows(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows holding a value (not null), as numpy bool."""
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return per_chunk(arr, valid_bits)


def plain_text(arr: pa.Array) -> pa.Array:
    """Dictionary / large / binary text as plain string."""
    if pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, arr.type.value_type)
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    return arr


def chunks_of(arr: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """The chunks of a chunked array; a plain array is its own single chunk."""
    return list(arr.chunks) if isinstance(arr, pa.ChunkedArray) else [arr]


def shaped_like(pieces: list[pa.Array], arr: pa.Array | pa.ChunkedArray, t: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """``pieces`` (one per chunk of ``arr``) shaped like ``arr``: an array or a chunked array."""
    return pa.chunked_array(pieces, type=t) if isinstance(arr, pa.ChunkedArray) else pieces[0]


def take_rows(col: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> pa.Array | pa.ChunkedArray:
    """``col.take(rows)`` for ascending row numbers, chunk by chunk: Arrow's take on a chunked
    array first concatenates all chunks (a copy of the whole column, however few the rows)."""
    if not isinstance(col, pa.ChunkedArray) or col.num_chunks <= 1:
        return col.take(pa.array(rows, pa.int64()))
    bounds = np.cumsum([0, *(len(c) for c in col.chunks)])
    cuts = np.searchsorted(rows, bounds)
    pieces = [
        col.chunk(i).take(pa.array(rows[cuts[i] : cuts[i + 1]] - bounds[i], pa.int64()))
        for i in range(col.num_chunks)
        if cuts[i + 1] > cuts[i]
    ]
    return pa.chunked_array(pieces, type=col.type)


def decode_text(arr: pa.Array | pa.ChunkedArray, *, normalize: bool = True) -> pa.Array | pa.ChunkedArray:
    """Dictionary-encoded text as plain text (other arrays unchanged): one gather of the small
    dictionary per chunk, cheaper than Arrow's dictionary cast. ``normalize`` makes
    the result ``string`` (the curated type) also when the dictionary holds ``large_string``."""
    if not is_text_dictionary(arr.type):
        return arr
    value_type = pa.string() if normalize else arr.type.value_type
    pieces = [c.dictionary.take(c.indices) for c in chunks_of(arr)]
    return shaped_like([p.cast(value_type) if p.type != value_type else p for p in pieces], arr, value_type)
