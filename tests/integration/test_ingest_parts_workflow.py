"""The ingest-parts workflow end to end on the local platform's engines: the real ASL on moto's Step
Functions interpreter (moto server) with its Distributed Map over the part descriptors, the ingest,
plan, part and commit handlers running in-process when moto invokes them. A file ten times
``max_file_mb`` (``max_file_mb: 1`` here) is accepted in parts with a correct report; a part whose
function keeps failing is retried, then the upload fails naming that part and nothing is committed."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline import aws as aws_mod
from driftline.datasets.credit_default import generate
from tests.support.local_athena import REGION, athena_emulator, emulated_workflows

ACCOUNT = "123456789012"
ROOT = Path(__file__).resolve().parents[2]
FS = "credit_default"
MB = 1024 * 1024


class _Context:
    function_name = "dev-driftline-ingest"
    memory_limit_in_mb = 3008
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:dev-driftline-ingest"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


class Functions:
    """The ingest-parts handlers, run in this process when moto's interpreter invokes them."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_part = ""
        """A part descriptor key ending like this fails on every attempt."""

    def invoke(self, fn: Any, event: Any = None) -> tuple[str, bool, str]:
        from lambdas import ingest_commit, ingest_part, ingest_plan

        payload = json.loads(event) if isinstance(event, str | bytes) else event
        name = fn.function_name
        self.calls.append(name)
        handlers = {"-ingest-plan": ingest_plan, "-ingest-part": ingest_part, "-ingest-commit": ingest_commit}
        try:
            module = next(m for suffix, m in handlers.items() if name.endswith(suffix))
            if name.endswith("-ingest-part") and self.fail_part and str(payload.get("key")).endswith(self.fail_part):
                raise RuntimeError(f"injected failure on {payload['key']}")
            out = module.handler.__wrapped__(payload, None)  # type: ignore[attr-defined]
        except Exception as e:
            return json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}), True, ""
        return json.dumps(out, default=str), False, ""


@pytest.fixture
def local(platform_def: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from lambdas import ingest_commit, ingest_part, ingest_plan

    text = (ROOT / "examples" / "feature_sets" / f"{FS}.yaml").read_text()
    (tmp_path / f"{FS}.yaml").write_text(text.replace("max_file_mb: 512", "max_file_mb: 1"))
    with athena_emulator(max_concurrent=1) as emu:  # it starts from empty moto backends
        clients = emu.clients
        functions = Functions()
        for m in (ingest_plan, ingest_part, ingest_commit):
            m._catalog.cache_clear()
        try:
            env = emulated_workflows(emu, platform_def, ACCOUNT, monkeypatch, functions.invoke)
            env["FEATURE_SETS_DIR"] = str(tmp_path)
            monkeypatch.setenv("FEATURE_SETS_DIR", str(tmp_path))
            # the test calls the ingest handler itself (one delivery, awaited), not through the S3 trigger
            clients("s3").put_bucket_notification_configuration(
                Bucket=env["FEATURES_BUCKET"], NotificationConfiguration={}
            )
            yield {"env": env, "clients": clients, "functions": functions}
        finally:
            for m in (ingest_plan, ingest_part, ingest_commit):
                m._catalog.cache_clear()
            aws_mod.reset_clients()


def _upload(local: dict[str, Any], name: str, body: bytes) -> dict[str, Any]:
    """Put ``body`` under incoming/ and hand its S3 event to the real ingest handler."""
    from lambdas import ingest

    env = local["env"]
    key = f"incoming/{FS}/{name}"
    resp = local["clients"]("s3").put_object(Bucket=env["FEATURES_BUCKET"], Key=key, Body=body)
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "eventTime": "2026-11-26T01:00:00.000Z",
                "s3": {
                    "bucket": {"name": env["FEATURES_BUCKET"]},
                    "object": {
                        "key": key,
                        "size": len(body),
                        "eTag": resp["ETag"].strip('"'),
                        "versionId": resp["VersionId"],
                    },
                },
            }
        ]
    }
    (result,) = ingest.handler(event, _Context())["results"]
    return dict(result)


def _finish(local: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Wait for the one ingest-parts execution; its description."""
    sfn = local["clients"]("stepfunctions")
    arn = local["env"]["INGEST_PARTS_STATE_MACHINE_ARN"]
    deadline = time.monotonic() + timeout
    while True:
        (ex,) = sfn.list_executions(stateMachineArn=arn)["executions"]
        if ex["status"] != "RUNNING":
            return dict(sfn.describe_execution(executionArn=ex["executionArn"]))
        assert time.monotonic() < deadline, f"{ex['name']} still running"
        time.sleep(0.5)


def _record(local: dict[str, Any], upload_id: str) -> dict[str, Any]:
    resp = local["clients"]("dynamodb").query(
        TableName=local["env"]["CONTROL_TABLE"],
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": f"INGEST#{FS}"}},
    )
    (found,) = [json.loads(i["result"]["S"]) for i in resp["Items"] if upload_id in i["sk"]["S"]]
    return dict(found)


def _get(local: dict[str, Any], key: str) -> bytes:
    return bytes(local["clients"]("s3").get_object(Bucket=local["env"]["FEATURES_BUCKET"], Key=key)["Body"].read())


def _keys(local: dict[str, Any], prefix: str) -> list[str]:
    s3 = local["clients"]("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=local["env"]["FEATURES_BUCKET"], Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def big_csv(rows: int, entities: int, seed: int) -> tuple[pa.Table, bytes]:
    """Credit rows with few entities (so the online store's writes stay few) and unique timestamps."""
    t = generate(rows, "2025-01-01", "2025-03-01", seed=seed)
    ids = pa.array([f"C{i % entities:07d}" for i in range(rows)])
    start = pc.min(t.column("event_timestamp")).as_py()
    ts = pa.array([start.timestamp() * 1e6 + i * 1_000_000 for i in range(rows)], pa.float64())
    t = t.set_column(t.schema.get_field_index("customer_id"), "customer_id", ids)
    ts_type = t.schema.field("event_timestamp").type
    t = t.set_column(
        t.schema.get_field_index("event_timestamp"), "event_timestamp", pc.cast(pc.cast(ts, pa.int64()), ts_type)
    )
    ages = t.column("age").to_pylist()
    for i in (17, rows // 2, rows - 3):
        ages[i] = 5  # under the minimum: quarantined
    t = t.set_column(t.schema.get_field_index("age"), "age", pa.array(ages, t.schema.field("age").type))
    buf = io.BytesIO()
    pacsv.write_csv(t, buf)
    return t, buf.getvalue()


def test_a_file_ten_times_max_file_mb_is_accepted_in_parts_with_a_correct_report(local: dict[str, Any]) -> None:
    rows = 66_000
    _, body = big_csv(rows, entities=400, seed=21)
    assert len(body) >= 10 * MB, len(body)
    started = _upload(local, "ten-times.csv", body)
    assert started["status"] == "processing" and started["mode"] == "parts", started
    assert "started" in started["reason"]
    done = _finish(local)
    assert done["status"] == "SUCCEEDED", done
    rec = _record(local, started["upload_id"])
    assert rec["status"] == "partial" and rec["mode"] == "parts" and rec["parts"] >= 10, rec
    assert (rec["rows_total"], rec["rows_accepted"], rec["rows_rejected"]) == (rows, rows - 3, 3)
    report = json.loads(_get(local, rec["report_uri"].split("/", 3)[3]))
    assert report["rows_total"] == rows and report["rows_accepted"] + report["rows_rejected"] == rows
    assert [c["failed_rows"] for c in report["checks"] if c["severity"] == "error"] == [3]
    assert len(report["parts"]) == rec["parts"] and sum(p["rows_total"] for p in report["parts"]) == rows
    curated = [pq.read_table(pa.BufferReader(_get(local, k))) for k in _keys(local, f"curated/{FS}/date=")]
    assert sum(t.num_rows for t in curated) == rows - 3
    assert _keys(local, f"curated/{FS}/_pending/") == []
    parts = [c for c in local["functions"].calls if c.endswith("-ingest-part")]
    assert len(parts) == rec["parts"]
    online = local["clients"]("dynamodb").scan(TableName=local["env"]["ONLINE_TABLE"], Select="COUNT")
    assert online["Count"] == 400


def test_a_part_that_keeps_failing_fails_the_upload_naming_it(local: dict[str, Any]) -> None:
    _, body = big_csv(20_000, entities=50, seed=22)
    assert len(body) > MB
    local["functions"].fail_part = "part-00001.json"
    started = _upload(local, "lossy.csv", body)
    done = _finish(local)
    assert done["status"] == "SUCCEEDED", done  # under moto a failed item is null: the commit names it
    rec = _record(local, started["upload_id"])
    assert rec["status"] == "failed" and "part 1 of" in rec["reason"], rec
    attempts = [c for c in local["functions"].calls if c.endswith("-ingest-part")]
    assert len(attempts) >= rec["parts"] + 2  # the failing item was tried again
    assert _keys(local, f"curated/{FS}/") == []
