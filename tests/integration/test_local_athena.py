"""The local Athena through the emulator's API: Glue tables provisioned from the one catalog definition,
data in the emulator's S3, queries run on DuckDB, results, UNLOAD and failures in Athena's shapes, and a
Step Functions poll loop (start → Wait → GetQueryExecution → Choice) driving it."""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.athena_tables import Column, TableSpec, athena_workgroup, database_name
from driftline.local.provision import provision_catalog, provision_data
from tests.support.local_athena import REGION, athena_emulator, athena_poll_loop, run_to_end

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def emulator(platform_def: Any, credit_fs: Any) -> Iterator[dict[str, Any]]:
    with athena_emulator() as emu:
        provision_data(platform_def, emu.clients, REGION, ACCOUNT)
        provision_catalog(platform_def, emu.clients, REGION, ACCOUNT, [credit_fs])
        yield {"clients": emu.clients, "endpoint": emu.endpoint, "port": emu.port}


def _bucket(platform_def: Any, logical: str) -> str:
    return str(platform_def.bucket_name(logical, ACCOUNT, REGION))


def _run(emulator: dict[str, Any], platform_def: Any, sql: str, timeout_s: float = 30.0) -> dict[str, Any]:
    athena = emulator["clients"]("athena")
    qid = athena.start_query_execution(
        QueryString=sql,
        QueryExecutionContext={"Database": database_name(platform_def)},
        WorkGroup=athena_workgroup(platform_def).name,
    )["QueryExecutionId"]
    deadline = time.monotonic() + timeout_s
    while True:
        qe: dict[str, Any] = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
        if qe["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return qe
        time.sleep(0.05)


def _rows(emulator: dict[str, Any], qid: str, page: int = 1000) -> list[list[str | None]]:
    athena = emulator["clients"]("athena")
    out: list[list[str | None]] = []
    kwargs: dict[str, Any] = {"QueryExecutionId": qid, "MaxResults": page}
    while True:
        resp = athena.get_query_results(**kwargs)
        out += [[d.get("VarCharValue") for d in r["Data"]] for r in resp["ResultSet"]["Rows"]]
        if "NextToken" not in resp:
            return out
        kwargs["NextToken"] = resp["NextToken"]


@pytest.fixture(scope="module")
def curated(emulator: dict[str, Any], platform_def: Any, credit_fs: Any) -> pd.DataFrame:
    """Two days of curated rows of the example feature set, as ingest writes them."""
    s3 = emulator["clients"]("s3")
    spec_cols = [
        c["Name"]
        for c in emulator["clients"]("glue").get_table(DatabaseName=database_name(platform_def), Name=credit_fs.name)[
            "Table"
        ]["StorageDescriptor"]["Columns"]
    ]
    frames = []
    for day, n in (("2026-12-01", 700), ("2026-12-02", 1300)):
        rng = pd.Series(range(n))
        df = pd.DataFrame({c: [None] * n for c in spec_cols})
        df[credit_fs.entity[0]] = [f"{day}-{i}" for i in range(n)]
        df[credit_fs.timestamp] = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng, unit="s")
        num = credit_fs.features[0].name
        df[num] = (rng * 7 % 101).astype("float64") if credit_fs.features[0].type == "float" else rng * 7 % 101
        buf = io.BytesIO()
        pq.write_table(
            pa.Table.from_pandas(df[[credit_fs.entity[0], credit_fs.timestamp, num]], preserve_index=False), buf
        )
        s3.put_object(
            Bucket=_bucket(platform_def, "features"),
            Key=f"curated/{credit_fs.name}/date={day}/u-{day}.parquet",
            Body=buf.getvalue(),
        )
        frames.append(df.assign(date=day))
    s3.put_object(
        Bucket=_bucket(platform_def, "features"), Key=f"curated/{credit_fs.name}/_pending/u-x", Body=b"pending"
    )
    return pd.concat(frames, ignore_index=True)


def test_select_over_parquet_matches_pandas(
    emulator: dict[str, Any], platform_def: Any, credit_fs: Any, curated: pd.DataFrame
) -> None:
    num = credit_fs.features[0].name
    qe = _run(
        emulator,
        platform_def,
        f"SELECT date, count(*) AS n, sum({num}) AS total FROM {credit_fs.name} "
        f"WHERE date >= '2026-12-01' GROUP BY date ORDER BY date",
    )
    assert qe["Status"]["State"] == "SUCCEEDED", qe["Status"]
    assert qe["Statistics"]["DataScannedInBytes"] > 0
    assert qe["ResultConfiguration"]["OutputLocation"].endswith(f"/athena-results/{qe['QueryExecutionId']}.csv")
    rows = _rows(emulator, qe["QueryExecutionId"])
    expected = curated.groupby("date")[num].agg(["count", "sum"]).reset_index()
    assert rows[0] == ["date", "n", "total"]
    assert [(r[0], int(r[1] or 0), float(r[2] or 0)) for r in rows[1:]] == [
        (d, int(c), float(s)) for d, c, s in expected.itertuples(index=False)
    ]
    # the CSV Athena writes to the output location: header + rows, every value quoted
    bucket, key = qe["ResultConfiguration"]["OutputLocation"][5:].split("/", 1)
    body = emulator["clients"]("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert body.splitlines()[0] == '"date","n","total"' and len(body.splitlines()) == 3


def test_results_are_paged(emulator: dict[str, Any], platform_def: Any, credit_fs: Any, curated: pd.DataFrame) -> None:
    qe = _run(emulator, platform_def, f"SELECT {credit_fs.entity[0]} FROM {credit_fs.name} ORDER BY 1")
    assert qe["Status"]["State"] == "SUCCEEDED", qe["Status"]
    rows = _rows(emulator, qe["QueryExecutionId"], page=333)
    assert rows[0] == [credit_fs.entity[0]]
    assert [r[0] for r in rows[1:]] == sorted(curated[credit_fs.entity[0]])
    athena = emulator["clients"]("athena")
    with pytest.raises(athena.exceptions.InvalidRequestException, match="NextToken"):
        athena.get_query_results(QueryExecutionId=qe["QueryExecutionId"], NextToken="garbage")


def test_json_lines_with_nested_rows_and_unload(emulator: dict[str, Any], platform_def: Any) -> None:
    s3 = emulator["clients"]("s3")
    captures = _bucket(platform_def, "captures")
    spec = TableSpec(
        database=database_name(platform_def),
        name="it_requests",
        bucket="captures",
        prefix="it-requests/",
        columns=(
            Column("request_id", "string"),
            Column("ts", "timestamp"),
            Column("rows", "array<struct<x:double,label:string>>"),
        ),
        format="json-lines",
        partition_keys=(Column("model", "string"), Column("hour", "string")),
        location_template="model=${model}/${hour}",
    )
    emulator["clients"]("glue").create_table(DatabaseName=spec.database, TableInput=spec.table_input(captures))
    records: list[dict[str, Any]] = [
        {
            "request_id": f"r{i % 40}",
            "ts": f"2026-12-03T10:{i % 60:02d}:00Z",
            "rows": [{"x": i * 0.5, "label": "a"}, {"x": -i, "label": "b"}],
        }
        for i in range(50)
    ]
    for part in range(2):
        lines = "".join(json.dumps(r) + "\n" for r in records[part * 25 : (part + 1) * 25])
        s3.put_object(Bucket=captures, Key=f"it-requests/model=m1/2026/12/03/10/part-{part}.jsonl", Body=lines.encode())

    qe = _run(
        emulator,
        platform_def,
        "SELECT model, hour, count(DISTINCT request_id) AS ids, sum(r.x) AS total, max(n) AS widest "
        "FROM it_requests CROSS JOIN UNNEST(rows) WITH ORDINALITY AS r(x, label, n) GROUP BY model, hour",
    )
    assert qe["Status"]["State"] == "SUCCEEDED", qe["Status"]
    rows = _rows(emulator, qe["QueryExecutionId"])
    total = sum(r["x"] for rec in records for r in rec["rows"])
    assert rows[1][:3] == ["m1", "2026/12/03/10", "40"]
    assert float(rows[1][3] or "nan") == pytest.approx(total) and rows[1][4] == "2"

    shards = 4
    target = f"s3://{_bucket(platform_def, 'reports')}/it-unload/{uuid.uuid4()}/"
    qe = _run(
        emulator,
        platform_def,
        f"UNLOAD (SELECT request_id, max(ts) AS ts, "
        f"abs(from_big_endian_64(substr(md5(to_utf8(request_id)), 1, 8)) % {shards}) AS shard "
        f"FROM it_requests GROUP BY request_id) TO '{target}' "
        "WITH (format = 'PARQUET', compression = 'ZSTD', partitioned_by = ARRAY['shard'])",
    )
    assert qe["Status"]["State"] == "SUCCEEDED", qe["Status"]
    bucket, prefix = target[5:].split("/", 1)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    assert keys and all(k[len(prefix) :].startswith("shard=") for k in keys)
    assert all(k.rsplit("/", 1)[1].startswith(qe["QueryExecutionId"] + "_") for k in keys)
    got = []
    for k in keys:
        t = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read()))
        shard = int(k[len(prefix) :].split("/")[0].split("=")[1])
        got += [(rid, shard) for rid in t.column("request_id").to_pylist()]

    def trino_shard(rid: str) -> int:
        # Trino's % truncates toward zero: abs(h % n) == abs(h) mod n
        return abs(int.from_bytes(hashlib.md5(rid.encode()).digest()[:8], "big", signed=True)) % shards

    assert sorted(got) == sorted((f"r{i}", trino_shard(f"r{i}")) for i in range(40))
    # UNLOAD refuses a target that is not empty, as Athena does
    again = _run(emulator, platform_def, f"UNLOAD (SELECT 1 AS one) TO '{target}' WITH (format = 'PARQUET')")
    assert again["Status"]["State"] == "FAILED"
    assert again["Status"]["StateChangeReason"].startswith("HIVE_PATH_ALREADY_EXISTS")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (
            "SELECT * FROM no_such_table",
            "TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.{db}.no_such_table' does not exist",
        ),
        ("SELECT * FROM nodb.t", "SCHEMA_NOT_FOUND: line 1:15: Schema 'nodb' does not exist"),
        ("SELEC 1", "SYNTAX_ERROR: line 1:"),
        ("SELECT * FROM read_parquet('/etc/passwd')", "PERMISSION_DENIED"),
        ("DELETE FROM x", "NOT_SUPPORTED"),
    ],
)
def test_failures_end_the_query_failed_with_athenas_message(
    emulator: dict[str, Any], platform_def: Any, sql: str, reason: str
) -> None:
    qe = _run(emulator, platform_def, sql)
    assert qe["Status"]["State"] == "FAILED"
    assert qe["Status"]["StateChangeReason"].startswith(reason.format(db=database_name(platform_def)))
    athena = emulator["clients"]("athena")
    with pytest.raises(athena.exceptions.InvalidRequestException, match="FAILED"):
        athena.get_query_results(QueryExecutionId=qe["QueryExecutionId"])


def test_unknown_query_id_is_an_invalid_request(emulator: dict[str, Any]) -> None:
    athena = emulator["clients"]("athena")
    with pytest.raises(athena.exceptions.InvalidRequestException, match="not found"):
        athena.get_query_execution(QueryExecutionId="00000000-0000-0000-0000-000000000000")


def test_step_functions_poll_loop_runs_a_query(
    emulator: dict[str, Any], platform_def: Any, credit_fs: Any, curated: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core.config import default_user_config

    monkeypatch.setenv("MOTO_PORT", str(emulator["port"]))
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    definition = athena_poll_loop(
        f"SELECT count(*) AS n FROM {credit_fs.name}", athena_workgroup(platform_def).name, database_name(platform_def)
    )
    sfn = emulator["clients"]("stepfunctions")
    run, desc = run_to_end(
        sfn, definition, name="it-athena", role_arn=f"arn:aws:iam::{ACCOUNT}:role/it-sfn", timeout_s=60, poll_s=0.2
    )
    assert desc["status"] == "SUCCEEDED", desc
    rows = json.loads(desc["output"])["rows"]
    assert rows == [{"Data": [{"VarCharValue": "n"}]}, {"Data": [{"VarCharValue": str(len(curated))}]}]
    states = [
        e["stateEnteredEventDetails"]["name"]
        for e in sfn.get_execution_history(executionArn=run)["events"]
        if "stateEnteredEventDetails" in e
    ]
    assert states[:3] == ["Start", "Wait", "Get"] and states[-1] == "Results"


def test_running_query_is_seen_running_and_can_be_stopped(emulator: dict[str, Any], platform_def: Any) -> None:
    athena = emulator["clients"]("athena")
    qid = athena.start_query_execution(
        QueryString="SELECT count(*) FROM UNNEST(sequence(1, 100000)) AS a(x) "
        "CROSS JOIN UNNEST(sequence(1, 100000)) AS b(y)",
        WorkGroup=athena_workgroup(platform_def).name,
    )["QueryExecutionId"]
    deadline = time.monotonic() + 10
    while (state := athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]["State"]) == "QUEUED":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert state == "RUNNING"
    with pytest.raises(athena.exceptions.InvalidRequestException, match="not yet finished"):
        athena.get_query_results(QueryExecutionId=qid)
    athena.stop_query_execution(QueryExecutionId=qid)
    status = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]
    assert status["State"] == "CANCELLED" and status["StateChangeReason"] == "Query cancelled by user"


def test_check_moto_refuses_without_athena_hook_points(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.athena.responses import AthenaResponse

    from driftline.local.moto_hooks import UnsupportedMotoError, check_moto

    monkeypatch.delattr(AthenaResponse, "get_query_results")
    with pytest.raises(UnsupportedMotoError, match=r"AthenaResponse\.get_query_results"):
        check_moto()


def test_execution_parameters_through_the_api(
    emulator: dict[str, Any], platform_def: Any, credit_fs: Any, curated: pd.DataFrame
) -> None:
    athena = emulator["clients"]("athena")
    qid = athena.start_query_execution(
        QueryString=f"SELECT count(*) FROM {credit_fs.name} WHERE date = ?",
        QueryExecutionContext={"Database": database_name(platform_def)},
        WorkGroup=athena_workgroup(platform_def).name,
        ExecutionParameters=["'2026-12-02'"],
    )["QueryExecutionId"]
    deadline = time.monotonic() + 30
    while athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]["Status"]["State"] in (
        "QUEUED",
        "RUNNING",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _rows(emulator, qid)[1] == [str(int((curated["date"] == "2026-12-02").sum()))]


def test_hostile_requests_get_invalid_request_not_a_server_error(emulator: dict[str, Any]) -> None:
    import urllib.request

    def call(target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            emulator["endpoint"],
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"AmazonAthena.{target}",
                "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261203/us-east-1/athena/aws4_request, "
                "SignedHeaders=host, Signature=x",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    for body in ({}, {"QueryString": ""}, {"QueryString": "SELECT 1", "ResultConfiguration": "x"}):
        status, answer = call("StartQueryExecution", body)
        assert status == 400 and answer.get("__type", "").endswith("InvalidRequestException"), (body, status, answer)
    status, answer = call("GetQueryResults", {"QueryExecutionId": "nope", "MaxResults": "many"})
    assert status == 400, answer
