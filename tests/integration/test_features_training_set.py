"""build_training_set on moto: curated data in, point-in-time snapshot + lineage out."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from driftline import aws as aws_mod
from driftline.datasets.credit_default import generate
from driftline.features.ingest import Ingestor, IngestTargets, S3Object
from driftline.features.schema import FeatureSet, FeatureSetCatalog
from driftline.features.training_set import FEATURE_TIMESTAMP, TrainingSetError, build_training_set


def _ingest(env: dict[str, str], key: str, table: pa.Table, time: str) -> Any:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    s3 = aws_mod.client("s3")
    resp = s3.put_object(Bucket=env["FEATURES_BUCKET"], Key=key, Body=buf.getvalue())
    ingestor = Ingestor(FeatureSetCatalog(env["FEATURE_SETS_DIR"]), IngestTargets.from_env())
    return ingestor.process(
        S3Object(env["FEATURES_BUCKET"], key, resp.get("VersionId"), resp["ETag"], len(buf.getvalue()), time)
    )


def test_snapshot_lineage_and_no_leakage(aws: dict[str, str], credit_fs: FeatureSet) -> None:
    env = aws
    first = generate(300, "2026-01-01", "2026-01-20", seed=1)
    second = generate(200, "2026-01-20", "2026-02-01", seed=2).drop_columns(["defaulted"])  # features only
    for key, table, at in (("a", first, "00:00"), ("b", second, "00:05")):
        result = _ingest(env, f"incoming/credit_default/{key}.parquet", table, f"2026-11-26T{at}:00Z")
        assert result.status == "accepted"
    ts = build_training_set(credit_fs, env["FEATURES_BUCKET"], output_key="training-sets/credit-default/run-1.parquet")
    assert ts.rows == 300 and ts.label_rows == 300 and ts.unmatched_labels == 0
    body = aws_get(env, ts.key)
    assert hashlib.sha256(body).hexdigest() == ts.sha256
    s3 = aws_mod.client("s3")
    listed = s3.list_objects_v2(Bucket=env["FEATURES_BUCKET"], Prefix="curated/")["Contents"]
    assert sorted(o.key for o in ts.inputs) == sorted(o["Key"] for o in listed)
    assert all(o.version_id for o in ts.inputs)
    lineage = ts.lineage()
    assert lineage["uri"] == f"s3://{env['FEATURES_BUCKET']}/training-sets/credit-default/run-1.parquet"
    assert len(lineage["object_versions"]) == len(listed) and lineage["feature_set_fingerprint"]
    snap = pq.read_table(pa.BufferReader(body))
    assert snap.column_names[:2] == ["customer_id", "event_timestamp"]
    assert set(credit_fs.feature_names) <= set(snap.column_names)
    assert pc.all(pc.less_equal(snap.column(FEATURE_TIMESTAMP), snap.column("event_timestamp"))).as_py()
    # same inputs, same bytes
    again = build_training_set(credit_fs, env["FEATURES_BUCKET"], output_key="training-sets/x/run-2.parquet")
    assert again.sha256 == ts.sha256

    # external label events later than the features: the latest earlier snapshot is used, never a later one
    cust = first.column("customer_id")[0].as_py()
    rows = [r for r in first.to_pylist() + second.to_pylist() if r["customer_id"] == cust]
    rows.sort(key=lambda r: r["event_timestamp"])
    label_time = rows[0]["event_timestamp"] + timedelta(seconds=1)
    ts_type = pa.timestamp("us", "UTC")
    labels = pa.table({"customer_id": [cust], "event_timestamp": pa.array([label_time], ts_type), "defaulted": [1]})
    one = build_training_set(credit_fs, env["FEATURES_BUCKET"], labels=labels, output_key="training-sets/x/3.parquet")
    assert one.table.column("age").to_pylist() == [rows[0]["age"]]
    assert one.table.column(FEATURE_TIMESTAMP).to_pylist() == [rows[0]["event_timestamp"]]
    old = pa.table(
        {
            "customer_id": [cust],
            "defaulted": [0],
            "event_timestamp": pa.array([label_time + timedelta(days=400)], ts_type),
        }
    )
    with pytest.raises(TrainingSetError, match="within"):
        build_training_set(credit_fs, env["FEATURES_BUCKET"], labels=old, max_feature_age=timedelta(days=30))


def test_reuploaded_rows_count_once(aws: dict[str, str], credit_fs: FeatureSet) -> None:
    env = aws
    t = generate(100, "2026-01-01", "2026-01-05", seed=3)
    _ingest(env, "incoming/credit_default/a.parquet", t, "2026-11-26T00:00:00Z")
    _ingest(env, "incoming/credit_default/a-again.parquet", t, "2026-11-26T01:00:00Z")
    ts = build_training_set(credit_fs, env["FEATURES_BUCKET"])
    assert ts.rows == 100 and ts.key.startswith("training-sets/credit_default/")


def test_no_data_and_no_labels(aws: dict[str, str], credit_fs: FeatureSet) -> None:
    env = aws
    with pytest.raises(TrainingSetError, match="no curated data"):
        build_training_set(credit_fs, env["FEATURES_BUCKET"])
    unlabelled = generate(20, "2026-01-01", "2026-01-02", seed=4).drop_columns(["defaulted"])
    _ingest(env, "incoming/credit_default/a.parquet", unlabelled, "2026-11-26T00:00:00Z")
    with pytest.raises(TrainingSetError, match="no labelled rows"):
        build_training_set(credit_fs, env["FEATURES_BUCKET"])


def aws_get(env: dict[str, str], key: str) -> bytes:
    return bytes(aws_mod.client("s3").get_object(Bucket=env["FEATURES_BUCKET"], Key=key)["Body"].read())
