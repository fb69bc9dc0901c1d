"""ingest-plan: the first step of the ingest-parts workflow (an upload over ``ingest.max_file_mb``).

Thin: parse the workflow state (``{"upload", "feature_set", "upload_id", "bucket", "items_prefix"}``),
call :func:`driftline.features.parts.plan_step`, answer the plan's outcome (``planned`` with the part
count, or ``refused``, which the workflow hands straight to the commit step to record). A malformed
state answers ``status: error`` without raising (the workflow then goes on to the commit step, which
answers the same); AWS errors propagate and the workflow retries them.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline import aws
from driftline.features.parts import PartsError, parse_workflow_input, plan_step
from driftline.features.schema import FeatureSetCatalog

logger = Logger()


@cache
def _catalog() -> FeatureSetCatalog:
    return FeatureSetCatalog(os.environ.get("FEATURE_SETS_DIR", "feature_sets"))


@logger.inject_lambda_context(correlation_id_path="upload_id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        inp = parse_workflow_input(event, _catalog(), features_bucket=os.environ.get("FEATURES_BUCKET"))
    except PartsError as e:
        logger.error("malformed workflow state", extra={"error": str(e)})
        return {"status": "error", "message": str(e), "parts": 0}
    plan = plan_step(inp, aws.client("s3"))
    out = {
        "status": "refused" if plan.refused else "planned",
        "parts": len(plan.parts),
        "format": plan.format,
        "message": (plan.refused or {}).get("message", ""),
    }
    logger.info("upload planned", extra={"upload_id": inp.upload_id, "plan": out})
    return out
