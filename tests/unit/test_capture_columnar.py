"""Capture format v3 (the rows by column): what the serving writer writes, that every reader sees the same
row views as from the row layout (v2) of the same request, that a record whose columns disagree in length
is a malformed line on both paths (the in-process reader and the scale-out shard query), and that a window
mixing v1, v2 and v3 lines reads the same rows on both paths."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.capture_format import (
    COLUMNS_FIELD,
    FORMAT_VERSION,
    ROW_FIELD,
    ROWS_FORMAT_VERSION,
    captured_rows,
    columnar,
    dict_columns,
    expand,
    is_request_record,
    request_record,
    split_record,
)
from driftline.captures_store import CapturesStore, ReadStats
from driftline.monitoring.scale import ShardQuery
from driftline.monitoring.scale.shards import first_copies
from driftline.serving.capture import (
    MAX_RECORD_BYTES,
    CaptureWriter,
    capture_entry,
    encode_record,
    record_lines,
    row_columns,
)
from driftline.serving.reference_model import example_rows
from driftline.serving.typed_records import TypedRecords, row_dict
from driftline.serving.validation import InputValidator
from tests.fixtures.drift_scale import run_select, with_hour

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
FIELDS = ["age", "city"]


def _record(rows: list[Any], **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "request_id": "req-1",
        "model": "m",
        "version": 3,
        "role": "champion",
        "ts": T0 + timedelta(minutes=1),
        "latency_ms": 0.25,
        "rows": rows,
        "outputs": [{"label": i % 2, "probability": 0.5} for i in range(len(rows))],
    }
    base.update(kw)
    return request_record(**base)


def _line(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(capture_entry(record).line)
    return out


def test_the_writer_writes_typed_rows_by_column_and_readers_see_the_row_layouts_views(credit_fs: Any) -> None:
    schema = credit_fs.input_schema()
    typed = TypedRecords.build(InputValidator(schema))
    assert typed is not None
    rows = example_rows(schema, 100, seed=3, null_share=0.3)
    decoded = typed.decode(json.dumps({"records": rows}), 1000)
    assert decoded is not None
    v3 = _line(_record(decoded.rows, caller="alice", index=list(range(5, 105))))
    v2 = json.loads(
        encode_record(_record([row_dict(r) for r in decoded.rows], caller="alice", index=list(range(5, 105))))
    )
    assert v3["v"] == FORMAT_VERSION and ROW_FIELD not in v3 and list(v3[COLUMNS_FIELD]) == list(rows[0])
    assert v2["v"] == ROWS_FORMAT_VERSION and COLUMNS_FIELD not in v2
    assert all(len(col) == 100 for col in v3[COLUMNS_FIELD].values())
    assert expand(v3) == expand(v2) and expand(v3) is not None
    assert captured_rows(v3) == captured_rows(v2) == 100 and is_request_record(v3) and is_request_record(v2)
    line = capture_entry(_record(decoded.rows)).line
    assert len(line) < 0.6 * len(encode_record(_record(decoded.rows)))  # the keys were most of a row's bytes


def test_rows_whose_fields_differ_keep_the_row_layout() -> None:
    """An absent field must not become a null: such rows stay v2."""
    same = _line(_record([{"x": 1, "c": "a"}, {"c": "b", "x": 2}]))
    assert same["v"] == FORMAT_VERSION and same[COLUMNS_FIELD] == {"x": [1, 2], "c": ["a", "b"]}
    differ = _line(_record([{"x": 1, "c": "a"}, {"x": 2}]))
    assert differ["v"] == ROWS_FORMAT_VERSION and differ[ROW_FIELD] == [{"x": 1, "c": "a"}, {"x": 2}]
    assert dict_columns([]) is None and dict_columns([{"x": 1}, ["x"]]) is None and row_columns([]) is None


def test_a_typed_row_with_an_unset_optional_field_keeps_the_row_layout() -> None:
    row = msgspec.defstruct(
        "Row",
        [("f0", int, msgspec.field(name="age")), ("o0", str | msgspec.UnsetType, msgspec.field(default=msgspec.UNSET))],
        forbid_unknown_fields=True,
        gc=False,
    )
    full = [row(1, "x"), row(2, "y")]
    assert row_columns(full) == {"age": (1, 2), "o0": ("x", "y")}
    assert row_columns([row(1, "x"), row(2)]) is None
    assert _line(_record([row(1, "x"), row(2)]))[ROW_FIELD] == [{"age": 1, "o0": "x"}, {"age": 2}]
    other = msgspec.defstruct("Other", [("f0", int)], gc=False)
    assert row_columns([row(1, "x"), other(2)]) is None  # rows of two shapes are never zipped together


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r["cols"]["x"].pop(), "a column one value short"),
        (lambda r: r["cols"]["c"].append("extra"), "a column one value long"),
        (lambda r: r["outputs"].pop(), "outputs shorter than the columns"),
        (lambda r: r.update(index=[0]), "an index shorter than the rows"),
        (lambda r: r.update(cols=[[1, 2, 3]]), "cols not an object"),
        (lambda r: r["cols"].update(x=7), "a column that is not an array"),
        (lambda r: r.pop("cols"), "no cols"),
        (lambda r: r["outputs"].__setitem__(0, 5), "an output that is not an object"),
    ],
)
def test_columns_that_disagree_make_a_malformed_record(change: Any, why: str) -> None:
    rec = _line(_record([{"x": i, "c": "a"} for i in range(3)]))
    assert expand(rec) is not None
    change(rec)
    assert expand(rec) is None, why


def test_empty_columns_give_rows_without_features() -> None:
    rec = {"v": 3, "request_id": "r", "cols": {}, "outputs": [{"value": 1.0}, {"value": 2.0}]}
    assert [(r["request_id"], r["features"]) for r in expand(rec) or []] == [("r:0", {}), ("r:1", {})]


def test_a_v3_record_over_the_record_limit_is_split_by_column() -> None:
    rows = [{"x": i, "blob": "z" * 3000} for i in range(700)]
    rec = _record(rows)
    entry = capture_entry(rec)
    assert len(entry.line) > MAX_RECORD_BYTES
    parts, lost = record_lines(json.loads(entry.line), entry.line)
    assert lost == 0 and len(parts) >= 3 and all(len(p) <= MAX_RECORD_BYTES for p in parts)
    decoded = [json.loads(p) for p in parts]
    assert all(d["v"] == FORMAT_VERSION and COLUMNS_FIELD in d for d in decoded)
    assert [d["part"] for d in decoded] == list(range(len(parts))) and {d["parts"] for d in decoded} == {len(parts)}
    views = [v for d in decoded for v in expand(d) or []]
    assert views == expand(json.loads(entry.line))
    w = CaptureWriter(_Sink(), mode="sync")
    w.submit([_record(rows)])
    assert w.sent == 1 and w.drain_failures() == {}


class _Sink:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def send(self, model: str, lines: Any) -> list[bool]:
        self.lines += list(lines)
        return [True] * len(lines)


def test_split_keeps_parts_whole_when_one_row_is_too_large() -> None:
    rec = columnar(_record([{"x": 1}, {"x": 2}]), {"x": [1, "y" * 200]})
    limit = len(encode_record(columnar(_record([{"x": 1}]), {"x": [1]}))) + 60  # room for part, parts, index
    parts, lost = split_record(rec, encode_record, limit)
    assert lost == 1 and len(parts) == 1 and expand(json.loads(parts[0])) is not None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries({"x": st.integers(-(2**40), 2**40) | st.none(), "c": st.text(max_size=5) | st.none()}),
        min_size=1,
        max_size=12,
    ),
    st.booleans(),
)
def test_v3_and_v2_of_the_same_request_expand_alike(rows: list[dict[str, Any]], with_index: bool) -> None:
    index = [3 * i for i in range(len(rows))] if with_index else None
    v3 = _line(_record(rows, index=index))
    v2 = json.loads(encode_record(_record(rows, index=index)))
    assert v3["v"] == FORMAT_VERSION and expand(v3) == expand(v2)


# ---- the in-process reader ------------------------------------------------------------------------------
class _S3:
    """list_objects_v2 / get_object over an in-memory bucket (what CapturesStore reads)."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_paginator(self, name: str) -> Any:
        objects = self.objects

        class _P:
            def paginate(self, Bucket: str, Prefix: str, **kw: Any) -> Any:
                keys = sorted(k for k in objects if k.startswith(Prefix))
                return [{"Contents": [{"Key": k, "Size": len(objects[k]), "LastModified": T0} for k in keys]}]

        return _P()

    def get_object(self, Bucket: str, Key: str, **kw: Any) -> Any:
        import io

        return {"Body": io.BytesIO(self.objects[Key])}


def _window_lines() -> list[dict[str, Any]]:
    """v1 lines, a v2 record, a v3 record (twice: redelivered) and two malformed v3 records."""
    at = (T0 + timedelta(minutes=2)).isoformat()
    v1 = [
        {"request_id": f"old:{i}", "version": 3, "role": "champion", "ts": at, "features": {"age": 40 + i, "city": "k"}}
        | {"prediction": {"label": None, "probability": 0.5, "value": None}, "caller": "alice"}
        for i in range(2)
    ]
    out = [{"label": None, "probability": 0.25, "value": None}] * 3
    head = {"version": 3, "role": "champion", "ts": at, "caller": "alice", "model": "m"}
    v2 = {"v": 2, "request_id": "rows", **head, "rows": [{"age": 1, "city": "a"}, {"age": 2, "city": "b"}]}
    v2["outputs"] = out[:2]
    v3 = {"v": 3, "request_id": "cols", **head, "cols": {"age": [5, 6, 7], "city": ["x", None, "z"]}, "outputs": out}
    short = {**v3, "request_id": "short", "cols": {"age": [5, 6], "city": ["x", "y", "z"]}}
    long_index = {**v3, "request_id": "index", "index": [0, 1]}
    return [*v1, v2, v3, v3, short, long_index]


def test_the_in_process_reader_counts_malformed_v3_lines_and_reads_the_rest() -> None:
    body = "\n".join(json.dumps(r) for r in _window_lines()).encode()
    store = CapturesStore("b", client=_S3({f"captures/model=m/{T0:%Y/%m/%d/%H}/obj": body}))
    stats = ReadStats()
    got = list(store.captures("m", T0, T0 + timedelta(hours=1), stats=stats, max_records=1000))
    assert stats.n_bad_lines == 2 and stats.n_duplicates == 3
    assert [(r["request_id"], r["features"].get("age")) for r in got] == [
        ("old:0", 40),
        ("old:1", 41),
        ("rows:0", 1),
        ("rows:1", 2),
        ("cols:0", 5),
        ("cols:1", 6),
        ("cols:2", 7),
    ]


# ---- the scale-out shard query (golden-tested on DuckDB, as the local Athena runs it) ----------------
def _run_query(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    row = pa.struct([("age", pa.int64()), ("city", pa.string())])
    cols = pa.struct([("age", pa.list_(pa.int64())), ("city", pa.list_(pa.string()))])
    out = pa.struct([("label", pa.string()), ("probability", pa.float64()), ("value", pa.float64())])
    schema = pa.schema(
        [
            ("v", pa.int32()),
            ("request_id", pa.string()),
            ("version", pa.int64()),
            ("role", pa.string()),
            ("part", pa.int64()),
            ("index", pa.list_(pa.int64())),
            ("caller", pa.string()),
            ("ts", pa.string()),
            ("rows", pa.list_(row)),
            ("cols", cols),
            ("outputs", pa.list_(out)),
            ("features", row),
            ("prediction", out),
            ("test", pa.bool_()),
            ("hour", pa.string()),
        ]
    )
    fb = pa.schema([(c, pa.string()) for c in ("request_id", "label", "ts", "by", "hour")])
    query = ShardQuery(
        "db",
        "captures_m",
        "feedback_m",
        3,
        T0,
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1),
        T0 + timedelta(days=1),
        FIELDS,
        FIELDS,
        4,
        "s3://bucket/drift-scratch/model=m/run/data/",
    ).render()
    tables = {
        "captures_m": pa.Table.from_pylist(with_hour(records), schema=schema),
        "feedback_m": pa.Table.from_pylist([], schema=fb),
    }
    kept, _ = first_copies(run_select(query, tables, "db"))
    return sorted(kept.to_pylist(), key=lambda r: (r["request_id"] is None, r["request_id"] or ""))


def test_the_shard_query_reads_v3_next_to_v1_and_v2_like_the_in_process_reader() -> None:
    rows = _run_query(_window_lines())
    kept = [r for r in rows if r["malformed_line"] is None]
    assert [(r["request_id"], r["age"], r["city"]) for r in kept] == [
        ("cols:0", 5, "x"),
        ("cols:1", 6, None),
        ("cols:2", 7, "z"),
        ("old:0", 40, "k"),
        ("old:1", 41, "k"),
        ("rows:0", 1, "a"),
        ("rows:1", 2, "b"),
    ]
    assert kept[0]["output"]["probability"] == pytest.approx(0.25) and kept[0]["caller"] == "alice"
    markers = [r for r in rows if r["malformed_line"] is not None]
    assert len(markers) == 2 and all(r["request_id"] is None and r["age"] is None for r in markers)


def test_the_shard_query_follows_a_v3_index_and_leaves_out_other_roles_and_empty_records() -> None:
    at = (T0 + timedelta(minutes=3)).isoformat()
    out = [{"label": None, "probability": 0.5, "value": None}] * 2
    base = {"v": 3, "version": 3, "role": "champion", "ts": at, "outputs": out}
    rows = _run_query(
        [
            {**base, "request_id": "idx", "cols": {"age": [1, 2], "city": ["a", "b"]}, "index": [4, 9]},
            {**base, "request_id": "shadow", "role": "shadow", "cols": {"age": [1, 2], "city": ["a", "b"]}},
            {**base, "request_id": "empty", "cols": {"age": [], "city": []}, "outputs": []},
            {**base, "request_id": "nocity", "cols": {"age": [3, 4]}},  # an absent column reads as null
            {**base, "request_id": "v9", "v": 9, "cols": {"age": [1, 2], "city": ["a", "b"]}},
        ]
    )
    assert [(r["request_id"], r["age"], r["city"]) for r in rows] == [
        ("idx:4", 1, "a"),
        ("idx:9", 2, "b"),
        ("nocity:0", 3, None),
        ("nocity:1", 4, None),
        ("v9", None, None),  # an unknown version reads as a v1 line, as CapturesStore reads it
    ]
