"""EMF lines: the same documents Powertools' Metrics writes, and what the dashboard's queries need."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from driftline.serving.telemetry import EmfWriter


def powertools_document(namespace: str, service: str, model: str, version: str,
                        values: dict[str, float]) -> dict[str, Any]:
    m = EphemeralMetrics(namespace=namespace, service=service)
    m.set_default_dimensions(model=model, version=version)
    for name, value in values.items():
        m.add_metric(name=name, unit=MetricUnit.Milliseconds if name == "LatencyMs" else MetricUnit.Count,
                     value=value)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        m.flush_metrics()
    return dict(json.loads(buf.getvalue()))


def normalized(doc: dict[str, Any]) -> dict[str, Any]:
    """Order-free view: dimension set as a set, one-element value arrays as scalars, no timestamp."""
    aws = doc.pop("_aws")
    (directive,) = aws["CloudWatchMetrics"]
    out = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in doc.items()}
    out["_namespace"] = directive["Namespace"]
    out["_dimensions"] = [sorted(d) for d in directive["Dimensions"]]
    out["_metrics"] = sorted((m["Name"], m["Unit"]) for m in directive["Metrics"])
    return out


@pytest.mark.parametrize("values", [
    {"Requests": 1, "LatencyMs": 0.412, "Rows": 1},
    {"Requests": 1, "LatencyMs": 12.5, "ClientErrors": 1},
    {"Requests": 1, "LatencyMs": 3.0, "Rows": 100, "ColdStart": 1, "ChallengerErrors": 2},
    {"CaptureFailures": 7},
])
def test_lines_are_the_documents_powertools_writes(values: dict[str, float]) -> None:
    writer = EmfWriter("Driftline", "driftline-serve")
    (line,) = writer.lines({("credit-default", "3"): values}, timestamp_ms=1_700_000_000_000)
    assert line.endswith("\n") and line.count("\n") == 1
    ours = json.loads(line)
    assert ours["_aws"]["Timestamp"] == 1_700_000_000_000
    want = powertools_document("Driftline", "driftline-serve", "credit-default", "3", values)
    assert normalized(ours) == normalized(want)


def test_templates_are_cached_per_shape_and_escape_names() -> None:
    writer = EmfWriter("Name%space", 'svc"x')
    first = writer.lines({("m%d", "1"): {"Requests": 1}, ("m%d", "2"): {"Requests": 1, "Rows": 5}}, 1)
    again = writer.lines({("m%d", "1"): {"Requests": 2}}, 2)
    docs = [json.loads(x) for x in first + again]
    assert [d["version"] for d in docs] == ["1", "2", "1"] and docs[2]["Requests"] == 2
    assert docs[0]["model"] == "m%d" and docs[0]["service"] == 'svc"x'
    assert docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Name%space"
    assert len(writer._templates) == 2


def test_write_goes_to_stdout_once_per_request() -> None:
    writer = EmfWriter("Driftline", "s")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        writer.write({("a", "1"): {"Requests": 1}, ("a", "2"): {"Requests": 1}})
        writer.write({})
    assert len(buf.getvalue().splitlines()) == 2
