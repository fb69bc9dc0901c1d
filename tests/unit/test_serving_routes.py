"""The handler's routes match the platform definition; metric groups per model/version."""

from __future__ import annotations

from typing import Any

from driftline.serving.events import ROUTE_TEMPLATES, proxy_event
from driftline.serving.service import Outcome, VersionStats
from driftline.serving.telemetry import metric_groups


def test_handler_routes_equal_the_platform_definition(platform_def: Any) -> None:
    from lambdas import serve

    defined = {(r.method, r.path) for r in platform_def.routes if r.function == "serve"}
    assert set(serve.ROUTES) == defined
    assert set(ROUTE_TEMPLATES) == {p for _, p in defined}


def test_proxy_event_shape() -> None:
    ev = proxy_event(
        "post", "/v1/models/m/predict", '{"a": 1}', headers={"Content-Type": "application/json"}, query="x=1"
    )
    assert ev["httpMethod"] == "POST" and ev["resource"] == "/v1/models/{model}/predict"
    assert ev["pathParameters"] == {"model": "m"} and ev["queryStringParameters"] == {"x": "1"}
    assert ev["requestContext"]["stage"] == "v1" and ev["requestContext"]["requestId"]
    assert proxy_event("POST", "/x", b"\x00")["isBase64Encoded"] is True


def test_metric_groups_per_model_and_version() -> None:
    out = Outcome(
        model="m",
        versions={
            3: VersionStats("champion", rows=8, latency_ms=0.2),
            4: VersionStats("challenger", rows=2, latency_ms=0.3),
        },
    )
    groups = metric_groups(out, 200, 0.5, capture_failures={("m", 4): 2}, cold_start=True)
    assert groups == {
        ("m", "3"): {"Requests": 1, "LatencyMs": 0.5, "Rows": 8, "ColdStart": 1},
        ("m", "4"): {"Requests": 1, "LatencyMs": 0.3, "Rows": 2, "CaptureFailures": 2},
    }


def test_metric_groups_for_errors() -> None:
    assert metric_groups(Outcome(model="m"), 503, 0.1) == {
        ("m", "none"): {"Requests": 1, "LatencyMs": 0.1, "Errors": 1}
    }
    assert metric_groups(Outcome(model="m", primary=3), 422, 0.1) == {
        ("m", "3"): {"Requests": 1, "LatencyMs": 0.1, "ClientErrors": 1}
    }
    assert metric_groups(Outcome(), 500, 0.1) == {("unknown", "none"): {"Requests": 1, "LatencyMs": 0.1, "Errors": 1}}
    assert metric_groups(Outcome(), 404, 0.1) == {}  # unknown routes are not model traffic
    shadow_failed = Outcome(model="m", versions={3: VersionStats("champion", 1, 0.1)}, challenger_errors=1)
    assert metric_groups(shadow_failed, 200, 0.2, challenger_failures=2)[("m", "3")]["ChallengerErrors"] == 3
