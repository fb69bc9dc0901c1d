"""ingest: S3 ``incoming/<feature_set>/…`` object created → :class:`driftline.features.ingest.Ingestor`.

Thin: parse the event, skip (with a logged reason) what is not an upload of a known feature set,
hand an upload over the feature set's ``ingest.max_file_mb`` to the ingest-parts workflow (its
commit step records the outcome), process each object once per version (Powertools idempotency
keyed by bucket, key, version id, ETag and the marker ``driftline features redrive`` sets; held
as a renewed lease so a crashed attempt frees the upload for the retry:
:mod:`driftline.features.ingest_lease`), emit metrics, return the results. Client mistakes never
raise, so S3 never retries them; only AWS errors that outlived the client's retries fail the
invocation (bounded async retries, then the dead-letter queue, from where ``driftline features
redrive`` sends them back).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline import aws
from driftline.features.ingest import Ingestor, IngestTargets, S3Object, parse_s3_event, route
from driftline.features.ingest_lease import LeaseContext, can_renew, renewed_lease
from driftline.features.parts import WorkflowStarter
from driftline.features.schema import FeatureSetCatalog

logger = Logger()
tracer = Tracer()
metrics = Metrics()

IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600


def _mark_replay(response: Any, record: DataRecord) -> Any:
    if isinstance(response, dict):
        response = {**response, "idempotent_replay": True}
    return response


class _Runtime:
    """Per-container state, rebuilt when the AWS clients are (tests switch emulators)."""

    def __init__(self) -> None:
        self.client = aws.client("dynamodb")
        self.catalog = FeatureSetCatalog(os.environ.get("FEATURE_SETS_DIR", "feature_sets"))
        targets = IngestTargets.from_env()
        parts_arn = os.environ.get("INGEST_PARTS_STATE_MACHINE_ARN")
        # over ingest.max_file_mb: validated in parts by the workflow instead of refused (too_large)
        starter = WorkflowStarter(parts_arn, targets.bucket, aws.client("stepfunctions")) if parts_arn else None
        self.ingestor = Ingestor(self.catalog, targets, start_parts=starter)
        self.config = IdempotencyConfig(
            event_key_jmespath="[bucket, key, version_id, etag, redrive]",
            expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
            response_hook=_mark_replay,  # type: ignore[arg-type]
        )
        persistence = DynamoDBPersistenceLayer(table_name=aws.env("IDEMPOTENCY_TABLE"), boto3_client=self.client)
        self.persistence = persistence
        self.renewable = can_renew(persistence)

        @idempotent_function(data_keyword_argument="record", persistence_store=persistence, config=self.config)
        def process(record: dict[str, Any]) -> dict[str, Any]:
            return self.ingestor.process(S3Object(**record)).to_dict()

        self.process = process


_runtime: _Runtime | None = None


def runtime() -> _Runtime:
    global _runtime  # noqa: PLW0603 - one runtime per container
    if _runtime is None or _runtime.client is not aws.client("dynamodb"):
        _runtime = _Runtime()
    return _runtime


def _count(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@logger.inject_lambda_context(correlation_id_path='Records[0].responseElements."x-amz-request-id"')
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    # a lease, not the whole remaining time: a crashed attempt must not lock the upload past the retries
    rt.config.register_lambda_context(LeaseContext(context, renewable=rt.renewable))  # type: ignore[arg-type]
    objects = parse_s3_event(event)
    if not objects:
        logger.warning("skipped: the event names no created S3 object", extra={"event_keys": sorted(event)})
        _count("EventsIgnored", 1)
        return {"results": [], "skipped": "the event names no created S3 object"}
    results: list[dict[str, Any]] = []
    for obj in objects:
        fs_name, why = route(obj.key)
        if fs_name is None or fs_name not in rt.catalog:
            reason = why or (f"unknown feature set {fs_name!r}; known: {', '.join(rt.catalog.names())}")
            logger.warning("skipped upload", extra={"source": obj.uri, "reason": reason})
            _count("UploadsSkipped", 1)
            results.append({"status": "skipped", "source": obj.uri, "reason": reason, "feature_set": fs_name})
            continue
        record = asdict(obj)
        try:
            with renewed_lease(rt.persistence, rt.client, record, context) if rt.renewable else nullcontext():
                result = rt.process(record=record)
        except Exception:  # AWS trouble (the record says so): Lambda retries the event
            _count("UploadAttemptsFailed", 1)
            raise
        bad = result["status"] in ("partial", "rejected", "unreadable", "too_large", "failed")
        log = logger.warning if bad else logger.info
        log(
            "ingest result",
            extra={
                k: result.get(k)
                for k in (
                    "status",
                    "source",
                    "feature_set",
                    "upload_id",
                    "rows_total",
                    "rows_accepted",
                    "rows_rejected",
                    "report_uri",
                    "reason",
                    "idempotent_replay",
                )
            },
        )
        if result.get("idempotent_replay"):
            _count("UploadsReplayed", 1)
        else:
            _count("RowsAccepted", result["rows_accepted"])
            _count("RowsRejected", result["rows_rejected"] or 0)
            if result["status"] in ("partial", "rejected", "unreadable", "too_large"):
                _count("FilesQuarantined", 1)
            if result["status"] == "failed":
                _count("UploadsFailed", 1)
        results.append(result)
    return {"results": results}
