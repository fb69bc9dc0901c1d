"""Serving Lambda: API Gateway (REST, proxy) -> ONNX Runtime predictions from the champion.

Thin on purpose: routes parse the HTTP request, call :class:`driftline.serving.service.PredictionService`
and turn its result or :class:`ServingError` into a JSON response. Imports only what the fast path
needs (Powertools, numpy, onnxruntime, boto3; never pandas, scikit-learn, pyarrow or pydantic), and
builds nothing expensive at import: the service (clients, caches, capture thread) starts on the first
request. Validation is the service's own schema-driven validator, not Powertools' (which needs pydantic).

Metrics (EMF, namespace ``POWERTOOLS_METRICS_NAMESPACE``), one blob per (model, version) that took part
in a request, dimensions ``service``, ``model``, ``version``: ``Requests``, ``Rows``, ``LatencyMs``,
``ClientErrors``, ``Errors`` (server-side), ``CaptureFailures``, ``ChallengerErrors``, ``ColdStart``.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import time
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline.serving.errors import ServingError
from driftline.serving.service import (
    REQUEST_ID_RE,
    HttpRequest,
    Outcome,
    PredictionService,
    request_id_from,
    unknown_route,
)
from driftline.serving.telemetry import metric_groups


def _tracing_enabled() -> bool:
    """Powertools' rule (off when POWERTOOLS_TRACE_DISABLED is true or outside Lambda), checked *before*
    building a Tracer: even a disabled Tracer imports the X-Ray SDK, which creates two botocore
    clients at import time (0.15-0.3 s of cold start, several times that on a busy host)."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in ("1", "true", "yes", "on", "y"):
        return False
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL")


logger = Logger()
tracer: Tracer | None = Tracer() if _tracing_enabled() else None
app = APIGatewayRestResolver()

ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/models/{model}"),
    ("POST", "/v1/models/{model}/predict"),
    ("POST", "/v1/models/{model}/feedback"),
)
"""Must equal ``driftline.platform`` routes (checked by a test; that module imports pydantic)."""
_ROUTE_RES = [(m, re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", p) + "/?$")) for m, p in ROUTES]
"""For 405 vs 404; an optional trailing slash, as Powertools' own route matching allows."""
JSON = "application/json"



class _State:
    """Per-sandbox state: the service (built on first use), the current request's outcome."""

    service: PredictionService | None = None
    outcome = Outcome()
    cold = True


def service() -> PredictionService:
    if _State.service is None:
        _State.service = PredictionService.from_env()
        atexit.register(_State.service.capture.flush)
    return _State.service


def _respond(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status_code=status, content_type=JSON, body=json.dumps(payload, separators=(",", ":")),
                    headers=headers)


def _http_request() -> HttpRequest:
    ev = app.current_event
    headers = ev.headers
    rid = request_id_from(headers.get("x-request-id"), ev.request_context.request_id)
    return HttpRequest(body=ev.body, content_type=headers.get("content-type"),
                       is_base64=bool(ev.is_base64_encoded), request_id=rid)


def _gateway_request_id() -> str | None:
    """The id an error body carries: the client's X-Request-Id when valid, else API Gateway's."""
    try:
        ev = app.current_event
        own = ev.headers.get("x-request-id")
        if own is not None and REQUEST_ID_RE.match(own):
            return str(own)
        return ev.request_context.request_id
    except (KeyError, AttributeError, TypeError):
        return None


# ---------------------------------------------------------------------- routes
@app.get("/health")
def health() -> Response[str]:
    svc = _State.service
    return _respond(200, svc.health() if svc else {"status": "ok", "loaded": []})


@app.get("/openapi.json")
def openapi() -> Response[str]:
    ev = app.current_event
    host = ev.headers.get("host")
    stage = ev.request_context.stage
    url = f"https://{host}/{stage}" if host and stage and "execute-api" in host else (
        f"https://{host}" if host else None)
    only = (ev.query_string_parameters or {}).get("model")
    return _respond(200, service().openapi(url, only=only))


@app.get("/v1/models/<model>")
def describe(model: str) -> Response[str]:
    return _respond(200, service().describe(model, _State.outcome))


@app.post("/v1/models/<model>/predict")
def predict(model: str) -> Response[str]:
    req = _http_request()
    return _respond(200, service().predict(model, req, _State.outcome), {"X-Request-Id": req.request_id})


@app.post("/v1/models/<model>/feedback")
def feedback(model: str) -> Response[str]:
    return _respond(202, service().feedback(model, _http_request(), _State.outcome))


# ---------------------------------------------------------------------- errors
def _error_response(e: ServingError) -> Response[str]:
    if e.status >= 500:
        logger.warning("unavailable", extra={"code": e.code, "reason": e.message})
    else:
        logger.info("client error", extra={"status": e.status, "code": e.code, "reason": e.message})
    return _respond(e.status, e.body(_gateway_request_id()), e.headers)


@app.exception_handler(ServingError)
def serving_error(e: ServingError) -> Response[str]:
    return _error_response(e)


@app.not_found
def route_not_found(_: NotFoundError) -> Response[str]:
    ev = app.current_event
    path, method = ev.path, ev.http_method.upper()
    allowed = sorted({m for m, rx in _ROUTE_RES if rx.match(path)})
    return _error_response(unknown_route(method, path, allowed))


@app.exception_handler(Exception)
def unexpected(e: Exception) -> Response[str]:
    logger.exception("unhandled error")
    _State.outcome.versions.clear()
    return _respond(500, {"error": {"status": 500, "code": "internal_error",
                                    "message": "the server failed to answer; the error was logged under this "
                                               "request id"}, "request_id": _gateway_request_id()})


# ---------------------------------------------------------------------- metrics
_metric_sets: dict[tuple[str, str], EphemeralMetrics] = {}


def _metric_set(model: str, version: str) -> EphemeralMetrics:
    """One EMF emitter per (model, version), dimensions set once (Powertools keeps them across flushes)."""
    key = (model, version)
    m = _metric_sets.get(key)
    if m is None:
        if len(_metric_sets) > 256:
            _metric_sets.clear()
        m = _metric_sets[key] = EphemeralMetrics()
        m.set_default_dimensions(model=model, version=version)
    return m


def _emit_metrics(status: int, latency_ms: float) -> None:
    svc = _State.service
    failures: dict[tuple[str, int], int] = {}
    chall = 0
    if svc is not None:
        failures = svc.capture.drain_failures()
        chall, svc.deployments.challenger_failures = svc.deployments.challenger_failures, 0
    groups = metric_groups(_State.outcome, status, latency_ms, capture_failures=failures,
                           challenger_failures=chall, cold_start=_State.cold)
    if groups:
        _State.cold = False
    for (model, version), values in groups.items():
        metrics = _metric_set(model, version)
        for name, value in values.items():
            unit = MetricUnit.Milliseconds if name == "LatencyMs" else MetricUnit.Count
            metrics.add_metric(name=name, unit=unit, value=value)
        metrics.flush_metrics()


# ---------------------------------------------------------------------- entry point
def _bad_event() -> dict[str, Any]:
    body = {"error": {"status": 400, "code": "bad_event",
                      "message": "not an API Gateway REST proxy event (expected httpMethod and path)"}}
    return {"statusCode": 400, "headers": {"Content-Type": JSON}, "body": json.dumps(body)}


def _handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    t0 = time.perf_counter()
    if not isinstance(event, dict) or not isinstance(event.get("httpMethod"), str) or \
            not isinstance(event.get("path"), str):
        return _bad_event()
    ctx = event.get("requestContext")
    logger.set_correlation_id(ctx.get("requestId") if isinstance(ctx, dict) else None)
    _State.outcome = Outcome()
    response = app.resolve(event, context)
    status = int(response.get("statusCode", 500))
    try:
        _emit_metrics(status, round((time.perf_counter() - t0) * 1000.0, 3))
    except Exception:  # metrics must never turn an answer into an error
        logger.exception("metrics emission failed")
    return response


# Tracing: when enabled, the whole invocation is a subsegment and boto3 calls (registry, S3, Firehose)
# are patched by the Tracer. When it is off, no Tracer exists: its decorator would only create dummy
# segments on every request. The correlation id is the API Gateway request id, set in _handle without
# a JMESPath query.
handler = logger.inject_lambda_context(
    _handle if tracer is None else tracer.capture_lambda_handler(_handle, capture_response=False))


def init_before_requests(kind: str) -> dict[str, Any] | None:
    """Eager initialization for provisioned concurrency and SnapStart (``AWS_LAMBDA_INITIALIZATION_TYPE``).

    Their init runs before any request is routed, so loading every champion then makes the first
    request a warm one. On-demand sandboxes keep lazy loading (only the requested model is loaded).
    After a SnapStart restore, cached aliases are expired so the registry is re-checked first.
    """
    if kind not in ("provisioned-concurrency", "snap-start"):
        return None
    try:
        result = service().warm_up()
    except Exception:
        logger.exception("eager initialization failed; models will load on their first request")
        return None
    logger.info("initialized before requests", extra={"init_type": kind, **result})
    if kind == "snap-start":
        try:
            from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            register_after_restore(service().deployments.expire)
    return result


def _flush_on_sigterm(signum: int, frame: Any) -> None:
    """Lambda sends SIGTERM before shutdown when an extension is registered: deliver buffered captures."""
    if _State.service is not None:
        _State.service.capture.flush()
    raise SystemExit(0)


if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
    signal.signal(signal.SIGTERM, _flush_on_sigterm)
    init_before_requests(os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"))
