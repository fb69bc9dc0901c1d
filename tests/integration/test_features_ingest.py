"""Ingest end to end on moto: S3 event → handler → curated, quarantine, online store, record, event."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from driftline import aws
from driftline.datasets.credit_default import generate
from driftline.features.online import OnlineStore

ROOT = Path(__file__).resolve().parents[2]
FS = "credit_default"


class _Context:
    function_name = "dev-driftline-ingest"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:dev-driftline-ingest"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


@pytest.fixture
def env(aws: dict[str, str]) -> dict[str, str]:
    return aws


@pytest.fixture
def bus_queue(env: dict[str, str]) -> str:
    """An SQS queue subscribed to FeatureDataAccepted on the platform bus."""
    sqs, events = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName="accepted-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="accepted",
        EventBusName=env["EVENT_BUS_NAME"],
        EventPattern=json.dumps({"source": ["driftline.ingest"], "detail-type": ["FeatureDataAccepted"]}),
    )
    events.put_targets(Rule="accepted", EventBusName=env["EVENT_BUS_NAME"], Targets=[{"Id": "q", "Arn": arn}])
    return str(url)


def _handler() -> Any:
    from lambdas import ingest

    return ingest


def _upload(env: dict[str, str], key: str, body: bytes) -> dict[str, Any]:
    resp = aws.client("s3").put_object(Bucket=env["FEATURES_BUCKET"], Key=key, Body=body)
    return {"key": key, "size": len(body), "etag": resp["ETag"], "version": resp.get("VersionId")}


def _event(env: dict[str, str], *objs: dict[str, Any], time: str = "2026-11-26T01:00:00.000Z") -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": time,
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": env["FEATURES_BUCKET"]},
                    "object": {
                        "key": quote_plus(o["key"]),
                        "size": o["size"],
                        "eTag": o["etag"].strip('"'),
                        "versionId": o["version"],
                    },
                },
            }
            for o in objs
        ]
    }


def _invoke(event: dict[str, Any]) -> list[dict[str, Any]]:
    out = _handler().handler(event, _Context())
    return list(out["results"])


def _parquet(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(t, buf)
    return buf.getvalue()


def _csv(t: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(t, buf)
    return buf.getvalue()


def _keys(env: dict[str, str], prefix: str) -> list[str]:
    resp = aws.client("s3").list_objects_v2(Bucket=env["FEATURES_BUCKET"], Prefix=prefix)
    return sorted(o["Key"] for o in resp.get("Contents", []))


def _get(env: dict[str, str], key: str) -> bytes:
    return bytes(aws.client("s3").get_object(Bucket=env["FEATURES_BUCKET"], Key=key)["Body"].read())


def _curated_rows(env: dict[str, str]) -> pa.Table:
    tables = [pq.read_table(pa.BufferReader(_get(env, k))) for k in _keys(env, f"curated/{FS}/")]
    return pa.concat_tables(tables) if tables else pa.table({})


def _records(env: dict[str, str]) -> list[dict[str, Any]]:
    resp = aws.client("dynamodb").query(
        TableName=env["CONTROL_TABLE"],
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": f"INGEST#{FS}"}},
    )
    return [json.loads(i["result"]["S"]) for i in resp["Items"]]


def _messages(url: str) -> list[dict[str, Any]]:
    resp = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in resp.get("Messages", [])]


def _feature_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replace: dict[str, str]) -> None:
    text = (ROOT / "examples" / "feature_sets" / f"{FS}.yaml").read_text()
    for a, b in replace.items():
        assert a in text
        text = text.replace(a, b)
    (tmp_path / f"{FS}.yaml").write_text(text)
    monkeypatch.setenv("FEATURE_SETS_DIR", str(tmp_path))


def test_good_file_is_curated_served_recorded_announced_and_removed(env: dict[str, str], bus_queue: str) -> None:
    table = generate(400, "2026-01-01", "2026-01-10", seed=1)
    up = _upload(env, f"incoming/{FS}/2026/good.parquet", _parquet(table))
    (result,) = _invoke(_event(env, up))
    assert result["status"] == "accepted", result
    assert result["rows_accepted"] == 400 and result["rows_rejected"] == 0
    assert result["has_labels"] is True and result["original_deleted"] is True

    curated = _keys(env, f"curated/{FS}/")
    assert curated == sorted(result["curated_keys"]) and len(curated) >= 9
    assert all(
        k.startswith(f"curated/{FS}/date=2026-01-0") and k.endswith(f"/{result['upload_id']}.parquet") for k in curated
    )
    rows = _curated_rows(env)
    assert rows.num_rows == 400
    assert sorted(rows.column("customer_id").to_pylist()) == sorted(table.column("customer_id").to_pylist())
    meta = pq.read_metadata(pa.BufferReader(_get(env, curated[0])))
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert _keys(env, "quarantine/") == []

    # online store: the newest snapshot per customer, request-time 'channel' left out
    last: dict[str, dict[str, Any]] = {}
    for r in table.to_pylist():
        if r["customer_id"] not in last or r["event_timestamp"] > last[r["customer_id"]]["event_timestamp"]:
            last[r["customer_id"]] = r
    some = sorted(last)[:5]
    got = OnlineStore(env["ONLINE_TABLE"]).get_many(FS, [*some, "C9999999"])
    assert got["C9999999"] is None
    for cid in some:
        values = got[cid]
        assert values is not None
        assert values["age"] == last[cid]["age"] and values["income"] == last[cid]["income"]
        assert "channel" not in values and "defaulted" not in values

    (record,) = _records(env)
    assert record["status"] == "accepted" and record["content_sha256"]
    assert record["version_id"] == up["version"]
    (msg,) = _messages(bus_queue)
    assert msg["detail-type"] == "FeatureDataAccepted"
    assert msg["detail"]["rows_accepted"] == 400 and msg["detail"]["has_labels"] is True
    assert msg["detail"]["upload_id"] == result["upload_id"]

    # deleted from incoming/, yet not lost: the version is still there
    s3 = aws.client("s3")
    assert _keys(env, "incoming/") == []
    versions = s3.list_object_versions(Bucket=env["FEATURES_BUCKET"], Prefix="incoming/")["Versions"]
    assert [v["VersionId"] for v in versions] == [up["version"]]


@pytest.mark.parametrize("name", ["my file ü.csv", "データ 1.csv", "emoji 🐧 (copy).csv", "a+b=c&d%20e.csv"])
def test_any_key_s3_accepts_is_processed(env: dict[str, str], name: str) -> None:
    """Non-ASCII keys once failed every attempt (the key was copied into ASCII-only S3 metadata)."""
    up = _upload(env, f"incoming/{FS}/{name}", _csv(generate(50, "2026-02-01", "2026-02-03", seed=4)))
    (result,) = _invoke(_event(env, up))
    assert result["status"] == "accepted", result
    assert result["source"].endswith(name)
    curated = _keys(env, f"curated/{FS}/")
    head = aws.client("s3").head_object(Bucket=env["FEATURES_BUCKET"], Key=curated[0])
    from urllib.parse import unquote

    assert unquote(head["Metadata"]["source"]).endswith(name)


def test_oversized_entity_id_is_quarantined_not_fatal(env: dict[str, str]) -> None:
    """A 5,000-character customer_id once passed validation, failed the online write, and orphaned the rest."""
    table = generate(300, "2026-02-01", "2026-02-03", seed=5)
    ids = table.column("customer_id").to_pylist()
    ids[7] = "C" * 5000
    table = table.set_column(table.column_names.index("customer_id"), "customer_id", pa.array(ids))
    (result,) = _invoke(_event(env, _upload(env, f"incoming/{FS}/long-id.parquet", _parquet(table))))
    assert result["status"] == "partial", result
    assert (result["rows_accepted"], result["rows_rejected"]) == (299, 1)
    assert _curated_rows(env).num_rows == 299


def test_partly_bad_csv_with_spaces_in_the_key(env: dict[str, str], bus_queue: str) -> None:
    table = generate(200, "2026-02-01", "2026-02-03", seed=2).drop_columns(["defaulted"])
    body = _csv(table).decode().splitlines()
    body[5] = body[5].replace(body[5].split(",")[2], "abc", 1)  # age: not a number
    header = body[0].split(",")
    row = body[8].split(",")
    row[header.index('"region"')] = '"atlantis"'
    body[8] = ",".join(row)
    up = _upload(env, f"incoming/{FS}/batch 2 (fixed).csv", ("\n".join(body) + "\n").encode())
    (result,) = _invoke(_event(env, up))
    assert result["status"] == "partial"
    assert (result["rows_accepted"], result["rows_rejected"]) == (198, 2)
    assert result["has_labels"] is False
    prefix = f"quarantine/{FS}/{result['upload_id']}/"
    assert _keys(env, prefix) == [prefix + "rejected.parquet", prefix + "report.json"]
    report = json.loads(_get(env, prefix + "report.json"))
    assert report["status"] == "partial" and report["source"].endswith("batch 2 (fixed).csv")
    checks = {(c["check"], c["column"]): c for c in report["checks"]}
    assert checks[("type", "age")]["sample"][0]["row"] == 4  # line 6 of the file = data row 4
    assert checks[("category", "region")]["details"]["unknown_values"] == {"atlantis": 1}
    rejected = pq.read_table(pa.BufferReader(_get(env, prefix + "rejected.parquet")))
    assert rejected.column("_row").to_pylist() == [4, 7]
    assert _curated_rows(env).num_rows == 198
    assert _keys(env, "incoming/") == [f"incoming/{FS}/batch 2 (fixed).csv"]  # kept: not fully accepted
    assert result["report_uri"] in result["reason"]
    (msg,) = _messages(bus_queue)
    assert msg["detail"]["has_labels"] is False


def test_corrupt_file_is_quarantined_whole_and_kept(env: dict[str, str]) -> None:
    data = _parquet(generate(50, "2026-01-01", "2026-01-02", seed=3))[:500]
    up = _upload(env, f"incoming/{FS}/broken.parquet", data)
    (result,) = _invoke(_event(env, up))
    assert result["status"] == "unreadable" and "cannot be read" in result["reason"]
    prefix = f"quarantine/{FS}/{result['upload_id']}/"
    assert _keys(env, prefix) == [prefix + "original.parquet", prefix + "report.json"]
    assert _get(env, prefix + "original.parquet") == data
    report = json.loads(_get(env, prefix + "report.json"))
    assert report["checks"][0]["check"] == "corrupt_file" and report["checks"][0]["hint"]
    assert _keys(env, "curated/") == []
    assert _keys(env, "incoming/") == [up["key"]]
    assert _records(env)[0]["status"] == "unreadable"


@pytest.mark.parametrize(
    "body, check",
    [
        (b"", "empty_file"),
        (b'customer_id,age\nA,"3\nB,4\n', "csv_quoting"),
        (gzip.compress(b"customer_id,age\n1,2\n", mtime=0)[:20], "corrupt_file"),
    ],
    ids=["empty", "csv-quoting", "corrupt-gzip"],
)
def test_other_unreadable_uploads(env: dict[str, str], body: bytes, check: str) -> None:
    up = _upload(env, f"incoming/{FS}/x.csv" + (".gz" if body[:2] == b"\x1f\x8b" else ""), body)
    (result,) = _invoke(_event(env, up))
    assert result["status"] == "unreadable" and result["checks"][0]["check"] == check
    report = json.loads(_get(env, f"quarantine/{FS}/{result['upload_id']}/report.json"))
    assert report["checks"][0]["message"]


def test_file_of_another_feature_set_and_strings_for_floats(env: dict[str, str]) -> None:
    other = pa.table({"store_id": ["s1"], "ts": ["2026-01-01"], "sales": [3.0]})
    (result,) = _invoke(_event(env, _upload(env, f"incoming/{FS}/sales.csv", _csv(other))))
    assert result["status"] == "rejected" and result["checks"][0]["check"] == "missing_columns"
    report = json.loads(_get(env, f"quarantine/{FS}/{result['upload_id']}/report.json"))
    assert "another feature set" in report["checks"][0]["hint"]
    assert report["quarantined"].endswith("original.csv")

    t = generate(20, "2026-01-01", "2026-01-02", seed=4)
    t = t.set_column(t.column_names.index("income"), "income", pa.array(["n/a?"] * 20))
    (result,) = _invoke(_event(env, _upload(env, f"incoming/{FS}/strings.parquet", _parquet(t))))
    assert result["status"] == "rejected" and result["rows_rejected"] == 20


def test_too_large_file_is_refused_without_download(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _feature_dir(tmp_path, monkeypatch, {"max_file_mb: 512": "max_file_mb: 1"})
    body = _csv(generate(8000, "2026-01-01", "2026-01-05", seed=5))
    assert len(body) > 1024 * 1024
    up = _upload(env, f"incoming/{FS}/huge.csv", body)
    (result,) = _invoke(_event(env, up))
    assert result["status"] == "too_large"
    report = json.loads(_get(env, f"quarantine/{FS}/{result['upload_id']}/report.json"))
    assert "split it" in report["checks"][0]["hint"] and report["quarantined"] is None
    assert _keys(env, f"quarantine/{FS}/{result['upload_id']}/") == [
        f"quarantine/{FS}/{result['upload_id']}/report.json"
    ]
    assert _keys(env, "incoming/") == [up["key"]]


def test_reject_file_policy_accepts_nothing(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _feature_dir(tmp_path, monkeypatch, {"on_partial_failure: accept_valid": "on_partial_failure: reject_file"})
    t = generate(30, "2026-01-01", "2026-01-02", seed=6)
    ages = t.column("age").to_pylist()
    ages[0] = 7
    t = t.set_column(t.column_names.index("age"), "age", pa.array(ages))
    (result,) = _invoke(_event(env, _upload(env, f"incoming/{FS}/one-bad.parquet", _parquet(t))))
    assert result["status"] == "rejected" and result["rows_accepted"] == 0 and result["rows_rejected"] == 30
    assert _keys(env, "curated/") == []
    report = json.loads(_get(env, f"quarantine/{FS}/{result['upload_id']}/report.json"))
    assert "policy_note" in report and report["rows_failing_checks"] == 1


def test_keys_outside_incoming_and_unknown_feature_sets_are_skipped(env: dict[str, str]) -> None:
    ups = [
        _upload(env, "curated/x.parquet", b"x"),
        _upload(env, "incoming/nope/x.csv", b"a\n1\n"),
        _upload(env, "incoming/loose.csv", b"a\n1\n"),
    ]
    results = _invoke(_event(env, *ups))
    assert [r["status"] for r in results] == ["skipped"] * 3
    assert "outside incoming/" in results[0]["reason"]
    assert "unknown feature set 'nope'" in results[1]["reason"]
    assert "no feature set folder" in results[2]["reason"]
    assert _keys(env, "quarantine/") == [] and _records(env) == []
    assert _handler().handler({"hello": "world"}, _Context())["results"] == []


def test_redelivery_is_idempotent(env: dict[str, str], bus_queue: str) -> None:
    t = generate(100, "2026-03-01", "2026-03-02", seed=7)
    event = _event(env, _upload(env, f"incoming/{FS}/again.parquet", _parquet(t)))
    (first,) = _invoke(event)
    (second,) = _invoke(event)
    assert first["status"] == "accepted" and not first.get("idempotent_replay")
    assert second["idempotent_replay"] is True and second["upload_id"] == first["upload_id"]
    assert len(_records(env)) == 1 and len(_messages(bus_queue)) == 1
    s3 = aws.client("s3")
    versions = s3.list_object_versions(Bucket=env["FEATURES_BUCKET"], Prefix="curated/")["Versions"]
    assert len([v for v in versions if v["Key"].endswith(".parquet")]) == len(first["curated_keys"])


def test_reprocessing_without_idempotency_overwrites_instead_of_duplicating(env: dict[str, str]) -> None:
    from driftline.features.ingest import Ingestor, IngestTargets, parse_s3_event
    from driftline.features.schema import FeatureSetCatalog

    t = generate(60, "2026-03-01", "2026-03-02", seed=8)
    body = _csv(t).decode().splitlines()
    body[2] = body[2].replace('"C', '"', 1).replace(",", ",x", 2)
    event = _event(env, _upload(env, f"incoming/{FS}/p.csv", ("\n".join(body) + "\n").encode()))
    ingestor = Ingestor(FeatureSetCatalog(env["FEATURE_SETS_DIR"]), IngestTargets.from_env())
    (obj,) = parse_s3_event(event)
    a, b = ingestor.process(obj), ingestor.process(obj)
    assert a.status == b.status == "partial" and a.upload_id == b.upload_id
    assert _curated_rows(env).num_rows == a.rows_accepted
    assert len(_records(env)) == 1


def test_late_older_rows_never_overwrite_newer_online_values(env: dict[str, str]) -> None:
    newer = generate(50, "2026-05-01", "2026-05-02", seed=9)
    older = generate(50, "2026-01-01", "2026-01-02", seed=10)
    (r1,) = _invoke(_event(env, _upload(env, f"incoming/{FS}/new.parquet", _parquet(newer))))
    (r2,) = _invoke(
        _event(env, _upload(env, f"incoming/{FS}/old.parquet", _parquet(older)), time="2026-11-26T02:00:00.000Z")
    )
    assert r1["online_written"] > 0
    shared = set(newer.column("customer_id").to_pylist()) & set(older.column("customer_id").to_pylist())
    assert shared and r2["online_stale"] >= len(shared)
    recs = OnlineStore(env["ONLINE_TABLE"]).get_records(FS, sorted(shared))
    for rec in recs.values():
        assert rec is not None and rec.event_ts_us >= 1_777_593_600_000_000  # 2026-05-01


def test_same_bytes_under_another_key_count_once(env: dict[str, str]) -> None:
    """1,000 rows uploaded under two keys once gave 2,000 curated rows (issue 16, item 5)."""
    body = _parquet(generate(100, "2026-02-01", "2026-02-03", seed=6))
    (first,) = _invoke(_event(env, _upload(env, f"incoming/{FS}/a.parquet", body)))
    up = _upload(env, f"incoming/{FS}/copy of a.parquet", body)
    (second,) = _invoke(_event(env, up))
    assert first["status"] == "accepted"
    assert second["status"] == "skipped" and "already ingested from" in second["reason"]
    assert first["upload_id"] in second["reason"]
    assert _curated_rows(env).num_rows == 100
    (again,) = _invoke(_event(env, up))  # a redelivery of the same version: still the same answer
    assert again["status"] == "skipped" and _curated_rows(env).num_rows == 100
    assert any(r["status"] == "skipped" for r in _records(env))  # on record, not only in a log


def _idempotency_items(env: dict[str, str]) -> list[dict[str, Any]]:
    return list(aws.client("dynamodb").scan(TableName=env["IDEMPOTENCY_TABLE"])["Items"])


class _Killed(BaseException):
    """Stands for kill -9: nothing of the attempt runs after it (Powertools releases on Exception only)."""


def test_a_crashed_attempt_frees_the_upload_for_the_retry(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed 5 s into an ingest kept the upload locked ~15 min: both retries failed, DLQ."""
    import time

    from driftline.features import ingest_lease
    from driftline.features.ingest import Ingestor

    monkeypatch.setattr(ingest_lease, "LEASE_SECONDS", 1.0)
    up = _upload(env, f"incoming/{FS}/crash.parquet", _parquet(generate(50, "2026-02-01", "2026-02-03", seed=8)))
    original = Ingestor.process

    def killed(self: Any, obj: Any) -> Any:
        raise _Killed

    monkeypatch.setattr(Ingestor, "process", killed)
    with pytest.raises(_Killed):
        _invoke(_event(env, up))
    (item,) = [i for i in _idempotency_items(env) if i["status"]["S"] == "INPROGRESS"]
    lease_left = int(item["in_progress_expiration"]["N"]) / 1000 - time.time()
    assert lease_left <= 1.0  # not the invocation's 600 s of remaining time
    monkeypatch.setattr(Ingestor, "process", original)
    time.sleep(max(0.0, lease_left) + 0.2)
    (result,) = _invoke(_event(env, up))  # the retry takes the upload over
    assert result["status"] == "accepted" and _curated_rows(env).num_rows == 50


def test_a_live_attempt_keeps_renewing_its_lease(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from driftline.features import ingest_lease
    from driftline.features.ingest import Ingestor

    monkeypatch.setattr(ingest_lease, "LEASE_SECONDS", 0.9)
    up = _upload(env, f"incoming/{FS}/slow.parquet", _parquet(generate(50, "2026-02-01", "2026-02-03", seed=9)))
    original = Ingestor.process
    seen: list[int] = []

    def slow(self: Any, obj: Any) -> Any:
        for _ in range(5):  # 2 s: longer than the lease; only the heartbeat keeps the lock alive
            seen.extend(
                int(i["in_progress_expiration"]["N"])
                for i in _idempotency_items(env)
                if i["status"]["S"] == "INPROGRESS"
            )
            time.sleep(0.4)
        return original(self, obj)

    monkeypatch.setattr(Ingestor, "process", slow)
    (result,) = _invoke(_event(env, up))
    assert result["status"] == "accepted"
    assert len(seen) >= 3 and seen[-1] > seen[0] + 500  # pushed forward while the attempt was alive


# ---- commit protocol, failure records and redrive (issue 16 item 1) ---------------------------------------------
def _invoke_handler(event: dict[str, Any]) -> dict[str, Any]:
    return dict(_handler().handler(event, _Context()))


def _pending(env: dict[str, str]) -> list[str]:
    return _keys(env, f"curated/{FS}/_pending/")


def _training_rows(env: dict[str, str]) -> int:
    from driftline.features.schema import FeatureSetCatalog
    from driftline.features.training_set import TrainingSetError, read_curated

    fs = FeatureSetCatalog(env["FEATURE_SETS_DIR"]).get(FS)
    try:
        return int(read_curated(fs, env["FEATURES_BUCKET"])[0].num_rows)
    except TrainingSetError:
        return 0


def _unfinished(env: dict[str, str], **kwargs: Any) -> list[Any]:
    from datetime import timedelta

    from driftline.features.redrive import unfinished_uploads

    return unfinished_uploads(
        env["CONTROL_TABLE"], [FS], stalled_after=timedelta(0), client=aws.client("dynamodb"), **kwargs
    )


def _redrive(uploads: list[Any], deleted: list[str] | None = None) -> list[Any]:
    from driftline.features.redrive import redrive

    return redrive(uploads, _invoke_handler, delete_message=(deleted if deleted is not None else []).append)


def test_a_commit_killed_midway_is_never_read_and_redrive_rolls_it_forward(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed 5 s into a 60,000-row upload: 90 curated files, 400 online items, no record (issue 16 item 1)."""
    from driftline.features.online import OnlineStore

    t = generate(400, "2026-01-01", "2026-03-31", seed=21)
    up = _upload(env, f"incoming/{FS}/killed.parquet", _parquet(t))
    original = OnlineStore.put_latest

    def killed(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise _Killed  # after every curated file was written, before the online store

    monkeypatch.setattr(OnlineStore, "put_latest", killed)
    with pytest.raises(_Killed):
        _invoke(_event(env, up))
    monkeypatch.setattr(OnlineStore, "put_latest", original)
    assert len(_keys(env, f"curated/{FS}/date=")) > 50  # the files are there ...
    assert len(_pending(env)) == 1 and _training_rows(env) == 0  # ... and not read: the commit did not finish
    (record,) = _records(env)
    assert record["status"] == "committing" and len(record["curated_days"]) == len(_keys(env, f"curated/{FS}/date="))

    (dead,) = _unfinished(env)
    assert dead.status == "committing" and dead.version_id == up["version"]
    (outcome,) = _redrive([dead])
    assert outcome.status == "accepted"
    (record,) = _records(env)  # the same record, rolled forward: same upload id, same keys
    assert record["status"] == "accepted" and record["upload_id"] == dead.upload_id
    assert _pending(env) == [] and _training_rows(env) == _curated_rows(env).num_rows == 400
    assert len(
        OnlineStore(env["ONLINE_TABLE"], aws.client("dynamodb")).get_many(
            FS, sorted(set(t.column("customer_id").to_pylist()))
        )
    ) == len(set(t.column("customer_id").to_pylist()))
    assert _unfinished(env) == []


def test_an_aws_error_is_recorded_before_the_retry_and_the_retry_commits(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from driftline.features.online import OnlineStore

    up = _upload(env, f"incoming/{FS}/throttled.parquet", _parquet(generate(80, "2026-02-01", "2026-02-05", seed=22)))
    original = OnlineStore.put_latest

    def throttled(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
        )

    monkeypatch.setattr(OnlineStore, "put_latest", throttled)
    with pytest.raises(ClientError):
        _invoke(_event(env, up))
    (record,) = _records(env)
    assert record["status"] == "failed" and record["retryable"] is True
    assert "ProvisionedThroughputExceededException" in record["reason"] and "redrive" in record["reason"]
    assert _training_rows(env) == 0
    # a retryable failure younger than the function's timeout is Lambda's to retry, not redrive's
    from datetime import timedelta

    from driftline.features.redrive import unfinished_uploads

    assert (
        unfinished_uploads(
            env["CONTROL_TABLE"], [FS], stalled_after=timedelta(minutes=15), client=aws.client("dynamodb")
        )
        == []
    )
    monkeypatch.setattr(OnlineStore, "put_latest", original)
    (result,) = _invoke(_event(env, up))  # Lambda's retry: the same event
    assert result["status"] == "accepted" and not result.get("idempotent_replay")
    (record,) = _records(env)
    assert record["status"] == "accepted" and _training_rows(env) == 80 and _pending(env) == []


def test_an_internal_error_leaves_a_failed_record_and_report_and_redrive_reprocesses_it(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftline.features import ingest
    from driftline.features.validation import validate as original

    up = _upload(env, f"incoming/{FS}/bug.parquet", _parquet(generate(60, "2026-02-01", "2026-02-03", seed=23)))

    def bug(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a bug in validation")

    monkeypatch.setattr(ingest, "validate", bug)
    (result,) = _invoke(_event(env, up))
    assert result["status"] == "failed" and "ValueError: a bug in validation" in result["reason"]
    assert "driftline features redrive --upload" in result["reason"]
    report = json.loads(_get(env, result["report_uri"].split("/", 3)[3]))
    assert report["status"] == "failed" and report["original_kept_at"].endswith("bug.parquet")
    assert _keys(env, f"incoming/{FS}/") == [f"incoming/{FS}/bug.parquet"]  # the original is kept
    monkeypatch.setattr(ingest, "validate", original)
    (replay,) = _invoke(_event(env, up))
    assert replay["idempotent_replay"] is True and replay["status"] == "failed"  # plain redelivery replays ...
    (failed,) = _unfinished(env, upload_ids=[result["upload_id"]])
    (outcome,) = _redrive([failed])  # ... a redrive runs it again
    assert outcome.status == "accepted" and _training_rows(env) == 60
    (record,) = _records(env)
    assert record["status"] == "accepted" and record["upload_id"] == result["upload_id"]


def test_dead_lettered_events_are_redriven_and_only_their_messages_deleted(env: dict[str, str]) -> None:
    """The control table was down too: the DLQ message is the only trace of the upload."""
    from driftline.features.redrive import dead_lettered, merge

    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="dlq-data", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    up = _upload(env, f"incoming/{FS}/dead lettered ü.csv", _csv(generate(30, "2026-02-01", "2026-02-02", seed=24)))
    sqs.send_message(
        QueueUrl=url,
        MessageBody=json.dumps(_event(env, up)),
        MessageAttributes={
            "ErrorMessage": {"DataType": "String", "StringValue": "Task timed out after 900.00 seconds"}
        },
    )
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"model": "credit-default"}))  # another function's
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    found = merge(_unfinished(env), dead_lettered(url, env["FEATURES_BUCKET"], client=sqs))
    (u,) = found
    assert u.status == "dead-lettered" and "timed out" in u.reason and u.key.endswith("dead lettered ü.csv")
    deleted: list[str] = []
    outcomes = _redrive(found, deleted)
    assert [o.status for o in outcomes] == ["accepted"] and len(deleted) == 1
    for receipt in deleted:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)
    left = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in left) == sorted([json.dumps({"model": "credit-default"}), "not json"])
    assert _training_rows(env) == 30


def test_an_upload_spanning_decades_fits_its_record(env: dict[str, str]) -> None:
    """Every curated key twice in one item passed DynamoDB's 400 KB limit at ~2,500 days: DLQ, no record."""
    t = generate(4000, "2015-01-01", "2026-01-01", seed=25)
    up = _upload(env, f"incoming/{FS}/decade.parquet", _parquet(t))
    (result,) = _invoke(_event(env, up))
    days = len(result["curated_keys"])
    assert result["status"] == "accepted" and days > 2500
    (record,) = _records(env)
    assert len(record["curated_days"]) == days and len(record["curated_keys"]) == 50
