"""The local Athena (DuckDB over a moto server's S3): an aggregate over hive-partitioned Parquet, a
hash-sharded UNLOAD of the same rows, and a query over JSON lines with nested rows, each timed from
StartQueryExecution to SUCCEEDED through the Athena API (as a workflow's poll loop sees it).

    .venv/bin/python benchmarks/local_athena.py [--rows 1000000] [--json-records 100000] [--threads 1]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import print_table, write_json
from driftline.athena_queries import shard_expression, unload
from driftline.athena_tables import Column, TableSpec
from driftline.local.athena import AthenaEngine, EngineOptions, GlueCatalog, s3_filesystem
from driftline.local.athena_hook import install_athena

BUCKET = "bench-athena-bucket"
DB = "bench"


def _wait(athena: Any, qid: str) -> dict[str, Any]:
    while True:
        qe: dict[str, Any] = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
        if qe["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            if qe["Status"]["State"] != "SUCCEEDED":
                raise SystemExit(f"query failed: {qe['Status']}")
            return qe
        time.sleep(0.05)


def _timed(athena: Any, sql: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    qid = athena.start_query_execution(
        QueryString=sql,
        QueryExecutionContext={"Database": DB},
        ResultConfiguration={"OutputLocation": f"s3://{BUCKET}/results/"},
    )["QueryExecutionId"]
    qe = _wait(athena, qid)
    return time.perf_counter() - t0, qe


def _load(clients: Any, rows: int, records: int) -> None:
    s3, glue = clients("s3"), clients("glue")
    s3.create_bucket(Bucket=BUCKET)
    glue.create_database(DatabaseInput={"Name": DB})
    rng = np.random.default_rng(0)
    days = 10
    for d in range(days):
        n = rows // days
        t = pa.table(
            {
                "request_id": [f"req-{d}-{i % (n // 2 or 1)}" for i in range(n)],  # every id twice: dedup work
                "x": rng.normal(size=n),
                "y": rng.integers(0, 100, size=n),
            }
        )
        buf = io.BytesIO()
        pq.write_table(t, buf, compression="zstd")
        s3.put_object(Bucket=BUCKET, Key=f"rows/date=2026-01-{d + 1:02d}/part.parquet", Body=buf.getvalue())
    lines = "".join(
        json.dumps({"request_id": f"r{i}", "rows": [{"a": float(j), "b": "k"} for j in range(4)]}) + "\n"
        for i in range(records)
    )
    s3.put_object(Bucket=BUCKET, Key="caps/model=m/2026/01/01/00/part.jsonl", Body=lines.encode())
    specs = [
        TableSpec(
            DB,
            "rows",
            BUCKET,
            "rows/",
            (Column("request_id", "string"), Column("x", "double"), Column("y", "bigint")),
            "parquet",
            (Column("date", "string"),),
        ),
        TableSpec(
            DB,
            "caps",
            BUCKET,
            "caps/",
            (Column("request_id", "string"), Column("rows", "array<struct<a:double,b:string>>")),
            "json-lines",
            (Column("hour", "string"),),
            location_template="model=m/${hour}",
        ),
    ]
    for spec in specs:
        glue.create_table(DatabaseName=DB, TableInput=spec.table_input(BUCKET))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--json-records", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--quick", action="store_true", help="100k rows, 10k JSON records (make bench)")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.json_records = min(args.rows, 100_000), min(args.json_records, 10_000)

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")

    def clients(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)

    def engine_for(account: str, region: str) -> AthenaEngine:
        fs = s3_filesystem(endpoint, "x", "x", region)
        return AthenaEngine(GlueCatalog(clients("glue")), fs, EngineOptions(threads=args.threads))

    out: dict[str, Any] = {"rows": args.rows, "json_records": args.json_records, "threads": args.threads}
    try:
        with install_athena(engine_for):
            _load(clients, args.rows, args.json_records)
            athena = clients("athena")
            table = []
            queries = {
                "aggregate": "SELECT date, count(*), sum(x), count(DISTINCT request_id) FROM rows GROUP BY date",
                "unload_16_shards": unload(
                    "SELECT request_id, max(x) AS x, "
                    f"{shard_expression('request_id', 16)} AS shard FROM rows GROUP BY request_id",
                    f"s3://{BUCKET}/unload/{uuid.uuid4()}/",
                    partitioned_by=["shard"],
                ),
                "json_unnest": "SELECT count(*), sum(r.a) FROM caps "
                "CROSS JOIN UNNEST(rows) WITH ORDINALITY AS r(a, b, n)",
            }
            for name, sql in queries.items():
                seconds, qe = _timed(athena, sql)
                stats = qe["Statistics"]
                out[f"{name}_s"] = round(seconds, 3)
                out[f"{name}_scanned_mb"] = round(stats["DataScannedInBytes"] / 1e6, 2)
                table.append(
                    {
                        "query": name,
                        "wall_s": seconds,
                        "engine_ms": stats["EngineExecutionTimeInMillis"],
                        "scanned_mb": stats["DataScannedInBytes"] / 1e6,
                    }
                )
            out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            print_table(table, title=f"local Athena, {args.rows} Parquet rows, {args.json_records} JSON records")
            print(f"peak RSS of the process (moto server + engine + data generation): {out['peak_rss_mb']} MB")
    finally:
        server.stop()
    write_json(args.json_out, out)


if __name__ == "__main__":
    main()
