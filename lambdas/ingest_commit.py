"""ingest-commit: the last step of the ingest-parts workflow (every path of the workflow ends here).

Thin: parse the workflow state (``{"upload", "feature_set", "upload_id", "bucket", "map_error"?,
"failure"?}``); with ``failure`` (a step failed for good: the workflow's Catch) record the upload as
failed, else call :func:`driftline.features.parts.commit_parts`, which checks every part and commits.
Answers the ingest result's summary (the record holds the rest). A malformed state answers
``status: error`` without raising; AWS errors propagate and the workflow retries them.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline.features.ingest import Ingestor, IngestTargets
from driftline.features.parts import PartsError, commit_parts, parse_workflow_input, record_workflow_failure
from driftline.features.schema import FeatureSetCatalog

logger = Logger()
SUMMARY = ("status", "reason", "upload_id", "rows_total", "rows_accepted", "rows_rejected", "parts", "report_uri")


@cache
def _catalog() -> FeatureSetCatalog:
    return FeatureSetCatalog(os.environ.get("FEATURE_SETS_DIR", "feature_sets"))


def _error_text(value: Any) -> str | None:
    """A Catch's ``{"Error", "Cause"}`` (or any value) as one line; None when absent."""
    if value is None:
        return None
    if isinstance(value, dict):
        return f"{value.get('Error', 'error')}: {str(value.get('Cause', ''))[:400]}"
    return json.dumps(value, default=str)[:400]


@logger.inject_lambda_context(correlation_id_path="upload_id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        inp = parse_workflow_input(event, _catalog(), features_bucket=os.environ.get("FEATURES_BUCKET"))
    except PartsError as e:
        logger.error("malformed workflow state", extra={"error": str(e)})
        return {"status": "error", "message": str(e)}
    ingestor = Ingestor(_catalog(), IngestTargets.from_env())
    failure = _error_text(event.get("failure"))
    if failure is not None:
        result = record_workflow_failure(inp.upload, inp.feature_set, inp.upload_id, ingestor, failure)
    else:
        map_error = _error_text(event.get("map_error"))
        try:
            result = commit_parts(inp.upload, inp.feature_set, inp.upload_id, ingestor, map_error=map_error)
        except PartsError as e:  # a malformed plan or part result: read before anything is committed
            result = record_workflow_failure(inp.upload, inp.feature_set, inp.upload_id, ingestor, str(e))
    out = {k: getattr(result, k) for k in SUMMARY}
    (logger.info if result.status in ("accepted", "skipped") else logger.warning)("upload committed", extra=out)
    return out
