"""Uploads of any size on the local platform, as a user sees them: ``driftline local up`` with a feature
set whose ``max_file_mb`` is 1, a CSV ten times that uploaded through the S3 API, and the ingest
function, the ingest-parts workflow (moto's Step Functions interpreter with its Distributed Map) and
the plan, part and commit functions running in the emulator's workers. The upload ends ``partial``
with every row accounted for (accepted + quarantined = rows in the file), in ten or more parts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.conftest import OVERRIDES, LocalPlatformHandle, start_platform, stop_platform, wait_for
from tests.integration.test_ingest_parts_workflow import big_csv

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
FS = "credit_default"
TERMINAL = {"accepted", "partial", "rejected", "unreadable", "too_large", "skipped", "failed"}


@pytest.fixture(scope="module")
def lp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatformHandle]:
    home = tmp_path_factory.mktemp("driftline-parts")
    fs_dir = home / "feature_sets"
    shutil.copytree(ROOT / "examples" / "feature_sets", fs_dir)
    text = (fs_dir / f"{FS}.yaml").read_text()
    (fs_dir / f"{FS}.yaml").write_text(text.replace("max_file_mb: 512", "max_file_mb: 1"))
    doc = json.loads((ROOT / "cdk.json").read_text())
    dev = doc["context"]["driftline:environments"]["dev"]
    dev["feature_sets_dir"] = str(fs_dir)
    dev["trainers_dir"] = str(ROOT / dev.get("trainers_dir", "examples/trainers"))
    (home / "cdk.json").write_text(json.dumps(doc))
    # the real ingest path; the rest recorded only (an accepted labelled upload would start retraining)
    overrides = {k: v for k, v in OVERRIDES.items() if k != "ingest"}
    handle = start_platform(home / "state", overrides, "--config", str(home / "cdk.json"))
    try:
        yield handle
    finally:
        stop_platform(handle)


def _record(lp: LocalPlatformHandle, version: str) -> dict[str, Any] | None:
    items = lp.client("dynamodb").query(
        TableName=lp.name("control"),
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": f"INGEST#{FS}"}},
    )["Items"]
    found = [json.loads(i["result"]["S"]) for i in items]
    return next((r for r in found if r.get("version_id") == version), None)


def test_a_file_ten_times_max_file_mb_is_accepted_in_parts_on_the_local_platform(lp: LocalPlatformHandle) -> None:
    rows = 66_000
    _, body = big_csv(rows, entities=300, seed=31)
    assert len(body) >= 10 * 1024 * 1024
    s3 = lp.client("s3")
    version = s3.put_object(Bucket=lp.bucket("features"), Key=f"incoming/{FS}/ten-times.csv", Body=body)["VersionId"]
    rec = wait_for(
        lambda: (r := _record(lp, version)) and r["status"] in TERMINAL and r,
        timeout=600,
        interval=1.0,
        what="the parts upload's final record",
    )
    assert rec["status"] == "partial" and rec["mode"] == "parts" and rec["parts"] >= 10, rec
    assert (rec["rows_total"], rec["rows_accepted"], rec["rows_rejected"]) == (rows, rows - 3, 3)
    report = json.loads(
        s3.get_object(Bucket=lp.bucket("features"), Key=rec["report_uri"].split("/", 3)[3])["Body"].read()
    )
    assert report["rows_accepted"] + report["rows_rejected"] == rows == sum(p["rows_total"] for p in report["parts"])
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=lp.bucket("features"), Prefix=f"curated/{FS}/")
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert not [k for k in keys if "/_pending/" in k]
    curated = sum(
        pq.read_metadata(pa.BufferReader(s3.get_object(Bucket=lp.bucket("features"), Key=k)["Body"].read())).num_rows
        for k in keys
        if rec["upload_id"] in k
    )
    assert curated == rows - 3
