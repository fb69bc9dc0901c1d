"""The local API gateway: HTTP requests become API Gateway REST (v1) Lambda-proxy events.

moto has no ``execute-api`` → Lambda proxy, so this small threaded server does what API Gateway
does for the routes of the platform definition: match the resource (static segments before
``{param}`` ones), build the proxy event (path parameters, query strings, headers with their
multi-value forms, base64 for binary bodies, ``requestContext``), invoke the function and map its
answer (``statusCode``, ``headers``, ``multiValueHeaders``, ``body``, ``isBase64Encoded``) back to HTTP.

Deliberate choices (see docs/local.md): an unknown path answers 404 ``{"message": "Not Found"}``
and a known path with another method 405 ``{"message": "Method Not Allowed"}`` with ``Allow`` —
a deployed REST API answers 403 ``{"message": "Missing Authentication Token"}`` for both unless
its gateway responses are customised. A static route (``GET /health``, a MOCK integration on AWS) is
answered by the gateway itself without invoking anything, and a route with its own throttle (the
unauthenticated ones) answers 429 ``{"message": "Too Many Requests"}`` beyond its rate and burst, as
the stage's method settings make API Gateway do; the stage-wide throttle is not emulated.
Bodies over 10 MB get 413 as in API Gateway; a Lambda error
or a malformed proxy response gets 502 ``{"message": "Internal server error"}``; a function that
runs past the 29 s integration timeout gets 504. By default IAM authorization is not enforced locally;
since the approval route needs a caller identity, a request may name one in the ``X-Driftline-Local-Principal``
header, which fills ``requestContext.identity.userArn``/``caller`` as SigV4 does on AWS (there the header
means nothing: API Gateway fills the identity from the signature). With an ``authorizer``
(``local up --require-auth``, :mod:`driftline.local.gateway_auth`) the IAM routes need a valid SigV4
signature and ``execute-api:Invoke``, answer API Gateway's 403s otherwise, the identity is the proved
caller's, and the header is ignored everywhere.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from driftline.local.executor import InvocationResult
from driftline.local.gateway_auth import LOCAL_API_ID, GatewayAuthError, GatewayAuthorizer, SignedRequest
from driftline.retraining.approval_api import LOCAL_PRINCIPAL_HEADER

MAX_BODY_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_S = 29.0
LISTEN_BACKLOG = 1024
"""Pending connections the kernel queues (gunicorn and nginx default to 511-2048; Python's default is 5)."""
READ_TIMEOUT_S = 30.0
"""A request whose bytes stop arriving for this long is answered 408 and closed."""
MAX_CHUNK_LINE = 1024
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/javascript",
    "application/problem+json",
    "application/yaml",
)
_RESPONSE_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}

InvokeFn = Callable[[str, str], InvocationResult | None]
"""(function physical name, event JSON) -> result, or None when the function does not exist."""


class MalformedResponseError(ValueError):
    pass


class TokenBucket:
    """API Gateway's throttle for one method: ``rate`` requests per second on average, ``burst`` at once;
    a request finding the bucket empty is answered 429 without reaching the integration."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


@dataclass(frozen=True)
class Route:
    method: str
    resource: str
    """The resource template, e.g. ``/v1/models/{model}/predict``."""
    function: str
    """The function's physical name ('' for a static route)."""
    regex: re.Pattern[str]
    specificity: tuple[int, int]
    static_response: str | None = None
    """A JSON body answered with 200 by the gateway itself (API Gateway's MOCK integration)."""
    throttle: TokenBucket | None = None
    """The method's own throttle (stage method settings), None for the stage default (not emulated)."""
    iam: bool = False
    """AWS_IAM authorization on the deployed API (``platform.route_auth``): checked with an authorizer."""


def compile_route(
    method: str,
    resource: str,
    function: str,
    static_response: str | None = None,
    throttle: tuple[float, int] | None = None,
    iam: bool = False,
) -> Route:
    if not resource.startswith("/"):
        raise ValueError(f"route path {resource!r} must start with '/'")
    parts, static = [], 0
    for segment in resource.strip("/").split("/") if resource != "/" else []:
        m = re.fullmatch(r"\{([A-Za-z0-9_]+)(\+?)\}", segment)
        if m:
            parts.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            static += 1
    regex = re.compile("^/" + "/".join(parts) + "/?$") if parts else re.compile("^/$")
    bucket = TokenBucket(*throttle) if throttle is not None else None
    return Route(method.upper(), resource, function, regex, (static, -len(parts)), static_response, bucket, iam)


RouteSpec = (
    tuple[str, str, str]
    | tuple[str, str, str, str | None]
    | tuple[str, str, str, str | None, tuple[float, int] | None]
    | tuple[str, str, str, str | None, tuple[float, int] | None, bool]
)
"""(method, resource, function[, static response[, (rate, burst) throttle[, IAM authorized]]])"""


class RouteTable:
    def __init__(self, routes: Iterable[RouteSpec]) -> None:
        compiled = [compile_route(*r) for r in routes]
        # API Gateway prefers the most specific resource: more static segments first.
        self.routes = sorted(compiled, key=lambda r: r.specificity, reverse=True)

    def resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """(route, path parameters, allowed methods); route is None for 404 (no allowed) or 405."""
        allowed: list[str] = []
        resource: str | None = None
        for route in self.routes:
            m = route.regex.match(path)
            if not m or (resource is not None and route.resource != resource):
                continue
            resource = route.resource
            if route.method == method.upper():
                return route, {k: unquote(v) for k, v in m.groupdict().items()}, []
            allowed.append(route.method)
        return None, {}, sorted(set(allowed))


def is_text(content_type: str | None, body: bytes) -> bool:
    if content_type is None or not content_type.strip():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    ct = content_type.split(";", 1)[0].strip().lower()
    if not (ct.startswith(_TEXT_TYPES) or ct.endswith(("+json", "+xml"))):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def build_event(
    *,
    route: Route,
    method: str,
    raw_path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    path_params: dict[str, str],
    stage: str,
    account: str,
    source_ip: str,
    request_id: str,
    host: str,
    caller: dict[str, str] | None = None,
    principal_header: bool = True,
) -> dict[str, Any]:
    """API Gateway's REST proxy event. ``caller`` is the identity an authorizer proved (``userArn``,
    ``caller``, ``user``, ``accountId``, ``accessKey``); without one, ``principal_header`` says whether the
    local principal header may name the caller (off with ``--require-auth``)."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for k, v in headers:
        single[k] = v
        multi.setdefault(k, []).append(v)
    qs_single: dict[str, str] = {}
    qs_multi: dict[str, list[str]] = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        qs_single[k] = v
        qs_multi.setdefault(k, []).append(v)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    text = is_text(content_type, body)
    principal = (
        next((v.strip() for k, v in headers if k.lower() == LOCAL_PRINCIPAL_HEADER.lower()), None) or None
        if principal_header
        else None
    )
    identity: dict[str, Any] = {
        "accessKey": None,
        "accountId": None,
        "caller": principal,
        "cognitoAuthenticationProvider": None,
        "cognitoAuthenticationType": None,
        "cognitoIdentityId": None,
        "cognitoIdentityPoolId": None,
        "principalOrgId": None,
        "user": principal,
        "userArn": principal,
    }
    identity.update(caller or {})
    now = datetime.now(UTC)
    path = unquote(raw_path)
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": qs_single or None,
        "multiValueQueryStringParameters": qs_multi or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": account,
            "apiId": LOCAL_API_ID,
            "domainName": host,
            "domainPrefix": host.split(".", 1)[0],
            "extendedRequestId": request_id,
            "httpMethod": method,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": single.get("User-Agent") or single.get("user-agent"),
                **identity,
            },
            "path": f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourceId": "local",
            "resourcePath": route.resource,
            "stage": stage,
        },
        "body": (body.decode("utf-8") if text else base64.b64encode(body).decode()) if body else None,
        "isBase64Encoded": bool(body) and not text,
    }


def parse_proxy_response(payload: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Validate a Lambda-proxy answer the way API Gateway does; raises MalformedResponseError."""
    try:
        doc = json.loads(payload)
    except ValueError:
        raise MalformedResponseError("the function's answer is not JSON") from None
    if not isinstance(doc, dict):
        raise MalformedResponseError("the function's answer must be an object with statusCode and body")
    extra = set(doc) - _RESPONSE_KEYS
    if extra:
        raise MalformedResponseError(f"unexpected keys {sorted(extra)} (allowed: {sorted(_RESPONSE_KEYS)})")
    try:
        status = int(doc.get("statusCode", 200))
    except (TypeError, ValueError):
        raise MalformedResponseError(f"statusCode {doc.get('statusCode')!r} is not an integer") from None
    if not 100 <= status <= 599:
        raise MalformedResponseError(f"statusCode {status} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    for k, v in (doc.get("headers") or {}).items():
        headers.append((str(k), str(v)))
    for k, values in (doc.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise MalformedResponseError(f"multiValueHeaders[{k!r}] must be a list")
        headers += [(str(k), str(v)) for v in values]
    body = doc.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise MalformedResponseError("body must be a string (JSON-encode objects yourself)")
    elif doc.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResponseError("isBase64Encoded is true but body is not base64") from None
    else:
        data = body.encode("utf-8")
    return status, headers, data


class _TooLargeError(Exception):
    pass


class _Server(ThreadingHTTPServer):
    """A listen backlog like a production server's: the standard library's 5 made bursts time out."""

    request_queue_size = LISTEN_BACKLOG

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is routine, not a traceback on the console."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


_CHUNK_SIZE = re.compile(rb"^[0-9a-fA-F]{1,16}$")


class ApiGateway:
    """A threaded HTTP server for the platform's routes. Binds in the constructor (so a busy port
    fails fast) and answers 503 until :meth:`open` is called."""

    def __init__(
        self,
        routes: RouteTable,
        invoke: InvokeFn,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        stage: str = "local",
        account: str = "123456789012",
        cors_origins: tuple[str, ...] = (),
        log: Callable[[str], None] = print,
        authorizer: GatewayAuthorizer | None = None,
    ) -> None:
        self.routes = routes
        self.authorizer = authorizer
        """SigV4 on the IAM routes (``--require-auth``); None: nothing is checked, as before."""
        self.invoke = invoke
        self.stage = stage
        self.account = account
        self.cors_origins = cors_origins
        self.log = log
        self._ready = threading.Event()
        self._slow_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="driftline-apigw")
        self._server = _Server((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="driftline-apigw", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def open(self) -> None:
        self._ready.set()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._slow_pool.shutdown(wait=False, cancel_futures=True)

    def _invoke(self, route: Route, event_json: str) -> InvocationResult | str | None:
        """Run the function; returns "timeout" when the 29 s integration timeout passes first."""
        future = self._slow_pool.submit(self.invoke, route.function, event_json)
        try:
            return future.result(timeout=INTEGRATION_TIMEOUT_S)
        except FutureTimeout:
            return "timeout"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        return type("Handler", (_GatewayHandler,), {"gateway": self})


class _GatewayHandler(BaseHTTPRequestHandler):
    """One request of the local gateway; :meth:`ApiGateway._handler_class` binds ``gateway``."""

    gateway: ApiGateway

    protocol_version = "HTTP/1.1"
    server_version = "driftline-local-apigw"
    timeout = READ_TIMEOUT_S  # a client that stops sending mid-request is cut off, not waited on forever

    def __getattr__(self, name: str) -> Any:
        # any method token reaches the router (405 with Allow, as API Gateway), never the
        # standard library's 501 for a method it has no do_<METHOD> for
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, request_id: str) -> None:
        self.send_response(status)
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", request_id)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _message(self, status: int, message: str, request_id: str, extra: list[tuple[str, str]] | None = None) -> None:
        self._send(
            status,
            [("Content-Type", "application/json"), *(extra or [])],
            json.dumps({"message": message}).encode(),
            request_id,
        )

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(MAX_CHUNK_LINE + 1)
                token = line.split(b";", 1)[0].strip()
                if not line.endswith(b"\n") or not _CHUNK_SIZE.match(token):  # "-1", "0x10", EOF, ...
                    raise ValueError(f"malformed chunk size line {line[:40]!r}")
                size = int(token, 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    raise _TooLargeError
                chunk = self.rfile.read(size)
                if len(chunk) != size:  # the client closed before sending what it announced
                    raise ValueError("the chunked body ended early")
                chunks.append(chunk)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _TooLargeError
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        t0 = time.perf_counter()
        request_id = str(uuid.uuid4())
        status = self._dispatch(request_id)
        self.gateway.log(f"[api] {self.command} {self.path} -> {status} ({(time.perf_counter() - t0) * 1000:.1f} ms)")

    def _dispatch(self, request_id: str) -> int:
        if not self.gateway._ready.is_set():
            self.close_connection = True
            self._message(
                503,
                "The local platform is starting; retry in a moment",
                request_id,
                [("Retry-After", "1")],
            )
            return 503
        try:
            body = self._read_body()
        except _TooLargeError:
            self.close_connection = True  # the rest of the body is not read
            self._message(413, "Request Too Long", request_id)
            return 413
        except ValueError:  # a Content-Length or chunk size that is not a number
            self.close_connection = True
            self._message(400, "Bad Request: malformed Content-Length or chunked body", request_id)
            return 400
        except TimeoutError:
            self.close_connection = True
            self._message(408, "Request Timeout: the body did not arrive in time", request_id)
            return 408
        split = urlsplit(self.path)
        route, params, allowed = self.gateway.routes.resolve(self.command, split.path)
        if route is None and not allowed:
            self._message(404, "Not Found", request_id)
            return 404
        if route is None:
            if self.command == "OPTIONS" and self.gateway.cors_origins:
                return self._preflight(allowed, request_id)
            self._message(405, "Method Not Allowed", request_id, [("Allow", ", ".join(allowed))])
            return 405
        if route.throttle is not None and not route.throttle.take():
            self._message(429, "Too Many Requests", request_id)
            return 429
        caller: dict[str, str] | None = None
        if self.gateway.authorizer is not None and route.iam:
            refused = self._authorize(split.path, split.query, body, request_id)
            if isinstance(refused, int):
                return refused
            caller = refused
        if route.static_response is not None:
            self._send(
                200, self._cors([("Content-Type", "application/json")]), route.static_response.encode(), request_id
            )
            return 200
        event = build_event(
            route=route,
            method=self.command,
            raw_path=split.path,
            query=split.query,
            headers=list(self.headers.items()),
            body=body,
            path_params=params,
            stage=self.gateway.stage,
            account=self.gateway.account,
            source_ip=self.client_address[0],
            request_id=request_id,
            host=self.headers.get("Host", "127.0.0.1"),
            caller=caller,
            principal_header=self.gateway.authorizer is None,
        )
        result = self.gateway._invoke(route, json.dumps(event))
        if result == "timeout":
            self._message(504, "Endpoint request timed out", request_id)
            return 504
        if not isinstance(result, InvocationResult) or result.error:
            why = (
                "the function does not exist"
                if result is None
                else (f"the function failed: {result.error_type}" if isinstance(result, InvocationResult) else "")
            )
            self.gateway.log(f"[api] {self.command} {split.path}: {why}")
            self._message(502, "Internal server error", request_id)
            return 502
        try:
            status, headers, data = parse_proxy_response(result.payload)
        except MalformedResponseError as e:
            self.gateway.log(f"[api] {self.command} {split.path}: malformed Lambda proxy response: {e}")
            self._message(502, "Internal server error", request_id)
            return 502
        self._send(status, self._cors(headers), data, request_id)
        return status

    def _authorize(self, path: str, query: str, body: bytes, request_id: str) -> dict[str, str] | int:
        """The proved caller's identity fields, or the status of the 403 already answered."""
        assert self.gateway.authorizer is not None
        request = SignedRequest(self.command, path, query, list(self.headers.items()), body)
        try:
            return self.gateway.authorizer.authorize(request).identity()
        except GatewayAuthError as e:
            refusal = e
        except Exception as e:  # a verifier bug must still be a 403, never a 5xx or a traceback
            self.gateway.log(f"[api] {self.command} {path}: SigV4 check failed: {type(e).__name__}: {e}")
            refusal = GatewayAuthError("IncompleteSignatureException", "Missing Authentication Token")
        self._message(403, refusal.message, request_id, [("x-amzn-ErrorType", refusal.error_type)])
        return 403

    def _cors(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        origin, allowed = self.headers.get("Origin"), self.gateway.cors_origins
        if origin and allowed and (origin in allowed or "*" in allowed):
            headers.append(("Access-Control-Allow-Origin", origin))
        return headers

    def _preflight(self, allowed: list[str], request_id: str) -> int:
        origin = self.headers.get("Origin", "")
        if origin not in self.gateway.cors_origins and "*" not in self.gateway.cors_origins:
            self._message(403, "Forbidden", request_id)
            return 403
        self._send(
            204,
            [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Methods", ", ".join(allowed)),
                (
                    "Access-Control-Allow-Headers",
                    "Content-Type,Authorization,X-Amz-Date,X-Api-Key,X-Amz-Security-Token",
                ),
            ],
            b"",
            request_id,
        )
        return 204

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle  # noqa: N815
