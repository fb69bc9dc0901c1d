"""Row keys across parts: the one check of the single path that spans rows anywhere in the file.

Validation rejects every row sharing entity key and event timestamp with another row of the same
table. A part sees only its own rows, so each part stages the keys of its rows (with whether each row
was accepted and whether the part already found it duplicated) and the commit finds the keys that
occur in more than one part: those rows are rejected as the single path rejects them, so the counts
and the checks of an upload do not depend on where its parts were cut.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline.features.schema import FeatureSet
from driftline.features.validation import ValidationResult

__all__ = [
    "DUPLICATE_CHECK",
    "KEYS_SCHEMA",
    "composite_keys",
    "cross_part_duplicates",
    "duplicate_column",
    "key_hashes",
    "part_keys",
    "shared_hashes",
]

DUPLICATE_CHECK = "duplicate_key"
"""The validation check id of rows sharing entity key and event timestamp."""
_SEP = "\x1f"
KEYS_SCHEMA = pa.schema(
    [("key", pa.string()), ("h", pa.uint64()), ("part", pa.int32()), ("accepted", pa.bool_()), ("dup", pa.bool_())]
)


def duplicate_column(fs: FeatureSet) -> str:
    """The check's column as validation names it (entity columns, then the timestamp)."""
    return ",".join([*fs.entity, fs.timestamp])


def composite_keys(table: pa.Table, fs: FeatureSet) -> pa.Array:
    """One text per row: entity key parts and the timestamp in microseconds (null when any is null)."""
    parts = [pc.cast(table.column(e), pa.string()) for e in fs.entity]
    parts.append(pc.cast(pc.cast(table.column(fs.timestamp), pa.int64()), pa.string()))
    joined = pc.binary_join_element_wise(*parts, _SEP)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def part_keys(validation: ValidationResult, fs: FeatureSet, part: int) -> pa.Table:
    """The part's rows with a complete key: (key, part, accepted, duplicate within the part)."""
    if validation.typed is None:
        return KEYS_SCHEMA.empty_table()
    keys = composite_keys(validation.typed, fs)
    dup = validation.masks.get(f"{DUPLICATE_CHECK}:{duplicate_column(fs)}")
    table = pa.table(
        {
            "key": keys,
            "h": pa.array(key_hashes(keys), pa.uint64()),
            "part": pa.array(np.full(len(keys), part, dtype=np.int32)),
            "accepted": pa.array(np.asarray(validation.accepted, dtype=bool)),
            "dup": pa.array(np.zeros(len(keys), dtype=bool) if dup is None else np.asarray(dup, dtype=bool)),
        },
        schema=KEYS_SCHEMA,
    )
    return table.filter(pc.is_valid(table.column("key")))


def key_hashes(keys: pa.Array) -> np.ndarray:
    """A 64-bit hash of each key (0 for a null one): what the commit compares first, in 8 bytes a row."""
    return np.fromiter(
        (
            0 if k is None else int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little")
            for k in keys.to_pylist()
        ),
        dtype=np.uint64,
        count=len(keys),
    )


def shared_hashes(hashes: Iterable[np.ndarray]) -> np.ndarray:
    """The hashes found in more than one of ``hashes`` (one array per part): the candidate keys.

    Memory is a few bytes a row of the upload, whatever its width: each part's array is reduced to its
    distinct hashes as it arrives (pass a generator and only one part's raw hashes are held at a time),
    and the distinct hashes of all parts are sorted in place, a hash in two parts being two neighbours.
    A collision only makes a candidate, which :func:`cross_part_duplicates` then compares by the key.
    """
    distinct_per_part = [np.unique(h) for h in hashes]
    if len(distinct_per_part) < 2:
        return np.array([], dtype=np.uint64)
    distinct = np.concatenate(distinct_per_part)
    distinct_per_part.clear()
    distinct.sort()
    repeated = distinct[1:][distinct[1:] == distinct[:-1]]
    return np.asarray(np.unique(repeated), dtype=np.uint64)


def cross_part_duplicates(keys: list[pa.Table]) -> pa.Array:
    """The keys that occur in more than one part (rows in one part only were checked by that part).

    ``keys`` may be only the candidate rows (:func:`shared_hashes`): the keys themselves decide.
    """
    if len(keys) < 2:
        return pa.array([], pa.string())
    counts = (
        pa.concat_tables([k.select(KEYS_SCHEMA.names).cast(KEYS_SCHEMA) for k in keys])
        .group_by("key")
        .aggregate([("part", "count_distinct")])
    )
    return counts.filter(pc.greater(counts.column("part_count_distinct"), 1)).column("key").combine_chunks()
