"""Segments through the scheduled check on moto (issue 21 item 6): a shift of ``utilization`` confined to
the ``north`` region (a tenth of the traffic) is invisible in the whole window and alarms in its segment,
with the alert naming the segment, per-segment estimated performance, metrics and the report section.

``utilization`` is an alert column (its drift alone is dataset drift), so the whole window would alarm
too if the shift were visible there; it is not: 10 % of the rows moved by 0.6 sd move the whole column by
well under the Wasserstein threshold.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from driftline import aws as aws_mod
from driftline.config import PlatformConfig
from driftline.contracts import SEGMENT_DRIFT_METRIC
from driftline.drift import build_profile_for_feature_set
from driftline.estimation import fit_classifier_estimator
from driftline.monitoring import Context, run_check
from driftline.registry.artifacts import put_artifact
from driftline.registry.store import Registry

MODEL = "credit-default"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
REGIONS = np.asarray(["north", "south", "east", "west", "central"], dtype=object)
REGION_SHARES = [0.1, 0.3, 0.25, 0.2, 0.15]


def _rows(fs: Any, n: int, rng: np.random.Generator, north_shift: float = 0.0) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for f in fs.features:
        if f.type == "int":
            lo, hi = int(f.min or 0), int(f.max or 100)
            cols[f.name] = rng.integers(lo, min(hi, lo + 40), n)
        elif f.type == "float":
            cols[f.name] = rng.gamma(2.0, 1.0, n)
        elif f.type == "categorical":
            cols[f.name] = np.asarray(list(f.categories), dtype=object)[rng.integers(0, len(f.categories), n)]
        elif f.type == "bool":
            cols[f.name] = rng.random(n) < 0.5
    cols["region"] = rng.choice(REGIONS, n, p=REGION_SHARES)
    cols["utilization"] = np.minimum(cols["utilization"] + np.where(cols["region"] == "north", north_shift, 0.0), 5.0)
    return cols


def _proba(cols: dict[str, np.ndarray]) -> np.ndarray:
    z = 0.12 * (cols["age"] - 40) + 1.2 * (cols["utilization"] - 2.0)
    return np.asarray(1 / (1 + np.exp(-z)))


def _champion(fs: Any, segments: tuple[str, ...]) -> int:
    reg = Registry.from_env()
    version = reg.next_version(MODEL)
    rng = np.random.default_rng(1)
    hold = _rows(fs, 5000, rng)
    p = _proba(hold)
    y = (rng.random(p.size) < p).astype(np.int64)
    est = fit_classifier_estimator(y, np.column_stack([1 - p, p]), (p > 0.5).astype(np.int64), [0, 1], version=version)
    bucket, prefix = aws_mod.env("ARTIFACTS_BUCKET"), f"models/{MODEL}/v{version}/"
    profile = build_profile_for_feature_set(fs, hold, p, model=MODEL, version=version, segments=segments)
    reg.register(
        MODEL,
        version=version,
        algorithm="hist_gradient_boosting",
        input_schema=fs.input_schema(),
        feature_set=fs.name,
        feature_set_version=fs.version,
        feature_set_fingerprint=fs.fingerprint,
        artifacts={
            "profile": put_artifact(bucket, prefix + "profile.json", profile.to_json().encode(), "application/json"),
            "estimator": put_artifact(bucket, prefix + "estimator.json", est.to_json().encode(), "application/json"),
        },
        metrics={"roc_auc": est.reference["roc_auc"], "accuracy": est.reference["accuracy"]},
    )
    reg.approve(MODEL, version, "tester", "test champion")
    reg.promote(MODEL, version, "tester", "test champion")
    return version


def _captures(fs: Any, version: int, hour: int, n: int, seed: int, north_shift: float = 0.0) -> None:
    rng = np.random.default_rng(seed)
    cols = _rows(fs, n, rng, north_shift)
    p = _proba(cols)
    start = T0 + timedelta(hours=hour)
    lines = []
    for i in range(n):
        feats = {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()}
        pi = float(p[i])
        pred = {"label": int(pi > 0.5), "probability": pi, "probabilities": {"0": 1 - pi, "1": pi}}
        ts = (start + timedelta(seconds=i * 3000 / n)).isoformat()
        rec = {"request_id": uuid.uuid4().hex, "model": MODEL, "version": version, "role": "champion", "ts": ts}
        lines.append(json.dumps({**rec, "features": feats, "prediction": pred}))
    key = f"captures/model={MODEL}/{start:%Y/%m/%d/%H}/{MODEL}-{uuid.uuid4().hex}"
    aws_mod.client("s3").put_object(Bucket=aws_mod.env("CAPTURES_BUCKET"), Key=key, Body="\n".join(lines).encode())


def _ctx() -> Context:
    base = Context.from_env()
    data = base.config.model_dump()
    data["models"][0]["drift"].update(segments=["region"], alert_on_columns=["utilization"], min_segment_rows=100)
    return replace(base, config=PlatformConfig.model_validate(data))


def _window(i: int) -> tuple[str, str]:
    start = T0 + timedelta(hours=i)
    return start.isoformat(), (start + timedelta(hours=1)).isoformat()


def _object(uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    body: bytes = aws_mod.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def _alerts(env: dict[str, str]) -> str:
    sqs = aws_mod.client("sqs")
    url = sqs.create_queue(QueueName="alerts-probe")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws_mod.client("sns").subscribe(TopicArn=env["ALERTS_TOPIC_ARN"], Protocol="sqs", Endpoint=arn)
    return str(url)


def test_a_shift_in_one_region_alarms_there_while_the_whole_window_does_not(
    aws: dict[str, str], credit_fs: Any
) -> None:
    v = _champion(credit_fs, ("region",))
    probe = _alerts(aws)
    ctx = _ctx()
    _captures(credit_fs, v, 0, 2500, seed=2)
    _captures(credit_fs, v, 1, 2500, seed=3, north_shift=0.8)

    calm = run_check(MODEL, window_start=_window(0)[0], window_end=_window(0)[1], ctx=ctx)
    assert calm["drifted_segments"] == [] and "segment_drift" not in calm["reasons"]
    shifted = run_check(MODEL, window_start=_window(1)[0], window_end=_window(1)[1], ctx=ctx)
    assert shifted["drifted_segments"] == ["region=north"]
    assert "utilization" not in shifted["drifted_columns"] and not shifted["dataset_drifted"]
    assert shifted["reasons"] == ["segment_drift"] and shifted["alarm"]

    doc = json.loads(_object(shifted["result_uri"]))
    north = doc["segments"]["region"]["values"]["north"]
    assert north["dataset_drifted"] and north["alert_columns_drifted"] == ["utilization"]
    assert 150 < north["rows"] < 350 and north["quality"]["status"] == "ok"
    assert north["estimated_performance"]["status"] == "ok" and north["estimated_performance"]["method"] == "cbpe"
    assert doc["segments"]["region"]["values"]["south"]["dataset_drifted"] is False
    html = _object(shifted["report_uri"]).decode()
    assert "<h2>Segments</h2>" in html and "north" in html

    sqs = aws_mod.client("sqs")
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=probe, MaxNumberOfMessages=10)["Messages"]]
    drift = [b for b in bodies if "segment drift" in b["Subject"]]
    assert len(drift) == 1 and "Segment region=north drifted" in drift[0]["Message"]
    assert "the whole window is not dataset drift" in drift[0]["Message"]

    metrics = aws_mod.client("cloudwatch").list_metrics(Namespace=aws["POWERTOOLS_METRICS_NAMESPACE"])["Metrics"]
    segment_metrics = [m for m in metrics if m["MetricName"] == SEGMENT_DRIFT_METRIC]
    dims = {tuple(sorted(d["Value"] for d in m["Dimensions"])) for m in segment_metrics}
    assert tuple(sorted([MODEL, "region", "north"])) in dims


def test_a_champion_profiled_before_segments_checks_with_segments_unavailable(
    aws: dict[str, str], credit_fs: Any
) -> None:
    v = _champion(credit_fs, ())
    _captures(credit_fs, v, 0, 600, seed=5, north_shift=0.8)
    out = run_check(MODEL, window_start=_window(0)[0], window_end=_window(0)[1], ctx=_ctx())
    assert out["status"] == "ok" and out["drifted_segments"] == []
    doc = json.loads(_object(out["result_uri"]))
    assert doc["segments"]["region"]["status"] == "unavailable" and "retrain" in doc["segments"]["region"]["message"]
