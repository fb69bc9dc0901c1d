"""The ingest-parts workflow's input: built by the ingest function when it hands an upload over, parsed
by each step's function.

The execution is named from the upload id (:func:`~driftline.contracts.ingest_parts_execution_name`),
so a re-delivered S3 event cannot start the upload's validation twice; a redrive carries a fresh
marker and may start it again.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from driftline.contracts import INCOMING_PREFIX, ingest_part_key, ingest_parts_execution_name
from driftline.features.ingest import IngestResult, S3Object
from driftline.features.parts.commit import NOT_FOUND
from driftline.features.parts.plan import plan_upload
from driftline.features.parts.records import PartsError, Plan, SourceObject, plan_key
from driftline.features.schema import FeatureSet, FeatureSetCatalog

__all__ = ["WorkflowInput", "WorkflowStarter", "parse_workflow_input", "plan_step"]


@dataclass(frozen=True)
class WorkflowInput:
    """One execution's input: the pinned upload, its feature set and upload id, where the scratch lives."""

    upload: S3Object
    feature_set: FeatureSet
    upload_id: str
    bucket: str

    def document(self) -> dict[str, Any]:
        return {
            "upload": asdict(self.upload),
            "feature_set": self.feature_set.name,
            "upload_id": self.upload_id,
            "bucket": self.bucket,
            "items_prefix": ingest_part_key(self.feature_set.name, self.upload_id, "items"),
        }


_UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
"""An upload id is one key segment: it names scratch, curated and quarantine keys, so a ``/`` or a
leading dot would put them under another upload's prefix or another partition."""


def _check_upload(fields: dict[str, Any], features_bucket: str | None) -> None:
    """Types of the upload's fields (a wrong one would fail deep in botocore) and where it may be."""
    if not (isinstance(fields["bucket"], str) and isinstance(fields["key"], str)):
        raise PartsError(f"the upload needs string bucket and key; got {str(fields)[:200]}")
    for name in ("version_id", "etag", "event_time", "redrive"):
        if fields[name] is not None and not isinstance(fields[name], str):
            raise PartsError(f"the upload's {name} must be a string or null; got {fields[name]!r:.100}")
    size = fields["size"]
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise PartsError(f"the upload's size must be a non-negative integer; got {size!r:.100}")
    if features_bucket is not None and fields["bucket"] != features_bucket:
        raise PartsError(f"the upload's bucket {fields['bucket']!r:.100} is not the features bucket")
    if not fields["key"].startswith(f"{INCOMING_PREFIX}/"):
        raise PartsError(f"the upload's key {fields['key']!r:.200} is not under {INCOMING_PREFIX}/")


def parse_workflow_input(
    event: Any, catalog: FeatureSetCatalog, *, features_bucket: str | None = None
) -> WorkflowInput:
    """The input of a step, or :class:`PartsError` saying what is wrong with it.

    ``features_bucket`` (the function's own): the state's scratch bucket and the upload's bucket must be
    it, so a state naming another bucket cannot make a step read or write there.
    """
    if not isinstance(event, dict):
        raise PartsError(f"the workflow state must be a JSON object, got {type(event).__name__}")
    upload, fs_name, uid, bucket = (event.get(k) for k in ("upload", "feature_set", "upload_id", "bucket"))
    if not (isinstance(upload, dict) and all(isinstance(v, str) and v for v in (fs_name, uid, bucket))):
        raise PartsError(
            f"the workflow state needs an upload object and non-empty strings feature_set, upload_id and bucket; "
            f"got {str(event)[:200]}"
        )
    if not _UPLOAD_ID_RE.fullmatch(str(uid)):
        raise PartsError(f"the upload_id {uid!r:.200} must be 1-128 letters, digits and ._- (not starting with .)")
    if features_bucket is not None and bucket != features_bucket:
        raise PartsError(f"the workflow state's bucket {bucket!r:.100} is not the features bucket")
    fields: dict[str, Any] = {k: upload.get(k) for k in S3Object.__dataclass_fields__}
    _check_upload(fields, features_bucket)
    if str(fs_name) not in catalog:
        raise PartsError(f"unknown feature set {fs_name!r}; known: {', '.join(catalog.names()) or 'none'}")
    return WorkflowInput(S3Object(**fields), catalog.get(str(fs_name)), str(uid), str(bucket))


@dataclass(frozen=True)
class WorkflowStarter:
    """Starts the ingest-parts workflow for an upload (``Ingestor(start_parts=...)``); ``client`` is Step
    Functions'. Answers which execution runs it."""

    state_machine_arn: str
    bucket: str
    client: Any

    def __call__(self, obj: S3Object, fs: FeatureSet, result: IngestResult) -> str:
        doc = WorkflowInput(obj, fs, str(result.upload_id), self.bucket).document()
        name = ingest_parts_execution_name(str(result.upload_id), obj.redrive)
        try:
            self.client.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(doc))
        except self.client.exceptions.ExecutionAlreadyExists:
            return f"workflow execution {name} was already started"
        return f"workflow execution {name} started"


def plan_step(inp: WorkflowInput, s3: Any, *, part_bytes: int | None = None) -> Plan:
    """The plan step: pin the upload's version (its size from S3, not from the event), then plan it.

    An upload whose version is gone gets a refused plan (``not_found``), which the commit records as
    skipped, as the single-function path does.
    """
    obj = inp.upload
    kwargs: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        kwargs["VersionId"] = obj.version_id
    try:
        head = s3.head_object(**kwargs)
    except Exception as e:
        code = getattr(e, "response", {}).get("Error", {}).get("Code")
        if code not in ("404", "NoSuchKey", "NoSuchVersion", "NotFound", "400", "InvalidArgument"):
            raise
        plan = Plan(inp.feature_set.name, inp.upload_id, SourceObject(obj.bucket, obj.key, obj.version_id, 0), None)
        plan.refused = {
            "check": NOT_FOUND,
            "message": f"the object version no longer exists ({code})",
            "hint": "nothing to ingest: it was deleted or replaced before its validation started",
        }
        s3.put_object(Bucket=inp.bucket, Key=plan_key(plan.feature_set, plan.upload_id), Body=plan.to_json())
        return plan
    src = SourceObject(obj.bucket, obj.key, head.get("VersionId") or obj.version_id, int(head["ContentLength"]))
    return plan_upload(src, inp.feature_set, inp.upload_id, inp.bucket, s3, part_bytes=part_bytes)
