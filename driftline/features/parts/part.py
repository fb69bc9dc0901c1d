"""Validate one part of an upload: read exactly its bytes (pinned version), run the same validation as
the single-function path, stage what the commit needs, and write the part's result.

Staged outputs (curated Parquet per UTC day, the part's newest row per entity for the online store,
its rejected rows) and the result go to keys derived from (upload id, part), so a retried part
overwrites its own files. Nothing is visible to readers of ``curated/`` until the commit copies it.
A part that cannot be read (a broken quote reaching a cut, a corrupt row group, a part larger than
the limit) is an ``unreadable`` result naming the part and its bytes or row groups, not an exception:
retrying cannot fix it, and the commit must see it to fail the upload with that name.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

from driftline.features.curated import curated_day, curated_files, parquet_bytes
from driftline.features.ingest import latest_rows
from driftline.features.parts.keys import part_keys
from driftline.features.parts.ranges import RangeFile, count_lines, parquet_footer
from driftline.features.parts.records import PartDescriptor, PartResult
from driftline.features.readers import (
    UnreadableFileError,
    read_bytes,
    read_parquet_row_groups,
    suffix_format,
)
from driftline.features.schema import FeatureSet
from driftline.features.validation import validate

__all__ = ["POLICY_FREE", "validate_part"]

POLICY_FREE = "accept_valid"
"""Parts keep every row that passes the checks; the feature set's ``on_partial_failure`` is applied by the
commit to the whole upload (``reject_file`` rejects the file when any part has a failing row)."""


def validate_part(d: PartDescriptor, fs: FeatureSet, others: list[FeatureSet], bucket: str, s3: Any) -> PartResult:
    """Validate and stage part ``d``; write and return its result (``results/part-NNNNN.json``)."""
    try:
        table, expected, digest = _read_parquet(d, fs, s3) if d.format == "parquet" else _read_csv(d, fs, s3)
    except UnreadableFileError as e:
        result = PartResult(
            d.part,
            "unreadable",
            d.where(),
            error={"check": e.check, "message": f"{d.where()}: {e.message}", "hint": e.hint},
        )
    else:
        result = _validate(d, fs, others, table, bucket, s3)
        result.rows_expected, result.sha256 = expected, digest
    s3.put_object(Bucket=bucket, Key=d.key("results", ".json"), Body=result.to_json())
    return result


def _validate(
    d: PartDescriptor, fs: FeatureSet, others: list[FeatureSet], table: pa.Table, bucket: str, s3: Any
) -> PartResult:
    validation = validate(table, fs, others=others)
    accepted = validation.accepted_table(POLICY_FREE, decode=False)
    result = PartResult(
        d.part,
        "ok",
        d.where(),
        rows_total=validation.rows_total,
        rows_accepted=accepted.num_rows,
        rows_rejected=validation.rows_total - accepted.num_rows,
        checks=validation.report(POLICY_FREE)["checks"],
    )
    result.has_labels = bool(accepted.num_rows) and any(
        accepted.column(lb.name).null_count < accepted.num_rows for lb in fs.labels
    )
    for key, body in curated_files(accepted, fs.name, fs.timestamp, d.upload_id):
        day = curated_day(key)
        staged = d.key("staged", f"/date={day}.parquet")
        s3.put_object(Bucket=bucket, Key=staged, Body=body)
        result.curated.append((day, staged))
    latest = [[r.entity, r.event_ts_us, dict(r.features)] for r in latest_rows(accepted, fs)]
    if latest:
        result.latest_key = d.key("staged", "/latest.json")
        s3.put_object(Bucket=bucket, Key=result.latest_key, Body=json.dumps(latest, default=str).encode())
    keys = part_keys(validation, fs, d.part)
    if keys.num_rows:
        result.keys_key = d.key("staged", "/keys.parquet")
        s3.put_object(Bucket=bucket, Key=result.keys_key, Body=parquet_bytes(keys))
    if result.rows_rejected:
        result.rejected_key = d.key("staged", "/rejected.parquet")
        s3.put_object(
            Bucket=bucket, Key=result.rejected_key, Body=parquet_bytes(validation.rejected_table(POLICY_FREE))
        )
    return result


def _read_name(d: PartDescriptor) -> str:
    """The name a part is parsed under: a part the plan inflated from gzip is plain CSV."""
    if d.format == "csv" and suffix_format(d.name) == "csv.gz":
        stem = d.name[: -len(".gz")]
        return stem if suffix_format(stem) == "csv" else f"{stem}.csv"
    return d.name


def _read_csv(d: PartDescriptor, fs: FeatureSet, s3: Any) -> tuple[pa.Table, int, str]:
    """The part's rows (header + its byte range), its non-empty line count and the range's SHA-256."""
    if d.start == d.header_end:
        data = d.source.get(s3, 0, d.end)
        body = memoryview(data)[d.header_end :]
    else:
        header = d.source.get(s3, 0, d.header_end)
        rows = d.source.get(s3, d.start, d.end)
        data, body = header + rows, memoryview(rows)
    digest = hashlib.sha256(body).hexdigest()
    expected = count_lines(bytes(body))
    table = read_bytes(data, _read_name(d), fs).table
    return table, expected, digest


def _read_parquet(d: PartDescriptor, fs: FeatureSet, s3: Any) -> tuple[pa.Table, int, str]:
    """The part's row groups, read from its byte span and the footer only (two ranged GETs)."""
    try:
        _, footer = parquet_footer(d.source, s3)
    except ValueError as e:
        raise UnreadableFileError(
            "corrupt_file", f"{d.name}: the Parquet footer cannot be read: {e}", "export the file again"
        ) from None
    span = d.source.get(s3, d.start, d.end)
    spans = [(d.start, span), (d.source.size - len(footer), footer), (0, b"PAR1")]
    source = pa.PythonFile(RangeFile(d.source, s3, spans), mode="r")
    table = read_parquet_row_groups(source, list(range(d.row_group_start, d.row_group_end)), d.name, fs)
    if table.num_rows != d.rows_expected:
        raise UnreadableFileError(
            "corrupt_file",
            f"{d.name}: row groups {d.row_group_start}-{d.row_group_end - 1} gave {table.num_rows} rows, "
            f"the footer says {d.rows_expected}",
            "the file is corrupt; export it again and upload it again",
        )
    return table, int(d.rows_expected or 0), hashlib.sha256(span).hexdigest()
