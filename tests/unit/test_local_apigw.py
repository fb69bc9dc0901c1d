"""API Gateway REST proxy semantics of the local gateway: routing, events, responses."""

from __future__ import annotations

import base64
import json

import pytest

from driftline.local.apigw import MalformedResponseError, RouteTable, build_event, is_text, parse_proxy_response

ROUTES = RouteTable(
    [
        ("GET", "/health", "serve"),
        ("GET", "/v1/models/{model}", "serve"),
        ("POST", "/v1/models/{model}/predict", "serve"),
        ("GET", "/v1/models/latest", "other"),
        ("GET", "/files/{path+}", "files"),
    ]
)


def test_static_segments_win_over_parameters() -> None:
    route, params, _ = ROUTES.resolve("GET", "/v1/models/latest")
    assert route is not None and route.function == "other" and params == {}
    route, params, _ = ROUTES.resolve("GET", "/v1/models/credit%2Ddefault")
    assert route is not None and route.resource == "/v1/models/{model}" and params == {"model": "credit-default"}


def test_greedy_parameter_and_trailing_slash() -> None:
    route, params, _ = ROUTES.resolve("GET", "/files/a/b/c.txt")
    assert route is not None and params == {"path": "a/b/c.txt"}
    assert ROUTES.resolve("GET", "/health/")[0] is not None


def test_unknown_path_and_wrong_method() -> None:
    assert ROUTES.resolve("GET", "/nope") == (None, {}, [])
    route, _, allowed = ROUTES.resolve("GET", "/v1/models/m/predict")
    assert route is None and allowed == ["POST"]


def test_event_shape() -> None:
    route, params, _ = ROUTES.resolve("POST", "/v1/models/m/predict")
    assert route is not None
    event = build_event(
        route=route,
        method="POST",
        raw_path="/v1/models/m/predict",
        query="a=1&a=2&b=",
        headers=[("Content-Type", "application/json"), ("X-A", "1"), ("X-A", "2")],
        body=b'{"x": 1}',
        path_params=params,
        stage="v1",
        account="123",
        source_ip="1.2.3.4",
        request_id="rid",
        host="localhost:3000",
    )
    assert event["resource"] == "/v1/models/{model}/predict" and event["pathParameters"] == {"model": "m"}
    assert event["queryStringParameters"] == {"a": "2", "b": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""]}
    assert event["headers"]["X-A"] == "2" and event["multiValueHeaders"]["X-A"] == ["1", "2"]
    assert event["body"] == '{"x": 1}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["stage"] == "v1" and ctx["path"] == "/v1/v1/models/m/predict" and ctx["requestId"] == "rid"
    assert ctx["identity"]["sourceIp"] == "1.2.3.4" and ctx["httpMethod"] == "POST"


def test_empty_request_has_null_members() -> None:
    route, _, _ = ROUTES.resolve("GET", "/health")
    assert route is not None
    event = build_event(
        route=route,
        method="GET",
        raw_path="/health",
        query="",
        headers=[],
        body=b"",
        path_params={},
        stage="v1",
        account="1",
        source_ip="::1",
        request_id="r",
        host="h",
    )
    assert event["headers"] is None and event["queryStringParameters"] is None and event["body"] is None
    assert event["pathParameters"] is None and event["isBase64Encoded"] is False
    assert event["requestContext"]["identity"]["userArn"] is None  # unsigned: no principal


@pytest.mark.parametrize("header", ["X-Driftline-Local-Principal", "x-driftline-local-principal"])
def test_local_principal_header_fills_the_sigv4_identity(header: str) -> None:
    """Locally IAM is not evaluated; the header stands in for the identity SigV4 gives on AWS."""
    route, params, _ = ROUTES.resolve("POST", "/v1/models/m/predict")
    assert route is not None
    arn = "arn:aws:sts::123456789012:assumed-role/Approvers/alice"
    event = build_event(
        route=route,
        method="POST",
        raw_path="/v1/models/m/predict",
        query="",
        headers=[(header, f" {arn} ")],
        body=b"{}",
        path_params=params,
        stage="v1",
        account="1",
        source_ip="::1",
        request_id="r",
        host="h",
    )
    identity = event["requestContext"]["identity"]
    assert identity["userArn"] == identity["caller"] == identity["user"] == arn


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("application/json", b"{}", True),
        ("text/csv; charset=utf-8", b"a,b", True),
        ("application/vnd.api+json", b"{}", True),
        ("application/octet-stream", b"abc", False),
        ("image/png", b"\x89PNG", False),
        (None, b"plain", True),
        (None, b"\xff\xfe", False),
        ("application/json", b"\xff", False),
    ],
)
def test_binary_detection(content_type: str | None, body: bytes, text: bool) -> None:
    assert is_text(content_type, body) is text


def test_proxy_response_mapping() -> None:
    status, headers, body = parse_proxy_response(
        json.dumps(
            {
                "statusCode": "201",
                "headers": {"A": 1},
                "multiValueHeaders": {"Set-Cookie": ["x=1", "y=2"]},
                "body": base64.b64encode(b"\x00\x01").decode(),
                "isBase64Encoded": True,
            }
        )
    )
    assert status == 201 and ("A", "1") in headers and headers.count(("Set-Cookie", "x=1")) == 1
    assert body == b"\x00\x01"
    assert parse_proxy_response('{"statusCode": 204}') == (204, [], b"")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "must be an object"),
        ('{"statusCode": 200, "extra": 1}', "unexpected keys"),
        ('{"statusCode": "abc"}', "not an integer"),
        ('{"statusCode": 700}', "not an HTTP status"),
        ('{"statusCode": 200, "body": {"a": 1}}', "body must be a string"),
        ('{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}', "not base64"),
        ('{"statusCode": 200, "multiValueHeaders": {"a": "b"}}', "must be a list"),
    ],
)
def test_malformed_proxy_responses(payload: str, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=message):
        parse_proxy_response(payload)
