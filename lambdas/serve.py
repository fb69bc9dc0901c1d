"""Serving Lambda: API Gateway (REST, proxy) -> ONNX Runtime predictions from the champion.

Thin on purpose: routes parse the HTTP request, call :class:`driftline.serving.service.PredictionService`
and turn its result or :class:`ServingError` into a JSON response. Imports only what the fast path
needs (numpy, onnxruntime, msgspec, orjson, botocore, Powertools' Logger; never pandas, scikit-learn, pyarrow
or pydantic), and builds nothing expensive at import: the service (clients, caches, capture thread)
starts on the first request.

Powertools provides logging (Logger, with the Lambda context and the API Gateway request id as
correlation id) and, when tracing is on, the Tracer. Routing (:mod:`driftline.serving.proxy`) and EMF
metrics (:class:`driftline.serving.telemetry.EmfWriter`) are our own because Powertools' resolver and
Metrics together cost twice the endpoint's whole 1-row budget per request (docs/performance.md).

Metrics (EMF, namespace ``POWERTOOLS_METRICS_NAMESPACE``), one document per (model, version) that took
part in a request, dimensions ``service``, ``model``, ``version``: ``Requests``, ``Rows``, ``LatencyMs``,
``ClientErrors``, ``Errors`` (server-side), ``CaptureFailures``, ``ChallengerErrors``, ``ColdStart``.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
import time
from typing import Any

from aws_lambda_powertools import Logger

from driftline.contracts import METRICS_NAMESPACE, TEST_TRAFFIC_HEADER
from driftline.serving.errors import ServingError
from driftline.serving.proxy import ProxyRequest, RouteHandler, Router, respond
from driftline.serving.service import (
    REQUEST_ID_RE,
    HttpRequest,
    Outcome,
    PredictionService,
    is_test_traffic,
    request_id_from,
    unknown_route,
)
from driftline.serving.telemetry import EmfWriter


def _tracing_enabled() -> bool:
    """Powertools' rule (off when POWERTOOLS_TRACE_DISABLED is true or outside Lambda), checked *before*
    building a Tracer: even a disabled Tracer imports the X-Ray SDK, which creates two botocore
    clients at import time (a visible share of the cold start; docs/performance.md)."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in ("1", "true", "yes", "on", "y"):
        return False
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not os.environ.get("AWS_SAM_LOCAL")


logger = Logger()
emf = EmfWriter(
    os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE,
    os.environ.get("POWERTOOLS_SERVICE_NAME") or "driftline-serve",
)


class _State:
    """Per-sandbox state: the service (built on first use), the current request's outcome."""

    service: PredictionService | None = None
    outcome = Outcome()
    cold = True
    frozen = False
    log_cold: bool | None = None
    """None before the first invocation, True during it (its logs say cold_start), then False."""
    log_keys: dict[str, Any] | None = None
    """The Powertools formatter's own key dict, which ``Logger.append_keys`` updates through three
    property lookups and two keyword-dict copies: set directly per request (None: a formatter
    without one, keys go through ``append_keys``)."""


def service() -> PredictionService:
    if _State.service is None:
        _State.service = PredictionService.from_env()
        atexit.register(_State.service.capture.flush)
    return _State.service


def _http_request(req: ProxyRequest) -> HttpRequest:
    rid = request_id_from(req.headers.get("x-request-id"), req.gateway_request_id)
    return HttpRequest(
        body=req.body,
        content_type=req.headers.get("content-type"),
        is_base64=req.is_base64,
        request_id=rid,
        caller=req.caller,
        test=is_test_traffic(req.headers.get(TEST_TRAFFIC_HEADER.lower())),
    )


def _error_request_id(req: ProxyRequest | None) -> str | None:
    """The id an error body carries: the client's X-Request-Id when valid, else API Gateway's."""
    if req is None:
        return None
    own = req.headers.get("x-request-id")
    if own is not None and REQUEST_ID_RE.match(own):
        return own
    return req.gateway_request_id


# ---------------------------------------------------------------------- routes
def _server_url(req: ProxyRequest) -> str | None:
    host, stage = req.headers.get("host"), req.stage
    return (
        f"https://{host}/{stage}" if host and stage and "execute-api" in host else (f"https://{host}" if host else None)
    )


def openapi(req: ProxyRequest, params: dict[str, str]) -> dict[str, Any]:
    """Unauthenticated: the generic document only (``GET /health`` is answered by API Gateway itself)."""
    return respond(200, service().openapi(_server_url(req)))


def model_openapi(req: ProxyRequest, params: dict[str, str]) -> dict[str, Any]:
    return respond(200, service().model_openapi(params["model"], _server_url(req), _State.outcome))


def describe(req: ProxyRequest, params: dict[str, str]) -> dict[str, Any]:
    return respond(200, service().describe(params["model"], _State.outcome))


def predict(req: ProxyRequest, params: dict[str, str]) -> dict[str, Any]:
    http = _http_request(req)
    return respond(200, service().predict(params["model"], http, _State.outcome), {"X-Request-Id": http.request_id})


def feedback(req: ProxyRequest, params: dict[str, str]) -> dict[str, Any]:
    return respond(202, service().feedback(params["model"], _http_request(req), _State.outcome))


router: Router[RouteHandler] = Router(
    [  # most frequent first: a match stops the scan
        ("POST", "/v1/models/{model}/predict", predict),
        ("GET", "/openapi.json", openapi),
        ("GET", "/v1/models/{model}", describe),
        ("GET", "/v1/models/{model}/openapi.json", model_openapi),
        ("POST", "/v1/models/{model}/feedback", feedback),
    ]
)
ROUTES: tuple[tuple[str, str], ...] = tuple(router.templates)
"""Must equal ``driftline.platform`` routes (checked by a test; that module imports pydantic)."""


# ---------------------------------------------------------------------- errors
def _error_response(e: ServingError, req: ProxyRequest | None) -> dict[str, Any]:
    if e.status >= 500:
        logger.warning("unavailable", extra={"code": e.code, "reason": e.message})
    else:
        logger.info("client error", extra={"status": e.status, "code": e.code, "reason": e.message})
    return respond(e.status, e.body(_error_request_id(req)), e.headers)


def _internal_error(req: ProxyRequest | None) -> dict[str, Any]:
    logger.exception("unhandled error")
    _State.outcome.versions.clear()
    return respond(
        500,
        {
            "error": {
                "status": 500,
                "code": "internal_error",
                "message": "the server failed to answer; the error was logged under this request id",
            },
            "request_id": _error_request_id(req),
        },
    )


# ---------------------------------------------------------------------- metrics
def _emit_metrics(status: int, latency_ms: float) -> None:
    svc = _State.service
    failures: dict[tuple[str, int], int] = {}
    chall = 0
    if svc is not None:
        if svc.capture.failures_pending:
            failures = svc.capture.drain_failures()
        if svc.deployments.challenger_failures:
            chall, svc.deployments.challenger_failures = svc.deployments.challenger_failures, 0
    text = emf.request_lines(
        _State.outcome, status, latency_ms, capture_failures=failures, challenger_failures=chall, cold_start=_State.cold
    )
    if text:
        _State.cold = False
        sys.stdout.write(text)


# ---------------------------------------------------------------------- entry point
def _bad_event() -> dict[str, Any]:
    return respond(
        400,
        {
            "error": {
                "status": 400,
                "code": "bad_event",
                "message": "not an API Gateway REST proxy event (expected httpMethod and path)",
            }
        },
    )


def _route(req: ProxyRequest) -> dict[str, Any]:
    try:
        found = router.match(req.method, req.path)
        if isinstance(found, list):
            raise unknown_route(req.method, req.path, found)
        route, params = found
        return route(req, params)
    except ServingError as e:
        return _error_response(e, req)
    except Exception:
        return _internal_error(req)


def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    req = ProxyRequest.from_event(event)
    _log_context(context, req.gateway_request_id if req is not None else None)
    if req is None:
        return _bad_event()
    _State.outcome = Outcome()
    response = _route(req)
    try:
        _emit_metrics(response["statusCode"], round((time.perf_counter() - t0) * 1000.0, 3))
    except Exception:  # metrics must never turn an answer into an error
        logger.exception("metrics emission failed")
    if not _State.frozen and _State.service is not None and _State.service.deployments.loaded_versions():
        _freeze_heap()
    return response


def _log_context(context: Any, correlation_id: str | None) -> None:
    """The keys Powertools' ``inject_lambda_context`` adds to every log line (``cold_start``,
    ``function_name``, ``function_memory_size``, ``function_arn``, ``function_request_id``) plus the
    API Gateway request id as ``correlation_id``. The sandbox's own keys are set once; per request only
    the two ids change, set in the formatter's key dict (what ``append_keys`` updates) instead of the
    decorator, which rebuilds the whole context model on every invocation."""
    if _State.log_cold is not False:
        logger.append_keys(
            cold_start=_State.log_cold is None,
            function_name=getattr(context, "function_name", None),
            function_memory_size=getattr(context, "memory_limit_in_mb", None),
            function_arn=getattr(context, "invoked_function_arn", None),
        )
        _State.log_cold = _State.log_cold is None  # None -> True (first call) -> False
        own = getattr(logger.registered_formatter, "log_format", None)
        _State.log_keys = own if isinstance(own, dict) else None
    keys = _State.log_keys
    if keys is None:
        logger.append_keys(function_request_id=getattr(context, "aws_request_id", None), correlation_id=correlation_id)
    else:
        keys["function_request_id"] = getattr(context, "aws_request_id", None)
        keys["correlation_id"] = correlation_id


def _freeze_heap() -> None:
    """Move everything alive after the first model load (modules, clients, sessions) out of the cyclic
    garbage collector's reach: full collections then scan only per-request garbage, which keeps
    multi-millisecond GC pauses out of the latency tail."""
    gc.freeze()
    _State.frozen = True


def _traced() -> Any:
    """When tracing is on, the whole invocation is a subsegment and botocore calls (registry, S3, Firehose)
    are patched by the Tracer. When it is off, no Tracer exists: its decorator would only create dummy
    segments on every request."""
    if not _tracing_enabled():
        return _handle
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(_handle, capture_response=False)


handler = _traced()


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
    _freeze_heap()
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
