"""Estimated performance through the scheduled check on moto: estimate, band, alarm, realized side by side.

The "model" scores rows with a known formula whose probabilities are true (labels are drawn from them),
so the holdout calibration is close to the identity and the realized metrics of a window are known in
expectation. A covariate shift that squeezes the scored features makes rows hard to tell apart: the
estimated ROC AUC falls without any label, the alarm follows the drift persistence rule, and the labels
that arrive later land inside the estimate's band.
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
from driftline.drift import build_profile_for_feature_set
from driftline.estimation import fit_classifier_estimator
from driftline.monitoring import Context, run_check
from driftline.registry.artifacts import ArtifactRef, put_artifact
from driftline.registry.store import Registry

MODEL = "credit-default"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _rows(fs: Any, n: int, rng: np.random.Generator, squeeze: float = 1.0) -> dict[str, np.ndarray]:
    """Rows of the credit feature set; ``squeeze`` < 1 pulls age and utilization towards their centres."""
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
    cols["age"] = np.round(40 + (cols["age"] - 40) * squeeze).astype(np.int64)
    cols["utilization"] = 2.0 + (cols["utilization"] - 2.0) * squeeze
    return cols


def _proba(cols: dict[str, np.ndarray]) -> np.ndarray:
    z = 0.12 * (cols["age"] - 40) + 1.2 * (cols["utilization"] - 2.0)
    return np.asarray(1 / (1 + np.exp(-z)))


def _champion(fs: Any, *, wrong_hash: bool = False) -> int:
    """A champion with a profile and a CBPE estimator fitted on a labelled holdout (``wrong_hash``: its
    registry record names another SHA-256, as when the object was swapped before registration)."""
    reg = Registry.from_env()
    version = reg.next_version(MODEL)
    rng = np.random.default_rng(1)
    hold = _rows(fs, 3000, rng)
    p = _proba(hold)
    y = (rng.random(p.size) < p).astype(np.int64)
    est = fit_classifier_estimator(y, np.column_stack([1 - p, p]), (p > 0.5).astype(np.int64), [0, 1], version=version)
    bucket, prefix = aws_mod.env("ARTIFACTS_BUCKET"), f"models/{MODEL}/v{version}/"
    profile = build_profile_for_feature_set(fs, hold, p, model=MODEL, version=version)
    artifacts = {
        "profile": put_artifact(bucket, prefix + "profile.json", profile.to_json().encode(), "application/json"),
        "estimator": put_artifact(bucket, prefix + "estimator.json", est.to_json().encode(), "application/json"),
    }
    if wrong_hash:
        artifacts["estimator"] = replace(artifacts["estimator"], sha256="0" * 64)
    reg.register(
        MODEL,
        version=version,
        algorithm="hist_gradient_boosting",
        input_schema=fs.input_schema(),
        feature_set=fs.name,
        feature_set_version=fs.version,
        feature_set_fingerprint=fs.fingerprint,
        artifacts=artifacts,
        metrics={"roc_auc": est.reference["roc_auc"], "accuracy": est.reference["accuracy"]},
    )
    reg.approve(MODEL, version, "tester", "test champion")
    reg.promote(MODEL, version, "tester", "test champion")
    return version


def _captures(fs: Any, version: int, hour: int, n: int, seed: int, squeeze: float = 1.0) -> tuple[list[str], Any]:
    """One window of captures (v1 records); returns the request ids and the labels the world will reveal."""
    rng = np.random.default_rng(seed)
    cols = _rows(fs, n, rng, squeeze)
    p = _proba(cols)
    start = T0 + timedelta(hours=hour)
    ids, lines = [], []
    for i in range(n):
        rid = uuid.uuid4().hex
        ids.append(rid)
        feats = {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()}
        pi = float(p[i])
        pred = {"label": int(pi > 0.5), "probability": pi, "probabilities": {"0": 1 - pi, "1": pi}}
        ts = (start + timedelta(seconds=i * 3000 / n)).isoformat()
        rec = {"request_id": rid, "model": MODEL, "version": version, "role": "champion", "ts": ts}
        lines.append(json.dumps({**rec, "features": feats, "prediction": pred}))
    key = f"captures/model={MODEL}/{start:%Y/%m/%d/%H}/{MODEL}-{uuid.uuid4().hex}"
    aws_mod.client("s3").put_object(Bucket=aws_mod.env("CAPTURES_BUCKET"), Key=key, Body="\n".join(lines).encode())
    return ids, (rng.random(n) < p).astype(np.int64)


def _feedback(ids: list[str], labels: Any, when: datetime) -> None:
    body = "\n".join(
        json.dumps({"request_id": r, "label": int(lb), "ts": when.isoformat()})
        for r, lb in zip(ids, labels, strict=True)
    )
    key = f"feedback/model={MODEL}/{when:%Y/%m/%d/%H}/{uuid.uuid4().hex}.jsonl"
    aws_mod.client("s3").put_object(Bucket=aws_mod.env("CAPTURES_BUCKET"), Key=key, Body=body.encode())


def _ctx(**estimated: Any) -> Context:
    base = Context.from_env()
    data = base.config.model_dump()
    data["models"][0]["drift"].update(persistence_windows=2, share_threshold=1.0)  # no dataset-drift alarm
    data["models"][0]["drift"]["estimated_performance"].update(estimated)
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


def test_estimated_auc_drop_alarms_after_persistence_and_labels_land_in_the_band(
    aws: dict[str, str], credit_fs: Any
) -> None:
    v = _champion(credit_fs)
    probe = _alerts(aws)
    ctx = _ctx(metric="roc_auc", tolerance=0.05, min_rows=200)
    _captures(credit_fs, v, 0, 1500, seed=2)  # like the holdout
    _captures(credit_fs, v, 1, 1500, seed=3, squeeze=0.3)
    ids, truth = _captures(credit_fs, v, 2, 1500, seed=4, squeeze=0.3)

    calm = run_check(MODEL, window_start=_window(0)[0], window_end=_window(0)[1], ctx=ctx)
    assert calm["estimated_performance"] == {"status": "ok", "degraded": False, "metric": "roc_auc"}
    assert not calm["alarm"] and calm["reasons"] == []
    first = run_check(MODEL, window_start=_window(1)[0], window_end=_window(1)[1], ctx=ctx)
    assert first["estimated_performance"]["degraded"] and "estimated_performance" in first["reasons"]
    assert "data_drift" not in first["reasons"]  # the prediction distribution moved too (squeezed scores)
    assert first["streak"] == 1 and not first["alarm"]  # persistence 2: not yet

    _feedback(ids, truth, T0 + timedelta(hours=2, minutes=55))  # the labels of window 2 arrive
    second = run_check(MODEL, window_start=_window(2)[0], window_end=_window(2)[1], ctx=ctx)
    assert second["streak"] == 2 and second["alarm"] and "estimated_performance" in second["reasons"]

    doc = json.loads(_object(second["result_uri"]))
    auc = doc["estimated_performance"]["metrics"]["roc_auc"]
    assert doc["estimated_performance"]["method"] == "cbpe"
    assert auc["estimate"] < auc["reference"] - 0.05
    assert auc["realized"] is not None and auc["lower"] <= auc["realized"] <= auc["upper"], auc
    assert doc["performance"]["n_labels"] == 1500
    html = _object(second["report_uri"]).decode()
    assert "Estimated prediction quality" in html and "realized (labels)" in html

    messages = []
    sqs = aws_mod.client("sqs")
    for m in sqs.receive_message(QueueUrl=probe, MaxNumberOfMessages=10).get("Messages", []):
        body = json.loads(m["Body"])
        if "drift" in body["Subject"] or "performance" in body["Subject"]:  # not the data-quality alert
            messages.append(body)
    assert len(messages) == 1 and "estimated performance drop" in messages[0]["Subject"]
    assert "Estimated prediction quality dropped" in messages[0]["Message"]

    names = {(m["MetricName"], tuple(sorted(d["Value"] for d in m["Dimensions"]))) for m in _metrics(aws)}
    assert ("EstimatedPerformanceDegraded", (MODEL,)) in names
    assert ("EstimatedPerformance", tuple(sorted([MODEL, "roc_auc", "lower"]))) in names


def _metrics(env: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = aws_mod.client("cloudwatch").list_metrics(
        Namespace=env["POWERTOOLS_METRICS_NAMESPACE"]
    )["Metrics"]
    return out


def test_small_window_is_insufficient_data_and_a_tampered_estimator_is_refused(
    aws: dict[str, str], credit_fs: Any
) -> None:
    v = _champion(credit_fs)
    ctx = _ctx(min_rows=500)
    _captures(credit_fs, v, 0, 300, seed=5, squeeze=0.3)
    out = run_check(MODEL, window_start=_window(0)[0], window_end=_window(0)[1], ctx=ctx)
    assert out["estimated_performance"] == {"status": "insufficient_data", "degraded": False, "metric": "roc_auc"}
    assert "estimated_performance" not in out["reasons"]

    # an object written over the estimator later is never read: the check reads the pinned version
    ref = ArtifactRef.from_dict(Registry.from_env().get_version(MODEL, v).artifacts["estimator"].to_dict())
    aws_mod.client("s3").put_object(Bucket=ref.bucket, Key=ref.key, Body=b'{"format": "driftline.estimation/1"}')
    _captures(credit_fs, v, 1, 600, seed=6, squeeze=0.3)
    out = run_check(MODEL, window_start=_window(1)[0], window_end=_window(1)[1], ctx=ctx)
    assert out["estimated_performance"]["status"] == "ok" and out["estimated_performance"]["degraded"]

    _champion(credit_fs, wrong_hash=True)  # bytes that differ from the registered hash are refused
    out = run_check(MODEL, window_start=_window(2)[0], window_end=_window(2)[1], ctx=ctx)
    assert out["status"] == "insufficient_data" and out["estimated_performance"]["status"] == "unavailable"
    doc = json.loads(_object(out["result_uri"]))
    assert "integrity" in doc["estimated_performance"]["message"]  # the check went on and says why


def test_disabled_estimates_are_absent(aws: dict[str, str], credit_fs: Any) -> None:
    v = _champion(credit_fs)
    _captures(credit_fs, v, 0, 400, seed=7, squeeze=0.3)
    out = run_check(MODEL, window_start=_window(0)[0], window_end=_window(0)[1], ctx=_ctx(enabled=False))
    assert out["estimated_performance"] is None and "estimated_performance" not in out["reasons"]
