"""Proxy events in, proxy responses out, and route matching (what Powertools' resolver used to do)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftline.serving.events import proxy_event
from driftline.serving.proxy import ProxyRequest, Router, respond

ROUTER: Router[str] = Router(
    [
        ("GET", "/health", "health"),
        ("GET", "/v1/models/{model}", "describe"),
        ("POST", "/v1/models/{model}/predict", "predict"),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "want"),
    [
        ("GET", "/health", ("health", {})),
        ("GET", "/health/", ("health", {})),
        ("GET", "/v1/models/credit-default", ("describe", {"model": "credit-default"})),
        ("POST", "/v1/models/m1/predict", ("predict", {"model": "m1"})),
        ("POST", "/v1/models/m1/predict/", ("predict", {"model": "m1"})),
        ("GET", "/v1/models/m1/predict", ["POST"]),
        ("DELETE", "/v1/models/m1", ["GET"]),
        ("GET", "/v1/models/a/b/predict", []),
        ("GET", "/v1/models//predict", []),
        ("GET", "/healthz", []),
    ],
)
def test_routes_match_with_parameters_or_list_allowed_methods(method: str, path: str, want: Any) -> None:
    assert ROUTER.match(method, path) == want


def test_request_from_a_gateway_event() -> None:
    ev = proxy_event(
        "post",
        "/v1/models/m/predict",
        '{"a": 1}',
        query="x=1",
        headers={"Content-Type": "application/json", "X-Request-Id": "abc"},
    )
    req = ProxyRequest.from_event(ev)
    assert req is not None
    assert (req.method, req.path, req.body, req.is_base64) == ("POST", "/v1/models/m/predict", '{"a": 1}', False)
    assert req.headers["content-type"] == "application/json" and req.headers["x-request-id"] == "abc"
    assert req.query == {"x": "1"} and req.gateway_request_id == ev["requestContext"]["requestId"]
    assert req.stage == ev["requestContext"]["stage"]


@pytest.mark.parametrize(
    "event", [None, [], "GET /", {}, {"httpMethod": "GET"}, {"path": "/"}, {"httpMethod": 1, "path": "/"}]
)
def test_non_proxy_events_are_recognized(event: Any) -> None:
    assert ProxyRequest.from_event(event) is None


def test_odd_but_valid_events_do_not_crash() -> None:
    req = ProxyRequest.from_event(
        {
            "httpMethod": "get",
            "path": "/health",
            "headers": None,
            "body": None,
            "queryStringParameters": None,
            "requestContext": None,
            "isBase64Encoded": None,
        }
    )
    assert req is not None and req.headers == {} and req.query == {} and req.gateway_request_id is None


def test_responses_are_json_with_headers_as_lists() -> None:
    r = respond(413, {"error": "big", "n": 1.5}, {"Retry-After": "1"})
    assert r["statusCode"] == 413 and r["isBase64Encoded"] is False
    assert json.loads(r["body"]) == {"error": "big", "n": 1.5}
    assert r["multiValueHeaders"] == {"Content-Type": ["application/json"], "Retry-After": ["1"]}
