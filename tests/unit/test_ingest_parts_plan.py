"""The parts path's planning and reading without an emulator: an in-memory S3 that serves ranged GETs
of pinned versions. CSV cuts land on line starts (LF and CRLF) with the header in every part, every
byte of the data is in exactly one part, a Parquet file is split into runs of whole row groups, and an
upload that would need more than INGEST_PARTS_MAX parts is refused with the limit in the message."""

from __future__ import annotations

import io
import json
from itertools import pairwise
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.contracts import INGEST_PARTS_MAX
from driftline.features.parts import PartDescriptor, PartsError, Plan, SourceObject, plan_upload
from driftline.features.parts.ranges import RangeFile, count_lines, next_line_start, parquet_footer

UPLOAD = "20261126T010000Z-abcdefabcdef"


class FakeS3:
    """put_object / get_object (with Range and VersionId) over a dict; counts GETs and bytes read."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.gets = 0
        self.bytes_read = 0

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = Body
        return {"VersionId": "v1"}

    def get_object(self, Bucket: str, Key: str, Range: str | None = None, VersionId: str | None = None) -> Any:
        data = self.objects[(Bucket, Key)]
        if Range is not None:
            start, end = (int(x) for x in Range.removeprefix("bytes=").split("-"))
            data = data[start : end + 1]
        self.gets += 1
        self.bytes_read += len(data)
        return {"Body": io.BytesIO(data)}


def _src(s3: FakeS3, body: bytes, name: str = "f.csv") -> SourceObject:
    s3.put_object(Bucket="b", Key=f"incoming/credit_default/{name}", Body=body)
    return SourceObject("b", f"incoming/credit_default/{name}", "v1", len(body))


def _csv(lines: int, eol: bytes = b"\n") -> bytes:
    rows = [b"customer_id,event_timestamp,age"] + [
        f"C{i:07d},2025-01-01T00:00:{i % 60:02d}Z,{20 + i % 50}".encode() for i in range(lines)
    ]
    return eol.join(rows) + eol


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_csv_cuts_are_line_starts_and_cover_every_byte_once(credit_fs: Any, eol: bytes) -> None:
    s3, body = FakeS3(), _csv(5_000, eol)
    plan = plan_upload(_src(s3, body), credit_fs, UPLOAD, "b", s3, part_bytes=20_000)
    parts = plan.parts
    header_end = body.index(b"\n") + 1
    assert plan.refused is None and plan.format == "csv" and len(parts) >= 5
    assert parts[0].start == header_end and parts[-1].end == len(body)
    assert all(d.header_end == header_end and d.parts == len(parts) for d in parts)
    for a, b in pairwise(parts):
        assert a.end == b.start and body[b.start - len(eol) : b.start] == eol
    assert sum(count_lines(body[d.start : d.end]) for d in parts) == 5_000
    # the plan read a few small windows, not the file
    assert s3.bytes_read < len(body) / 2
    items = sorted(k for _, k in s3.objects if "/items/" in k)
    assert len(items) == len(parts) and all(json.loads(s3.objects[("b", k)])["part"] == i for i, k in enumerate(items))


def test_count_lines_skips_empty_lines_like_the_parser() -> None:
    assert count_lines(b"") == 0
    assert count_lines(b"a\n\nb\r\n\r\nc") == 3
    assert count_lines(b"a\r\n") == 1 and count_lines(b"\n\n\n") == 0


def test_next_line_start_finds_the_break_past_a_long_line() -> None:
    s3 = FakeS3()
    body = b"h\n" + b"x" * 200_000 + b"\nrest\n"
    src = _src(s3, body)
    assert next_line_start(src, s3, 2) == 200_003
    assert next_line_start(src, s3, 200_003) == len(body)
    assert next_line_start(src, s3, len(body)) == len(body)


def test_parquet_is_split_into_runs_of_whole_row_groups(credit_fs: Any) -> None:
    t = pa.table({"customer_id": [f"C{i:07d}" for i in range(20_000)], "age": list(range(20_000))})
    buf = io.BytesIO()
    pq.write_table(t, buf, row_group_size=2_000)
    s3, body = FakeS3(), buf.getvalue()
    plan = plan_upload(_src(s3, body, "f.parquet"), credit_fs, UPLOAD, "b", s3, part_bytes=len(body) // 4)
    assert plan.format == "parquet" and plan.rows_in_file == 20_000 and len(plan.parts) >= 3
    assert plan.parts[0].row_group_start == 0 and plan.parts[-1].row_group_end == 10
    assert [d.row_group_start for d in plan.parts[1:]] == [d.row_group_end for d in plan.parts[:-1]]
    assert sum(d.rows_expected or 0 for d in plan.parts) == 20_000
    d = plan.parts[1]  # one part's row groups read from its span and the footer only
    _, footer = parquet_footer(d.source, s3)
    spans = [(d.start, d.source.get(s3, d.start, d.end)), (d.source.size - len(footer), footer), (0, b"PAR1")]
    f = RangeFile(d.source, s3, spans)
    got = pq.ParquetFile(pa.PythonFile(f, mode="r")).read_row_groups(list(range(d.row_group_start, d.row_group_end)))
    assert got.num_rows == d.rows_expected and f.fetched_outside == 0


def test_too_many_parts_are_refused_naming_the_limit(credit_fs: Any) -> None:
    s3, body = FakeS3(), _csv(20_000)
    plan = plan_upload(_src(s3, body), credit_fs, UPLOAD, "b", s3, part_bytes=100)
    assert plan.parts == [] and plan.refused is not None and plan.refused["check"] == "file_too_large"
    assert f"more than the {INGEST_PARTS_MAX:,} parts" in plan.refused["message"]
    assert not [k for _, k in s3.objects if "/items/" in k]  # no descriptor: the Map does not run


def test_an_unreadable_parquet_footer_is_refused(credit_fs: Any) -> None:
    s3 = FakeS3()
    plan = plan_upload(_src(s3, b"PAR1" + bytes(100), "f.parquet"), credit_fs, UPLOAD, "b", s3)
    assert plan.refused is not None and plan.refused["check"] == "corrupt_file" and "PAR1" in plan.refused["message"]


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"part": 0},
        {**json.loads(b"{}"), "source": {"bucket": "b"}},
    ],
)
def test_malformed_documents_are_named(doc: dict[str, Any]) -> None:
    with pytest.raises(PartsError, match="malformed"):
        PartDescriptor.from_dict(doc)
    with pytest.raises(PartsError, match="malformed"):
        Plan.from_dict(doc)


def test_a_descriptor_with_a_part_outside_its_count_is_refused(credit_fs: Any) -> None:
    s3 = FakeS3()
    plan = plan_upload(_src(s3, _csv(100)), credit_fs, UPLOAD, "b", s3)
    doc = json.loads(plan.parts[0].to_json())
    assert PartDescriptor.from_dict(doc) == plan.parts[0]
    with pytest.raises(PartsError, match="part numbers"):
        PartDescriptor.from_dict({**doc, "part": 5})


def test_shared_hashes_and_keys_find_only_keys_in_several_parts() -> None:
    from driftline.features.parts.keys import KEYS_SCHEMA, cross_part_duplicates, key_hashes, shared_hashes

    def part(keys: list[str], n: int) -> pa.Table:
        k = pa.array(keys, pa.string())
        ones = pa.array([True] * len(keys))
        return pa.table(
            [k, pa.array(key_hashes(k), pa.uint64()), pa.array([n] * len(keys), pa.int32()), ones, ones],
            schema=KEYS_SCHEMA,
        )

    a, b, c = part(["x|1", "y|1", "y|1"], 0), part(["z|2", "x|1"], 1), part(["y|1", "w|3"], 2)
    assert key_hashes(pa.array(["x|1", None]))[1] == 0 and len(set(key_hashes(pa.array(["x|1", "x|2"])))) == 2
    candidates = shared_hashes([t.column("h").to_numpy() for t in (a, b, c)])
    assert sorted(candidates.tolist()) == sorted(key_hashes(pa.array(["x|1", "y|1"])).tolist())
    assert sorted(cross_part_duplicates([a, b, c]).to_pylist()) == ["x|1", "y|1"]
    assert cross_part_duplicates([a]).to_pylist() == [] and shared_hashes([a.column("h").to_numpy()]).size == 0
