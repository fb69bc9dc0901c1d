"""train: the retraining workflow's training task (container image: pandas, pyarrow, scikit-learn).

Thin: parse the Step Functions payload, call :func:`driftline.training.task.run_training` (or, with
``phase`` ``register_training_job``, :func:`~driftline.training.task.register_training_job` for a
finished SageMaker training job), return its JSON. A rejected candidate is a normal result (status
``rejected`` + reason) for the quality gate; an unknown model raises ``InvalidTrainingRequestError``
(caught by the workflow), and AWS errors propagate so the task's Retry applies.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline.training.task import InvalidTrainingRequestError, TrainContext, register_training_job, run_training

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@cache
def _context() -> TrainContext:
    return TrainContext.from_env()


@logger.inject_lambda_context(correlation_id_path="execution_id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("request") or {}
    logger.append_keys(model=request.get("model"), trigger=request.get("trigger"), phase=event.get("phase"))
    try:
        if event.get("phase") == "register_training_job":  # a SageMaker training job finished
            out = register_training_job(event, _context())
        else:
            out = run_training(event, _context())
    except InvalidTrainingRequestError:
        metrics.add_metric(name="TrainingRequestInvalid", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_dimension(name="model", value=str(out["model"]))
    if out["status"] == "training":  # a SageMaker training job was started; the workflow polls it
        metrics.add_metric(name="TrainingJobStarted", unit=MetricUnit.Count, value=1)
        logger.info("training job started", extra={"training_job": out["training_job"]["name"]})
        return out
    metrics.add_metric(
        name="CandidateRegistered" if out["status"] == "candidate" else "TrainingRejected",
        unit=MetricUnit.Count,
        value=1,
    )
    for name in ("roc_auc", "rmse"):
        if name in out["metrics"]:
            metrics.add_metric(name=f"Validation_{name}", unit=MetricUnit.NoUnit, value=out["metrics"][name])
    logger.info("training done", extra={"result": out})
    return out
