"""Read an uploaded file (Parquet, CSV, gzip CSV) into an Arrow table, or say precisely why not.

Whatever a user uploads, the outcome is either a table or an :class:`UnreadableFileError` naming the
problem and the fix; it is never a raw parser traceback. CSV columns that hold keys, categories
or strings are read as text (so ``007`` stays ``007``); the others are left to Arrow's type
inference and coerced later by :mod:`driftline.features.validation`, which can then point at
the exact rows that do not parse.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from driftline.features.schema import FeatureSet, IngestPolicy
from driftline.features.tables import label_type

FileFormat = Literal["parquet", "csv", "csv.gz"]
SUFFIXES: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".csv.gz": "csv.gz",
    ".gz": "csv.gz",
    ".txt": "csv",
    ".tsv": "csv",
}
PARQUET_MAGIC = b"PAR1"
DEFAULT_MAX_UNCOMPRESSED_MB = IngestPolicy.model_fields["max_uncompressed_mb"].default
"""The uncompressed-data cap of reads without a feature set (the feature set's default)."""
GZIP_MAGIC = b"\x1f\x8b"
_PANDAS_INDEX_PREFIX = "__index_level_"


class UnreadableFileError(Exception):
    """The file cannot be turned into rows. ``check`` names the failure for reports."""

    def __init__(self, check: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.check = check
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class ReadResult:
    table: pa.Table
    format: FileFormat


def suffix_format(name: str) -> FileFormat | None:
    lower = name.lower()
    if lower.endswith(".csv.gz"):
        return "csv.gz"
    return SUFFIXES.get(Path(lower).suffix)


def detect_format(name: str, head: bytes) -> FileFormat:
    """Content first (magic bytes), then the name; a text file with an unknown suffix is refused."""
    by_name = suffix_format(name)
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(GZIP_MAGIC):
        return "csv.gz"
    if by_name == "parquet":
        raise UnreadableFileError(
            "corrupt_file",
            f"{name} is named like Parquet but does not start with the "
            "Parquet magic bytes 'PAR1': the file is corrupt or not Parquet",
            "re-export the file with a Parquet writer (pyarrow, pandas.to_parquet, Spark) and upload it again",
        )
    if by_name is None:
        raise UnreadableFileError(
            "unsupported_format", f"{name}: unsupported file type", "upload .parquet, .csv or .csv.gz files"
        )
    return by_name


def check_size(size_bytes: int, fs: FeatureSet) -> None:
    """Refuse files larger than the feature set's ``ingest.max_file_mb`` before reading a byte."""
    limit = fs.ingest.max_file_mb * 1024 * 1024
    if size_bytes > limit:
        raise UnreadableFileError(
            "file_too_large",
            f"the file is {size_bytes / 1024 / 1024:,.1f} MB; feature set {fs.name!r} accepts at most "
            f"{fs.ingest.max_file_mb} MB per file (the ingest function holds the whole file in memory)",
            f"split it into files of at most {fs.ingest.max_file_mb} MB (for example one file per day or per "
            f"million rows) and upload those; the original stays in incoming/ untouched",
        )


def _too_large_uncompressed(name: str, size: str, limit_mb: int, fs_name: str | None) -> UnreadableFileError:
    owner = f"feature set {fs_name!r}" if fs_name else "ingest"
    return UnreadableFileError(
        "file_too_large",
        f"{name}: the data is {size} uncompressed; {owner} accepts at most {limit_mb} MB of uncompressed data "
        f"per file (ingest.max_uncompressed_mb; the ingest function holds the whole table in memory)",
        f"split it into files of at most {limit_mb} MB uncompressed (for example one file per day) and upload "
        f"those; the original stays in incoming/ untouched",
    )


def uncompressed_limit_mb(fs: FeatureSet | None) -> int:
    """The cap on a file's uncompressed data: the feature set's, or the default for reads without one."""
    return fs.ingest.max_uncompressed_mb if fs is not None else DEFAULT_MAX_UNCOMPRESSED_MB


class _UncompressedLimitError(Exception):
    """The gzip stream inflates past the cap; turned into ``file_too_large`` by the caller."""


GZIP_CHUNK_BYTES = 1024 * 1024
"""What the size pass inflates at a time (all it ever holds)."""


def _inflated_size(data: bytes, limit: int) -> int:
    """The uncompressed size of a gzip upload, counted a chunk at a time and stopped past ``limit``.

    A gzip bomb (a few KB that inflate to gigabytes) costs one chunk of memory here, never its full
    size. Counting is a pass of its own so that the parse that follows reads the stream natively in
    Arrow: a Python file object read from Arrow's I/O threads could still be in use when an error
    ended the read, and an interpreter exiting then aborts the process.
    """
    size = 0
    with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as stream:
        while chunk := stream.read(GZIP_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                raise _UncompressedLimitError
    return size


def _text_columns(fs: FeatureSet) -> dict[str, pa.DataType]:
    """Columns read as text in CSV so that identifiers and categories are never mangled."""
    cols: dict[str, pa.DataType] = {e: pa.string() for e in fs.entity}
    cols.update({f.name: pa.string() for f in fs.features if f.type in ("categorical", "string")})
    cols.update({lb.name: pa.string() for lb in fs.labels if label_type(lb) == pa.string()})
    return cols


def _read_csv(data: bytes, fs: FeatureSet | None, compressed: bool, name: str) -> pa.Table:
    source: pa.NativeFile = pa.BufferReader(data)
    limit_mb = uncompressed_limit_mb(fs)
    convert = pacsv.ConvertOptions(
        column_types=_text_columns(fs) if fs else None, strings_can_be_null=True, quoted_strings_can_be_null=True
    )
    try:
        if compressed:
            _inflated_size(data, limit_mb * 1024 * 1024)
            source = pa.CompressedInputStream(source, "gzip")
        table = pacsv.read_csv(
            source, parse_options=pacsv.ParseOptions(newlines_in_values=False), convert_options=convert
        )
    except _UncompressedLimitError:
        raise _too_large_uncompressed(name, f"over {limit_mb} MB", limit_mb, fs.name if fs else None) from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:  # EOFError: a truncated gzip stream
        raise UnreadableFileError(
            "corrupt_file",
            f"{name}: the gzip stream is corrupt or truncated ({e})",
            "compress the CSV again (gzip file.csv) and upload it again",
        ) from None
    except pa.ArrowInvalid as e:
        msg = str(e)
        if "Empty CSV file" in msg:
            raise UnreadableFileError(
                "empty_file",
                f"{name}: the file is empty (no header row)",
                "upload a file with a header row and at least one data row",
            ) from None
        if "zlib" in msg or "gzip" in msg.lower() or "inflate" in msg:
            raise UnreadableFileError(
                "corrupt_file",
                f"{name}: the gzip stream is corrupt or truncated ({msg})",
                "compress the CSV again (gzip file.csv) and upload it again",
            ) from None
        if "Expected" in msg and "columns" in msg:
            raise UnreadableFileError(
                "csv_parse_error",
                f"{name}: a row has the wrong number of fields ({msg})",
                "check that values containing the delimiter are quoted and that every "
                "quote is closed; then upload the file again",
            ) from None
        raise UnreadableFileError(
            "csv_parse_error",
            f"{name}: the CSV cannot be parsed ({msg})",
            "check delimiters and quoting, then upload the file again",
        ) from None
    except OSError as e:  # gzip stream errors surface as IOError
        raise UnreadableFileError(
            "corrupt_file",
            f"{name}: the gzip stream is corrupt or truncated ({e})",
            "compress the CSV again (gzip file.csv) and upload it again",
        ) from None
    _check_quoting(table, name)
    return table


def _check_quoting(table: pa.Table, name: str) -> None:
    """An unclosed quote makes the parser swallow the following lines into one value: refuse that.

    Feature values never contain line breaks, so a value with one is evidence of broken quoting
    (and of rows that would otherwise silently disappear).
    """
    for col_name, col in zip(table.column_names, table.columns, strict=True):
        if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
            continue
        has_newline = pc.match_substring_regex(col, r"[\r\n]")
        if pc.any(has_newline).as_py():
            row = pc.index(has_newline, True).as_py()
            raise UnreadableFileError(
                "csv_quoting",
                f"{name}: broken quoting: the value of column {col_name!r} in data row {row} "
                f"(line {row + 2}) runs across line breaks, so an opening quote is never closed and later "
                f"lines were swallowed",
                'close the quote (or escape quotes inside values by doubling them: "") and upload again',
            )


def _dictionary_columns(fs: FeatureSet | None) -> list[str] | None:
    """Columns read from Parquet as Arrow dictionaries: the categorical features.

    Writers store such columns dictionary-encoded, and reading them as dictionaries skips
    materializing a string per row (1M rows x 25 columns: ~0.47 -> ~0.29 CPU-seconds for the read);
    validation checks the few distinct values and decodes the accepted rows only. Columns that
    are not text in the file are read as they are.
    """
    if fs is None:
        return None
    return [f.name for f in fs.features if f.type == "categorical"] or None


def _check_parquet_uncompressed(data: bytes, name: str, fs: FeatureSet | None) -> None:
    """Refuse a Parquet file whose column chunks add up to more than the cap once decompressed,
    from the footer alone (before a page is read)."""
    meta = pq.read_metadata(pa.BufferReader(data))
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    limit_mb = uncompressed_limit_mb(fs)
    if size > limit_mb * 1024 * 1024:
        raise _too_large_uncompressed(name, f"{size / 1024 / 1024:,.1f} MB", limit_mb, fs.name if fs else None)


def _read_parquet(data: bytes, name: str, fs: FeatureSet | None = None) -> pa.Table:
    try:
        _check_parquet_uncompressed(data, name, fs)
        table = pq.read_table(pa.BufferReader(data), read_dictionary=_dictionary_columns(fs))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
        raise UnreadableFileError(
            "corrupt_file",
            f"{name}: the Parquet file cannot be read ({e})",
            "the file is corrupt or truncated; export it again and upload it again",
        ) from None
    return _without_index(table)


def _without_index(table: pa.Table) -> pa.Table:
    drop = [c for c in table.column_names if c.startswith(_PANDAS_INDEX_PREFIX)]
    return table.drop_columns(drop) if drop else table


def read_parquet_row_groups(source: pa.NativeFile, row_groups: list[int], name: str, fs: FeatureSet) -> pa.Table:
    """Row groups of a Parquet file, read as :func:`read_bytes` reads a whole one (an upload validated in
    parts reads each part's row groups only). Raises :class:`UnreadableFileError` naming the row groups."""
    try:
        table = pq.ParquetFile(source, read_dictionary=_dictionary_columns(fs)).read_row_groups(row_groups)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
        raise UnreadableFileError(
            "corrupt_file",
            f"{name}: row group(s) {row_groups[0]}-{row_groups[-1]} cannot be read ({e})",
            "the file is corrupt or truncated; export it again and upload it again",
        ) from None
    return _without_index(table)


def read_bytes(data: bytes, name: str, fs: FeatureSet | None = None) -> ReadResult:
    """Parse ``data`` (the whole file) named ``name``. Raises :class:`UnreadableFileError`."""
    if fs is not None:
        check_size(len(data), fs)
    if not data:
        raise UnreadableFileError(
            "empty_file",
            f"{name}: the file is empty (0 bytes)",
            "upload a file with a header row and at least one data row",
        )
    fmt = detect_format(name, data[:4])
    table = _read_parquet(data, name, fs) if fmt == "parquet" else _read_csv(data, fs, fmt == "csv.gz", name)
    if table.num_columns == 0:
        raise UnreadableFileError("empty_file", f"{name}: the file has no columns", "upload a file with a header row")
    if table.num_rows == 0:
        raise UnreadableFileError(
            "empty_file", f"{name}: the file has a header but no data rows", "upload a file with at least one data row"
        )
    return ReadResult(table, fmt)


def read_path(path: str | Path, fs: FeatureSet | None = None) -> ReadResult:
    """Read a local file (the CLI's ``features validate``), with the same checks as ingest."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UnreadableFileError("not_found", f"{path}: file not found", "check the path") from None
    if fs is not None:
        check_size(size, fs)
    return read_bytes(path.read_bytes(), path.name, fs)


__all__ = [
    "DEFAULT_MAX_UNCOMPRESSED_MB",
    "FileFormat",
    "ReadResult",
    "UnreadableFileError",
    "check_size",
    "detect_format",
    "read_bytes",
    "read_parquet_row_groups",
    "read_path",
    "suffix_format",
    "uncompressed_limit_mb",
]
