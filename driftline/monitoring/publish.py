"""Where a check's outcome goes: the reports bucket, CloudWatch metrics, the alerts topic and the
event bus. Each function is one AWS call site, so the check itself stays testable and readable."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from driftline import aws
from driftline.contracts import (
    DATA_QUALITY_METRIC,
    DRIFT_DETECTED,
    ESTIMATED_PERFORMANCE_DEGRADED_METRIC,
    ESTIMATED_PERFORMANCE_METRIC,
    LATE_ROWS_METRIC,
    MULTIVARIATE_DRIFT_METRIC,
    MULTIVARIATE_SCORE_METRIC,
    QUALITY_RATE_METRICS,
    SEGMENT_DRIFT_METRIC,
    SEGMENT_SHARE_METRIC,
    report_prefix,
)
from driftline.event_bus import EventBus

_METRICS_PER_CALL = 20
MAX_DIMENSION_CHARS = 250


def write_report(bucket: str, model: str, window_end: str, result: Mapping[str, Any], html: str) -> tuple[str, str]:
    """``result.json`` and ``report.html`` under ``drift/<model>/<window_end>/``; returns their URIs."""
    s3 = aws.client("s3")
    prefix = report_prefix(model, window_end)
    s3.put_object(
        Bucket=bucket,
        Key=prefix + "result.json",
        ContentType="application/json",
        Body=json.dumps(result, indent=1, allow_nan=False).encode(),
    )
    s3.put_object(
        Bucket=bucket, Key=prefix + "report.html", ContentType="text/html; charset=utf-8", Body=html.encode("utf-8")
    )
    return f"s3://{bucket}/{prefix}result.json", f"s3://{bucket}/{prefix}report.html"


def metric_data(
    model: str, version: int | None, result: Mapping[str, Any], performance: Mapping[str, Any] | None, when: datetime
) -> list[dict[str, Any]]:
    """Share drifted, the verdicts, window size, per-column scores and performance metrics."""
    dims = [{"Name": "Model", "Value": model}]
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, unit: str = "None", extra: Sequence[dict[str, str]] = ()) -> None:
        if value is None or not math.isfinite(float(value)):
            return
        out.append(
            {"MetricName": name, "Dimensions": [*dims, *extra], "Value": float(value), "Unit": unit, "Timestamp": when}
        )

    add("WindowRows", result.get("n_current"), "Count")
    add(LATE_ROWS_METRIC, (result.get("late") or {}).get("rows"), "Count")  # found in earlier windows by this run
    if result.get("status") == "ok":
        add("ShareDrifted", result.get("share_drifted"))
        add("DatasetDrift", 1.0 if result.get("dataset_drifted") else 0.0)
        if result.get("prediction_drifted") is not None:
            add("PredictionDrift", 1.0 if result["prediction_drifted"] else 0.0)
        for column, c in result.get("columns", {}).items():
            if c.get("status") != "ok":
                continue
            score = c["p_value"] if c.get("p_value") is not None else c.get("statistic")
            col = [{"Name": "Column", "Value": column}]
            add("DriftScore", score, extra=col)
            add("ColumnDrift", 1.0 if c.get("drifted") else 0.0, extra=col)
        mv = result.get("multivariate") or {}
        if mv.get("status") == "ok":
            method = [{"Name": "Method", "Value": str(mv.get("method"))}]
            add(MULTIVARIATE_SCORE_METRIC, mv.get("statistic"), extra=method)
            add(MULTIVARIATE_DRIFT_METRIC, 1.0 if mv.get("drifted") else 0.0, extra=method)
    for name, value, extra in [*quality_metrics(result.get("quality")), *segment_metrics(result.get("segments"))]:
        add(name, value, extra=extra)
    if performance and performance.get("status") in ("ok", "no_baseline"):
        for name, m in performance.get("metrics", {}).items():
            add(f"Performance_{name}", m.get("current"))
        add("PerformanceDegraded", 1.0 if performance.get("degraded") else 0.0)
        add("LabeledPredictions", performance.get("n_labels"), "Count")
    estimated = result.get("estimated_performance") or {}
    if estimated.get("status") == "ok":
        for name, m in (estimated.get("metrics") or {}).items():
            for bound in ("estimate", "lower", "upper"):
                extra = [{"Name": "Metric", "Value": name}, {"Name": "Bound", "Value": bound}]
                add(ESTIMATED_PERFORMANCE_METRIC, m.get(bound), extra=extra)
        add(ESTIMATED_PERFORMANCE_DEGRADED_METRIC, 1.0 if estimated.get("degraded") else 0.0)
    if version is not None:
        add("MonitoredVersion", float(version))
    return out


def quality_metrics(quality: Mapping[str, Any] | None) -> list[tuple[str, float | None, list[dict[str, str]]]]:
    """(name, value, extra dimensions) of a window's data-quality result (its own status: it is judged
    even when no drift column could be tested)."""
    if not quality or quality.get("status") != "ok":
        return []
    out: list[tuple[str, float | None, list[dict[str, str]]]] = [
        (DATA_QUALITY_METRIC, 1.0 if quality.get("alarm") else 0.0, [])
    ]
    for column, q in (quality.get("columns") or {}).items():
        for check, metric in QUALITY_RATE_METRICS.items():
            out.append((metric, q.get(check), [{"Name": "Column", "Value": column}]))
    return out


def segment_metrics(segments: Mapping[str, Any] | None) -> list[tuple[str, float | None, list[dict[str, str]]]]:
    """(name, value, extra dimensions) per judged segment: its share of drifted columns and its verdict
    (dimensions SegmentColumn, Segment; at most ``drift.max_segments`` + 1 segments per column)."""
    out: list[tuple[str, float | None, list[dict[str, str]]]] = []
    for column, res in (segments or {}).items():
        for value, r in (res.get("values") or {}).items():
            if r.get("status") != "ok":
                continue
            dims = [{"Name": "SegmentColumn", "Value": str(column)}, {"Name": "Segment", "Value": _dimension(value)}]
            out.append((SEGMENT_SHARE_METRIC, r.get("share_drifted"), dims))
            out.append((SEGMENT_DRIFT_METRIC, 1.0 if r.get("dataset_drifted") else 0.0, dims))
    return out


def _dimension(value: Any) -> str:
    """A CloudWatch dimension value (1 to 1,024 characters): a category from the training data may be
    empty or long, and PutMetricData refuses the whole call for one bad value."""
    return str(value)[:MAX_DIMENSION_CHARS] or "(empty)"


def put_metrics(namespace: str, data: Sequence[dict[str, Any]]) -> int:
    cw = aws.client("cloudwatch")
    for i in range(0, len(data), _METRICS_PER_CALL):
        cw.put_metric_data(Namespace=namespace, MetricData=list(data[i : i + _METRICS_PER_CALL]))
    return len(data)


def alert(topic_arn: str, subject: str, message: str, model: str, event: str = DRIFT_DETECTED.detail_type) -> str:
    """Publish one alert e-mail; ``event`` (message attribute) tells drift alarms and data-quality alerts apart."""
    resp = aws.client("sns").publish(
        TopicArn=topic_arn,
        Subject=subject[:100],
        Message=message,
        MessageAttributes={
            "model": {"DataType": "String", "StringValue": model},
            "event": {"DataType": "String", "StringValue": event},
        },
    )
    return str(resp.get("MessageId", ""))


def drift_event(bus: str, detail: Mapping[str, Any], *, client: Any | None = None) -> str:
    """Put the ``DriftDetected`` event on ``bus`` (timed now); returns its event id.

    ``client``: an EventBridge client (default ``aws.client("events")``). Raises
    :class:`~driftline.event_bus.EventRejectedError` when EventBridge refuses it.
    """
    return EventBus(bus, client).publish(DRIFT_DETECTED, detail, time=datetime.now(UTC))
