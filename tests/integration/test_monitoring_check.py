"""The scheduled drift check against moto: captures, registry profile, reports, history, alarms."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from driftline import aws
from driftline.config import PlatformConfig
from driftline.drift import build_profile_for_feature_set
from driftline.monitoring import Context, MonitoringError, run_check
from driftline.registry.artifacts import put_artifact
from driftline.registry.store import Registry

MODEL = "credit-default"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def credit_rows(fs: Any, n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Synthetic rows of the credit feature set; ``shift`` moves every numeric feature and two categories."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for f in fs.features:
        if f.type == "int":
            hi = int(f.max or 100)
            lo = int(f.min or 0)
            cols[f.name] = np.clip(rng.integers(lo, min(hi, lo + 40), n) + int(10 * shift), lo, hi)
        elif f.type == "float":
            cols[f.name] = rng.gamma(2.0, 1.0, n) * (1 + shift)
        elif f.type == "categorical":
            cats = list(f.categories)
            p = np.linspace(1.0, 2.0, len(cats)) if not shift else np.linspace(3.0, 0.2, len(cats))
            cols[f.name] = np.asarray(cats, dtype=object)[rng.choice(len(cats), n, p=p / p.sum())]
        elif f.type == "bool":
            cols[f.name] = rng.random(n) < (0.5 if not shift else 0.9)
    return cols


def score(cols: dict[str, np.ndarray]) -> np.ndarray:
    z = 0.04 * (cols["age"] - 40) + 0.3 * cols["utilization"]
    return 1 / (1 + np.exp(-z))


def register_champion(fs: Any, *, fingerprint: str | None = None, metrics: dict[str, float] | None = None) -> int:
    reg = Registry.from_env()
    version = reg.next_version(MODEL)
    ref = credit_rows(fs, 3000, seed=1)
    profile = build_profile_for_feature_set(fs, ref, score(ref), model=MODEL, version=version)
    bucket = aws.env("ARTIFACTS_BUCKET")
    art = put_artifact(
        bucket, f"models/{MODEL}/v{version}/profile.json", profile.to_json().encode(), "application/json"
    )
    reg.register(
        MODEL,
        version=version,
        algorithm="hist_gradient_boosting",
        input_schema=fs.input_schema(),
        feature_set=fs.name,
        feature_set_version=fs.version,
        feature_set_fingerprint=fingerprint or fs.fingerprint,
        artifacts={"profile": art},
        metrics=metrics or {"roc_auc": 0.8, "accuracy": 0.75, "f1": 0.6, "log_loss": 0.5},
    )
    reg.approve(MODEL, version, "tester", "test champion")
    reg.promote(MODEL, version, "tester", "test champion")
    return version


def ctx_with(edit: Callable[[dict[str, Any]], None]) -> Context:
    """The environment's context with ``edit`` applied to its config (as a dict, validated again), for a
    setting the test deployment does not declare."""
    base = Context.from_env()
    data = base.config.model_dump()
    edit(data)
    return replace(base, config=PlatformConfig.model_validate(data))


def write_captures(
    fs: Any,
    version: int,
    start: datetime,
    n: int,
    seed: int,
    shift: float = 0.0,
    role: str = "champion",
    caller: str | None = None,
) -> list[str]:
    cols = credit_rows(fs, n, seed, shift)
    probs = score(cols)
    ids, lines = [], []
    for i in range(n):
        rid = uuid.uuid4().hex
        ids.append(rid)
        ts = start + timedelta(seconds=i * (3000 / n))
        feats = {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in cols.items()}
        p = float(probs[i])
        lines.append(
            json.dumps(
                {
                    "request_id": rid,
                    "model": MODEL,
                    "version": version,
                    "role": role,
                    "ts": ts.isoformat(),
                    "latency_ms": 0.05,
                    "features": feats,
                    "prediction": {"label": int(p > 0.5), "probability": p, "probabilities": {"0": 1 - p, "1": p}},
                    **({"caller": caller} if caller else {}),
                }
            )
        )
    key = f"captures/model={MODEL}/{start:%Y/%m/%d/%H}/{MODEL}-{uuid.uuid4().hex}"
    aws.client("s3").put_object(Bucket=aws.env("CAPTURES_BUCKET"), Key=key, Body="\n".join(lines).encode())
    return ids


def write_feedback(ids: list[str], labels: list[int], when: datetime, by: str | None = None) -> None:
    who = {"by": by} if by else {}
    body = "\n".join(
        json.dumps({"request_id": r, "label": lb, "ts": when.isoformat(), **who})
        for r, lb in zip(ids, labels, strict=True)
    )
    key = f"feedback/model={MODEL}/{when:%Y/%m/%d/%H}/{uuid.uuid4().hex}.jsonl"
    aws.client("s3").put_object(Bucket=aws.env("CAPTURES_BUCKET"), Key=key, Body=body.encode())


def observe(env: dict[str, str]) -> dict[str, str]:
    """SQS queues receiving the alerts topic and DriftDetected events."""
    sqs = aws.client("sqs")
    urls = {}
    for name in ("alerts-probe", "events-probe"):
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        urls[name] = url
    arn = lambda u: sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]  # noqa: E731
    aws.client("sns").subscribe(TopicArn=env["ALERTS_TOPIC_ARN"], Protocol="sqs", Endpoint=arn(urls["alerts-probe"]))
    events = aws.client("events")
    events.put_rule(
        Name="probe",
        EventBusName=env["EVENT_BUS_NAME"],
        EventPattern=json.dumps({"source": ["driftline.monitoring"], "detail-type": ["DriftDetected"]}),
    )
    events.put_targets(
        Rule="probe", EventBusName=env["EVENT_BUS_NAME"], Targets=[{"Id": "q", "Arn": arn(urls["events-probe"])}]
    )
    return urls


def drain(url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    sqs = aws.client("sqs")
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def window(i: int) -> tuple[str, str]:
    start = T0 + timedelta(hours=i)
    return start.isoformat(), (start + timedelta(hours=1)).isoformat()


def test_drifted_window_reports_alerts_and_emits_event(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    probes = observe(aws)
    write_captures(credit_fs, v, T0, 400, seed=2, shift=1.0)
    write_captures(credit_fs, v, T0, 50, seed=3, role="shadow")
    start, end = window(0)
    out = run_check(MODEL, window_start=start, window_end=end)
    assert out["status"] == "ok" and out["n_current"] == 400
    assert out["dataset_drifted"] and out["alarm"] and "data_drift" in out["reasons"]
    assert "age" in out["drifted_columns"]
    assert out["prediction_drifted"] is True

    s3 = aws_client("s3")
    prefix = f"drift/{MODEL}/{window(0)[1][:19]}"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=aws["REPORTS_BUCKET"], Prefix=f"drift/{MODEL}/")["Contents"]}
    assert {k.rsplit("/", 1)[1] for k in keys} == {"result.json", "report.html"}
    assert all(k.startswith(prefix) for k in keys)
    doc = json.loads(s3.get_object(Bucket=aws["REPORTS_BUCKET"], Key=out["result_uri"].split("/", 3)[3])["Body"].read())
    assert doc["window_end"] == out["window_end"] and doc["captures"]["other_roles_or_versions"] == 50
    assert doc["columns"]["age"]["drifted"] is True
    html = s3.get_object(Bucket=aws["REPORTS_BUCKET"], Key=out["report_uri"].split("/", 3)[3])["Body"].read().decode()
    assert "<svg" in html and "Dataset drift" in html

    events = drain(probes["events-probe"])
    assert len(events) == 1
    detail = events[0]["detail"]
    assert detail["model"] == MODEL and detail["version"] == v and detail["report_uri"] == out["report_uri"]
    assert detail["window_start"] == out["window_start"] and "age" in detail["drifted_columns"]
    alerts = drain(probes["alerts-probe"])
    assert len(alerts) == 1 and "data drift" in alerts[0]["Subject"]

    names = {
        m["MetricName"]
        for m in aws_client("cloudwatch").list_metrics(Namespace=aws["POWERTOOLS_METRICS_NAMESPACE"])["Metrics"]
    }
    assert {"ShareDrifted", "DatasetDrift", "DriftScore", "WindowRows", "PredictionDrift"} <= names


def test_clean_window_raises_nothing(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    probes = observe(aws)
    write_captures(credit_fs, v, T0, 1000, seed=5)
    start, end = window(0)
    out = run_check(MODEL, window_start=start, window_end=end)
    assert out["status"] == "ok"
    assert not out["dataset_drifted"] and not out["alarm"] and out["reasons"] == []
    assert drain(probes["events-probe"]) == [] and drain(probes["alerts-probe"]) == []


def test_no_captures_is_insufficient_data_not_an_alarm(aws: dict[str, str], credit_fs: Any) -> None:
    register_champion(credit_fs)
    probes = observe(aws)
    start, end = window(0)
    out = run_check(MODEL, window_start=start, window_end=end)
    assert out["status"] == "insufficient_data" and out["n_current"] == 0 and not out["alarm"]
    assert drain(probes["events-probe"]) == []
    assert out["report_uri"].endswith("report.html")


def test_drift_must_persist_for_k_windows(aws: dict[str, str], credit_fs: Any) -> None:
    ctx = ctx_with(lambda d: d["models"][0]["drift"].update(persistence_windows=2))
    v = register_champion(credit_fs)
    probes = observe(aws)
    for i in range(4):
        write_captures(credit_fs, v, T0 + timedelta(hours=i), 1000, seed=10 + i, shift=1.0 if i != 2 else 0.0)
    first = run_check(MODEL, window_start=window(0)[0], window_end=window(0)[1], ctx=ctx)
    assert first["drifted"] and first["streak"] == 1 and not first["alarm"]
    # the next windows follow on from the control-table history (no explicit window)
    second = run_check(MODEL, ctx=ctx, now=T0 + timedelta(hours=2))
    assert second["window_start"] == first["window_end"]
    assert second["streak"] == 2 and second["alarm"]
    third = run_check(MODEL, ctx=ctx, now=T0 + timedelta(hours=3))
    assert not third["drifted"], {k: third[k] for k in ("reasons", "drifted_columns", "window_start", "n_current")}
    assert third["streak"] == 0 and not third["alarm"]
    fourth = run_check(MODEL, ctx=ctx, now=T0 + timedelta(hours=4))
    assert fourth["streak"] == 1 and not fourth["alarm"]
    assert len(drain(probes["events-probe"])) == 1
    assert len(drain(probes["alerts-probe"])) == 1


def test_small_windows_neither_alarm_nor_break_the_streak(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 300, seed=20, shift=1.0)
    write_captures(credit_fs, v, T0 + timedelta(hours=1), 20, seed=21, shift=1.0)  # below min_window_rows
    one = run_check(MODEL, window_start=window(0)[0], window_end=window(0)[1])
    two = run_check(MODEL, window_start=window(1)[0], window_end=window(1)[1])
    assert one["streak"] == 1
    assert two["status"] == "insufficient_data" and two["streak"] == 1 and not two["drifted"]


def test_performance_against_training_metrics(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs, metrics={"roc_auc": 0.95, "accuracy": 0.9, "f1": 0.9, "log_loss": 0.2})
    ids = write_captures(credit_fs, v, T0, 300, seed=30)
    rng = np.random.default_rng(0)
    write_feedback(ids[:250], rng.integers(0, 2, 250).tolist(), T0 + timedelta(minutes=55))  # labels are noise
    out = run_check(MODEL, window_start=window(0)[0], window_end=window(0)[1])
    assert out["performance"]["status"] == "ok" and out["performance"]["n_labels"] == 250
    assert out["performance"]["degraded"] and "performance" in out["reasons"] and out["alarm"]
    doc = json.loads(
        aws_client("s3").get_object(Bucket=aws["REPORTS_BUCKET"], Key=out["result_uri"].split("/", 3)[3])["Body"].read()
    )
    assert doc["performance"]["metrics"]["roc_auc"]["baseline"] == 0.95
    assert doc["performance"]["primary_metric"] == "roc_auc"


def test_only_the_callers_or_a_labelers_labels_judge_performance(
    aws: dict[str, str], credit_fs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forged labels (another principal's) cannot fake a performance drop (issue 16 item 13)."""
    client, mallory = "arn:aws:iam::123456789012:role/client", "arn:aws:iam::123456789012:user/mallory"
    v = register_champion(credit_fs, metrics={"roc_auc": 0.95, "accuracy": 0.9, "f1": 0.9, "log_loss": 0.2})
    ids = write_captures(credit_fs, v, T0, 300, seed=30, caller=client)
    rng = np.random.default_rng(0)
    write_feedback(ids[:250], rng.integers(0, 2, 250).tolist(), T0 + timedelta(minutes=50), by=mallory)
    out = run_check(MODEL, window_start=window(0)[0], window_end=window(0)[1])
    assert out["performance"]["status"] == "no_labels" and not out["performance"]["degraded"]
    write_feedback(ids[:250], rng.integers(0, 2, 250).tolist(), T0 + timedelta(minutes=55), by=client)
    out = run_check(MODEL, window_start=window(0)[0], window_end=window(0)[1])
    assert out["performance"]["n_labels"] == 250 and out["performance"]["degraded"]  # the owner's noise counts
    # a labeler's labels count for anyone's predictions (and first-label-wins keeps the owner's here)
    cfg = json.loads(aws["PLATFORM_CONFIG"])
    cfg["models"] = [{**m, "labelers": [mallory]} if m["name"] == MODEL else m for m in cfg["models"]]
    monkeypatch.setenv("PLATFORM_CONFIG", json.dumps(cfg))
    write_feedback(ids[250:], [1] * 50, T0 + timedelta(minutes=58), by=mallory)
    out = run_check(MODEL, window_start=window(0)[0], window_end=window(0)[1])
    assert out["performance"]["n_labels"] == 300


def test_too_few_labels_is_reported_not_judged(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    ids = write_captures(credit_fs, v, T0, 300, seed=31)
    write_feedback(ids[:20], [1] * 20, T0 + timedelta(minutes=30))
    out = run_check(MODEL, window_start=window(0)[0], window_end=window(0)[1])
    assert out["performance"]["status"] == "too_few_labels" and not out["performance"]["degraded"]


def test_profile_of_another_feature_set_version_is_refused(aws: dict[str, str], credit_fs: Any) -> None:
    register_champion(credit_fs, fingerprint="0000000000000000")
    with pytest.raises(MonitoringError, match="feature_set_fingerprint"):
        run_check(MODEL, window_start=window(0)[0], window_end=window(0)[1])


def test_no_champion_is_not_an_error(aws: dict[str, str]) -> None:
    out = run_check(MODEL)
    assert out["status"] == "no_champion"


def test_lambda_handler(aws: dict[str, str], credit_fs: Any) -> None:
    from lambdas import drift

    drift._context.cache_clear()
    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 250, seed=40)
    out = drift.handler({"model": MODEL, "window_start": window(0)[0], "window_end": window(0)[1]}, FakeContext())
    assert out["status"] == "ok" and out["n_current"] == 250
    bad = drift.handler({"modl": MODEL}, FakeContext())
    assert bad["status"] == "error" and "model" in bad["message"]
    odd = drift.handler({"model": MODEL, "window_start": "yesterday"}, FakeContext())
    assert odd["status"] == "error" and "ISO-8601" in odd["message"]
    drift._context.cache_clear()


class FakeContext:
    function_name = "dev-driftline-drift"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:dev-driftline-drift"
    aws_request_id = "req-1"


def aws_client(service: str) -> Any:
    return aws.client(service)


def test_cli_check_and_history(aws: dict[str, str], credit_fs: Any) -> None:
    from pathlib import Path

    from typer.testing import CliRunner

    from driftline.cli.main import app

    cfg = str(Path(__file__).resolve().parents[2] / "cdk.json")
    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 400, seed=50, shift=1.0)
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "drift",
            "check",
            "--model",
            MODEL,
            "--window-start",
            window(0)[0],
            "--window-end",
            window(0)[1],
            "--config",
            cfg,
        ],
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "ALARM" in text and "dataset drift" in text and "report: s3://" in text
    res = runner.invoke(app, ["drift", "history", "--model", MODEL, "--config", cfg, "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 1 and rows[0]["alarm"] is True and rows[0]["window_end"] == "2026-11-26T11:00:00+00:00"
    res = runner.invoke(app, ["drift", "check", "--model", "nope", "--config", cfg])
    assert res.exit_code == 2 and "unknown model 'nope'" in " ".join(res.output.split())
    res = runner.invoke(app, ["drift", "check", "--model", MODEL, "--window-start", "soon", "--config", cfg])
    assert res.exit_code == 2 and "ISO-8601" in " ".join(res.output.split())
