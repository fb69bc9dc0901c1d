"""The scale-out drift check's shard query, golden-tested on DuckDB through the local Athena's parser and
Trino -> DuckDB rewrites: the window, the champion of the version, every copy of a redelivery in the same
shard (the summarize step keeps one per row id, :func:`first_copies`), row ids with and without ``index``,
labels gathered per row id in stored order, shards as Python computes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from driftline import athena_queries
from driftline.monitoring.scale import ShardQuery, shard_of
from driftline.monitoring.scale.shards import first_copies
from driftline.monitoring.scale.sql import row_struct_fields
from tests.fixtures.drift_scale import run_select, with_hour

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
FIELDS = ["age", "city"]


def _rec(rid: str, ts: datetime, rows: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    out = [{"label": None, "probability": 0.1 * (i + 1), "value": None} for i in range(len(rows))]
    base = {"v": 2, "request_id": rid, "version": 3, "role": "champion", "part": None, "index": None}
    return {**base, "caller": "alice", "ts": ts.isoformat(), "rows": rows, "outputs": out, **kw}


def _v1(rid: str, ts: datetime, age: int, city: str, **kw: Any) -> dict[str, Any]:
    """A v1 capture: one line per row, ``request_id`` the row id, ``features``/``prediction``, no ``v``."""
    base = {"request_id": rid, "version": 3, "role": "champion", "caller": "alice", "ts": ts.isoformat()}
    pred = {"label": None, "probability": 0.5, "value": None}
    return {**base, "features": {"age": age, "city": city}, "prediction": pred, **kw}


def _query(shards: int = 4, features: tuple[str, ...] = ("age", "city")) -> str:
    return ShardQuery(
        "db",
        "captures_m",
        "feedback_m",
        3,
        T0,
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=1, minutes=20),
        T0 + timedelta(days=1),
        list(features),
        FIELDS,
        shards,
        "s3://bucket/drift-scratch/model=m/run/data/",
    ).render()


def _run(records: list[dict[str, Any]], labels: list[dict[str, Any]], **kw: Any) -> list[dict[str, Any]]:
    row = pa.struct([("age", pa.int64()), ("city", pa.string())])
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
            ("cols", pa.struct([("age", pa.list_(pa.int64())), ("city", pa.list_(pa.string()))])),
            ("outputs", pa.list_(out)),
            ("features", row),
            ("prediction", out),
            ("test", pa.bool_()),
            ("hour", pa.string()),
        ]
    )
    fb = pa.schema([(c, pa.string()) for c in ("request_id", "label", "ts", "by", "hour")])
    tables = {
        "captures_m": pa.Table.from_pylist(
            [with_hour([r])[0] if r.get("ts") else {**r, "hour": f"{T0:%Y/%m/%d/%H}"} for r in records], schema=schema
        ),
        "feedback_m": pa.Table.from_pylist(with_hour(labels), schema=fb),
    }
    kept, _ = first_copies(run_select(_query(**kw), tables, "db"))
    out = kept.to_pylist()
    return sorted(out, key=lambda r: (r["request_id"] is None, r["request_id"] or ""))


def test_window_role_version_and_redelivery() -> None:
    a = _rec("a", T0 + timedelta(minutes=1), [{"age": 30, "city": "x"}, {"age": 40, "city": "y"}])
    rows = _run(
        [
            a,
            a,  # delivered twice
            _rec("b", T0 + timedelta(minutes=2), [{"age": 50, "city": "z"}], role="shadow"),
            _rec("c", T0 + timedelta(minutes=3), [{"age": 60, "city": "z"}], version=2),
            _rec("d", T0 - timedelta(seconds=1), [{"age": 70, "city": "z"}]),
            _rec("e", T0 + timedelta(hours=1), [{"age": 80, "city": "z"}]),  # the end is excluded
        ],
        [],
    )
    assert [(r["request_id"], r["age"], r["city"]) for r in rows] == [("a:0", 30, "x"), ("a:1", 40, "y")]
    assert rows[0]["output"]["probability"] == pytest.approx(0.1) and rows[0]["caller"] == "alice"


def test_row_ids_follow_index_and_parts_are_kept() -> None:
    p0 = _rec("r", T0 + timedelta(minutes=5), [{"age": 1, "city": "a"}], part=0, index=[4])
    p1 = _rec("r", T0 + timedelta(minutes=5), [{"age": 2, "city": "b"}, {"age": 3, "city": "c"}], part=1, index=[5, 9])
    rows = _run([p0, p1, p1], [])
    assert [r["request_id"] for r in rows] == ["r:4", "r:5", "r:9"]


def test_labels_are_gathered_per_row_in_stored_order() -> None:
    rec = _rec("q", T0 + timedelta(minutes=1), [{"age": 1, "city": "a"}, {"age": 2, "city": "b"}])
    labels = [
        {"request_id": "q:1", "label": "1", "ts": (T0 + timedelta(minutes=9)).isoformat(), "by": "bob"},
        {"request_id": "q:1", "label": "0", "ts": (T0 + timedelta(minutes=8)).isoformat(), "by": "alice"},
        {"request_id": "zz:0", "label": "1", "ts": (T0 + timedelta(minutes=8)).isoformat(), "by": "alice"},
    ]
    rows = _run([rec], labels)
    assert rows[0]["label_values"] is None
    assert rows[1]["label_values"] == ["0", "1"] and rows[1]["label_by"] == ["alice", "bob"]


@pytest.mark.parametrize("shards", [1, 7, 64])
def test_shards_match_python(shards: int) -> None:
    recs = [_rec(f"req-{i}", T0 + timedelta(seconds=i), [{"age": i, "city": "c"}]) for i in range(60)]
    rows = _run(recs, [], shards=shards)
    assert len(rows) == 60
    for r in rows:
        assert r["shard"] == shard_of(r["request_id"].rsplit(":", 1)[0], shards)


def test_malformed_lines_are_one_marker_row_each_and_the_rest_is_kept() -> None:
    """The JSON SerDe reads a line that is not a JSON object as a row of NULLs (the local engine too): each
    such line, and a v2 record whose rows and outputs disagree, is one marker row, whatever its time."""
    good = _rec("g", T0 + timedelta(minutes=1), [{"age": 30, "city": "x"}])
    uneven = _rec("u", T0 + timedelta(minutes=2), [{"age": 1, "city": "a"}, {"age": 2, "city": "b"}])
    uneven["outputs"] = uneven["outputs"][:1]
    bad_index = _rec("i", T0 + timedelta(minutes=3), [{"age": 3, "city": "c"}], index=[0, 1])
    late = {**_rec("l", T0 + timedelta(hours=1, minutes=5), []), "rows": None}  # outside the window, still bad
    rows = _run([good, {}, {}, uneven, bad_index, late], [])
    kept = [r for r in rows if r["malformed_line"] is None]
    markers = [r for r in rows if r["malformed_line"] is not None]
    assert [(r["request_id"], r["age"]) for r in kept] == [("g:0", 30)]
    assert len(markers) == 5 and all(r["request_id"] is None and r["age"] is None for r in markers)
    assert all(r["malformed_line"] == 1 for r in markers)


def test_v1_captures_are_rows_next_to_v2_records() -> None:
    """A window mixing formats: a v1 line is one row under its own request id, de-duplicated per (request id,
    role); its features come from ``features``, its output from ``prediction``."""
    v1 = _v1("old:0", T0 + timedelta(minutes=1), 41, "k")
    rows = _run(
        [
            v1,
            v1,  # redelivered
            _v1("old:1", T0 + timedelta(minutes=2), 42, "m", role=None),  # no role: the champion's
            _v1("old:2", T0 + timedelta(minutes=2), 43, "n", role="shadow"),
            _v1("old:3", T0 - timedelta(minutes=2), 44, "o"),
            _rec("new", T0 + timedelta(minutes=3), [{"age": 50, "city": "z"}]),
        ],
        [{"request_id": "old:0", "label": "1", "ts": (T0 + timedelta(minutes=9)).isoformat(), "by": "alice"}],
    )
    assert [(r["request_id"], r["age"], r["city"]) for r in rows] == [
        ("new:0", 50, "z"),
        ("old:0", 41, "k"),
        ("old:1", 42, "m"),
    ]
    assert rows[1]["output"]["probability"] == pytest.approx(0.5) and rows[1]["label_values"] == ["1"]
    assert all(r["malformed_line"] is None for r in rows)


def test_test_traffic_is_left_out() -> None:
    """Requests marked ``"test": true`` (issue 21) are not monitored; ``false`` or absent are."""
    at = T0 + timedelta(minutes=1)
    rows = _run(
        [
            _rec("t", at, [{"age": 1, "city": "a"}], test=True),
            _rec("f", at, [{"age": 2, "city": "b"}], test=False),
            _rec("n", at, [{"age": 3, "city": "c"}]),
            _v1("o:0", at, 4, "d", test=True),
        ],
        [],
    )
    assert [r["request_id"] for r in rows] == ["f:0", "n:0"]


def test_a_record_whose_time_is_not_a_time_is_left_out_not_fatal() -> None:
    """The in-process reader skips a record without a readable ``ts``; the query must not fail on one."""
    odd = {**_rec("odd", T0, [{"age": 9, "city": "q"}]), "ts": "not a time"}
    rows = _run([odd, _rec("ok", T0 + timedelta(minutes=1), [{"age": 1, "city": "a"}])], [])
    assert [(r["request_id"], r["malformed_line"]) for r in rows] == [("ok:0", None)]


def test_shared_constructs_come_from_athena_queries() -> None:
    """One home for the Athena SQL: the shard, the UNLOAD wrapper and the quoting are athena_queries'."""
    text = _query(shards=7)
    assert athena_queries.shard_expression("request_key", 7) in text
    assert text.endswith(
        ") TO 's3://bucket/drift-scratch/model=m/run/data/' WITH (format = 'PARQUET', compression = 'ZSTD', "
        "partitioned_by = ARRAY['shard'])"
    )
    assert text.startswith("UNLOAD (WITH raw AS (") and '"db"."captures_m"' in text


def test_features_must_be_fields_of_the_rows_struct() -> None:
    with pytest.raises(ValueError, match="no field income"):
        _query(features=("age", "income"))


def test_hostile_names_and_values_are_quoted_or_refused() -> None:
    with pytest.raises(ValueError, match="not an Athena identifier"):
        ShardQuery('d"b', "captures_m", "feedback_m", 3, T0, T0, T0, T0, ["age"], FIELDS, 2, "s3://b/x/").render()
    with pytest.raises(ValueError, match="cannot hold NUL"):
        ShardQuery("db", "captures_m", "feedback_m", 3, T0, T0, T0, T0, ["age"], FIELDS, 2, "s3://b/x\x00/").render()
    with pytest.raises(ValueError):
        _query(shards=0)
    with pytest.raises(ValueError):
        _query(shards=101)
    assert row_struct_fields("array<struct<a:int,b:map<string,struct<c:int,d:int>>,e:string>>") == ["a", "b", "e"]
    with pytest.raises(ValueError):
        row_struct_fields("struct<a:int>")


def test_the_query_keeps_every_copy_in_one_shard_and_the_summarize_step_keeps_one() -> None:
    """A redelivered record's rows are all in the query's output, in the same shard, with the same row ids;
    first_copies drops exactly the second copy and keeps every malformed-line marker."""
    a = _rec("a", T0 + timedelta(minutes=1), [{"age": 30, "city": "x"}, {"age": 40, "city": "y"}])
    b = _rec("b", T0 + timedelta(minutes=2), [{"age": 50, "city": "z"}])
    row = pa.struct([("age", pa.int64()), ("city", pa.string())])
    out = pa.struct([("label", pa.string()), ("probability", pa.float64()), ("value", pa.float64())])
    schema = pa.schema(
        [("v", pa.int32()), ("request_id", pa.string()), ("version", pa.int64()), ("role", pa.string()),
         ("part", pa.int64()), ("index", pa.list_(pa.int64())), ("caller", pa.string()), ("ts", pa.string()),
         ("rows", pa.list_(row)), ("cols", pa.struct([("age", pa.list_(pa.int64())), ("city", pa.list_(pa.string()))])),
         ("outputs", pa.list_(out)), ("features", row), ("prediction", out),
         ("test", pa.bool_()), ("hour", pa.string())]
    )  # fmt: skip
    garbage = {"hour": f"{T0:%Y/%m/%d/%H}"}  # the JSON SerDe's row of NULLs for a line that is not JSON
    tables = {
        "captures_m": pa.Table.from_pylist([*with_hour([a, b, a]), garbage, garbage], schema=schema),
        "feedback_m": pa.Table.from_pylist(
            [], schema=pa.schema([(c, pa.string()) for c in ("request_id", "label", "ts", "by", "hour")])
        ),
    }
    raw = run_select(_query(), tables, "db")
    ids = raw.column("request_id").to_pylist()
    assert sorted(i for i in ids if i) == ["a:0", "a:0", "a:1", "a:1", "b:0"] and ids.count(None) == 2
    shards = {r["request_id"]: r["shard"] for r in raw.to_pylist() if r["request_id"]}
    assert shards["a:0"] == shards["a:1"] == shard_of("a", 4)
    kept, dropped = first_copies(raw)
    assert dropped == 2 and kept.num_rows == 5
    assert sorted(i for i in kept.column("request_id").to_pylist() if i) == ["a:0", "a:1", "b:0"]


def test_a_shard_written_as_several_files_is_summarized_once_with_one_copy_per_row() -> None:
    """Athena may write a shard as several files, and a redelivered record's copies may sit in different
    ones: the shard's first file summarizes them all (one copy per row id), the others give empty summaries
    naming it, so the merged rows count every row once whatever the split."""
    import io
    import json

    import boto3
    import pyarrow.parquet as pq
    from moto import mock_aws

    from driftline.drift import build_profile
    from driftline.monitoring.scale import summarize_shard_object

    profile = build_profile(
        pa.table({"age": [20, 30, 40, 50] * 25, "city": ["x", "y", "z", "x"] * 25}), ["age"], ["city"]
    )
    out = pa.struct([("probability", pa.float64())])
    rows = [
        {"request_id": f"r:{i}", "caller": "c", "age": 20 + i, "city": "x", "output": {"probability": 0.5}}
        for i in range(3)
    ]
    schema = pa.schema(
        [
            ("request_id", pa.string()),
            ("caller", pa.string()),
            ("age", pa.int64()),
            ("city", pa.string()),
            ("output", out),
        ]
    )

    def parquet(records: list[dict[str, Any]]) -> bytes:
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(records, schema=schema), buf)
        return buf.getvalue()

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="shards")
        prefix = "scratch/run/data/shard=3/"
        s3.put_object(Bucket="shards", Key=prefix + "q_0", Body=parquet(rows[:2]))
        s3.put_object(Bucket="shards", Key=prefix + "q_1", Body=parquet([rows[1], rows[2]]))  # r:1 again
        docs = {}
        for k in ("q_0", "q_1"):
            summarize_shard_object("shards", prefix + k, f"summaries/{k}.json", profile, client=s3)
            docs[k] = json.loads(s3.get_object(Bucket="shards", Key=f"summaries/{k}.json")["Body"].read())
    assert (
        docs["q_0"]["rows"] == 3
        and docs["q_0"]["copies"] == 1
        and docs["q_0"]["files"] == [prefix + "q_0", prefix + "q_1"]
    )
    assert docs["q_1"]["rows"] == 0 and docs["q_1"]["covered_by"] == prefix + "q_0" and docs["q_1"]["files"] == []
