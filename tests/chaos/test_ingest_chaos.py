"""Ingest under faults on the local platform: kill -9 of the worker, hostile keys, racing versions.

The real ingest handler runs in the emulator's worker processes (a short lease and a pause point
added by ``tests/fixtures/chaos_handlers.py``); uploads go through the S3 API and its notifications,
recovery through the ``driftline features redrive`` CLI, as a user would. Every test ends on the
ledger: rows accepted + rows quarantined = rows uploaded, no upload without a terminal record, no
pending commit left, nothing in the dead-letter queue.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline.datasets.credit_default import generate
from tests.e2e.conftest import OVERRIDES, LocalPlatformHandle, start_platform, stop_platform, wait_for
from tests.fixtures.chaos_handlers import LEASE_SECONDS

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("chaos")]

ROOT = Path(__file__).resolve().parents[2]
FS = "credit_default"
TERMINAL = {"accepted", "partial", "rejected", "unreadable", "too_large", "skipped", "failed"}


@pytest.fixture(scope="module")
def lp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatformHandle]:
    overrides = {**OVERRIDES, "ingest": "tests.fixtures.chaos_handlers.ingest"}
    handle = start_platform(tmp_path_factory.mktemp("driftline-chaos"), overrides)
    try:
        yield handle
    finally:
        stop_platform(handle)


def _parquet(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


def _csv(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(t, buf)
    return buf.getvalue()


def _put(lp: LocalPlatformHandle, name: str, body: bytes) -> str:
    resp = lp.client("s3").put_object(Bucket=lp.bucket("features"), Key=f"incoming/{FS}/{name}", Body=body)
    return str(resp["VersionId"])


def _records(lp: LocalPlatformHandle) -> dict[str, dict[str, Any]]:
    """Newest ingest record per object version."""
    ddb = lp.client("dynamodb")
    items = ddb.query(
        TableName=lp.name("control"),
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": f"INGEST#{FS}"}},
    )["Items"]
    return {json.loads(i["result"]["S"])["version_id"]: json.loads(i["result"]["S"]) for i in items}


def _record(lp: LocalPlatformHandle, version: str, statuses: set[str], timeout: float = 60.0) -> dict[str, Any]:
    return dict(
        wait_for(
            lambda: (r := _records(lp).get(version)) and r["status"] in statuses and r,
            timeout=timeout,
            interval=0.2,
            what=f"a {'/'.join(sorted(statuses))} record of {version}",
        )
    )


def _keys(lp: LocalPlatformHandle, prefix: str) -> list[str]:
    pages = lp.client("s3").get_paginator("list_objects_v2").paginate(Bucket=lp.bucket("features"), Prefix=prefix)
    return [o["Key"] for p in pages for o in p.get("Contents", [])]


def _curated_rows(lp: LocalPlatformHandle, upload_id: str) -> int:
    s3 = lp.client("s3")
    return sum(
        pq.read_metadata(pa.BufferReader(s3.get_object(Bucket=lp.bucket("features"), Key=k)["Body"].read())).num_rows
        for k in _keys(lp, f"curated/{FS}/date=")
        if upload_id in k
    )


def _dlq(lp: LocalPlatformHandle) -> str:
    return str(lp.client("sqs").get_queue_url(QueueName=lp.name("dlq-data"))["QueueUrl"])


def _dlq_count(lp: LocalPlatformHandle) -> int:
    attrs = lp.client("sqs").get_queue_attributes(
        QueueUrl=_dlq(lp), AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )
    return sum(int(v) for v in attrs["Attributes"].values())


def _ingest_workers(lp: LocalPlatformHandle) -> list[int]:
    status = lp.cli("status", "--json")
    live = json.loads(status.stdout)["live"]["functions"]
    return list(live.get(lp.name("ingest"), {}).get("pids", []))


def _features_cli(lp: LocalPlatformHandle, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": lp.endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": lp.region,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "driftline.cli.main", "features", *args, "--config", str(ROOT / "cdk.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _ledger(lp: LocalPlatformHandle, version: str, rows_in: int) -> dict[str, Any]:
    """The upload's terminal record, with its accepted + rejected rows adding up and nothing left over."""
    record = _record(lp, version, TERMINAL)
    assert record["rows_accepted"] + record["rows_rejected"] == rows_in, record
    assert _curated_rows(lp, record["upload_id"]) == record["rows_accepted"]
    assert not [k for k in _keys(lp, f"curated/{FS}/_pending/") if record["upload_id"] in k]
    return record


@pytest.mark.parametrize("where", ["load", "commit"])
def test_killed_worker_loses_nothing_and_redrive_finishes_the_upload(lp: LocalPlatformHandle, where: str) -> None:
    """kill -9 of the ingest worker mid-upload: locked for 15 min, retries failed, DLQ, orphaned rows, no record."""
    t = generate(3000, "2026-01-01", "2026-03-31", seed=31 if where == "load" else 32)
    version = _put(lp, f"pause-in-{where}.parquet", _parquet(t))
    record = _record(lp, version, {"processing"} if where == "load" else {"committing"})
    (pid,) = wait_for(lambda: _ingest_workers(lp), what="the ingest worker")
    os.kill(pid, signal.SIGKILL)
    # the retries meet the dead attempt's lease (production: 45 s, a minute before Lambda's first retry;
    # the emulator retries after 1 and 2 s): the event lands in the DLQ, the record says where it stopped
    wait_for(lambda: _dlq_count(lp) >= 1, timeout=60, interval=0.2, what="the dead-lettered event")
    assert _records(lp)[version]["status"] in ("processing", "committing")
    if where == "commit":
        assert any(record["upload_id"] in k for k in _keys(lp, f"curated/{FS}/_pending/"))
    time.sleep(LEASE_SECONDS + 0.5)  # the dead attempt's lease runs out
    dry = _features_cli(lp, "redrive", "--stalled-after", "0", "--dry-run")
    assert dry.returncode == 0 and "pause-in-" in dry.stdout and "1 upload(s) would be redriven" in dry.stdout, dry
    run = _features_cli(lp, "redrive", "--stalled-after", "0")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "accepted" in run.stdout
    done = _ledger(lp, version, 3000)
    assert done["status"] == "accepted" and done["upload_id"] == record["upload_id"]
    assert _dlq_count(lp) == 0
    again = _features_cli(lp, "redrive", "--stalled-after", "0")
    assert again.returncode == 0 and "nothing to redrive" in again.stdout


HOSTILE_NAMES = [
    "my file ü.csv",
    "ünïcödé 日本語.csv",
    "plus+and%25percent.csv",
    "semi;colon,comma=eq.csv",
    "quote'and\"double.csv",
    "tab\tand newline.csv",
    "emoji 🚀.csv",
    "x" * 900 + ".csv",
]


def test_any_key_s3_accepts_ends_in_a_record_never_the_dlq(lp: LocalPlatformHandle) -> None:
    body = _csv(generate(40, "2026-04-01", "2026-04-02", seed=33))
    versions = [
        _put(lp, name, body if i == 0 else body.replace(b"\n", b"\n", 1)) for i, name in enumerate(HOSTILE_NAMES)
    ]
    for version in versions:
        record = _record(lp, version, TERMINAL)
        # the same bytes under other keys: counted once (ingest.on_duplicate_content: skip), never failed
        assert record["status"] in ("accepted", "skipped"), record
    statuses = [_records(lp)[v]["status"] for v in versions]
    assert statuses.count("accepted") == 1
    assert _dlq_count(lp) == 0


def test_racing_versions_of_one_key_are_each_ingested_once(lp: LocalPlatformHandle) -> None:
    """Back-to-back uploads to one key: one lost, the other ingested twice (no versionId locally)."""
    tables = [generate(100 + 10 * i, "2026-05-01", "2026-05-03", seed=40 + i) for i in range(5)]
    versions = [_put(lp, "racing.parquet", _parquet(t)) for t in tables]
    assert len(set(versions)) == 5
    for version, t in zip(versions, tables, strict=True):
        record = _ledger(lp, version, t.num_rows)
        assert record["status"] == "accepted"
    assert len({_records(lp)[v]["upload_id"] for v in versions}) == 5
    assert _dlq_count(lp) == 0


def test_a_mixed_batch_adds_up(lp: LocalPlatformHandle) -> None:
    """accepted + quarantined = rows in, over good, partly bad, unreadable and empty files."""
    good = generate(200, "2026-06-01", "2026-06-03", seed=50)
    lines = _csv(generate(120, "2026-06-01", "2026-06-03", seed=51)).decode().splitlines()
    lines[5] = lines[5].replace(",", ",not-a-number", 1)
    lines[9] = "U1-" + "é" * 3000 + lines[9][lines[9].index(",") :]  # an entity id over the online key limit
    uploads = [
        (_put(lp, "good.parquet", _parquet(good)), 200),
        (_put(lp, "partly bad.csv", ("\n".join(lines) + "\n").encode()), 120),
    ]
    for version, rows in uploads:
        _ledger(lp, version, rows)
    unreadable = _put(lp, "broken.parquet", b"PAR1 this is not parquet")
    record = _record(lp, unreadable, TERMINAL)
    assert record["status"] == "unreadable" and record["report_uri"]
    assert _dlq_count(lp) == 0
