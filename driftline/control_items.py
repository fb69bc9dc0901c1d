"""The control table's item kinds, one dataclass each, with their DynamoDB encoding (no I/O).

One table holds the platform's operational records (layouts in :data:`driftline.contracts.CONTROL_PREFIXES`):

- ``INGEST#``: :class:`IngestRecord`, the commit record of one upload (``driftline features uploads``,
  redrive);
- ``CONTENT#``: :class:`ContentRecord`, the content hash of an ingested upload (duplicate detection);
- ``LOCK#``: :class:`RetrainLock`, the one-run-per-model lock and the automatic-trigger cooldown clock;
- ``RETRAIN#``: :class:`RetrainDecision` and :class:`RetrainStep`, the decision log and step lineage;
- ``APPROVAL#``: :class:`ApprovalRequest`, a run waiting for a person, with its task token;
- ``DRIFT#``: :class:`DriftCheck`, one scheduled drift check.

Each kind encodes itself (``to_item``) and decodes itself (``from_item``) here, so a reader never
decodes an item by hand and a field added to one kind is added once. Reads and writes go through
:class:`driftline.control_store.ControlStore`. Standard library only: the ingest, trigger and workflow
Lambdas import this.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from driftline.contracts import approval_pk, content_key, drift_history_pk, ingest_pk, retrain_pk
from driftline.dynamo_attrs import get_bool, get_float, get_int, get_json, get_str, num, plain, text

__all__ = [
    "STEP_RECORD_MAX_BYTES",
    "ApprovalRequest",
    "ContentRecord",
    "DecisionKind",
    "DriftCheck",
    "IngestRecord",
    "RetrainDecision",
    "RetrainLock",
    "RetrainStep",
    "approval_key",
    "decode_retrain_item",
    "now_iso",
]

Item = dict[str, Any]
DecisionKind = Literal["started", "skipped", "rejected"]
STEP_RECORD_MAX_BYTES = 300_000
"""Step payloads above this are truncated in the record (DynamoDB items stop at 400 KB)."""

_INGEST_TEXT = (
    "status",
    "source",
    "reason",
    "upload_id",
    "version_id",
    "etag",
    "content_sha256",
    "format",
    "quarantine_prefix",
    "report_uri",
    "event_time",
)
_INGEST_NUMBERS = (
    "rows_total",
    "rows_accepted",
    "rows_rejected",
    "size_bytes",
    "online_written",
    "online_stale",
    "feature_set_version",
)
"""Fields of an ingest result copied to attributes of their own (the whole result is in ``result``)."""


def now_iso() -> str:
    """The current UTC time as ISO 8601 with microseconds: sort keys made of it sort by time.

    Returns
    -------
    str
        The timestamp.
    """
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _nonce() -> str:
    return uuid.uuid4().hex[:8]


# ---- INGEST# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestRecord:
    """One upload's ingest record: ``pk=INGEST#<feature set>, sk=<event time>#<upload id>``.

    ``result`` is the ingest result as a document (``IngestResult.to_dict()`` with ``curated_days``);
    its scalar fields are also stored as attributes of their own so the console and queries can read
    them without decoding the document.
    """

    feature_set: str
    when: str
    """ISO time the sort key starts with (the upload's event time): records sort by it."""
    upload_id: str
    result: dict[str, Any]
    recorded_at: str | None = None
    curated_files: int = 0
    """How many curated files the upload writes (``result`` spells out only the first keys)."""

    @property
    def sk(self) -> str:
        return f"{self.when}#{self.upload_id}"

    @property
    def status(self) -> str:
        return str(self.result.get("status") or "")

    def to_item(self) -> Item:
        item: Item = {
            "pk": text(ingest_pk(self.feature_set)),
            "sk": text(self.sk),
            "recorded_at": text(self.recorded_at or datetime.now(UTC).isoformat()),
            "result": text(json.dumps(self.result, default=str)),
        }
        for name in _INGEST_TEXT:
            if self.result.get(name):
                item[name] = text(self.result[name])
        for name in _INGEST_NUMBERS:
            if self.result.get(name) is not None:
                item[name] = num(int(self.result[name]))
        item["has_labels"] = {"BOOL": bool(self.result.get("has_labels"))}
        item["original_deleted"] = {"BOOL": bool(self.result.get("original_deleted"))}
        item["curated_files"] = num(self.curated_files)
        return item

    @classmethod
    def from_item(cls, item: Item) -> IngestRecord:
        result = get_json(item, "result", {})
        if not result.get("status") and get_str(item, "status"):
            result["status"] = get_str(item, "status")
        when, _, uid = get_str(item, "sk").rpartition("#")
        return cls(
            feature_set=get_str(item, "pk").removeprefix(ingest_pk("")),
            when=when,
            upload_id=uid,
            result=result,
            recorded_at=get_str(item, "recorded_at") or None,
            curated_files=get_int(item, "curated_files") or 0,
        )


# ---- CONTENT# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContentRecord:
    """The upload that first ingested some bytes: ``pk=CONTENT#<feature set>, sk=<sha256>``."""

    feature_set: str
    sha256: str
    upload_id: str
    source: str
    recorded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_item(self) -> Item:
        return {
            **content_key(self.feature_set, self.sha256),
            "upload_id": text(self.upload_id),
            "source": text(self.source),
            "recorded_at": text(self.recorded_at),
        }

    @classmethod
    def from_item(cls, item: Item) -> ContentRecord:
        prefix = content_key("", "")["pk"]["S"]
        return cls(
            feature_set=get_str(item, "pk").removeprefix(prefix),
            sha256=get_str(item, "sk"),
            upload_id=get_str(item, "upload_id"),
            source=get_str(item, "source"),
            recorded_at=get_str(item, "recorded_at"),
        )


# ---- LOCK# -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetrainLock:
    """A model's retraining lock: ``pk=LOCK#<model>, sk=RETRAIN``.

    ``holder`` is the ARN of the execution holding the model (None when free); ``last_auto_start`` the
    epoch seconds of the last run an automatic trigger started (the cooldown is measured from it).
    Written with conditional updates only (:meth:`ControlStore.try_acquire_lock`), never put whole.
    """

    holder: str | None
    holder_name: str | None
    acquired_at: float | None
    last_auto_start: float | None

    @classmethod
    def from_item(cls, item: Item) -> RetrainLock:
        return cls(
            holder=get_str(item, "holder") or None,
            holder_name=get_str(item, "holder_name") or None,
            acquired_at=get_float(item, "acquired_at"),
            last_auto_start=get_float(item, "last_auto_start"),
        )


# ---- RETRAIN# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetrainDecision:
    """Why a trigger did or did not start a run; one item in the decision log (``kind=decision``)."""

    model: str
    decision: DecisionKind
    reason: str
    trigger: str
    trigger_id: str = ""
    requested_by: str = ""
    execution_name: str = ""
    execution_arn: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=now_iso)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "decision": self.decision,
            "reason": self.reason,
            "trigger": self.trigger,
            "trigger_id": self.trigger_id,
            "requested_by": self.requested_by,
            "execution_name": self.execution_name,
            "execution_arn": self.execution_arn,
            "details": self.details,
            "at": self.at,
        }

    def to_item(self, nonce: str | None = None) -> Item:
        """The item; ``nonce`` (random when omitted) keeps two decisions of one microsecond apart."""
        return {
            "pk": text(retrain_pk(self.model)),
            "sk": text(f"{self.at}#{nonce or _nonce()}"),
            "kind": text("decision"),
            "decision": text(self.decision),
            "reason": text(self.reason),
            "trigger": text(self.trigger),
            "trigger_id": text(self.trigger_id),
            "requested_by": text(self.requested_by),
            "execution_name": text(self.execution_name),
            "execution_arn": text(self.execution_arn),
            "details": text(json.dumps(self.details, default=str)),
            "at": text(self.at),
        }


@dataclass(frozen=True)
class RetrainStep:
    """The input and output of one workflow step (lineage), next to the decision that started the run."""

    model: str
    execution_arn: str
    action: str
    payload: str
    """``{"input": ..., "output": ...}`` as JSON, or a truncation note with its head (see :meth:`of`)."""
    duration_ms: float
    error: str | None = None
    at: str = field(default_factory=now_iso)

    @classmethod
    def of(
        cls,
        model: str,
        execution_arn: str,
        action: str,
        *,
        payload_in: Any,
        payload_out: Any,
        duration_ms: float,
        error: str | None = None,
    ) -> RetrainStep:
        """A step record whose payload fits an item (cut to :data:`STEP_RECORD_MAX_BYTES`)."""
        body = json.dumps({"input": payload_in, "output": payload_out}, default=str)
        if len(body) > STEP_RECORD_MAX_BYTES:
            body = json.dumps({"truncated": True, "bytes": len(body), "head": body[:STEP_RECORD_MAX_BYTES]})
        return cls(
            model=model, execution_arn=execution_arn, action=action, payload=body, duration_ms=duration_ms, error=error
        )

    def to_item(self, nonce: str | None = None) -> Item:
        item: Item = {
            "pk": text(retrain_pk(self.model)),
            "sk": text(f"{self.at}#step-{nonce or _nonce()}"),
            "kind": text("step"),
            "action": text(self.action),
            "execution_arn": text(self.execution_arn),
            "execution_name": text(self.execution_arn.rsplit(":", 1)[-1]),
            "at": text(self.at),
            "duration_ms": {"N": f"{self.duration_ms:.3f}"},
            "payload": text(self.payload),
        }
        if self.error:
            item["error"] = text(self.error)
        return item


def decode_retrain_item(item: Item) -> dict[str, Any]:
    """A ``RETRAIN#`` item (decision or step) as a flat dict; ``details`` and ``payload`` decoded.

    Numbers stay as their text, as the decision log has always shown them.

    Parameters
    ----------
    item:
        The DynamoDB item.

    Returns
    -------
    dict
        Attribute name → value.
    """
    return {k: (json.loads(v["S"]) if k in ("details", "payload") else plain(v)) for k, v in item.items()}


# ---- APPROVAL# -------------------------------------------------------------------------------------
def approval_key(model: str, version: int) -> dict[str, dict[str, str]]:
    """The key of a waiting approval: ``pk=APPROVAL#<model>, sk=<version>``.

    Parameters
    ----------
    model:
        The model.
    version:
        The candidate version the run waits on.

    Returns
    -------
    dict
        The DynamoDB key.
    """
    return {"pk": text(approval_pk(model)), "sk": text(version)}


@dataclass(frozen=True)
class ApprovalRequest:
    """A retraining run waiting for a person's decision on ``version``, and the task token that resumes it.

    Whoever reads the token can resume the run: IAM lets only the workflow and approve functions near
    these items (``APPROVAL_PREFIX``).
    """

    model: str
    version: int
    task_token: str
    execution_arn: str
    requested_at: str
    timeout_seconds: int
    summary: str
    expires_at: int = 0
    """Epoch seconds after which DynamoDB's TTL removes the item (0: never)."""

    def to_item(self) -> Item:
        item: Item = {
            **approval_key(self.model, self.version),
            "task_token": text(self.task_token),
            "execution_arn": text(self.execution_arn),
            "requested_at": text(self.requested_at),
            "timeout_seconds": num(int(self.timeout_seconds)),
            "summary": text(self.summary),
        }
        if self.expires_at:
            item["expires_at"] = num(int(self.expires_at))
        return item

    @classmethod
    def from_item(cls, item: Item) -> ApprovalRequest:
        return cls(
            model=get_str(item, "pk").removeprefix(approval_pk("")),
            version=int(get_str(item, "sk")),
            task_token=get_str(item, "task_token"),
            execution_arn=get_str(item, "execution_arn"),
            requested_at=get_str(item, "requested_at"),
            timeout_seconds=get_int(item, "timeout_seconds") or 0,
            summary=get_str(item, "summary"),
            expires_at=get_int(item, "expires_at") or 0,
        )


# ---- DRIFT# ----------------------------------------------------------------------------------------
@dataclass
class DriftCheck:
    """One checked window of a model: ``pk=DRIFT#<model>, sk=<window end ISO>``.

    Its verdict, the alarm streak (consecutive drifted windows) and where the report is. The previous
    item gives the next window's start and the streak it continues.
    """

    model: str
    window_start: str
    window_end: str
    version: int | None
    status: str
    share_drifted: float | None = None
    dataset_drifted: bool = False
    prediction_drifted: bool | None = None
    performance_degraded: bool = False
    performance_status: str = ""
    drifted: bool = False
    """This window counts as drifted (data, prediction or performance)."""
    streak: int = 0
    alarm: bool = False
    drifted_columns: list[str] = field(default_factory=list)
    n_current: int = 0
    report_uri: str = ""
    result_uri: str = ""
    checked_at: str = ""
    reasons: list[str] = field(default_factory=list)
    listed_until: str = ""
    """The check read every capture object S3 dated up to this second; an object dated later holding
    records of this window arrived late (empty: checked before late counting existed, never scanned)."""
    late_rows: int = 0
    """Rows of this window that arrived after its latest check (counted by later checks)."""
    rechecks: int = 0
    """How many times late rows made a later check check this window again."""
    execution_arn: str = ""
    """The scale-out workflow's execution checking (or that checked) this window ("" in-process)."""
    message: str = ""
    """Why a window has no verdict (``failed``: the execution's error), empty otherwise."""
    quality_failed: bool = False
    """The window failed a data-quality check (driftline.drift.quality); the next failing window sends
    no new alert while this holds. Not a drift reason: it neither extends nor raises the alarm."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "version": self.version,
            "status": self.status,
            "share_drifted": self.share_drifted,
            "dataset_drifted": self.dataset_drifted,
            "prediction_drifted": self.prediction_drifted,
            "performance_degraded": self.performance_degraded,
            "performance_status": self.performance_status,
            "drifted": self.drifted,
            "streak": self.streak,
            "alarm": self.alarm,
            "drifted_columns": self.drifted_columns,
            "n_current": self.n_current,
            "report_uri": self.report_uri,
            "result_uri": self.result_uri,
            "checked_at": self.checked_at,
            "reasons": self.reasons,
            "late_rows": self.late_rows,
            "rechecks": self.rechecks,
            "execution_arn": self.execution_arn,
            "message": self.message,
            "quality_failed": self.quality_failed,
        }

    def to_item(self) -> Item:
        item: Item = {
            "pk": text(drift_history_pk(self.model)),
            "sk": text(self.window_end),
            "kind": text("drift_check"),
            "window_start": text(self.window_start),
            "status": text(self.status),
            "dataset_drifted": {"BOOL": self.dataset_drifted},
            "performance_degraded": {"BOOL": self.performance_degraded},
            "performance_status": text(self.performance_status),
            "drifted": {"BOOL": self.drifted},
            "streak": num(self.streak),
            "alarm": {"BOOL": self.alarm},
            "n_current": num(self.n_current),
            "drifted_columns": text(json.dumps(self.drifted_columns)),
            "reasons": text(json.dumps(self.reasons)),
            "report_uri": text(self.report_uri),
            "result_uri": text(self.result_uri),
            "checked_at": text(self.checked_at),
            "late_rows": num(self.late_rows),
            "rechecks": num(self.rechecks),
        }
        if self.listed_until:
            item["listed_until"] = text(self.listed_until)
        if self.execution_arn:
            item["execution_arn"] = text(self.execution_arn)
        if self.message:
            item["message"] = text(self.message)
        if self.quality_failed:
            item["quality_failed"] = {"BOOL": True}
        if self.version is not None:
            item["version"] = num(self.version)
        if self.share_drifted is not None:
            item["share_drifted"] = num(float(self.share_drifted))
        if self.prediction_drifted is not None:
            item["prediction_drifted"] = {"BOOL": self.prediction_drifted}
        return item

    @classmethod
    def from_item(cls, item: Item) -> DriftCheck:
        return cls(
            model=get_str(item, "pk").removeprefix(drift_history_pk("")),
            window_start=get_str(item, "window_start"),
            window_end=get_str(item, "sk"),
            version=get_int(item, "version"),
            status=get_str(item, "status"),
            share_drifted=get_float(item, "share_drifted"),
            dataset_drifted=bool(get_bool(item, "dataset_drifted")),
            prediction_drifted=get_bool(item, "prediction_drifted"),
            performance_degraded=bool(get_bool(item, "performance_degraded")),
            performance_status=get_str(item, "performance_status"),
            drifted=bool(get_bool(item, "drifted")),
            streak=get_int(item, "streak") or 0,
            alarm=bool(get_bool(item, "alarm")),
            drifted_columns=get_json(item, "drifted_columns", []),
            n_current=get_int(item, "n_current") or 0,
            report_uri=get_str(item, "report_uri"),
            result_uri=get_str(item, "result_uri"),
            checked_at=get_str(item, "checked_at"),
            reasons=get_json(item, "reasons", []),
            listed_until=get_str(item, "listed_until"),
            late_rows=get_int(item, "late_rows") or 0,
            rechecks=get_int(item, "rechecks") or 0,
            execution_arn=get_str(item, "execution_arn"),
            message=get_str(item, "message"),
            quality_failed=bool(get_bool(item, "quality_failed")),
        )
