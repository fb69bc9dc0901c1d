"""retrain-trigger: drift, new-label, schedule and manual triggers → at most one retraining run per model.

Thin: parse the config once per container, hand the event to
:class:`driftline.retraining.triggers.RetrainTrigger`, return its decisions. A malformed event or an
unknown model is answered with the recorded error instead of raising, so EventBridge does not retry it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline import aws
from driftline.config import PlatformConfig
from driftline.features.schema import FeatureSetCatalog
from driftline.retraining.control import ControlTable
from driftline.retraining.triggers import RetrainTrigger

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@cache
def _trigger() -> RetrainTrigger:
    config = PlatformConfig.model_validate_json(aws.env("PLATFORM_CONFIG"))
    feature_sets = FeatureSetCatalog(os.environ.get("FEATURE_SETS_DIR", "feature_sets")).names()
    counter = None
    if os.environ.get("CAPTURES_BUCKET"):  # set when some model retrains on new feedback labels
        from driftline.captures_store import CapturesStore
        from driftline.registry.store import Registry
        from driftline.retraining.feedback_trigger import LabelCounter

        counter = LabelCounter(Registry.from_env(), CapturesStore(aws.env("CAPTURES_BUCKET"), aws.client("s3")))
    return RetrainTrigger(
        config,
        ControlTable.from_env(),
        aws.env("RETRAIN_STATE_MACHINE_ARN"),
        feature_sets,
        label_counter=counter,
    )


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = _trigger().handle(event)
    for d in outcome.decisions:
        metrics.add_metric(name=f"Retrain{d.decision.capitalize()}", unit=MetricUnit.Count, value=1)
        logger.info("retraining decision", extra=d.to_dict())
    if outcome.error:
        logger.error("retraining trigger rejected", extra={"error": outcome.error})
    return outcome.to_dict()
