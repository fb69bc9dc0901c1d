"""Plan an upload larger than the single-function limit: which parts its validation is split into.

- Parquet: groups of whole row groups, read from the footer (one suffix GET).
- CSV: byte ranges of about the target size, each cut moved to the next line start (a small ranged
  GET after each target offset), the header line carried to every part.
- gzip CSV cannot be split by range: the plan inflates it as a stream, holding one part at a time,
  and writes plain CSV parts (each with the header) under the upload's scratch prefix.

The plan writes one descriptor per part under ``items/`` (the Distributed Map lists that prefix) and
the plan itself, all under keys derived from the upload id, so a retried plan overwrites them. An
upload it cannot split (more parts than :data:`~driftline.contracts.INGEST_PARTS_MAX`, an unreadable
footer or gzip stream) gets a plan with ``refused`` set and no parts: the commit step records why.
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from driftline.contracts import INGEST_PARTS_MAX, ingest_part_key
from driftline.features.parts.ranges import next_line_start, parquet_footer, row_group_span
from driftline.features.parts.records import PartDescriptor, PartsError, Plan, SourceObject, plan_key
from driftline.features.readers import FileFormat, UnreadableFileError, detect_format, uncompressed_limit_mb
from driftline.features.schema import FeatureSet

__all__ = ["PART_TARGET_MB", "part_target_bytes", "plan_upload"]

MIB = 1024 * 1024
PART_TARGET_MB = 64
"""Size of a part when the feature set's ``max_file_mb`` allows it: small enough that a part function
holds its bytes, the parsed table and the staged files well within its memory, large enough that
per-part overhead (a function start, a few GETs and PUTs) stays small against the work."""
HEADROOM = 0.9
"""Share of the target a cut starts from: a cut moves forward to the next line start, so a part never
passes the single-function limit unless one line is longer than the rest of the headroom."""
GZIP_READ_BYTES = MIB


def part_target_bytes(fs: FeatureSet, override: int | None = None) -> int:
    """Bytes of data per part: :data:`PART_TARGET_MB` (or ``override``) within ``ingest.max_file_mb``."""
    limit = fs.ingest.max_file_mb * MIB
    return max(1, int(min(override or PART_TARGET_MB * MIB, limit) * HEADROOM))


def _too_many(size: int, target: int, what: str) -> dict[str, str]:
    most = INGEST_PARTS_MAX * target / MIB
    return {
        "check": "file_too_large",
        "message": (
            f"the {what} is {size / MIB:,.1f} MB: in parts of {target / MIB:,.1f} MB it needs "
            f"{math.ceil(size / target):,} parts, more than the {INGEST_PARTS_MAX:,} parts one upload may have"
        ),
        "hint": f"split it into files of at most {most:,.0f} MB and upload those; the original stays in incoming/",
    }


def plan_upload(
    src: SourceObject,
    fs: FeatureSet,
    upload_id: str,
    scratch_bucket: str,
    s3: Any,
    *,
    part_bytes: int | None = None,
) -> Plan:
    """Plan ``src`` (a pinned upload version), write the descriptors and the plan, return the plan."""
    name = PurePosixPath(src.key).name
    plan = Plan(fs.name, upload_id, src, None)
    target = part_target_bytes(fs, part_bytes)
    try:
        fmt = detect_format(name, src.get(s3, 0, min(src.size, 4)))
        plan.format = fmt
        if fmt == "parquet":
            _plan_parquet(plan, fs, name, target, s3)
        elif fmt == "csv":
            _plan_csv(plan, name, target, s3)
        else:
            _plan_gzip(plan, name, target, scratch_bucket, s3, fs.ingest.max_parts_uncompressed_mb)
    except UnreadableFileError as e:
        plan.parts, plan.refused = [], {"check": e.check, "message": e.message, "hint": e.hint}
    except _RefusedError as e:
        plan.parts, plan.refused = [], e.why
    for d in plan.parts:
        s3.put_object(Bucket=scratch_bucket, Key=d.key("items", ".json"), Body=d.to_json())
    s3.put_object(Bucket=scratch_bucket, Key=plan_key(fs.name, upload_id), Body=plan.to_json())
    return plan


class _RefusedError(Exception):
    def __init__(self, why: dict[str, str]) -> None:
        super().__init__(why["message"])
        self.why = why


def _descriptor(plan: Plan, fmt: FileFormat, name: str, src: SourceObject, **kw: Any) -> PartDescriptor:
    return PartDescriptor(plan.feature_set, plan.upload_id, len(plan.parts), 0, fmt, name, src, **kw)


def _numbered(plan: Plan) -> None:
    if len(plan.parts) > INGEST_PARTS_MAX:
        raise PartsError(f"{len(plan.parts)} parts planned, more than {INGEST_PARTS_MAX}")  # guarded by callers
    plan.parts = [
        PartDescriptor(**{**d.__dict__, "part": i, "parts": len(plan.parts)}) for i, d in enumerate(plan.parts)
    ]


def _plan_csv(plan: Plan, name: str, target: int, s3: Any) -> None:
    src = plan.source
    header_end = next_line_start(src, s3, 0)
    if math.ceil((src.size - header_end) / target) > INGEST_PARTS_MAX:
        raise _RefusedError(_too_many(src.size, target, "file"))
    start = header_end
    while True:
        end = src.size if start + target >= src.size else next_line_start(src, s3, start + target - 1)
        plan.parts.append(_descriptor(plan, "csv", name, src, start=start, end=end, header_end=header_end))
        if end >= src.size:
            break
        start = end
    _numbered(plan)


def _plan_parquet(plan: Plan, fs: FeatureSet, name: str, target: int, s3: Any) -> None:
    src = plan.source
    try:
        meta, _ = parquet_footer(src, s3)
    except ValueError as e:
        raise UnreadableFileError(
            "corrupt_file",
            f"{name}: the Parquet file cannot be read: {e}",
            "the file is corrupt or truncated; export it again and upload it again",
        ) from None
    if meta.num_row_groups == 0 or meta.num_rows == 0:
        raise UnreadableFileError("empty_file", f"{name}: the file has no rows", "upload a file with data rows")
    plan.rows_in_file = meta.num_rows
    limit_uncompressed = int(uncompressed_limit_mb(fs) * MIB * HEADROOM)
    groups = list(_row_group_groups(meta, target, limit_uncompressed))
    if len(groups) > INGEST_PARTS_MAX:
        raise _RefusedError(_too_many(src.size, target, "file"))
    for first, last in groups:
        start, end = row_group_span(meta, first, last)
        rows = sum(meta.row_group(i).num_rows for i in range(first, last))
        plan.parts.append(
            _descriptor(
                plan,
                "parquet",
                name,
                src,
                start=start,
                end=end,
                row_group_start=first,
                row_group_end=last,
                rows_expected=rows,
            )
        )
    _numbered(plan)


def _row_group_groups(meta: Any, target: int, limit_uncompressed: int) -> Iterator[tuple[int, int]]:
    """Runs of whole row groups whose bytes stay within ``target`` and whose data within the cap."""
    first = 0
    while first < meta.num_row_groups:
        last, start = first + 1, row_group_span(meta, first, first + 1)[0]
        data = meta.row_group(first).total_byte_size
        while last < meta.num_row_groups:
            end = row_group_span(meta, last, last + 1)[1]
            more = data + meta.row_group(last).total_byte_size
            if end - start > target or more > limit_uncompressed:
                break
            data, last = more, last + 1
        yield first, last
        first = last


def _plan_gzip(plan: Plan, name: str, target: int, bucket: str, s3: Any, cap_mb: int) -> None:
    """Inflate the upload as a stream into plain CSV parts of about ``target`` bytes (one held at a time);
    refuse it as soon as it has inflated past ``cap_mb`` (``ingest.max_parts_uncompressed_mb``)."""
    src = plan.source
    kwargs: dict[str, Any] = {"Bucket": src.bucket, "Key": src.key}
    if src.version_id:
        kwargs["VersionId"] = src.version_id
    body = s3.get_object(**kwargs)["Body"]
    header: bytes | None = None
    buf = bytearray()
    inflated = 0
    try:
        with gzip.GzipFile(fileobj=body, mode="rb") as stream:
            while chunk := stream.read(GZIP_READ_BYTES):
                inflated += len(chunk)
                if inflated > cap_mb * MIB:
                    raise _RefusedError(_too_inflated(name, src.size, cap_mb))
                buf += chunk
                if header is None:
                    i = buf.find(b"\n")
                    if i < 0:
                        _check_line(len(buf), target, name)
                        continue
                    header, buf = bytes(buf[: i + 1]), buf[i + 1 :]
                while len(buf) >= target:
                    cut = buf.rfind(b"\n", 0, target)
                    if cut < 0:
                        cut = buf.find(b"\n", target)
                    if cut < 0:
                        _check_line(len(buf), target, name)
                        break
                    _put_part(plan, name, bucket, header, bytes(buf[: cut + 1]), s3)
                    del buf[: cut + 1]
                    if len(plan.parts) >= INGEST_PARTS_MAX:
                        raise _RefusedError(_too_many(inflated + len(buf), target, "uncompressed data (at least)"))
    except (gzip.BadGzipFile, zlib.error, EOFError, OSError) as e:
        raise UnreadableFileError(
            "corrupt_file",
            f"{name}: the gzip stream is corrupt or truncated ({e})",
            "compress the CSV again (gzip file.csv) and upload it again",
        ) from None
    if header is None:
        raise UnreadableFileError(
            "empty_file", f"{name}: the file is empty (no header row)", "upload a file with a header row"
        )
    if buf or not plan.parts:
        _put_part(plan, name, bucket, header, bytes(buf), s3)
    _numbered(plan)


def _too_inflated(name: str, size: int, cap_mb: int) -> dict[str, str]:
    return {
        "check": "file_too_large",
        "message": (
            f"{name}: the gzip stream ({size / MIB:,.1f} MB) inflates past {cap_mb:,} MB; the feature set accepts "
            f"at most {cap_mb:,} MB of uncompressed data in one upload validated in parts "
            f"(ingest.max_parts_uncompressed_mb); refused before more of it was written"
        ),
        "hint": (
            f"split the data into files of at most {cap_mb:,} MB uncompressed and upload those (or raise "
            f"ingest.max_parts_uncompressed_mb if the data is genuine); the original stays in incoming/"
        ),
    }


def _check_line(length: int, target: int, name: str) -> None:
    if length > 2 * target:
        raise UnreadableFileError(
            "csv_parse_error",
            f"{name}: a line is longer than {length / MIB:,.1f} MB uncompressed (no line break found)",
            "check that the file is a CSV with one row per line, then upload it again",
        )


def _put_part(plan: Plan, name: str, bucket: str, header: bytes, rows: bytes, s3: Any) -> None:
    key = ingest_part_key(plan.feature_set, plan.upload_id, "data", len(plan.parts), ".csv")
    data = header + rows
    resp = s3.put_object(Bucket=bucket, Key=key, Body=data)
    src = SourceObject(bucket, key, resp.get("VersionId"), len(data))
    plan.parts.append(_descriptor(plan, "csv", name, src, start=len(header), end=len(data), header_end=len(header)))
