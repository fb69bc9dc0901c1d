"""drift: the scheduled per-model drift, prediction-drift and performance check.

Thin: parse the schedule input (``{"model": ..., "window_start"?: ISO, "window_end"?: ISO}``), call
:func:`driftline.monitoring.run_check`, return its outcome. A malformed event or a check that cannot
run (no profile, a profile of another version) is logged and answered with ``status: error``
instead of raising, so the schedule does not retry it; AWS errors propagate and are retried.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline.monitoring import Context, MonitoringError, run_check

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@cache
def _context() -> Context:
    return Context.from_env()


def _parse(event: Any) -> tuple[str, str | None, str | None]:
    if not isinstance(event, dict) or not isinstance(event.get("model"), str) or not event["model"]:
        raise MonitoringError(
            f'the event must be {{"model": "<name>"}} with optional window_start/window_end '
            f"(ISO-8601), got {str(event)[:200]}"
        )
    start, end = event.get("window_start"), event.get("window_end")
    for name, value in (("window_start", start), ("window_end", end)):
        if value is not None and not isinstance(value, str):
            raise MonitoringError(f"{name} must be an ISO-8601 string, got {type(value).__name__}")
    return event["model"], start, end


@logger.inject_lambda_context(correlation_id_path="model")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        model, start, end = _parse(event)
        logger.append_keys(model=model)
        out = run_check(model, window_start=start, window_end=end, ctx=_context())
    except MonitoringError as e:
        logger.error("drift check could not run", extra={"error": str(e)})
        metrics.add_metric(name="DriftCheckFailed", unit=MetricUnit.Count, value=1)
        return {"status": "error", "message": str(e)}
    metrics.add_metric(name="DriftChecks", unit=MetricUnit.Count, value=1)
    if out.get("alarm"):
        metrics.add_metric(name="DriftAlarms", unit=MetricUnit.Count, value=1)
    logger.info(
        "drift check",
        extra={
            k: out.get(k)
            for k in (
                "version",
                "status",
                "window_start",
                "window_end",
                "n_current",
                "share_drifted",
                "drifted_columns",
                "reasons",
                "streak",
                "alarm",
                "report_uri",
                "late_rows",
                "rechecked",
            )
        },
    )
    return out
