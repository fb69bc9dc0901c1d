"""Capture format v2: one record per request and role, the v1 row view every reader gets, and the split
of records larger than Firehose's record limit (never dropped). The columnar v3 layout the writer uses
is tested in test_capture_columnar.py."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.capture_format import (
    ROWS_FORMAT_VERSION,
    TEST_FIELD,
    captured_rows,
    expand,
    is_test,
    record_key,
    request_record,
    split_record,
)
from driftline.serving.capture import MAX_RECORD_BYTES, CaptureWriter, encode_lines, encode_record

TS = datetime(2026, 11, 26, 10, 0, 1, 234567, tzinfo=UTC)


def _strict(line: bytes) -> Any:
    """Parse as standard JSON only (no NaN/Infinity tokens, which Athena's JSON SerDe refuses)."""

    def refuse(token: str) -> Any:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(line, parse_constant=refuse)


def _record(n: int, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "request_id": "req-1",
        "model": "m",
        "version": 3,
        "role": "champion",
        "ts": TS,
        "latency_ms": 0.25,
        "rows": [{"x": i, "c": "a"} for i in range(n)],
        "outputs": [{"label": i % 2, "probability": 0.5, "probabilities": {"0": 0.5, "1": 0.5}} for i in range(n)],
    }
    base.update(kw)
    return request_record(**base)


def test_round_trip_gives_the_v1_row_view() -> None:
    rec = _record(3, caller="arn:aws:iam::1:role/alice")
    back = _strict(encode_record(rec))
    assert back["v"] == ROWS_FORMAT_VERSION and back["ts"] == "2026-11-26T10:00:01.234567+00:00"
    assert "index" not in back and "part" not in back  # a whole request: no index, no parts
    rows = expand(back)
    assert rows is not None and [r["request_id"] for r in rows] == ["req-1:0", "req-1:1", "req-1:2"]
    assert rows[1] == {
        "request_id": "req-1:1",
        "model": "m",
        "version": 3,
        "role": "champion",
        "ts": "2026-11-26T10:00:01.234567+00:00",
        "latency_ms": 0.25,
        "caller": "arn:aws:iam::1:role/alice",
        "features": {"x": 1, "c": "a"},
        "prediction": {"label": 1, "probability": 0.5, "probabilities": {"0": 0.5, "1": 0.5}},
    }
    assert captured_rows(back) == 3 and captured_rows({"request_id": "r:0"}) == 1
    assert record_key(back) == ("req-1", "champion", 0)


def test_an_index_names_the_rows_positions_in_the_request() -> None:
    rec = _record(2, role="challenger", index=[4, 9])
    rows = expand(_strict(encode_record(rec)))
    assert rows is not None and [(r["request_id"], r["role"]) for r in rows] == [
        ("req-1:4", "challenger"),
        ("req-1:9", "challenger"),
    ]
    assert "caller" not in rows[0]  # unauthenticated: no caller, as in v1


def test_batch_encoding_equals_record_encoding() -> None:
    recs = [_record(2), _record(1, request_id="req-2", role="shadow"), _record(0, request_id="req-3")]
    assert encode_lines([dict(r) for r in recs]) == [encode_record(dict(r)) for r in recs]


@pytest.mark.parametrize(
    "odd",
    [
        {"s": "\ud800"},  # a lone surrogate: msgspec refuses it, json escapes it
        {"x": float("nan"), "y": float("inf"), "z": -float("inf")},
        {"big": 2**70},
        {"huge": "é" * 200_000 + '\n\u2028"\\'},
    ],
)
def test_hostile_values_still_make_one_standard_json_line(odd: dict[str, Any]) -> None:
    rec = _record(2)
    rec["rows"][1].update(odd)
    rec["latency_ms"] = float("nan")
    line = encode_record(rec)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = _strict(line)
    assert back["latency_ms"] is None
    rows = expand(back)
    assert rows is not None and len(rows) == 2
    for k, v in odd.items():
        got = rows[1]["features"][k]
        assert got is None if isinstance(v, float) and not math.isfinite(v) else got == v


def test_a_huge_request_is_split_into_parts_that_each_fit() -> None:
    rec = _record(3000)
    for r in rec["rows"]:
        r["text"] = "w" * 700  # ~2.3 MB of rows: three records' worth at least
    whole = encode_record(rec)
    assert len(whole) > 2 * MAX_RECORD_BYTES
    parts, lost = split_record(_strict(whole), encode_record, MAX_RECORD_BYTES)
    assert lost == 0 and len(parts) >= 3
    decoded = [_strict(p) for p in parts]
    assert all(len(p) <= MAX_RECORD_BYTES for p in parts)
    assert {(d["request_id"], d["role"], d["parts"]) for d in decoded} == {("req-1", "champion", len(parts))}
    assert [d["part"] for d in decoded] == list(range(len(parts)))
    assert len({record_key(d) for d in decoded}) == len(parts)  # distinct under de-duplication
    rows = [row for d in decoded for row in expand(d) or []]
    assert rows == expand(_strict(whole))  # the same rows, in order, with their own ids


def test_a_row_alone_over_the_limit_is_reported_not_hidden() -> None:
    rec = _strict(encode_record(_record(5)))
    rec["rows"][2]["blob"] = "z" * 5000
    parts, lost = split_record(rec, encode_record, 2000)
    assert lost == 1
    kept = [row["request_id"] for p in parts for row in expand(_strict(p)) or []]
    assert kept == ["req-1:0", "req-1:1", "req-1:3", "req-1:4"]


class _Sink:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def send(self, model: str, lines: Any) -> list[bool]:
        self.lines += lines
        return [True] * len(lines)


def test_the_writer_splits_a_huge_record_and_loses_nothing() -> None:
    sink = _Sink()
    w = CaptureWriter(sink, mode="sync")
    big = _record(3000)
    for r in big["rows"]:
        r["text"] = "w" * 700
    w.submit([big, _record(2, request_id="small")])
    assert w.sent == 2 and w.drain_failures() == {}
    assert len(sink.lines) >= 4 and all(len(line) <= MAX_RECORD_BYTES for line in sink.lines)
    rows = [row for line in sink.lines for row in expand(_strict(line)) or []]
    assert len(rows) == 3002 and rows[-1]["request_id"] == "small:1"


def test_the_writer_counts_a_record_with_an_unwritable_row_as_failed() -> None:
    sink = _Sink()
    w = CaptureWriter(sink, mode="sync")
    rec = _record(3)
    rec["rows"][0]["blob"] = "z" * (MAX_RECORD_BYTES + 10)
    w.submit([rec])
    assert w.sent == 0 and w.drain_failures() == {("m", 3): 1}
    rows = [row["request_id"] for line in sink.lines for row in expand(_strict(line)) or []]
    assert rows == ["req-1:1", "req-1:2"]  # the rest of the request is still written


@pytest.mark.parametrize(
    "damage",
    [
        {"request_id": 7},
        {"rows": "x"},
        {"outputs": [{"label": 1}]},  # fewer outputs than rows
        {"rows": [1, 2]},
        {"outputs": [None, None]},
        {"index": [0]},
        {"index": [0, -1]},
        {"index": [0, True]},
        {"index": "01"},
        {"part": 2, "parts": 2},
        {"part": 0},
        {"part": "0", "parts": 1},
    ],
)
def test_malformed_records_expand_to_none(damage: dict[str, Any]) -> None:
    rec = _strict(encode_record(_record(2)))
    rec.update(damage)
    assert expand(rec) is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(["request_id", "rows", "outputs", "index", "part", "parts", "ts", "role", "version"]),
        _json,
    )
)
def test_expand_never_raises(fields: dict[str, Any]) -> None:
    rec = {"v": 2, **fields}
    rows = expand(rec)
    assert rows is None or len(rows) == captured_rows(rec)
    record_key(rec)


def test_the_test_mark_is_written_only_for_test_traffic_and_reaches_every_view_and_part() -> None:
    plain = _record(2)
    assert TEST_FIELD not in plain and not is_test(plain)
    marked = _record(2, test=True)
    line = encode_record(marked)
    assert _strict(line)[TEST_FIELD] is True and TEST_FIELD == "test"  # the name the Athena tables share
    views = expand(_strict(line))
    assert views is not None and [v[TEST_FIELD] for v in views] == [True, True]
    assert all(TEST_FIELD not in v for v in expand(_strict(encode_record(plain))) or [])
    parts, lost = split_record(_record(40, test=True), encode_record, 400)
    assert lost == 0 and len(parts) > 1 and all(_strict(p)[TEST_FIELD] is True for p in parts)
    assert not is_test({TEST_FIELD: "true"}) and not is_test({TEST_FIELD: 1})  # only a JSON true marks
