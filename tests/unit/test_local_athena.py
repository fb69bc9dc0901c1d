"""The local Athena without an emulator: the SQL layer (Trino → DuckDB, UNLOAD, errors, values) and the
engine over a local folder standing in for S3. Every query of :mod:`driftline.athena_queries` is
golden-tested here: its DuckDB text and its result on known data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from sqlglot import exp

from driftline import athena_queries as q
from driftline.athena_tables import Column, TableSpec
from driftline.local import athena_sql as sql
from driftline.local.athena import (
    MAX_RESULTS,
    MAX_WRITE_PARTITIONS,
    AthenaEngine,
    EngineOptions,
    InMemoryCatalog,
    ResultsError,
)

BUCKET = "bkt"
DB = "db"


def trino_shard(value: str, shards: int) -> int:
    """What Trino computes for :func:`q.shard_expression` (its % truncates toward zero)."""
    h = int.from_bytes(hashlib.md5(value.encode()).digest()[:8], "big", signed=True)
    return abs(h) % shards


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Any]:
    """Feature rows (Parquet, two date partitions), a label spine (Parquet) and requests (JSON lines)."""
    root = tmp_path / BUCKET
    feats = pd.DataFrame(
        {
            "customer": ["a", "a", "a", "b", "b", "c"],
            "ts": pd.to_datetime(
                [
                    "2026-01-01 00:00",
                    "2026-01-02 00:00",
                    "2026-01-03 00:00",
                    "2026-01-01 12:00",
                    "2026-01-05 00:00",
                    "2026-01-09 00:00",
                ]
            ),
            "income": [10.0, 20.0, 30.0, 5.0, 6.0, 7.0],
        }
    )
    for day, part in feats.groupby(feats["ts"].dt.strftime("%Y-%m")):
        (root / "features" / f"date={day}").mkdir(parents=True, exist_ok=True)
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False), root / "features" / f"date={day}" / "u.parquet"
        )
    spine = pd.DataFrame(
        {
            "customer": ["a", "a", "b", "c", "d"],
            "event_ts": pd.to_datetime(
                ["2026-01-02 06:00", "2026-01-04 00:00", "2026-01-02 00:00", "2026-01-08 00:00", "2026-01-02 00:00"]
            ),
            "label": [1, 0, 1, 0, 1],
        }
    )
    (root / "spine").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(spine, preserve_index=False), root / "spine" / "s.parquet")
    requests = [
        {
            "request_id": f"r{i % 7}",
            "ts": f"2026-01-01T00:00:{i:02d}Z",
            "rows": [{"x": float(i), "y": "p"}, {"x": -1.0, "y": "q"}],
        }
        for i in range(20)
    ]
    (root / "requests" / "model=m" / "2026" / "01" / "01" / "00").mkdir(parents=True)
    with open(root / "requests" / "model=m" / "2026" / "01" / "01" / "00" / "a.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in requests)
    specs = [
        TableSpec(
            DB,
            "features",
            "b",
            "features/",
            (Column("customer", "string"), Column("ts", "timestamp"), Column("income", "double")),
            "parquet",
            (Column("date", "string"),),
            location_template="date=${date}",
        ),
        TableSpec(
            DB,
            "spine",
            "b",
            "spine/",
            (Column("customer", "string"), Column("event_ts", "timestamp"), Column("label", "bigint")),
            "parquet",
        ),
        TableSpec(
            DB,
            "requests",
            "b",
            "requests/",
            (
                Column("request_id", "string"),
                Column("ts", "timestamp"),
                Column("rows", "array<struct<x:double,y:string>>"),
            ),
            "json-lines",
            (Column("model", "string"), Column("hour", "string")),
            location_template="model=${model}/${hour}",
        ),
    ]
    catalog = InMemoryCatalog({DB: {s.name: s.table_input(BUCKET) for s in specs}})
    return {
        "root": tmp_path,
        "fs": pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem()),
        "catalog": catalog,
        "features": feats,
        "spine": spine,
        "requests": requests,
    }


@pytest.fixture
def engine(data: dict[str, Any]) -> Iterator[AthenaEngine]:
    e = AthenaEngine(data["catalog"], data["fs"], EngineOptions(threads=1, max_concurrent=1))
    yield e
    e.shutdown()


def run(engine: AthenaEngine, query: str, output: str | None = f"s3://{BUCKET}/results/") -> Any:
    ex = engine.wait(engine.start(query, database=DB, output_location=output), timeout_s=60)
    assert ex.state in ("SUCCEEDED", "FAILED", "CANCELLED")
    return ex


def values(engine: AthenaEngine, query: str) -> list[list[str | None]]:
    ex = run(engine, query)
    assert ex.state == "SUCCEEDED", ex.reason
    rows: list[list[str | None]] = ex.rows
    return rows


# ---- golden queries ------------------------------------------------------------------------------
PIT = q.point_in_time_join(
    spine="spine",
    features="db.features",
    keys=["customer"],
    spine_time="event_ts",
    feature_time="ts",
    columns=["income"],
)


def test_point_in_time_join_golden_text_and_result(engine: AthenaEngine, data: dict[str, Any]) -> None:
    assert sql.to_duckdb(sql.parse_statement(PIT).tree) == (
        'SELECT "customer", "event_ts", "income" FROM (SELECT s.*, f."income" AS "income", ROW_NUMBER() OVER '
        '(PARTITION BY s."customer", s."event_ts" ORDER BY f."ts" DESC) AS driftline_rank FROM "spine" AS s '
        'LEFT JOIN "db"."features" AS f ON f."customer" = s."customer" AND f."ts" <= s."event_ts") AS ranked '
        "WHERE driftline_rank = 1"
    )
    got = {(r[0], r[1]): r[2] for r in values(engine, PIT + " ORDER BY 1, 2")}
    feats, spine = data["features"], data["spine"]
    for row in spine.itertuples():
        past = feats[(feats.customer == row.customer) & (feats.ts <= row.event_ts)].sort_values("ts")
        expected = None if past.empty else repr(float(past.income.iloc[-1]))
        assert got[(row.customer, row.event_ts.strftime("%Y-%m-%d %H:%M:%S.000"))] == expected


def test_shard_expression_equals_trinos_arithmetic(engine: AthenaEngine, data: dict[str, Any]) -> None:
    expr = q.shard_expression("request_id", 5)
    assert expr == 'abs(from_big_endian_64(substr(md5(to_utf8(CAST("request_id" AS varchar))), 1, 8)) % 5)'
    rows = values(engine, f"SELECT DISTINCT request_id, {expr} AS shard FROM requests ORDER BY 1")
    assert rows == [[r, str(trino_shard(r, 5))] for r in sorted({x["request_id"] for x in data["requests"]})]
    many = [f"req-{i}" for i in range(2000)]  # both signs of the 64-bit prefix, every shard
    table = ", ".join(f"('{m}')" for m in many)
    got = values(engine, f"SELECT v, {q.shard_expression('v', 16)} FROM (VALUES {table}) AS t(v)")
    assert {r[0]: int(r[1] or -1) for r in got} == {m: trino_shard(m, 16) for m in many}


def test_unnest_rows_with_ordinality_and_exact_aggregates(engine: AthenaEngine, data: dict[str, Any]) -> None:
    rows = values(
        engine,
        "SELECT model, hour, count(*) AS n, count(DISTINCT request_id) AS ids, sum(r.x) AS total, "
        "sum(CASE WHEN r.y = 'q' THEN 1 ELSE 0 END) AS qs, max(i) AS widest "
        "FROM requests CROSS JOIN UNNEST(rows) WITH ORDINALITY AS r(x, y, i) GROUP BY model, hour",
    )
    reqs = data["requests"]
    assert rows == [
        [
            "m",
            "2026/01/01/00",
            str(2 * len(reqs)),
            str(len({r["request_id"] for r in reqs})),
            repr(sum(x["x"] for r in reqs for x in r["rows"])),
            str(len(reqs)),
            "2",
        ]
    ]


def test_execution_parameters_bind_literals(engine: AthenaEngine) -> None:
    query = "SELECT customer, label FROM spine WHERE customer = ? AND label >= ? ORDER BY event_ts"
    ex = engine.wait(engine.start(query, database=DB, parameters=["'a'", "1"]))
    assert ex.state == "SUCCEEDED", ex.reason
    assert ex.rows == [["a", "1"]]
    for params, reason in (
        (["'a'"], "INVALID_PARAMETER: the query has 2 parameter(s)"),
        (["'a'", "1); DROP TABLE spine; --"], "INVALID_PARAMETER: execution parameter"),
        (["'a'", "label"], "INVALID_PARAMETER: execution parameter 'label' is not a SQL literal"),
    ):
        failed = engine.wait(engine.start(query, database=DB, parameters=params))
        assert failed.state == "FAILED" and (failed.reason or "").startswith(reason), failed.reason


def test_division_is_trinos(engine: AthenaEngine) -> None:
    assert values(engine, "SELECT 7 / 2, -7 / 2, 7.0 / 2, CAST(7 AS double) / 2, 7 % 3") == [
        ["3", "-3", "3.5", "3.5", "1"]
    ]
    assert run(engine, "SELECT 1 / 0").reason == "DIVISION_BY_ZERO: line 1:1: Division by zero"


def test_partition_filter_and_pending_files(engine: AthenaEngine, data: dict[str, Any]) -> None:
    (data["root"] / BUCKET / "features" / "_pending").mkdir()
    (data["root"] / BUCKET / "features" / "_pending" / "u").write_text("not parquet")
    assert values(engine, "SELECT date, count(*), sum(income) FROM features WHERE date = '2026-01' GROUP BY date") == [
        ["2026-01", "6", "78.0"]
    ]


def _keeps(query: str, table: str = "t") -> list[str | None] | None:
    tree = sql.parse_statement(query).tree
    node = next(t for t in tree.find_all(exp.Table) if t.name == table)
    keep = sql.partition_filter(node, {"hour", "date"})
    hours: list[str | None] = ["2026/01/01/00", "2026/01/01/05", "2026/01/02/00", None]
    return None if keep is None else [h for h in hours if keep({"hour": h})]


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ("SELECT * FROM t WHERE hour BETWEEN '2026/01/01/00' AND '2026/01/01/23'", ["2026/01/01/00", "2026/01/01/05"]),
        ("SELECT * FROM t WHERE hour = '2026/01/02/00' AND x > 1", ["2026/01/02/00"]),
        ("SELECT * FROM t WHERE '2026/01/01/05' <= hour", ["2026/01/01/05", "2026/01/02/00"]),
        ("SELECT * FROM t AS a WHERE a.hour IN ('2026/01/01/00', 'zz')", ["2026/01/01/00"]),
        ("WITH c AS (SELECT * FROM t WHERE (hour < '2026/01/01/05')) SELECT * FROM c", ["2026/01/01/00"]),
        ("SELECT * FROM t WHERE hour = '2026/01/02/00' OR x = 1", None),
        ("SELECT * FROM t JOIN u ON t.k = u.k WHERE hour = '2026/01/02/00'", None),
        ("SELECT * FROM t JOIN u ON t.k = u.k WHERE u.hour = '2026/01/02/00'", None),
        ("SELECT * FROM u LEFT JOIN t ON t.k = u.k WHERE t.hour > '2026/01/01/05'", ["2026/01/02/00"]),
        ("SELECT * FROM t WHERE hour > 5", None),
        ("SELECT * FROM t WHERE NOT hour = '2026/01/02/00'", None),
        ("SELECT * FROM (SELECT * FROM t) AS s WHERE hour = '2026/01/02/00'", None),
    ],
)
def test_partition_filter_uses_only_safe_predicates(query: str, kept: list[str | None] | None) -> None:
    assert _keeps(query) == kept


def test_pruned_partitions_are_not_read(engine: AthenaEngine) -> None:
    full = run(engine, "SELECT count(*) FROM features")
    one = run(engine, "SELECT count(*) FROM features WHERE date = '2026-01'")
    none = run(engine, "SELECT count(*) FROM features WHERE date = '1999-01'")
    either = run(engine, "SELECT count(*) FROM features WHERE date = '1999-01' OR income > 0")
    assert [full.rows, one.rows, none.rows, either.rows] == [[["6"]], [["6"]], [["0"]], [["6"]]]
    assert full.scanned_bytes == one.scanned_bytes == either.scanned_bytes > 0 and none.scanned_bytes == 0
    requests = run(engine, "SELECT count(*) FROM requests WHERE hour >= '2026/01/02/00'")
    assert requests.rows == [["0"]] and requests.scanned_bytes == 0
    both = run(
        engine,
        "SELECT count(*) FROM requests a JOIN requests b ON a.request_id = b.request_id WHERE a.hour = 'x'",
    )
    assert both.rows == [["0"]] and both.scanned_bytes > 0  # b is unfiltered: the files are read


# ---- UNLOAD ------------------------------------------------------------------------------------------
def test_unload_builder_and_parser_round_trip() -> None:
    text = q.unload("SELECT 1 AS a, 'it''s' AS b", "s3://bkt/o'k/", partitioned_by=["a"], compression="snappy")
    assert text == (
        "UNLOAD (SELECT 1 AS a, 'it''s' AS b) TO 's3://bkt/o''k/' "
        "WITH (format = 'PARQUET', compression = 'SNAPPY', partitioned_by = ARRAY['a'])"
    )
    u = sql.parse_unload(text)
    assert u == sql.Unload("SELECT 1 AS a, 'it''s' AS b", 8, "s3://bkt/o'k/", "parquet", "snappy", ("a",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unload (select 1) to 's3://bkt/p'", sql.Unload("select 1", 8, "s3://bkt/p/", "parquet", "gzip", ())),
        (
            "UNLOAD(SELECT ')' AS x -- )\n) TO 's3://bkt/p/' WITH (format='parquet', compression = 'NONE');",
            sql.Unload("SELECT ')' AS x -- )\n", 7, "s3://bkt/p/", "parquet", "none", ()),
        ),
        (
            "/* c */ UNLOAD (SELECT 1) TO 's3://bkt/p/' WITH (partitioned_by = ARRAY['a', 'b'])",
            sql.Unload("SELECT 1", 16, "s3://bkt/p/", "parquet", "gzip", ("a", "b")),
        ),
    ],
)
def test_unload_parse(text: str, expected: sql.Unload) -> None:
    assert sql.parse_unload(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("UNLOAD SELECT 1 TO 's3://b/'", "SYNTAX_ERROR: line 1:8: expected '(' after UNLOAD"),
        ("UNLOAD (SELECT 1", "SYNTAX_ERROR: line 1:8: unbalanced parentheses"),
        ("UNLOAD (SELECT 1) 's3://bkt/'", "SYNTAX_ERROR: line 1:19: expected TO"),
        ("UNLOAD (SELECT 1) TO '/etc/'", "INVALID_PARAMETER"),
        ("UNLOAD (SELECT 1) TO 's3://bkt/p/' WITH (format = 'ORC')", "NOT_SUPPORTED"),
        ("UNLOAD (SELECT 1) TO 's3://bkt/p/' WITH (compression = 'LZ4')", "NOT_SUPPORTED"),
        ("UNLOAD (SELECT 1) TO 's3://bkt/p/' WITH (partitioned_by = 'a')", "SYNTAX_ERROR"),
        ("UNLOAD (SELECT 1) TO 's3://bkt/p/' WITH (field_delimiter = ',')", "NOT_SUPPORTED"),
        ("UNLOAD (SELECT 1) TO 's3://bkt/p/' WITH (format = 'PARQUET'", "SYNTAX_ERROR"),
        ("UNLOAD (SELECT 1) TO 's3://bkt/p/' junk", "SYNTAX_ERROR: line 1:36: unexpected text after UNLOAD"),
        ("UNLOAD (SELECT 1) TO 's3://bkt/p/", "SYNTAX_ERROR: line 1:22: unterminated string"),
    ],
)
def test_unload_parse_errors(text: str, reason: str) -> None:
    with pytest.raises(sql.AthenaQueryError) as err:
        sql.parse_unload(text)
    assert err.value.reason.startswith(reason)


def test_unload_writes_partitioned_parquet_named_like_athena(engine: AthenaEngine, data: dict[str, Any]) -> None:
    select = f"SELECT DISTINCT request_id, {q.shard_expression('request_id', 3)} AS shard FROM requests"
    ex = run(engine, q.unload(select, f"s3://{BUCKET}/out/", partitioned_by=["shard"]))
    assert ex.state == "SUCCEEDED", ex.reason
    out = data["root"] / BUCKET / "out"
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert files and all(p.parent.name.startswith("shard=") and p.name.startswith(f"{ex.id}_") for p in files)
    got = sorted(
        (rid, int(p.parent.name.split("=")[1]))
        for p in files
        for rid in pq.read_table(p).column("request_id").to_pylist()
    )
    assert got == sorted((r, trino_shard(r, 3)) for r in {x["request_id"] for x in data["requests"]})
    manifest = (data["root"] / BUCKET / "results" / f"{ex.id}-manifest.csv").read_text().split()
    assert sorted(manifest) == sorted(f"s3://{BUCKET}/out/{p.relative_to(out)}" for p in files)
    again = run(engine, q.unload("SELECT 1 AS one", f"s3://{BUCKET}/out/"))
    assert again.state == "FAILED" and again.reason.startswith("HIVE_PATH_ALREADY_EXISTS")


def test_create_table_as_writes_parquet_and_registers_the_table(engine: AthenaEngine, data: dict[str, Any]) -> None:
    ex = run(
        engine,
        "CREATE TABLE latest WITH (format = 'PARQUET', external_location = 's3://bkt/tables/latest/', "
        "write_compression = 'ZSTD', partitioned_by = ARRAY['customer']) AS "
        "SELECT max(income) AS income, count(*) AS n, customer FROM features GROUP BY customer",
    )
    assert ex.state == "SUCCEEDED", ex.reason
    assert ex.update_count == 3 and all(w.startswith("s3://bkt/tables/latest/customer=") for w in ex.written)
    table = data["catalog"].table(DB, "latest")
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["income", "n"]
    assert table["PartitionKeys"] == [{"Name": "customer", "Type": "string"}]
    assert values(engine, "SELECT customer, income, n FROM latest ORDER BY customer") == [
        ["a", "30.0", "3"],
        ["b", "6.0", "2"],
        ["c", "7.0", "1"],
    ]
    again = run(engine, "CREATE TABLE IF NOT EXISTS latest AS SELECT 1 AS x")
    assert again.state == "SUCCEEDED" and again.written == []
    default = run(engine, "CREATE TABLE nested AS SELECT customer, ARRAY[income] AS xs FROM features")
    assert default.state == "SUCCEEDED", default.reason
    nested = data["catalog"].table(DB, "nested")["StorageDescriptor"]
    assert nested["Location"] == f"s3://{BUCKET}/results/tables/{default.id}/"
    assert [c["Type"] for c in nested["Columns"]] == ["string", "array<double>"]


def test_writes_beyond_athenas_partition_limit_fail(engine: AthenaEngine) -> None:
    rows = "SELECT x AS v, x AS p FROM UNNEST(sequence(1, {n})) AS t(x)"
    ok = run(engine, q.unload(rows.format(n=MAX_WRITE_PARTITIONS), "s3://bkt/limit-ok/", partitioned_by=["p"]))
    assert ok.state == "SUCCEEDED", ok.reason
    over = run(engine, q.unload(rows.format(n=MAX_WRITE_PARTITIONS + 1), "s3://bkt/limit-over/", partitioned_by=["p"]))
    assert over.state == "FAILED"
    assert over.reason.startswith("HIVE_TOO_MANY_OPEN_PARTITIONS: Exceeded limit of 100 open writers")


# ---- errors and hostile input -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELECT *\nFROM   nope", "TABLE_NOT_FOUND: line 2:8: Table 'awsdatacatalog.db.nope' does not exist"),
        ("SELECT * FROM other.t", "SCHEMA_NOT_FOUND: line 1:15: Schema 'other' does not exist"),
        (
            "SELECT customer FROM spine s JOIN db.missing m ON 1 = 1",
            "TABLE_NOT_FOUND: line 1:35: Table 'awsdatacatalog.db.missing'",
        ),
        ("SELECT no_such_column FROM spine", "COLUMN_NOT_FOUND: line 1:1: Column 'no_such_column' cannot be resolved"),
        ("SELECT no_such_function(1)", "FUNCTION_NOT_FOUND: line 1:1: Function 'no_such_function' not registered"),
        ("SELECT cardinality(map(ARRAY['a'], ARRAY[1]))", "FUNCTION_NOT_FOUND: line 1:1: "),
        ("SELECT FROM WHERE", "SYNTAX_ERROR: line 1:"),
        ("SELECT CAST('x' AS integer)", "INVALID_CAST_ARGUMENT"),
        ("SELECT 1; SELECT 2", "INVALID_PARAMETER: Only one sql statement is allowed."),
        ("", "SYNTAX_ERROR: line 1:1: the query string is empty"),
        ("   \n ", "SYNTAX_ERROR: line 1:1: the query string is empty"),
        ("SELECT '\x00'", "SYNTAX_ERROR: line 1:9: NUL character"),
        ("SELECT " + "(" * 5000 + "1" + ")" * 5000, "SYNTAX_ERROR"),
        ("SELECT 1 " + "x" * 300_000, "INVALID_PARAMETER"),
        ("DROP TABLE spine", "NOT_SUPPORTED: line 1:1: DROP statements"),
        ("INSERT INTO spine VALUES (1)", "NOT_SUPPORTED"),
        ("CREATE TABLE x (a integer)", "NOT_SUPPORTED"),
        ("CREATE TABLE x WITH (format = 'ORC') AS SELECT 1 AS a", "NOT_SUPPORTED"),
        ("CREATE TABLE x WITH (bucket_count = 4) AS SELECT 1 AS a", "NOT_SUPPORTED"),
        ("CREATE TABLE x WITH (external_location = '/tmp/x') AS SELECT 1 AS a", "INVALID_PARAMETER"),
        ("CREATE TABLE spine AS SELECT 1 AS a", "TABLE_ALREADY_EXISTS: line 1:1: Table 'awsdatacatalog.db.spine'"),
        ("CREATE TABLE nodb.x AS SELECT 1 AS a", "SCHEMA_NOT_FOUND"),
        ("SELECT * FROM read_csv('/etc/passwd')", "PERMISSION_DENIED"),
        ("SELECT * FROM read_parquet('s3://bkt/spine/s.parquet')", "PERMISSION_DENIED"),
        ("'; DROP TABLE spine; --", "SYNTAX_ERROR"),
        ("SELECT 1 FROM spine WHERE label = '", "SYNTAX_ERROR"),
    ],
)
def test_failures_have_athenas_shape(engine: AthenaEngine, query: str, reason: str) -> None:
    ex = run(engine, query)
    assert ex.state == "FAILED"
    assert ex.reason.startswith(reason), ex.reason
    with pytest.raises(ResultsError, match="Final query state: FAILED"):
        engine.results(ex.id)


@pytest.mark.parametrize(
    "query",
    [
        "ATTACH 'x.db'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA version",
        "SET threads = 64",
        "COPY spine TO '/tmp/x'",
        "CALL dbgen(sf=1)",
    ],
)
def test_duckdb_statements_are_refused(engine: AthenaEngine, query: str) -> None:
    ex = run(engine, query)
    assert ex.state == "FAILED" and ex.reason.split(":")[0] in ("NOT_SUPPORTED", "SYNTAX_ERROR"), ex.reason


def test_bad_table_metadata_fails_the_query(data: dict[str, Any]) -> None:
    bad = TableSpec(DB, "bad", "b", "spine/", (Column("c", "strange<type"),), "parquet").table_input(BUCKET)
    broken = TableSpec(
        DB, "broken", "b", "requests/", (Column("request_id", "bigint"),), "json-lines", ignore_malformed_json=False
    ).table_input(BUCKET)
    e = AthenaEngine(InMemoryCatalog({DB: {"bad": bad, "broken": broken}}), data["fs"])
    try:
        assert run(e, "SELECT * FROM bad").reason.startswith("HIVE_INVALID_METADATA: Glue type 'strange<type'")
        assert run(e, "SELECT * FROM broken").reason.startswith("HIVE_BAD_DATA")
    finally:
        e.shutdown()


def test_malformed_json_lines_read_as_null_rows_unless_strict(data: dict[str, Any]) -> None:
    folder = data["root"] / BUCKET / "ragged"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(
        b'{"request_id": "r1"}\nnot json\n\n[1, 2]\n{"request_id": "r2"}\n{"request_id": "r3", "x'
    )
    cols = (Column("request_id", "string"),)
    lenient = TableSpec(DB, "ragged", "b", "ragged/", cols, "json-lines")
    strict = TableSpec(DB, "strict", "b", "ragged/", cols, "json-lines", ignore_malformed_json=False)
    assert lenient.table_input(BUCKET)["StorageDescriptor"]["SerdeInfo"]["Parameters"] == {
        "ignore.malformed.json": "true"
    }
    catalog = InMemoryCatalog({DB: {t.name: t.table_input(BUCKET) for t in (lenient, strict)}})
    e = AthenaEngine(catalog, data["fs"])
    try:
        ex = run(e, "SELECT count(*), count(request_id), count_if(request_id IS NULL) FROM ragged")
        assert ex.state == "SUCCEEDED", ex.reason
        assert ex.rows == [["5", "2", "3"]]
        strict_failed = run(e, "SELECT count(*) FROM strict")
        assert strict_failed.reason.startswith("HIVE_BAD_DATA: Error parsing field value")
        assert (
            f"s3://{BUCKET}/ragged/a.jsonl" in strict_failed.reason and "driftline-athena-" not in strict_failed.reason
        )
    finally:
        e.shutdown()


def test_json_maps_inside_arrays_of_structs(data: dict[str, Any]) -> None:
    folder = data["root"] / BUCKET / "outputs"
    folder.mkdir()
    lines = [
        {"id": "a", "outputs": [{"label": 1, "probabilities": {"0": 0.25, "1": 0.75}}], "ts": "2026-12-03T10:00:00Z"},
        {"id": "b", "outputs": [{"label": 0, "probabilities": None}], "ts": "2026-12-03T10:00:01.5+00:00"},
    ]
    (folder / "o.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    spec = TableSpec(
        DB,
        "outputs",
        "b",
        "outputs/",
        (
            Column("id", "string"),
            Column("outputs", "array<struct<label:bigint,probabilities:map<string,double>>>"),
            Column("ts", "timestamp"),
        ),
        "json-lines",
    )
    e = AthenaEngine(InMemoryCatalog({DB: {"outputs": spec.table_input(BUCKET)}}), data["fs"])
    try:
        ex = run(
            e,
            "SELECT id, o.label, element_at(o.probabilities, '1') AS p1, ts "
            "FROM outputs CROSS JOIN UNNEST(outputs) AS o(label, probabilities) ORDER BY id",
        )
        assert ex.state == "SUCCEEDED", ex.reason
        assert ex.rows == [
            ["a", "1", "0.75", "2026-12-03 10:00:00.000"],
            ["b", "0", None, "2026-12-03 10:00:01.500"],
        ]
    finally:
        e.shutdown()


# ---- results ---------------------------------------------------------------------------------------
def test_results_pages_tokens_and_csv(engine: AthenaEngine, data: dict[str, Any]) -> None:
    ex = run(
        engine,
        "SELECT customer, label, CAST(NULL AS varchar) AS empty, 'say \"hi\"' AS quote "
        "FROM spine ORDER BY customer, event_ts",
    )
    first = engine.results(ex.id, max_results=2)
    assert [d.get("VarCharValue") for d in first["ResultSet"]["Rows"][0]["Data"]] == [
        "customer",
        "label",
        "empty",
        "quote",
    ]
    assert [c["Type"] for c in first["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]] == [
        "varchar",
        "bigint",
        "varchar",
        "varchar",
    ]
    rows, token = first["ResultSet"]["Rows"][1:], first.get("NextToken")
    while token:
        page = engine.results(ex.id, next_token=token, max_results=2)
        rows += page["ResultSet"]["Rows"]
        token = page.get("NextToken")
    assert [[d.get("VarCharValue") for d in r["Data"]] for r in rows] == [
        [c, str(lb), None, 'say "hi"']
        for c, lb in data["spine"].sort_values(["customer", "event_ts"])[["customer", "label"]].itertuples(index=False)
    ]
    csv = (data["root"] / BUCKET / "results" / f"{ex.id}.csv").read_text().splitlines()
    assert csv[0] == '"customer","label","empty","quote"'
    assert csv[1] == '"a","1",,"say ""hi"""'
    for bad in (0, MAX_RESULTS + 1):
        with pytest.raises(ResultsError, match="MaxResults"):
            engine.results(ex.id, max_results=bad)
    with pytest.raises(ResultsError, match="NextToken"):
        engine.results(ex.id, next_token="not-a-token")
    other = run(engine, "SELECT 1")
    with pytest.raises(ResultsError, match="NextToken"):
        engine.results(other.id, next_token=first["NextToken"])
    with pytest.raises(ResultsError, match="not found"):
        engine.results("nope")


def test_only_recent_results_are_held(data: dict[str, Any]) -> None:
    e = AthenaEngine(data["catalog"], data["fs"], EngineOptions(results_kept=2))
    try:
        ids = [e.wait(e.start(f"SELECT {i} AS i", database=DB)).id for i in range(3)]
        with pytest.raises(ResultsError, match="2 most recent"):
            e.results(ids[0])
        assert [e.results(i)["ResultSet"]["Rows"][1]["Data"][0]["VarCharValue"] for i in ids[1:]] == ["1", "2"]
    finally:
        e.shutdown()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        (True, "true"),
        (1.5, "1.5"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
        (pd.Timestamp("2026-01-02 03:04:05.678").to_pydatetime(), "2026-01-02 03:04:05.678"),
        ([1, None], "[1, null]"),
        ({"a": 1, "b": "x"}, "{a=1, b=x}"),
        (b"\x01\xff", "01 ff"),
    ],
)
def test_varchar_values(value: Any, text: str | None) -> None:
    assert sql.varchar_value(value) == text


@pytest.mark.parametrize(
    ("glue", "arrow"),
    [
        ("bigint", pa.int64()),
        ("decimal(10,2)", pa.decimal128(10, 2)),
        ("varchar(20)", pa.string()),
        (
            "array<struct<a:bigint,b:array<string>>>",
            pa.list_(pa.struct([("a", pa.int64()), ("b", pa.list_(pa.string()))])),
        ),
        ("map<string,double>", pa.map_(pa.string(), pa.float64())),
    ],
)
def test_glue_types(glue: str, arrow: pa.DataType) -> None:
    assert sql.arrow_type(glue) == arrow


def test_engine_options_from_env() -> None:
    assert EngineOptions.from_env({}) == EngineOptions()
    assert EngineOptions.from_env({"DRIFTLINE_ATHENA_THREADS": "2", "DRIFTLINE_ATHENA_MEMORY": "512MB"}).threads == 2
    for bad in (
        {"DRIFTLINE_ATHENA_THREADS": "0"},
        {"DRIFTLINE_ATHENA_CONCURRENCY": "x"},
        {"DRIFTLINE_ATHENA_MEMORY": "lots"},
    ):
        with pytest.raises(ValueError, match="DRIFTLINE_ATHENA"):
            EngineOptions.from_env(bad)


def test_stop_cancels_a_running_query(engine: AthenaEngine) -> None:
    qid = engine.start(
        "SELECT count(*) FROM UNNEST(sequence(1, 100000)) AS a(x) CROSS JOIN UNNEST(sequence(1, 100000)) AS b(y)"
    )
    ex = engine.execution(qid)
    assert ex is not None
    for _ in range(500):
        if ex.state == "RUNNING":
            break
        ex.done.wait(0.01)
    assert ex.state == "RUNNING"
    engine.stop(qid)
    assert engine.wait(qid).state == "CANCELLED" and ex.reason == "Query cancelled by user"


@pytest.mark.parametrize("name", ["Bad", "a-b", "a;b", "", "x" * 300])
def test_query_builders_refuse_unsafe_names(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        q.shard_expression(name, 4)
    with pytest.raises(ValueError):
        q.unload("SELECT 1", "s3://b/p/", partitioned_by=[name])
