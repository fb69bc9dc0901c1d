"""Layout of the curated dataset: Hive ``date=`` partitions of zstd Parquet, one file per upload.

``curated/<feature_set>/date=YYYY-MM-DD/<upload-id>.parquet``: the date is the UTC day of the
event timestamp, so Athena partition projection and point-in-time readers can prune by day. One
upload id per file keeps re-delivery idempotent (the same upload overwrites the same keys).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftline.contracts import (  # the key layout lives in contracts; re-exported for the feature modules
    CURATED_PREFIX,
    INCOMING_PREFIX,
    PENDING_DIR,
    QUARANTINE_PREFIX,
    curated_key,
    curated_root,
    pending_key,
    quarantine_prefix,
)
from driftline.features.arrow_columns import is_text, is_text_dictionary, valid_bits

__all__ = [
    "CURATED_PREFIX",
    "INCOMING_PREFIX",
    "PENDING_DIR",
    "QUARANTINE_PREFIX",
    "curated_day",
    "curated_files",
    "curated_key",
    "curated_root",
    "day_partitions",
    "dictionary_columns",
    "parquet_bytes",
    "pending_key",
    "pending_uploads",
    "plain_schema",
    "quarantine_prefix",
    "select_rows",
    "split_by_day",
    "upload_of",
]

_DAY_US = 86_400_000_000
DICTIONARY_SAMPLE_ROWS = 4096
"""Rows (spread evenly over the table) that decide which columns get a Parquet dictionary."""
DICTIONARY_MAX_DISTINCT = 0.5
"""A column gets a dictionary when at most this share of its sampled values is distinct."""

Selection = slice | np.ndarray
"""Rows of one day: a contiguous slice (time-ordered uploads) or row numbers in upload order."""


def pending_uploads(keys: Sequence[str]) -> set[str]:
    """Upload ids with a pending marker among listed ``curated/<feature_set>/`` keys."""
    return {k.rsplit("/", 1)[-1] for k in keys if f"/{PENDING_DIR}/" in k}


def curated_day(key: str) -> str:
    """The ``YYYY-MM-DD`` partition of a :func:`curated_key`."""
    return key.split("/date=", 1)[1].split("/", 1)[0]


def upload_of(key: str) -> str:
    """The upload id a :func:`curated_key` or :func:`~driftline.contracts.curated_part_key` was written by
    (its file stem up to the first dot: upload ids have none)."""
    return key.rsplit("/", 1)[-1].removesuffix(".parquet").split(".", 1)[0]


def _day_order(table: pa.Table, timestamp: str) -> tuple[np.ndarray | None, list[tuple[str, slice]]]:
    """The row order that groups ``table`` by UTC day (None: already in time order) and each day's
    (``YYYY-MM-DD``, range in that order), in day order; rows keep their order within a day.

    One stable sort of small day numbers (a radix sort when the upload spans under ~90 years).
    """
    if table.num_rows == 0:
        return None, []
    micros = np.asarray(pc.cast(table.column(timestamp), pa.int64()).to_numpy(), dtype=np.int64)
    days = micros // _DAY_US
    order: np.ndarray | None = None
    if bool(np.all(days[1:] >= days[:-1])):  # time-ordered upload (the usual case): zero-copy slices
        sorted_days = days
    else:
        offset = days - days.min()
        small = offset.astype(np.int16) if int(offset.max()) < 2**15 else offset
        order = np.argsort(small, kind="stable")
        sorted_days = days[order]
    bounds = np.flatnonzero(np.diff(sorted_days)) + 1
    starts = np.concatenate([[0], bounds]).tolist()
    ends = np.concatenate([bounds, [len(sorted_days)]]).tolist()
    return order, [
        (datetime.fromtimestamp(int(sorted_days[s]) * 86_400, tz=UTC).strftime("%Y-%m-%d"), slice(s, e))
        for s, e in zip(starts, ends, strict=True)
    ]


def day_partitions(table: pa.Table, timestamp: str) -> list[tuple[str, Selection]]:
    """(``YYYY-MM-DD``, rows of that UTC day) in day order; rows keep their order within a day.

    Only row numbers: a slice when the upload is in time order, else the day's row numbers.
    """
    order, days = _day_order(table, timestamp)
    return [(day, rows if order is None else order[rows]) for day, rows in days]


def select_rows(table: pa.Table, rows: Selection) -> pa.Table:
    """The rows of one :func:`day_partitions` entry (a zero-copy slice when contiguous)."""
    if isinstance(rows, slice):
        return table.slice(rows.start, rows.stop - rows.start)
    return table.take(pa.array(rows, pa.int64()))


def split_by_day(table: pa.Table, timestamp: str) -> list[tuple[str, pa.Table]]:
    """(``YYYY-MM-DD``, rows of that UTC day) pairs in day order; rows keep their order within a day."""
    return [(day, select_rows(table, rows)) for day, rows in day_partitions(table, timestamp)]


def dictionary_columns(table: pa.Table, sample_rows: int = DICTIONARY_SAMPLE_ROWS) -> list[str]:
    """Columns whose values repeat enough for a Parquet dictionary to pay off.

    Categories, counts and rounded amounts repeat and shrink several-fold with a dictionary; ids,
    event timestamps and measured floats hardly repeat, and a dictionary there costs hashing time
    and ends up larger than plain encoding (1M rows x 25 columns of the benchmark: 19 % smaller
    files and ~20 % less encoding time than a dictionary for every column). Decided once per
    table on an evenly spread sample, so the cost does not grow with the table.
    """
    n = table.num_rows
    if n == 0:
        return list(table.column_names)
    sample = table.take(pa.array(np.linspace(0, n - 1, min(n, sample_rows)).astype(np.int64)))
    out = []
    for name, col in zip(sample.column_names, sample.columns, strict=True):
        present = len(col) - col.null_count
        try:
            repeats = present == 0 or pc.count_distinct(col).as_py() <= DICTIONARY_MAX_DISTINCT * present
        except pa.ArrowNotImplementedError:  # nested or dictionary columns of a raw upload: Arrow's default
            repeats = True
        if repeats:
            out.append(name)
    return out


def parquet_bytes(
    table: pa.Table,
    use_dictionary: bool | Sequence[str] | None = None,
    *,
    write_statistics: bool | Sequence[str] = True,
) -> bytes:
    """zstd Parquet in memory (the format of every curated and quarantined table).

    ``use_dictionary`` defaults to :func:`dictionary_columns` of ``table``; Arrow's defaults
    otherwise (zstd level 1, statistics for every column unless ``write_statistics`` says otherwise).
    """
    sink = pa.BufferOutputStream()
    dictionary = dictionary_columns(table) if use_dictionary is None else use_dictionary
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=dictionary if isinstance(dictionary, bool) else list(dictionary),
        write_statistics=write_statistics if isinstance(write_statistics, bool) else list(write_statistics),
    )
    return bytes(sink.getvalue().to_pybytes())


def plain_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with dictionary-encoded text fields as plain text (what curated files hold)."""
    fields = [f.with_type(f.type.value_type) if is_text_dictionary(f.type) else f for f in schema]
    return pa.schema(fields, metadata=schema.metadata)


def _parquet_native(t: pa.DataType) -> bool:
    """Types that a Parquet reader turns back into exactly this Arrow type without the serialized
    Arrow schema (the logical types say it all)."""
    if pa.types.is_timestamp(t):
        return t.unit in ("ms", "us", "ns") and t.tz in (None, "UTC")
    return t in (pa.string(), pa.bool_(), pa.int32(), pa.int64(), pa.float32(), pa.float64(), pa.date32())


def _statistics_columns(schema: pa.Schema) -> list[str]:
    """Columns that get Parquet statistics: all but text. Min/max of ids and categories prune
    nothing in a day file (every day holds most categories and an id range as wide as the
    upload's), and comparing strings costs ~10 % of the curated write."""
    return [f.name for f in schema if not (is_text(f.type) or is_text_dictionary(f.type))]


def _curated_parquet(rows: pa.Table, schema: pa.Schema, dictionary: list[str], statistics: list[str]) -> bytes:
    """zstd Parquet of ``rows`` with the plain ``schema``; text columns that are dictionary-encoded
    in ``rows`` are written from their codes (no hashing of every value), and the file is still
    plain text: without the serialized Arrow schema (which would say "dictionary") Parquet's own
    types read back as ``schema``, whose metadata is kept as the file's key-value metadata."""
    if rows.schema.equals(schema):
        return parquet_bytes(rows, dictionary, write_statistics=statistics)
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(
        sink,
        rows.schema,
        compression="zstd",
        use_dictionary=dictionary,
        write_statistics=statistics,
        store_schema=False,
    ) as writer:
        writer.write_table(rows)
        if schema.metadata:
            writer.add_key_value_metadata(schema.metadata)
    return bytes(sink.getvalue().to_pybytes())


def curated_files(
    table: pa.Table, feature_set: str, timestamp: str, upload_id: str, *, max_workers: int | None = None
) -> list[tuple[str, bytes]]:
    """(key, zstd Parquet bytes) per UTC day of ``table``, in day order.

    Text columns may be dictionary-encoded in ``table`` (``ValidationResult.accepted_table(
    decode=False)``); the files hold them as plain text either way, with the schema
    :func:`plain_schema`. Each day is gathered and serialized on a pool thread (``max_workers``
    defaults to the CPU count): Arrow's take, Parquet encoding and zstd release the GIL, so the
    days are written in parallel; the dictionary and statistics choices are made once for all days.
    """
    order, parts = _day_order(table, timestamp)
    if not parts:
        return []
    schema = plain_schema(table.schema)
    encoded = {f.name for f in table.schema if is_text_dictionary(f.type)}
    dictionary = sorted(set(dictionary_columns(table)) | encoded, key=table.column_names.index)
    statistics = _statistics_columns(schema)
    # written from the codes when the plain schema needs no serialized Arrow schema (curated
    # schemas never do); otherwise each day is decoded first and written with Arrow's schema
    from_codes = all(_parquet_native(f.type) and not f.metadata for f in schema)
    workers = min(max_workers or os.cpu_count() or 1, len(parts))
    # unordered upload: one reorder into day order, then every day is a zero-copy slice
    source = table if order is None else _reorder(table, dictionary, order, workers)

    def encode(part: tuple[str, slice]) -> tuple[str, bytes]:
        day, rows = part
        rows_of_day = select_rows(source, rows)
        if not from_codes and not rows_of_day.schema.equals(schema):
            rows_of_day = rows_of_day.cast(schema)
        return curated_key(feature_set, day, upload_id), _curated_parquet(rows_of_day, schema, dictionary, statistics)

    if workers <= 1:
        return [encode(p) for p in parts]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(encode, parts))


def _reorder(table: pa.Table, dictionary: Sequence[str], order: np.ndarray, workers: int) -> pa.Table:
    """The rows of ``table`` in ``order`` (an unordered upload into day order), column by column on
    ``workers`` threads, so each day is then a zero-copy slice.

    Column by column, because gathering a day's rows from every column at once touches the whole
    table per day. Text columns whose values repeat are dictionary-encoded first (Arrow gathers
    strings one by one; the files are still plain text, see :func:`_curated_parquet`); fixed-width
    columns with nulls and dictionary codes are gathered with numpy from their buffers (Arrow's take
    slows down on a column with nulls); the others with Arrow's take. ``benchmarks/features.py``
    measures the curated writer.
    """
    repeated = set(dictionary)
    index = pa.array(order, pa.int64())

    def one(field: pa.Field, col: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        if field.name in repeated and pa.types.is_string(col.type):
            col = pc.dictionary_encode(col)
        arr = col.combine_chunks()  # also unifies the dictionaries of dictionary columns
        fast = _gather_fixed(arr, order)
        return fast if fast is not None else arr.take(index)

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            columns = list(pool.map(one, table.schema, table.columns))
    else:
        columns = [one(f, c) for f, c in zip(table.schema, table.columns, strict=True)]
    schema = pa.schema(
        [f.with_type(c.type) for f, c in zip(table.schema, columns, strict=True)], metadata=table.schema.metadata
    )
    return pa.Table.from_arrays(columns, schema=schema)


def _gather_fixed(arr: pa.Array, order: np.ndarray) -> pa.Array | None:
    """``arr.take(order)`` with numpy for dictionary codes and fixed-width columns with nulls;
    None for other arrays (Arrow's take is as fast there)."""
    values = arr.indices if pa.types.is_dictionary(arr.type) else arr
    t = values.type
    fixed = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)
    if not fixed or (values.null_count == 0 and values is arr) or t.bit_width not in (8, 16, 32, 64):
        return None
    data = np.frombuffer(
        values.buffers()[1], dtype=np.dtype(f"u{t.bit_width // 8}"), count=values.offset + len(values)
    )[values.offset :]
    bitmap = None
    nulls = 0
    if values.null_count:
        kept = valid_bits(values)[order]
        nulls = len(order) - int(np.count_nonzero(kept))
        bitmap = pa.py_buffer(np.packbits(kept, bitorder="little")) if nulls else None
    gathered = pa.Array.from_buffers(t, len(order), [bitmap, pa.py_buffer(np.take(data, order))], null_count=nulls)
    return pa.DictionaryArray.from_arrays(gathered, arr.dictionary, safe=False) if values is not arr else gathered
