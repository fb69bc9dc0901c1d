"""workflow: the retraining workflow's steps (validate, gate, request_approval, reject_timeout, deploy,
evaluate_canary, canary_inconclusive, rollback, promote, record_failure, and the SageMaker training-job
loop's training_job_status, restart_training_job, stop_training_job), chosen by the event's ``action`` field.

Thin: build the step context once per container, dispatch to :func:`driftline.retraining.steps.run_step`.
Exceptions propagate on purpose: their class name is the Step Functions error the definition's
Retry/Catch match on.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline.retraining.steps import StepContext, run_step

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@cache
def _context() -> StepContext:
    return StepContext.from_env()


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = str(event.get("action"))
    logger.append_keys(action=action)
    out = run_step(event, _context())
    metrics.add_metric(name=f"WorkflowStep_{action}", unit=MetricUnit.Count, value=1)
    if action == "gate":
        metrics.add_metric(name="GatePassed" if out.get("passed") else "GateFailed", unit=MetricUnit.Count, value=1)
    elif action == "evaluate_canary":
        outcome = {"promote": "CanaryHealthy", "extend": "CanaryExtended", "inconclusive": "CanaryInconclusive"}
        metrics.add_metric(name=outcome.get(str(out.get("outcome")), "CanaryBreached"), unit=MetricUnit.Count, value=1)
    logger.info("workflow step done", extra={"result": {k: out[k] for k in list(out)[:12]}})
    return out
