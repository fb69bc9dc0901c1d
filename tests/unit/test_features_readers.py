"""Readers: every kind of unusable upload ends in a precise UnreadableFileError, never a traceback."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline.datasets.credit_default import generate
from driftline.features.readers import UnreadableFileError, detect_format, read_bytes, read_path
from driftline.features.schema import FeatureSet
from driftline.features.validation import validate


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate(40, "2026-01-01", "2026-02-01", seed=9)


def _parquet(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


def _csv(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(t, buf)
    return buf.getvalue()


def _error(data: bytes, name: str, fs: FeatureSet | None = None) -> UnreadableFileError:
    with pytest.raises(UnreadableFileError) as info:
        read_bytes(data, name, fs)
    return info.value


@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv.gz"])
def test_each_format_round_trips_to_an_accepted_table(table: pa.Table, credit_fs: FeatureSet, fmt: str) -> None:
    data = _parquet(table) if fmt == "parquet" else _csv(table)
    if fmt == "csv.gz":
        data = gzip.compress(data)
    result = read_bytes(data, f"upload.{fmt}", credit_fs)
    assert result.format == fmt
    v = validate(result.table, credit_fs)
    assert v.status() == "accepted", v.report()["checks"]
    assert v.accepted_table().equals(validate(table, credit_fs).accepted_table())


def test_format_comes_from_content_before_name(table: pa.Table) -> None:
    assert detect_format("misnamed.csv", _parquet(table)[:4]) == "parquet"
    assert detect_format("x", gzip.compress(b"a,b\n")[:4]) == "csv.gz"
    assert read_bytes(_parquet(table), "data.csv").format == "parquet"


def test_corrupt_parquet(table: pa.Table) -> None:
    e = _error(b"this is not parquet at all", "x.parquet")
    assert e.check == "corrupt_file" and "PAR1" in e.message
    truncated = _parquet(table)[:300]
    e = _error(truncated, "x.parquet")
    assert e.check == "corrupt_file" and "cannot be read" in e.message


def test_truncated_gzip(table: pa.Table, credit_fs: FeatureSet) -> None:
    data = gzip.compress(_csv(table))
    e = _error(data[: len(data) // 2], "x.csv.gz", credit_fs)
    assert e.check in ("corrupt_file", "csv_parse_error")
    assert "gzip" in e.message or "parse" in e.message


def test_empty_files(credit_fs: FeatureSet) -> None:
    assert _error(b"", "x.csv").check == "empty_file"
    e = _error(b"customer_id,age\n", "x.csv", credit_fs)
    assert e.check == "empty_file" and "no data rows" in e.message
    assert _error(gzip.compress(b""), "x.csv.gz").check == "empty_file"


def test_broken_quoting_is_detected_instead_of_swallowing_rows(table: pa.Table, credit_fs: FeatureSet) -> None:
    lines = _csv(table).decode().splitlines()
    lines[3] = lines[3].replace('"salaried"', '"salaried', 1).replace('"self_employed"', '"self_employed', 1)
    lines[3] = lines[3].replace('"retired"', '"retired', 1).replace('"student"', '"student', 1)
    lines[3] = lines[3].replace('"unemployed"', '"unemployed', 1)
    e = _error("\n".join(lines).encode(), "x.csv", credit_fs)
    assert e.check in ("csv_quoting", "csv_parse_error")
    assert "quot" in e.message + e.hint


def test_wrong_number_of_fields(credit_fs: FeatureSet) -> None:
    e = _error(b"a,b\n1,2\n3,4,5\n", "x.csv", credit_fs)
    assert e.check == "csv_parse_error" and "wrong number of fields" in e.message


def test_unsupported_type() -> None:
    e = _error(b"PK\x03\x04 spreadsheet", "book.xlsx")
    assert e.check == "unsupported_format" and ".parquet, .csv or .csv.gz" in e.hint


def test_too_large_file_is_refused_with_advice(credit_fs: FeatureSet) -> None:
    small = credit_fs.model_copy(update={"ingest": credit_fs.ingest.model_copy(update={"max_file_mb": 1})})
    e = _error(b"x" * (2 * 1024 * 1024), "big.csv", small)
    assert e.check == "file_too_large" and "split" in e.hint and "2.0 MB" in e.message


def test_csv_keeps_leading_zeros_in_ids_and_categories(credit_fs: FeatureSet, table: pa.Table) -> None:
    t = table.set_column(0, "customer_id", pa.array([f"{i:05d}" for i in range(table.num_rows)]))
    result = read_bytes(_csv(t), "x.csv", credit_fs)
    assert result.table.column("customer_id")[1].as_py() == "00001"


def test_pandas_index_column_is_dropped(table: pa.Table) -> None:
    t = table.append_column("__index_level_0__", pa.array(range(table.num_rows)))
    assert "__index_level_0__" not in read_bytes(_parquet(t), "x.parquet").table.column_names


def test_read_path(tmp_path: Path, table: pa.Table, credit_fs: FeatureSet) -> None:
    p = tmp_path / "f.parquet"
    p.write_bytes(_parquet(table))
    assert read_path(p, credit_fs).table.num_rows == table.num_rows
    with pytest.raises(UnreadableFileError, match="file not found"):
        read_path(tmp_path / "nope.csv")


def test_unclosed_quote_swallowing_later_lines_is_refused(credit_fs: FeatureSet) -> None:
    e = _error(b'customer_id,age\nA,"3\nB,4\nC,5\n', "x.csv", credit_fs)
    assert e.check == "csv_quoting"
    assert "column 'age' in data row 0 (line 2)" in e.message


def test_categorical_columns_are_read_as_dictionaries_and_checked_as_text(
    table: pa.Table, credit_fs: FeatureSet
) -> None:
    """A Parquet upload's categories stay dictionary-encoded through validation: same decisions,
    same curated table; blank values are missing and unknown ones are caught."""
    regions = table.column("region").to_pylist()
    regions[1], regions[2], regions[3] = "  ", "atlantis", None
    raw = table.set_column(table.column_names.index("region"), "region", pa.array(regions))
    read = read_bytes(_parquet(raw), "upload.parquet", credit_fs).table
    assert pa.types.is_dictionary(read.schema.field("region").type)
    assert read.schema.field("customer_id").type == pa.string()
    ours, dense = validate(read, credit_fs), validate(raw, credit_fs)
    assert ours.report() == dense.report()
    assert ours.accepted_table().equals(dense.accepted_table())
    encoded = ours.accepted_table(decode=False)
    assert pa.types.is_dictionary(encoded.schema.field("region").type)
    assert encoded.column("region").to_pylist() == dense.accepted_table().column("region").to_pylist()
    assert ours.rejected_table().equals(dense.rejected_table())


def _gzip_bomb(inflated_mib: int) -> bytes:
    """A valid gzip CSV that is small on disk: one header member, then the same 4 MiB member of
    rows repeated (gzip allows concatenated members; every reader must accept them)."""
    member = gzip.compress(b"1,2\n" * (1024 * 1024), 9)
    return gzip.compress(b"a,b\n") + member * (inflated_mib // 4)


def _capped(fs: FeatureSet, mb: int) -> FeatureSet:
    return fs.model_copy(update={"ingest": fs.ingest.model_copy(update={"max_uncompressed_mb": mb})})


def test_gzip_bomb_is_refused_once_it_inflates_past_the_cap(credit_fs: FeatureSet) -> None:
    bomb = _gzip_bomb(64)
    assert len(bomb) < 300_000  # 64 MiB of rows in a few hundred KB
    e = _error(bomb, "bomb.csv.gz", _capped(credit_fs, 1))
    assert e.check == "file_too_large"
    assert "at most 1 MB of uncompressed data" in e.message and "max_uncompressed_mb" in e.message
    assert "split" in e.hint
    # within the cap, concatenated gzip members are read whole
    assert read_bytes(_gzip_bomb(4), "ok.csv.gz").table.num_rows == 1024 * 1024


def test_gzip_bomb_never_allocates_its_inflated_size() -> None:
    """Measured in a fresh process: the peak allocation (Arrow's pool or Python's heap) while refusing a 1 GiB
    bomb capped at 8 MB."""
    import subprocess
    import sys

    code = (
        "import pyarrow as pa\n"
        "from driftline.features.readers import read_bytes, UnreadableFileError\n"
        "from tests.conftest import FEATURE_SETS\n"
        "from driftline.features.schema import load_feature_set\n"
        "from tests.unit.test_features_readers import _gzip_bomb, _capped\n"
        "bomb = _gzip_bomb(1024)\n"
        "fs = _capped(load_feature_set(FEATURE_SETS / 'credit_default.yaml'), 8)\n"
        "import tracemalloc\n"
        "tracemalloc.start()\n"
        "try:\n"
        "    read_bytes(bomb, 'bomb.csv.gz', fs)\n"
        "    print('READ')\n"
        "except UnreadableFileError as e:\n"
        "    peak = max(pa.default_memory_pool().max_memory(), tracemalloc.get_traced_memory()[1])\n"
        "    print(e.check, peak, len(bomb))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert out[0] == "file_too_large", out
    peak, on_disk = int(out[1]), int(out[2])
    assert on_disk < 3_000_000 and peak < 64 * 1024 * 1024, (peak, on_disk)


def test_parquet_over_the_uncompressed_cap_is_refused_from_its_footer(credit_fs: FeatureSet) -> None:
    # 1M identical rows compress to almost nothing but take ~16 MB uncompressed
    t = pa.table({"a": pa.array([1.5] * 1_000_000), "b": pa.array([7] * 1_000_000)})
    buf = io.BytesIO()
    pq.write_table(t, buf, compression="zstd", use_dictionary=False)
    data = buf.getvalue()
    assert len(data) < 1024 * 1024
    e = _error(data, "big.parquet", _capped(credit_fs, 1))
    assert e.check == "file_too_large" and "uncompressed" in e.message and "split" in e.hint
    assert read_bytes(data, "big.parquet").table.num_rows == 1_000_000  # the default cap lets it through
