"""Feedback labels feed retraining, on moto: captures and labels in the captures bucket become training
rows next to the uploads (or alone), and the version's lineage says how many came from each and what the
join left out. On the code before training.feedback, a retraining trained on the uploads only."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from driftline import aws as aws_mod
from driftline.capture_format import request_record
from driftline.captures_store import CapturesStore
from driftline.config import PlatformConfig
from driftline.contracts import CAPTURES_PREFIX, hour_prefix
from driftline.features.ingest import Ingestor, IngestTargets, S3Object
from driftline.features.schema import FeatureSetCatalog
from driftline.registry.store import Registry
from driftline.training.task import TrainContext, feature_store_source, run_training

MODEL = "credit-default"
ROOT = Path(__file__).resolve().parents[2]
CALLER = "arn:aws:iam::123456789012:role/client"
N_FEEDBACK = 150


def _ingest(env: dict[str, str], table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    key = "incoming/credit_default/fb.parquet"
    resp = aws_mod.client("s3").put_object(Bucket=env["FEATURES_BUCKET"], Key=key, Body=buf.getvalue())
    ingestor = Ingestor(FeatureSetCatalog(env["FEATURE_SETS_DIR"]), IngestTargets.from_env())
    obj = S3Object(env["FEATURES_BUCKET"], key, resp.get("VersionId"), resp["ETag"], len(buf.getvalue()), "x")
    assert ingestor.process(obj).status == "accepted"


def _traffic(env: dict[str, str], now: datetime) -> None:
    """One request of N_FEEDBACK rows a day ago, labelled by its caller; a labelled test request; labels
    for an unknown id, of the wrong type and from someone else."""
    from driftline.datasets.credit_default import generate

    fs = FeatureSetCatalog(env["FEATURE_SETS_DIR"]).get("credit_default")
    served = generate(N_FEEDBACK + 10, "2026-06-01", "2026-06-10", seed=9).to_pylist()
    rows = [{k: r[k] for k in fs.feature_names} for r in served]
    at = now - timedelta(days=1)

    def record(rid: str, part: list[dict[str, Any]], test: bool = False) -> str:
        rec = request_record(
            request_id=rid,
            model=MODEL,
            version=1,
            role="champion",
            ts=at.isoformat(),
            latency_ms=1.0,
            rows=part,
            outputs=[{"label": 0, "probability": 0.1}] * len(part),
            caller=CALLER,
            test=test,
        )
        return json.dumps(rec) + "\n"

    body = record("live", rows[:N_FEEDBACK]) + record("smoke", rows[N_FEEDBACK:], test=True)
    key = f"{hour_prefix(CAPTURES_PREFIX, MODEL, at)}delivery-1"
    aws_mod.client("s3").put_object(Bucket=env["CAPTURES_BUCKET"], Key=key, Body=body.encode())
    store = CapturesStore(env["CAPTURES_BUCKET"], aws_mod.client("s3"))
    labels = [{"request_id": f"live:{i}", "label": served[i]["defaulted"]} for i in range(N_FEEDBACK)]
    labels += [{"request_id": "smoke:0", "label": 1}, {"request_id": "nobody:0", "label": 1}]
    store.put_feedback(MODEL, labels, by=CALLER, now=at + timedelta(hours=2))
    store.put_feedback(MODEL, [{"request_id": "live:0", "label": "2"}], by=CALLER, now=at + timedelta(hours=1))
    store.put_feedback(MODEL, [{"request_id": "smoke:1", "label": 0}], by="arn:aws:iam::123456789012:role/x", now=at)


def _ctx(env: dict[str, str], platform_config: PlatformConfig, **feedback: Any) -> TrainContext:
    models = tuple(
        m.model_copy(
            update={
                "training": m.training.model_copy(
                    update={"feedback": m.training.feedback.model_validate({"enabled": True, **feedback})}
                ),
                "retrain": m.retrain.model_copy(update={"min_training_rows": 100}),
            }
        )
        if m.name == MODEL
        else m
        for m in platform_config.models
    )
    config = platform_config.model_copy(update={"models": models})
    return TrainContext(
        config=config,
        feature_sets=FeatureSetCatalog(env["FEATURE_SETS_DIR"]),
        registry=Registry.from_env(),
        features_bucket=env["FEATURES_BUCKET"],
        artifacts_bucket=env["ARTIFACTS_BUCKET"],
        source=feature_store_source(config),
    )


def _lineage(out: dict[str, Any]) -> dict[str, Any]:
    mv = Registry.from_env().get_version(MODEL, out["version"])
    return dict(mv.lineage["training_set"])


def test_retraining_trains_on_uploads_and_feedback(aws: dict[str, str], platform_config: PlatformConfig) -> None:
    from driftline.datasets.credit_default import generate

    _ingest(aws, generate(600, "2026-01-01", "2026-04-01", seed=5))
    _traffic(aws, datetime.now(UTC))
    ctx = _ctx(aws, platform_config, weight=2.0, min_labels=100, max_age_days=3)
    out = run_training({"request": {"model": MODEL, "trigger": "new_labels"}, "execution_id": "arn:x:fb-1"}, ctx)
    assert out["status"] in ("candidate", "champion"), out
    lineage = _lineage(out)
    uploads = lineage["rows_from_uploads"]
    assert uploads > 400 and lineage["rows_from_feedback"] == N_FEEDBACK - 1  # live:0's first label is "2"
    assert lineage["rows"] == uploads + N_FEEDBACK - 1
    fb = lineage["feedback"]
    assert {k: fb[k] for k in ("used", "wrong_type", "test_traffic_skipped", "unknown_request_ids", "weight")} == {
        "used": N_FEEDBACK - 1,
        "wrong_type": 1,
        "test_traffic_skipped": 2,
        "unknown_request_ids": 1,
        "weight": 2.0,
    }
    split = Registry.from_env().get_version(MODEL, out["version"]).lineage["split"]
    assert split["sample_weight"] == "applied" and sum(split["weighted_rows"].values()) == N_FEEDBACK - 1
    snapshot = aws_mod.client("s3").get_object(Bucket=aws["FEATURES_BUCKET"], Key=lineage["uri"].split("/", 3)[3])
    table = pq.read_table(pa.BufferReader(snapshot["Body"].read()))
    assert table.num_rows == lineage["rows"]  # the file a SageMaker job would read holds the feedback rows


def test_feedback_alone_trains_and_too_few_labels_say_why(aws: dict[str, str], platform_config: PlatformConfig) -> None:
    _traffic(aws, datetime.now(UTC))
    out = run_training(
        {"request": {"model": MODEL}, "execution_id": "arn:x:fb-2"},
        _ctx(aws, platform_config, min_labels=100, max_age_days=2),
    )
    assert out["status"] in ("candidate", "champion", "rejected"), out
    assert "no training data" not in (out.get("reason") or "")
    lineage = _lineage(out)
    assert (lineage["rows_from_uploads"], lineage["rows_from_feedback"]) == (0, N_FEEDBACK - 1)

    out = run_training(
        {"request": {"model": MODEL}, "execution_id": "arn:x:fb-3"},
        _ctx(aws, platform_config, min_labels=1000, max_age_days=2),
    )
    assert out["status"] == "rejected"
    assert "no curated data" in out["reason"] and "fewer than training.feedback.min_labels (1000)" in out["reason"]
