"""Reading parts of one S3 object version by byte range: line boundaries, line counts, Parquet footers.

A part never downloads the whole upload: the plan finds each CSV cut with small ranged GETs just past
the target offset, and a Parquet part serves the reader's seeks from two ranged GETs (its row groups'
bytes and the footer). Everything reads a pinned version, so an upload overwritten meanwhile is
read as it was when its event fired.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from driftline.features.parts.records import SourceObject

__all__ = [
    "FOOTER_READ_BYTES",
    "LINE_SEARCH_BYTES",
    "RangeFile",
    "count_lines",
    "next_line_start",
    "parquet_footer",
    "row_group_span",
]

LINE_SEARCH_BYTES = 4 * 1024
"""First window searched for the next line break after a cut; doubled while none is found."""
LINE_SEARCH_MAX_BYTES = 8 * 1024 * 1024
FOOTER_READ_BYTES = 1024 * 1024
"""The suffix read for a Parquet footer: one GET holds the footers of all but very wide files."""
PARQUET_MAGIC = b"PAR1"


def next_line_start(src: SourceObject, s3: Any, offset: int) -> int:
    """The offset just after the first ``\\n`` at or after ``offset`` (``src.size`` when there is none).

    CRLF files cut after the ``\\n`` as well, so a line never loses its ``\\r`` to the previous part.
    """
    pos, window = max(0, offset), LINE_SEARCH_BYTES
    while pos < src.size:
        chunk = src.get(s3, pos, min(src.size, pos + window))
        i = chunk.find(b"\n")
        if i >= 0:
            return pos + i + 1
        pos += len(chunk)
        window = min(window * 2, LINE_SEARCH_MAX_BYTES)
    return src.size


def count_lines(data: bytes) -> int:
    """Non-empty lines in ``data`` (a line of only ``\\r`` is empty), counted apart from the CSV parser.

    The parser skips empty lines and, with quoting intact, makes one row of every other line: the
    commit compares the two counts, so rows lost or invented at a cut cannot go unnoticed.
    """
    if not data:
        return 0
    arr = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(arr == 0x0A)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(arr)]))
    lengths = ends - starts
    blank = lengths == 0
    one = np.flatnonzero(lengths == 1)
    blank[one] = arr[starts[one]] == 0x0D
    return int((~blank).sum())


def parquet_footer(src: SourceObject, s3: Any) -> tuple[pq.FileMetaData, bytes]:
    """The footer's metadata and the file's tail it was read from (a suffix GET of at least the footer;
    the reader's own footer read-ahead is served from it).

    Raises ``ValueError`` with what is wrong when the object does not end like a Parquet file.
    """
    tail = src.get(s3, max(0, src.size - FOOTER_READ_BYTES), src.size)
    if len(tail) < 12 or tail[-4:] != PARQUET_MAGIC:
        raise ValueError("it does not end with the Parquet magic bytes 'PAR1' (truncated or not Parquet)")
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 8 > src.size - 4:
        raise ValueError(f"its footer length ({length} bytes) is larger than the file")
    if length + 8 > len(tail):
        tail = src.get(s3, src.size - length - 8, src.size)
    try:
        meta = pq.read_metadata(pa.BufferReader(PARQUET_MAGIC + tail[-(length + 8) :]))
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"its footer cannot be read ({e})") from None
    return meta, tail


def row_group_span(meta: pq.FileMetaData, first: int, last: int) -> tuple[int, int]:
    """Bytes ``[start, end)`` holding the column chunks of row groups ``first`` to ``last - 1``."""
    start, end = None, 0
    for i in range(first, last):
        rg = meta.row_group(i)
        for c in range(rg.num_columns):
            col = rg.column(c)
            begin = col.dictionary_page_offset if col.has_dictionary_page and col.dictionary_page_offset else None
            begin = min(begin, col.data_page_offset) if begin is not None else col.data_page_offset
            start = begin if start is None else min(start, begin)
            end = max(end, begin + col.total_compressed_size)
    return (start or 0), end


class RangeFile(io.RawIOBase):
    """A read-only file over one object version whose reads are served from bytes already fetched.

    ``spans`` are (offset, bytes) pieces of the object (a part's row groups, the footer); a read
    outside them costs one ranged GET (it does not happen for a well-formed file: the footer says
    where every chunk is).
    """

    def __init__(self, src: SourceObject, s3: Any, spans: list[tuple[int, bytes]]) -> None:
        super().__init__()
        self._src, self._s3, self._spans, self._pos = src, s3, spans, 0
        self.fetched_outside = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._src.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def size(self) -> int:
        return self._src.size

    def read(self, n: int = -1) -> bytes:
        end = self._src.size if n is None or n < 0 else min(self._src.size, self._pos + n)
        out = self._slice(self._pos, end)
        self._pos += len(out)
        return out

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def _slice(self, start: int, end: int) -> bytes:
        for offset, data in self._spans:
            if offset <= start and end <= offset + len(data):
                return data[start - offset : end - offset]
        self.fetched_outside += 1
        return self._src.get(self._s3, start, end)
