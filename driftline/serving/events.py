"""API Gateway REST (v1) proxy events and a Lambda context, built from an HTTP request.

The local platform's gateway, the benchmarks and the tests call the serving handler with exactly
the event API Gateway would send, so the handler has one code path everywhere.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from driftline.serving.proxy import template_pattern

ROUTE_TEMPLATES = (
    "/openapi.json",
    "/v1/models/{model}",
    "/v1/models/{model}/openapi.json",
    "/v1/models/{model}/predict",
    "/v1/models/{model}/feedback",
)
"""The serving function's routes (``GET /health`` is answered by the gateway, never the function)."""


_PATTERNS = [(tpl, template_pattern(tpl, trailing_slash=False)) for tpl in ROUTE_TEMPLATES]


def _resource(path: str) -> tuple[str, dict[str, str] | None]:
    for tpl, rx in _PATTERNS:
        m = rx.match(path)
        if m:
            return tpl, (m.groupdict() or None)
    return "/{proxy+}", {"proxy": path.lstrip("/")}


def proxy_event(
    method: str,
    path: str,
    body: str | bytes | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    query: str | Mapping[str, str] | None = None,
    stage: str = "v1",
    request_id: str | None = None,
    source_ip: str = "127.0.0.1",
    host: str | None = None,
) -> dict[str, Any]:
    """The event API Gateway's Lambda proxy integration sends for this request."""
    hdrs = dict(headers or {})
    if host:
        hdrs.setdefault("Host", host)
    is_b64 = isinstance(body, bytes | bytearray)
    text: str | None
    if is_b64:
        assert isinstance(body, bytes | bytearray)
        text = base64.b64encode(bytes(body)).decode()
    else:
        text = body  # type: ignore[assignment]
    qs: dict[str, str] | None
    if isinstance(query, str):
        qs = dict(parse_qsl(query, keep_blank_values=True)) or None
    else:
        qs = dict(query) if query else None
    resource, params = _resource(path)
    rid = request_id or str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": hdrs or None,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()} or None,
        "queryStringParameters": qs,
        "multiValueQueryStringParameters": {k: [v] for k, v in qs.items()} if qs else None,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method.upper(),
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": rid,
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip, "userAgent": hdrs.get("User-Agent", "")},
            "accountId": "123456789012",
            "apiId": "local",
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


@dataclass
class LocalContext:
    """The attributes of the Lambda context object that Powertools and handlers read."""

    function_name: str = "driftline-serve"
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:driftline-serve"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/driftline-serve"
    log_stream_name: str = "local"
    timeout_s: float = 10.0
    _start: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._start)) * 1000))
