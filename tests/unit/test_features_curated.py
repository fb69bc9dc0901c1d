"""Curated layout: day partitions (UTC) keep every row once, in order within a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.features.curated import (
    curated_files,
    curated_key,
    day_partitions,
    dictionary_columns,
    parquet_bytes,
    quarantine_prefix,
    split_by_day,
)

TS = pa.timestamp("us", tz="UTC")


def _table(hours: list[int]) -> pa.Table:
    t0 = datetime(2026, 1, 1, 22, tzinfo=UTC)
    stamps = pa.array([t0 + timedelta(hours=h) for h in hours], TS)
    return pa.table({"ts": stamps, "i": list(range(len(hours)))})


def test_unsorted_rows_are_grouped_by_utc_day_keeping_order() -> None:
    parts = split_by_day(_table([3, 0, 30, 1, 27, -1]), "ts")
    assert [(d, p.column("i").to_pylist()) for d, p in parts] == [
        ("2026-01-01", [1, 3, 5]),
        ("2026-01-02", [0]),
        ("2026-01-03", [2, 4]),
    ]


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


def _mixed_table(n: int, seed: int) -> pa.Table:
    """Unordered rows over ~10 UTC days with repeated and unique text, nulls, and 3 chunks."""
    rng = np.random.default_rng(seed)
    t0 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1e6)
    micros = t0 + rng.integers(-3 * 3_600_000_000, 10 * 86_400_000_000, n)
    region = np.array(["north", "south", "east", None], dtype=object)[rng.integers(0, 4, n)]
    table = pa.table(
        {
            "id": pa.array([f"C{i:07d}" for i in rng.permutation(n)]),
            "ts": pa.array(micros, pa.int64()).cast(TS),
            "region": pa.array(region, pa.string()),
            "amount": pa.array(np.round(rng.random(n) * 100, 1)),
            "score": pa.array(rng.random(n), mask=rng.random(n) < 0.1),
            "row": pa.array(np.arange(n)),
        },
        schema=pa.schema(
            [
                pa.field("id", pa.string(), nullable=False),
                pa.field("ts", TS, nullable=False),
                ("region", pa.string()),
                ("amount", pa.float64()),
                ("score", pa.float64()),
                ("row", pa.int64()),
            ],
            metadata={"driftline.feature_set": "fs"},
        ),
    )
    third = n // 3
    return pa.Table.from_batches(
        [
            *table.slice(0, third).to_batches(),
            *table.slice(third, third).to_batches(),
            *table.slice(2 * third).to_batches(),
        ]
    )


def _by_day_reference(table: pa.Table) -> dict[str, list[int]]:
    """Row numbers per UTC day, in upload order: the obvious per-row computation."""
    out: dict[str, list[int]] = {}
    for ts, row in zip(table.column("ts").to_pylist(), table.column("row").to_pylist(), strict=True):
        out.setdefault(ts.astimezone(UTC).strftime("%Y-%m-%d"), []).append(row)
    return out


@pytest.mark.parametrize("ordered", [False, True])
def test_day_partitions_match_a_per_row_reference(ordered: bool) -> None:
    table = _mixed_table(5_000, seed=7)
    if ordered:
        table = table.sort_by("ts")
    expected = _by_day_reference(table)
    parts = split_by_day(table, "ts")
    assert [d for d, _ in parts] == sorted(expected)
    assert {d: p.column("row").to_pylist() for d, p in parts} == expected
    assert all(isinstance(rows, slice) == ordered for _, rows in day_partitions(table, "ts"))


def test_curated_files_hold_every_row_of_their_day_with_the_table_schema() -> None:
    table = _mixed_table(20_000, seed=11)  # unordered: rows are gathered per day on threads
    parts = dict(split_by_day(table, "ts"))
    files = curated_files(table, "fs", "ts", "up-1", max_workers=3)
    assert [k for k, _ in files] == [curated_key("fs", d, "up-1") for d in sorted(parts)]
    for key, body in files:
        back = pq.read_table(pa.BufferReader(body))
        day = key.split("date=")[1].split("/")[0]
        assert back.schema == table.schema and back.schema.metadata == table.schema.metadata
        assert back.equals(parts[day].combine_chunks())
    assert sum(pq.read_metadata(pa.BufferReader(b)).num_rows for _, b in files) == table.num_rows
    assert curated_files(table.slice(0, 0), "fs", "ts", "up-1") == []


def test_dictionaries_only_for_columns_whose_values_repeat() -> None:
    table = _mixed_table(20_000, seed=3)
    assert dictionary_columns(table) == ["region", "amount"]
    meta = pq.read_metadata(pa.BufferReader(parquet_bytes(table)))
    encodings = {
        meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i).encodings
        for i in range(meta.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["region"] and "RLE_DICTIONARY" in encodings["amount"]
    assert "RLE_DICTIONARY" not in encodings["id"] and "RLE_DICTIONARY" not in encodings["score"]


def test_odd_column_types_of_a_raw_upload_still_write() -> None:
    """Rejected rows keep the upload's own columns (quarantine): nested, dictionary, all-null."""
    table = pa.table(
        {
            "l": pa.array([[1, 2], [3], None]),
            "s": pa.array([{"a": 1}, {"a": 2}, None]),
            "n": pa.nulls(3),
            "d": pa.array(["x", "y", "x"]).dictionary_encode(),
            "u": pa.array(["a", "b", "c"]),
        }
    )
    assert dictionary_columns(table) == ["l", "s", "n", "d"]
    assert pq.read_table(pa.BufferReader(parquet_bytes(table))).equals(table)


@pytest.mark.parametrize("ordered", [False, True])
def test_dictionary_encoded_text_is_written_as_plain_text(ordered: bool) -> None:
    """Categories that validation kept dictionary-encoded (chunks with different dictionaries
    included) are written from their codes; the files read back in the plain schema."""
    table = _mixed_table(20_000, seed=5)
    if ordered:
        table = table.sort_by("ts")
    region = pa.chunked_array([c.dictionary_encode() for c in table.column("region").chunks])
    encoded = table.set_column(2, pa.field("region", region.type), region)
    assert len({tuple(c.dictionary.to_pylist()) for c in region.chunks}) > 1 or ordered
    parts = dict(split_by_day(table, "ts"))
    files = curated_files(encoded, "fs", "ts", "up-1")
    assert len(files) == len(parts)
    for key, body in files:
        back = pq.read_table(pa.BufferReader(body))
        assert back.schema.equals(table.schema, check_metadata=True)
        assert back.equals(parts[key.split("date=")[1].split("/")[0]].combine_chunks())
        meta = pq.read_metadata(pa.BufferReader(body)).row_group(0)
        columns = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
        assert all(c.compression == "ZSTD" for c in columns.values())
        assert "RLE_DICTIONARY" in columns["region"].encodings
        # statistics where they can prune (numbers, times), none for text
        assert columns["ts"].statistics is not None and columns["amount"].statistics is not None
        assert columns["region"].statistics is None and columns["id"].statistics is None
