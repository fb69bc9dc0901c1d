"""Arrow column helpers shared by upload validation and the curated writer.

Text type tests, and validity/boolean bitmaps read as numpy with one unpack (much faster than
Arrow's conversion of a boolean array to numpy; docs/performance.md), which both hot paths need per
column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def is_text_dictionary(t: pa.DataType) -> bool:
    return bool(pa.types.is_dictionary(t) and is_text(t.value_type))


def bitmap_bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """``n`` bits of an Arrow bitmap from bit ``offset`` as numpy bool."""
    first, skip = divmod(offset, 8)
    raw = np.frombuffer(buf, dtype=np.uint8, count=(skip + n + 7) // 8, offset=first)
    return np.unpackbits(raw, bitorder="little")[skip : skip + n].view(bool)


def valid_bits(chunk: pa.Array) -> np.ndarray:
    """Which values of ``chunk`` are not null, as numpy bool."""
    n = len(chunk)
    if chunk.null_count == 0:
        return np.ones(n, dtype=bool)
    validity = chunk.buffers()[0]
    if chunk.null_count == n or validity is None:  # null type, or a type without a validity bitmap
        return np.asarray(chunk.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return bitmap_bits(validity, chunk.offset, n)
