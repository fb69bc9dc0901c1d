"""The scheduled check with issue 21 item 3's settings against moto: data-quality checks (result,
report, metrics, their own alert once per failing streak, no drift event) and alert_on_columns."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from driftline import aws as aws_mod
from driftline.contracts import DATA_QUALITY_ALERT, DATA_QUALITY_METRIC, QUALITY_RATE_METRICS
from driftline.monitoring import run_check
from tests.integration.test_monitoring_check import (
    MODEL,
    T0,
    ctx_with,
    drain,
    observe,
    register_champion,
    window,
    write_captures,
)


def _broken_captures(fs: Any, version: int, hour: int, n: int, seed: int) -> None:
    """Captures whose ``employment_type`` holds a code the feature set does not declare in 10 % of rows."""
    write_captures(fs, version, T0 + timedelta(hours=hour), n, seed=seed)
    key_prefix = f"captures/model={MODEL}/{T0 + timedelta(hours=hour):%Y/%m/%d/%H}/"
    s3 = aws_mod.client("s3")
    bucket = aws_mod.env("CAPTURES_BUCKET")
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=key_prefix)["Contents"]:
        lines = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode().splitlines()
        out = []
        for i, line in enumerate(lines):
            rec = json.loads(line)
            if i % 10 == 0:
                rec["features"]["employment_type"] = "astronaut"
            out.append(json.dumps(rec))
        s3.put_object(Bucket=bucket, Key=obj["Key"], Body="\n".join(out).encode())


def test_failed_data_quality_alerts_once_and_never_drives_retraining(aws: dict[str, str], credit_fs: Any) -> None:
    assert "astronaut" not in next(f for f in credit_fs.features if f.name == "employment_type").categories
    v = register_champion(credit_fs)
    probes = observe(aws)
    for hour, seed in ((0, 11), (1, 12)):
        _broken_captures(credit_fs, v, hour, 500, seed)
    outs = [run_check(MODEL, window_start=window(i)[0], window_end=window(i)[1]) for i in (0, 1)]
    first = outs[0]
    assert first["quality"]["alarm"] and first["quality_alert_message_id"]
    assert {(f["column"], f["check"]) for f in first["quality"]["failures"]} == {
        ("employment_type", "unseen_category_rate")
    }
    assert "data_quality" not in first["reasons"]
    assert outs[1]["quality"]["alarm"] and outs[1]["quality_alert_message_id"] == ""  # the failure goes on
    alerts = [
        a for a in drain(probes["alerts-probe"]) if a["MessageAttributes"]["event"]["Value"] == DATA_QUALITY_ALERT
    ]
    assert len(alerts) == 1
    assert "data quality" in alerts[0]["Subject"] and "employment_type: unseen category rate" in alerts[0]["Message"]
    events = drain(probes["events-probe"])
    assert all("data_quality" not in e["detail"].get("reasons", []) for e in events)

    s3 = aws_mod.client("s3")
    doc = json.loads(
        s3.get_object(Bucket=aws["REPORTS_BUCKET"], Key=first["result_uri"].split("/", 3)[3])["Body"].read()
    )
    assert doc["quality"]["columns"]["employment_type"]["unseen_category_rate"] == 0.1
    html = s3.get_object(Bucket=aws["REPORTS_BUCKET"], Key=first["report_uri"].split("/", 3)[3])["Body"].read().decode()
    assert "<h2>Data quality</h2>" in html
    names = {
        m["MetricName"]
        for m in aws_mod.client("cloudwatch").list_metrics(Namespace=aws["POWERTOOLS_METRICS_NAMESPACE"])["Metrics"]
    }
    assert {DATA_QUALITY_METRIC, *QUALITY_RATE_METRICS.values()} <= names


def test_clean_windows_pass_the_quality_checks(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 1000, seed=5)
    out = run_check(MODEL, window_start=window(0)[0], window_end=window(0)[1])
    assert out["quality"] == {"status": "ok", "alarm": False, "failures": []}
    assert out["quality_alert_message_id"] == ""


def test_alert_on_columns_turns_one_drifted_column_into_an_alarm(aws: dict[str, str], credit_fs: Any) -> None:
    v = register_champion(credit_fs)
    write_captures(credit_fs, v, T0, 1000, seed=5)
    start, end = window(0)
    plain = run_check(MODEL, window_start=start, window_end=end)
    assert not plain["dataset_drifted"]

    def listed(data: dict[str, Any]) -> None:
        data["models"][0]["drift"]["alert_on_columns"] = ["age"]
        data["models"][0]["drift"]["quality"]["out_of_range_rate"] = 1.0

    s3 = aws_mod.client("s3")
    doc = json.loads(
        s3.get_object(Bucket=aws["REPORTS_BUCKET"], Key=plain["result_uri"].split("/", 3)[3])["Body"].read()
    )
    assert doc["alert_on_columns"] == [] and doc["weighting"] == "uniform"  # the test profile has no importances
    # a window where only age moves: shift it by 20 years in every row
    w1_start = T0 + timedelta(hours=1)
    write_captures(credit_fs, v, w1_start, 1000, seed=6)
    prefix = f"captures/model={MODEL}/{w1_start:%Y/%m/%d/%H}/"
    bucket = aws_mod.env("CAPTURES_BUCKET")
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        recs = [
            json.loads(x) for x in s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode().splitlines()
        ]
        for r in recs:
            r["features"]["age"] = min(r["features"]["age"] + 20, 100)
        s3.put_object(Bucket=bucket, Key=obj["Key"], Body="\n".join(json.dumps(r) for r in recs).encode())
    s1, e1 = window(1)
    base = run_check(MODEL, window_start=s1, window_end=e1)
    assert base["drifted_columns"] == ["age"] and not base["dataset_drifted"]
    assert "data_drift" not in base["reasons"]
    out = run_check(MODEL, window_start=s1, window_end=e1, ctx=ctx_with(listed))
    assert out["dataset_drifted"] and "data_drift" in out["reasons"] and out["alarm"]
