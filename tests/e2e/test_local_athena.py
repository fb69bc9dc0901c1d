"""Athena on the local platform: the Glue catalog and workgroup are provisioned from the one definition,
and a Step Functions poll loop (athena:startQueryExecution → Wait → getQueryExecution → Choice) runs a
query on the DuckDB engine over the emulator's S3."""

from __future__ import annotations

import io
import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.athena_tables import athena_workgroup, database_name
from tests.e2e.conftest import LocalPlatformHandle
from tests.support.local_athena import athena_poll_loop, run_to_end

pytestmark = pytest.mark.e2e


def test_catalog_and_workgroup_are_provisioned(local_platform: LocalPlatformHandle) -> None:
    lp = local_platform
    tables = lp.client("glue").get_tables(DatabaseName=database_name(lp.platform))["TableList"]
    assert "credit_default" in {t["Name"] for t in tables}
    groups = {w["Name"] for w in lp.client("athena").list_work_groups()["WorkGroups"]}
    assert athena_workgroup(lp.platform).name in groups


def test_step_functions_poll_loop_queries_curated_data(local_platform: LocalPlatformHandle) -> None:
    lp = local_platform
    day = "2026-11-30"
    n = 321
    table = pa.table({"customer_id": [f"e2e-{i}" for i in range(n)], "credit_limit": [float(i) for i in range(n)]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    key = f"curated/credit_default/date={day}/e2e-{uuid.uuid4().hex[:8]}.parquet"
    lp.client("s3").put_object(Bucket=lp.bucket("features"), Key=key, Body=buf.getvalue())
    query = (
        "SELECT count(*) AS n, sum(credit_limit) AS total FROM credit_default "
        f"WHERE date = '{day}' AND customer_id LIKE 'e2e-%'"
    )
    workgroup, database = athena_workgroup(lp.platform).name, database_name(lp.platform)
    definition = athena_poll_loop(query, workgroup, database, scanned=True, results_path="$.results")
    sfn = lp.client("stepfunctions")
    role = f"arn:aws:iam::{lp.account}:role/{lp.platform.prefix}-local-role"
    _, desc = run_to_end(sfn, definition, name="e2e-athena", role_arn=role, timeout_s=90)
    assert desc["status"] == "SUCCEEDED", desc
    out = json.loads(desc["output"])
    assert out["status"]["scanned"] > 0
    rows = [[d.get("VarCharValue") for d in r["Data"]] for r in out["results"]["rows"]]
    assert rows == [["n", "total"], [str(n), repr(float(sum(range(n))))]]
