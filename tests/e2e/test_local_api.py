"""The local API gateway: API Gateway REST proxy events for the definition's routes, over real HTTP."""

from __future__ import annotations

import base64
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.conftest import LocalPlatformHandle

pytestmark = pytest.mark.e2e


def test_route_becomes_a_rest_proxy_event(local_platform: LocalPlatformHandle) -> None:
    r = requests.get(f"{local_platform.api_url}/openapi.json?a=1&a=2&b=x%20y", headers={"X-Trace": "t1"}, timeout=60)
    assert r.status_code == 200 and r.headers["X-Echo"] == "1"
    assert r.headers["x-amzn-RequestId"]
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    event = r.json()
    assert event["resource"] == "/openapi.json" and event["path"] == "/openapi.json" and event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"a": "2", "b": "x y"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"]}
    assert event["headers"]["X-Trace"] == "t1" and event["multiValueHeaders"]["X-Trace"] == ["t1"]
    assert event["pathParameters"] is None and event["body"] is None and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["stage"] == "live" and ctx["resourcePath"] == "/openapi.json" and ctx["path"] == "/live/openapi.json"
    assert ctx["requestId"] == r.headers["x-amzn-RequestId"] and ctx["identity"]["sourceIp"] == "127.0.0.1"


def test_health_is_answered_by_the_gateway_and_public_routes_are_throttled(
    local_platform: LocalPlatformHandle,
) -> None:
    """As on AWS: /health is a MOCK integration (the serve function never sees it), and the unauthenticated
    routes have their own rate and burst (serving.public_throttle_*); the model routes are not slowed."""
    import time

    from driftline.platform import HEALTH_RESPONSE

    serving = local_platform.platform.config.serving
    time.sleep(serving.public_throttle_burst / serving.public_throttle_rate)  # a full bucket
    r = requests.get(f"{local_platform.api_url}/health", timeout=60)
    assert r.status_code == 200 and r.json() == json.loads(HEALTH_RESPONSE) and "X-Echo" not in r.headers
    statuses = [
        requests.get(f"{local_platform.api_url}/health", timeout=60).status_code
        for _ in range(3 * serving.public_throttle_burst)
    ]
    assert 429 in statuses and statuses.count(200) <= serving.public_throttle_burst + 2
    assert requests.get(f"{local_platform.api_url}/health", timeout=60).json() == {"message": "Too Many Requests"}
    assert all(
        requests.post(f"{local_platform.api_url}/v1/models/m/predict", json={}, timeout=60).status_code == 201
        for _ in range(serving.public_throttle_burst + 5)
    )
    time.sleep(serving.public_throttle_burst / serving.public_throttle_rate)  # refilled for the other tests


def test_path_parameters_and_json_body(local_platform: LocalPlatformHandle) -> None:
    r = requests.post(
        f"{local_platform.api_url}/v1/models/credit%2Ddefault/predict", json={"rows": [{"age": 41}]}, timeout=60
    )
    assert r.status_code == 201
    event = r.json()
    assert event["resource"] == "/v1/models/{model}/predict"
    assert event["pathParameters"] == {"model": "credit-default"}
    assert json.loads(event["body"]) == {"rows": [{"age": 41}]} and event["isBase64Encoded"] is False


def test_binary_body_is_base64(local_platform: LocalPlatformHandle) -> None:
    data = bytes(range(256))
    r = requests.post(
        f"{local_platform.api_url}/v1/models/m/feedback",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    event = r.json()
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == data


def test_unknown_route_and_wrong_method(local_platform: LocalPlatformHandle) -> None:
    r = requests.get(f"{local_platform.api_url}/nope", timeout=30)
    assert r.status_code == 404 and r.json() == {"message": "Not Found"}
    r = requests.delete(f"{local_platform.api_url}/v1/models/m/predict", timeout=30)
    assert r.status_code == 405 and r.json() == {"message": "Method Not Allowed"} and r.headers["Allow"] == "POST"


def test_handler_failure_and_malformed_answer_are_502(local_platform: LocalPlatformHandle) -> None:
    for model in ("boom", "malformed"):
        r = requests.post(f"{local_platform.api_url}/v1/models/{model}/predict", json={}, timeout=60)
        assert r.status_code == 502 and r.json() == {"message": "Internal server error"}
    assert requests.get(f"{local_platform.api_url}/v1/models/m", timeout=60).status_code == 200  # still serving


def test_body_over_10_mb_is_413_without_reading_it(local_platform: LocalPlatformHandle) -> None:
    url = urlsplit(local_platform.api_url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(
            b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10485761\r\n\r\n"
        )
        chunks = []
        while chunk := s.recv(4096):  # headers and body may arrive in separate segments; the server closes
            chunks.append(chunk)
        reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 413") and '"Request Too Long"' in reply
    ok = requests.post(f"{local_platform.api_url}/v1/models/m/predict", data=b"x" * (1024 * 1024), timeout=60)
    assert ok.status_code == 201


def test_cli_invoke_and_status(local_platform: LocalPlatformHandle) -> None:
    result = local_platform.cli("invoke", "serve", "--payload", json.dumps({"httpMethod": "GET", "path": "/x"}))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["statusCode"] == 200
    bad = local_platform.cli("invoke", "serve", "--payload", "{not json")
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
    failing = local_platform.cli("invoke", "serve", "--payload", json.dumps({"pathParameters": {"model": "boom"}}))
    assert failing.returncode == 1 and "handler failed" in failing.stderr
    status = local_platform.cli("status")
    assert status.returncode == 0 and f"pid {local_platform.pid}" in status.stdout
    assert "dev-driftline-serve" in status.stdout
    again = local_platform.cli("up", "--detach")
    assert again.returncode == 1 and "already running" in again.stderr
