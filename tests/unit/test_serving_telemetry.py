"""EMF lines: the same documents Powertools' Metrics writes, and what the dashboard's queries need."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.serving.service import Outcome, VersionStats
from driftline.serving.telemetry import EmfWriter, metric_groups


def powertools_document(
    namespace: str, service: str, model: str, version: str, values: dict[str, float]
) -> dict[str, Any]:
    m = EphemeralMetrics(namespace=namespace, service=service)
    m.set_default_dimensions(model=model, version=version)
    for name, value in values.items():
        m.add_metric(name=name, unit=MetricUnit.Milliseconds if name == "LatencyMs" else MetricUnit.Count, value=value)
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


@pytest.mark.parametrize(
    "values",
    [
        {"Requests": 1, "LatencyMs": 0.412, "Rows": 1},
        {"Requests": 1, "LatencyMs": 12.5, "ClientErrors": 1},
        {"Requests": 1, "LatencyMs": 3.0, "Rows": 100, "ColdStart": 1, "ChallengerErrors": 2},
        {"CaptureFailures": 7},
    ],
)
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


def test_a_request_is_one_text_with_a_line_per_version_and_none_for_other_routes() -> None:
    writer = EmfWriter("Driftline", "s")
    canary = Outcome(
        model="a", primary=1, versions={1: VersionStats("champion", 3, 0.2), 2: VersionStats("challenger", 1, 0.3)}
    )
    assert len(writer.request_lines(canary, 200, 0.5).splitlines()) == 2
    assert writer.request_lines(Outcome(), 404, 0.1) == ""  # unknown routes are not model traffic


@settings(max_examples=300, deadline=None)
@given(
    model=st.sampled_from([None, "credit-default", 'm"%d']),
    primary=st.sampled_from([None, 3, 4]),
    versions=st.dictionaries(
        st.sampled_from([3, 4]),
        st.tuples(st.sampled_from(["champion", "challenger", "shadow"]), st.integers(0, 1000), st.floats(0, 50)),
        max_size=2,
    ),
    status=st.sampled_from([200, 200, 200, 202, 400, 404, 413, 422, 500, 503]),
    latency=st.floats(0, 1e4),
    challenger_errors=st.sampled_from([0, 0, 0, 1, 2]),
    challenger_failures=st.sampled_from([0, 0, 0, 1, 2]),
    failures=st.one_of(
        st.just({}),
        st.dictionaries(
            st.tuples(st.sampled_from(["credit-default", "x"]), st.integers(1, 4)), st.integers(1, 9), max_size=2
        ),
    ),
    cold=st.sampled_from([False, False, False, True]),
)
def test_request_lines_are_the_lines_of_the_metric_groups(
    model: str | None,
    primary: int | None,
    versions: dict[int, tuple[str, int, float]],
    status: int,
    latency: float,
    challenger_errors: int,
    challenger_failures: int,
    failures: dict[tuple[str, int], int],
    cold: bool,
) -> None:
    outcome = Outcome(
        model=model,
        primary=primary,
        challenger_errors=challenger_errors,
        versions={v: VersionStats(role, rows, lat) for v, (role, rows, lat) in versions.items()},
    )
    writer = EmfWriter("Driftline", "driftline-serve")
    got = writer.request_lines(
        outcome,
        status,
        latency,
        capture_failures=failures,
        challenger_failures=challenger_failures,
        cold_start=cold,
        timestamp_ms=1234,
    )
    groups = metric_groups(
        outcome, status, latency, capture_failures=failures, challenger_failures=challenger_failures, cold_start=cold
    )
    assert got == "".join(EmfWriter("Driftline", "driftline-serve").lines(groups, 1234))
    assert got == writer.request_lines(
        outcome,
        status,
        latency,
        capture_failures=failures,  # cached template
        challenger_failures=challenger_failures,
        cold_start=cold,
        timestamp_ms=1234,
    )


def test_the_common_request_skips_building_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = Outcome(model="credit-default", primary=3, versions={3: VersionStats("champion", 100, 0.4)})
    want = "".join(EmfWriter("D", "s").lines(metric_groups(outcome, 200, 0.512), 99))
    import driftline.serving.telemetry as telemetry

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("groups built for the common request")

    monkeypatch.setattr(telemetry, "metric_groups", fail)
    assert EmfWriter("D", "s").request_lines(outcome, 200, 0.512, timestamp_ms=99) == want
    assert '"Rows":100' in want and '"LatencyMs":0.512' in want
