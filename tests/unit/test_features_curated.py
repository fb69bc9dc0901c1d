"""Curated layout: day partitions (UTC) keep every row once, in order within a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from driftline.features.curated import curated_key, parquet_bytes, quarantine_prefix, split_by_day

TS = pa.timestamp("us", tz="UTC")


def _table(hours: list[int]) -> pa.Table:
    t0 = datetime(2026, 1, 1, 22, tzinfo=UTC)
    stamps = pa.array([t0 + timedelta(hours=h) for h in hours], TS)
    return pa.table({"ts": stamps, "i": list(range(len(hours)))})


def test_unsorted_rows_are_grouped_by_utc_day_keeping_order() -> None:
    parts = split_by_day(_table([3, 0, 30, 1, 27, -1]), "ts")
    assert [(d, p.column("i").to_pylist()) for d, p in parts] == [
        ("2026-01-01", [1, 3, 5]), ("2026-01-02", [0]), ("2026-01-03", [2, 4])]


def test_sorted_rows_are_sliced() -> None:
    parts = split_by_day(_table([0, 1, 2, 3, 30]), "ts")
    assert [(d, p.num_rows) for d, p in parts] == [("2026-01-01", 2), ("2026-01-02", 2), ("2026-01-03", 1)]
    assert split_by_day(_table([]).slice(0, 0), "ts") == []


def test_keys_and_parquet() -> None:
    assert curated_key("fs", "2026-01-01", "u1") == "curated/fs/date=2026-01-01/u1.parquet"
    assert quarantine_prefix("fs", "u1") == "quarantine/fs/u1/"
    body = parquet_bytes(_table([1, 2]))
    meta = pq.read_metadata(pa.BufferReader(body))
    assert meta.num_rows == 2 and meta.row_group(0).column(0).compression == "ZSTD"
