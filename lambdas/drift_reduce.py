"""drift-reduce: the last step of the scale-out drift check (every path of the workflow ends here).

Thin: parse the workflow state (``{"model", "version", "run", "window_start", "window_end",
"query_error"?, "recheck"?}``; ``recheck`` is set when late rows made the scheduled check check a large
window again), call :func:`driftline.monitoring.scale.reduce_check`, return its outcome. A malformed
state or a check that cannot run answers ``status: error`` without raising; AWS errors propagate and
are retried by the workflow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline import aws
from driftline.monitoring import Context, MonitoringError
from driftline.monitoring.scale import reduce_check

logger = Logger()


@cache
def _context() -> Context:
    return Context.from_env()


def _parse(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise MonitoringError(f"the event must be a JSON object, got {type(event).__name__}")
    bad = [k for k in ("model", "run", "window_start", "window_end") if not isinstance(event.get(k), str)]
    if bad or not isinstance(event.get("version"), int):
        raise MonitoringError(
            f"the workflow state needs string model, run, window_start, window_end and an integer version; "
            f"got {str(event)[:200]}"
        )
    return event


@logger.inject_lambda_context(correlation_id_path="run")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        state = _parse(event)
        out = reduce_check(
            state, ctx=_context(), client=aws.client("s3"), now=datetime.now(UTC), athena=aws.client("athena")
        )
    except MonitoringError as e:
        logger.error("scale-out drift check could not finish", extra={"error": str(e)})
        return {"status": "error", "message": str(e)}
    logger.info("scale-out drift check", extra={k: out.get(k) for k in ("status", "window_end", "alarm", "report_uri")})
    return out
