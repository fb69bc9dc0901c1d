"""Retraining records in the control table: the per-model run lock, the decision log and step records.

Items (layout in docs/architecture.md):
- ``pk=LOCK#<model>, sk=RETRAIN``: ``holder`` (ARN of the execution holding the model, absent when
  free), ``holder_name``, ``acquired_at`` (epoch s), ``last_auto_start`` (epoch s of the last run
  started by an automatic trigger; the cooldown is measured from it).
- ``pk=RETRAIN#<model>, sk=<iso ts>#<id>``: one item per start/skip/reject decision (``kind=decision``)
  and one per workflow step (``kind=step``, its input and output, for lineage).

Standard library and boto3 only: the ``retrain-trigger`` Lambda imports this.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from driftline import aws
from driftline.contracts import lock_key, retrain_pk

DecisionKind = Literal["started", "skipped", "rejected"]
INVALID_MODEL_KEY = "_invalid"
"""Decision-log partition for events too malformed to name a model."""
STEP_RECORD_MAX_BYTES = 300_000
"""Step payloads above this are truncated in the record (DynamoDB items stop at 400 KB)."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Decision:
    """Why a trigger did or did not start a run; one item in the decision log."""

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
        return {"model": self.model, "decision": self.decision, "reason": self.reason,
                "trigger": self.trigger, "trigger_id": self.trigger_id, "requested_by": self.requested_by,
                "execution_name": self.execution_name, "execution_arn": self.execution_arn,
                "details": self.details, "at": self.at}


@dataclass(frozen=True)
class LockState:
    holder: str | None
    holder_name: str | None
    acquired_at: float | None
    last_auto_start: float | None


def _num(item: dict[str, Any], name: str) -> float | None:
    v = item.get(name)
    return float(v["N"]) if v and "N" in v else None


def _str(item: dict[str, Any], name: str) -> str | None:
    v = item.get(name)
    return str(v["S"]) if v and "S" in v else None


class ControlTable:
    """Reads and writes of retraining items; holds only the table name."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    @classmethod
    def from_env(cls) -> ControlTable:
        return cls(aws.env("CONTROL_TABLE"))

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    # ------------------------------------------------------------ lock
    @staticmethod
    def _lock_key(model: str) -> dict[str, Any]:
        return lock_key(model)

    def lock(self, model: str) -> LockState:
        item = self._ddb.get_item(TableName=self.table, Key=self._lock_key(model),
                                  ConsistentRead=True).get("Item", {})
        return LockState(holder=_str(item, "holder"), holder_name=_str(item, "holder_name"),
                         acquired_at=_num(item, "acquired_at"), last_auto_start=_num(item, "last_auto_start"))

    def try_acquire(self, model: str, holder: str, holder_name: str, now: float,
                    cooldown_seconds: int | None) -> LockState | None:
        """Take the model's lock if it is free (and, for automatic triggers, the cooldown has passed).

        ``cooldown_seconds`` is None for manual triggers (no cooldown, and the automatic-start clock is
        left alone). Returns the lock as it was before (to undo), or None if the condition failed.
        """
        cond = "attribute_not_exists(holder)"
        sets = ["holder = :h", "holder_name = :n", "acquired_at = :now"]
        values: dict[str, Any] = {":h": {"S": holder}, ":n": {"S": holder_name}, ":now": {"N": repr(now)}}
        if cooldown_seconds is not None:
            sets.append("last_auto_start = :now")
            if cooldown_seconds > 0:
                cond += " AND (attribute_not_exists(last_auto_start) OR last_auto_start <= :cutoff)"
                values[":cutoff"] = {"N": repr(now - cooldown_seconds)}
        try:
            resp = self._ddb.update_item(TableName=self.table, Key=self._lock_key(model),
                                         UpdateExpression="SET " + ", ".join(sets), ConditionExpression=cond,
                                         ExpressionAttributeValues=values, ReturnValues="ALL_OLD")
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return None
        old = resp.get("Attributes", {})
        return LockState(holder=_str(old, "holder"), holder_name=_str(old, "holder_name"),
                         acquired_at=_num(old, "acquired_at"), last_auto_start=_num(old, "last_auto_start"))

    def release(self, model: str, holder: str, restore_last_auto_start: float | None = None,
                restore: bool = False) -> bool:
        """Free the lock if ``holder`` still holds it. With ``restore``, put ``last_auto_start`` back
        (undoing an acquisition whose run never started). Returns False if someone else holds it."""
        expr = "REMOVE holder, holder_name, acquired_at"
        values: dict[str, Any] = {":h": {"S": holder}}
        if restore:
            if restore_last_auto_start is None:
                expr += ", last_auto_start"
            else:
                expr = "SET last_auto_start = :l " + expr
                values[":l"] = {"N": repr(restore_last_auto_start)}
        try:
            self._ddb.update_item(TableName=self.table, Key=self._lock_key(model), UpdateExpression=expr,
                                  ConditionExpression="holder = :h", ExpressionAttributeValues=values)
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # ------------------------------------------------------------ decision log and step records
    def record_decision(self, d: Decision) -> None:
        item = {
            "pk": {"S": retrain_pk(d.model)}, "sk": {"S": f"{d.at}#{uuid.uuid4().hex[:8]}"},
            "kind": {"S": "decision"}, "decision": {"S": d.decision}, "reason": {"S": d.reason},
            "trigger": {"S": d.trigger}, "trigger_id": {"S": d.trigger_id},
            "requested_by": {"S": d.requested_by}, "execution_name": {"S": d.execution_name},
            "execution_arn": {"S": d.execution_arn}, "details": {"S": json.dumps(d.details, default=str)},
            "at": {"S": d.at},
        }
        self._ddb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk)")

    def record_step(self, model: str, execution_id: str, action: str, *, payload_in: Any, payload_out: Any,
                    duration_ms: float, error: str | None = None) -> None:
        """The input and output of one workflow step (lineage), next to the decision that started the run."""
        at = now_iso()
        body = json.dumps({"input": payload_in, "output": payload_out}, default=str)
        truncated = len(body) > STEP_RECORD_MAX_BYTES
        if truncated:
            body = json.dumps({"truncated": True, "bytes": len(body), "head": body[:STEP_RECORD_MAX_BYTES]})
        item: dict[str, Any] = {
            "pk": {"S": retrain_pk(model)}, "sk": {"S": f"{at}#step-{uuid.uuid4().hex[:8]}"},
            "kind": {"S": "step"}, "action": {"S": action}, "execution_arn": {"S": execution_id},
            "execution_name": {"S": execution_id.rsplit(":", 1)[-1]}, "at": {"S": at},
            "duration_ms": {"N": f"{duration_ms:.3f}"}, "payload": {"S": body},
        }
        if error:
            item["error"] = {"S": error}
        self._ddb.put_item(TableName=self.table, Item=item)

    def history(self, model: str, limit: int = 50, kind: str | None = None) -> list[dict[str, Any]]:
        """Newest first: decisions and step records of a model (``kind`` filters to one of them)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": retrain_pk(model)}}, "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        out: list[dict[str, Any]] = []
        while len(out) < limit:
            resp = self._ddb.query(**kwargs)
            for it in resp.get("Items", []):
                rec = {k: (json.loads(v["S"]) if k in ("details", "payload") else v.get("S", v.get("N")))
                       for k, v in it.items()}
                if kind is None or rec.get("kind") == kind:
                    out.append(rec)
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return out[:limit]
