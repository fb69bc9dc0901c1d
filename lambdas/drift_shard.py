"""drift-shard: the summarize step of the scale-out drift check (one Distributed Map item = one shard file).

Thin: parse the item (``{"key", "bucket", "model", "run", "profile": <artifact ref>, "labelers": [...],
"estimation": null | {"estimator": <artifact ref>, "input_schema": {...}}}``), load the profile and the
estimator (each verified by SHA-256, cached per warm sandbox), call
:func:`driftline.monitoring.scale.summarize_shard_object` (which also writes the shard's estimation rows when
the model's performance is estimated). A malformed item answers ``status: error``
without raising (retrying cannot fix it; the reduce step then names the shard as missing); an unreadable
shard file raises, so the workflow retries it before the reduce step names it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from driftline import aws
from driftline.contracts import drift_shard_rows_key, drift_shard_summary_key
from driftline.drift import Profile
from driftline.estimation.artifact import FittedEstimator
from driftline.estimation.monitor import ESTIMATOR_ARTIFACT, load_estimator
from driftline.monitoring.scale import summarize_shard_object
from driftline.monitoring.scale.estimates import ShardEstimation
from driftline.registry.artifacts import ArtifactRef, read_verified

logger = Logger()


@cache
def _profile(uri: str, sha256: str, version_id: str | None, size: int) -> Profile:
    return Profile.from_json(read_verified(ArtifactRef(uri, sha256, version_id, size)), source=uri)


@cache
def _estimator(uri: str, sha256: str, version_id: str | None, size: int) -> tuple[FittedEstimator | None, str]:
    return load_estimator({ESTIMATOR_ARTIFACT: ArtifactRef(uri, sha256, version_id, size)})


def _estimation(event: dict[str, Any], rows_key: str) -> ShardEstimation | None:
    spec = event.get("estimation")
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("estimator"), dict):
        raise ValueError("estimation must be null or {estimator: <artifact ref>, input_schema: {...}}")
    schema = spec.get("input_schema") or {}
    if not isinstance(schema, dict):
        raise ValueError("estimation.input_schema must be the model's input schema object")
    ref = ArtifactRef.from_dict(spec["estimator"])
    estimator, why = _estimator(ref.uri, ref.sha256, ref.version_id, ref.size)
    return ShardEstimation(estimator, why, schema, rows_key)


def _parse(event: Any) -> tuple[str, str, str, str, ArtifactRef, list[str]]:
    if not isinstance(event, dict):
        raise ValueError(f"the event must be a JSON object, got {type(event).__name__}")
    fields = [event.get(k) for k in ("key", "bucket", "model", "run")]
    if not all(isinstance(v, str) and v for v in fields):
        raise ValueError(f"key, bucket, model and run must be non-empty strings, got {str(event)[:200]}")
    profile = event.get("profile")
    if not isinstance(profile, dict):
        raise ValueError("profile must be the version's profile artifact reference (uri, sha256, version_id, size)")
    labelers = event.get("labelers") or []
    if not isinstance(labelers, list) or not all(isinstance(p, str) for p in labelers):
        raise ValueError("labelers must be a list of principals")
    key, bucket, model, run = (str(v) for v in fields)
    return key, bucket, model, run, ArtifactRef.from_dict(profile), labelers


@logger.inject_lambda_context(correlation_id_path="run")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        key, bucket, model, run, ref, labelers = _parse(event)
        summary_key = drift_shard_summary_key(model, run, key)
        estimation = _estimation(event, drift_shard_rows_key(model, run, key))
    except (ValueError, KeyError, TypeError) as e:
        logger.error("malformed shard item", extra={"error": str(e)})
        return {"status": "error", "message": str(e), "rows": 0}
    profile = _profile(ref.uri, ref.sha256, ref.version_id, ref.size)
    out = summarize_shard_object(
        bucket, key, summary_key, profile, labelers=labelers, client=aws.client("s3"), estimation=estimation
    )
    logger.info("shard summarized", extra=out)
    return {"status": "ok", **out}
