"""The Glue tables over captures and feedback: typed from the model's feature set, projected on the
Firehose hour layout, and readable by a JSON engine over real capture lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftline import athena_tables as at
from driftline import capture_tables as ct
from driftline.capture_format import REQUEST_FIELDS, expand, request_record
from driftline.contracts import hour_prefix
from driftline.serving.capture import encode_record

MODEL = "credit-default"


def test_captures_table_is_typed_by_the_feature_set(platform_def: Any, credit_fs: Any) -> None:
    spec = ct.captures_table(platform_def, MODEL, credit_fs)
    ti = spec.table_input("cap-bkt")
    assert ti["Name"] == "captures_credit_default" == ct.captures_table_name(MODEL)
    assert spec.database == at.database_name(platform_def) and spec.bucket == "captures"
    sd = ti["StorageDescriptor"]
    assert sd["Location"] == f"s3://cap-bkt/captures/model={MODEL}/"
    assert sd["SerdeInfo"]["SerializationLibrary"] == at.JSON_SERDE
    types = {c["Name"]: c["Type"] for c in sd["Columns"]}
    assert [c["Name"] for c in sd["Columns"]][: len(REQUEST_FIELDS)] == [n for n, _ in REQUEST_FIELDS]
    row_fields = types["rows"].removeprefix("array<struct<").removesuffix(">>").split(",")
    assert [f.split(":")[0] for f in row_fields] == [f.name for f in credit_fs.features]
    assert types["outputs"].startswith("array<struct<label:") and "probabilities:map<string,double>" in types["outputs"]
    assert types["index"] == "array<int>" and types["part"] == types["parts"] == "int"
    assert types["features"] == types["rows"].removeprefix("array<").removesuffix(">")  # v1 rows, nullable
    assert types["prediction"] == types["outputs"].removeprefix("array<").removesuffix(">")
    assert types["test"] == "boolean"
    assert ti["PartitionKeys"] == [{"Name": "hour", "Type": "string"}]


def test_both_tables_project_the_firehose_hour_layout(platform_def: Any, credit_fs: Any) -> None:
    for spec, root in (
        (ct.captures_table(platform_def, MODEL, credit_fs), "captures"),
        (ct.feedback_table(platform_def, MODEL, credit_fs), "feedback"),
    ):
        params = spec.table_input("b")["Parameters"]
        assert params["projection.enabled"] == "true"
        assert params["projection.hour.type"] == "date" and params["projection.hour.format"] == "yyyy/MM/dd/HH"
        assert (params["projection.hour.interval"], params["projection.hour.interval.unit"]) == ("1", "HOURS")
        assert params["storage.location.template"] == f"s3://b/{root}/model={MODEL}/${{hour}}"
        # the template filled with one hour is exactly where the writers put that hour's objects
        hour = datetime(2026, 11, 26, 10, tzinfo=UTC)
        filled = params["storage.location.template"].replace("${hour}", f"{hour:%Y/%m/%d/%H}")
        assert filled + "/" == f"s3://b/{hour_prefix(root, MODEL, hour)}"


def test_feedback_table_columns(platform_def: Any, credit_fs: Any) -> None:
    ti = ct.feedback_table(platform_def, MODEL, credit_fs).table_input("b")
    assert ti["Name"] == "feedback_credit_default"
    assert [(c["Name"], c["Type"]) for c in ti["StorageDescriptor"]["Columns"]] == [
        ("request_id", "string"),
        ("label", "bigint"),
        ("ts", "string"),
        ("by", "string"),
    ]


def test_only_models_whose_feature_set_is_given_get_tables(platform_def: Any, credit_fs: Any) -> None:
    assert ct.model_tables(platform_def, []) == []  # nothing to type the columns with
    typed = [m.name for m in platform_def.config.models if m.feature_set == credit_fs.name]
    assert [t.name for t in ct.model_tables(platform_def, [credit_fs])] == [
        name for m in typed for name in (ct.captures_table_name(m), ct.feedback_table_name(m))
    ]


def test_duckdb_reads_capture_lines_with_the_table_columns(tmp_path: Path, platform_def: Any, credit_fs: Any) -> None:
    """The typed columns fit what the writer writes: a JSON engine given exactly the table's column types
    reads a v2 line, and unnesting its rows gives the reader's per-row view."""
    import duckdb

    from driftline.serving.reference_model import example_rows

    rows = example_rows(credit_fs.input_schema(), 3, seed=1)
    rec = request_record(
        request_id="q",
        model=MODEL,
        version=2,
        role="champion",
        ts=datetime(2026, 11, 26, 10, tzinfo=UTC),
        latency_ms=0.5,
        rows=rows,
        outputs=[{"label": 1, "probability": 0.7, "probabilities": {"0": 0.3, "1": 0.7}}] * 3,
    )
    path = tmp_path / "obj"
    path.write_bytes(encode_record(rec) * 2)
    cols = ct.captures_table(platform_def, MODEL, credit_fs).columns
    duck_types = {c.name: _duck(c.type) for c in cols}
    con = duckdb.connect()
    got = con.sql(
        f"SELECT request_id, version, u.r.{credit_fs.features[0].name} AS f0, u.n AS n, outputs[u.n].label AS label "
        f"FROM read_json('{path}', format='newline_delimited', columns={duck_types}) "
        "CROSS JOIN UNNEST(rows) WITH ORDINALITY AS u(r, n) ORDER BY n"
    ).fetchall()
    assert len(got) == 6 and got[0] == ("q", 2, rows[0][credit_fs.features[0].name], 1, 1)
    view = expand(json.loads(encode_record(rec)))
    assert view is not None and [v["request_id"] for v in view] == ["q:0", "q:1", "q:2"]


def _duck(glue: str) -> str:
    """A Glue type as DuckDB's (enough for these tables: struct/array/map of scalars)."""
    out = glue.replace("bigint", "BIGINT").replace("double", "DOUBLE").replace("boolean", "BOOLEAN")
    out = out.replace("string", "VARCHAR").replace("array<int>", "INTEGER[]")
    return _duck_nested(out.replace(" ", ""))


def _duck_nested(t: str) -> str:
    if t.startswith("array<") and t.endswith(">"):
        return _duck_nested(t[6:-1]) + "[]"
    if t.startswith("map<") and t.endswith(">"):
        k, v = t[4:-1].split(",", 1)
        return f"MAP({_duck_nested(k)}, {_duck_nested(v)})"
    if t.startswith("struct<") and t.endswith(">"):
        fields, depth, cur = [], 0, ""
        for ch in t[7:-1]:
            if ch == "," and depth == 0:
                fields.append(cur)
                cur = ""
                continue
            depth += ch in "<("
            depth -= ch in ">)"
            cur += ch
        fields.append(cur)
        inner = ", ".join(f'"{name}" {_duck_nested(typ)}' for name, typ in (f.split(":", 1) for f in fields))
        return f"STRUCT({inner})"
    return "INTEGER" if t == "int" else t
