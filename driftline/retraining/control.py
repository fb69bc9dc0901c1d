"""Retraining records in the control table: the per-model run lock, the decision log and step records.

Items (layout in docs/architecture.md):
- ``pk=LOCK#<model>, sk=RETRAIN``: ``holder`` (ARN of the execution holding the model, absent when
  free), ``holder_name``, ``acquired_at`` (epoch s), ``last_auto_start`` (epoch s of the last run
  started by an automatic trigger; the cooldown is measured from it).
- ``pk=RETRAIN#<model>, sk=<iso ts>#<id>``: one item per start/skip/reject decision (``kind=decision``)
  and one per workflow step (``kind=step``, its input and output, for lineage).

Standard library and botocore only: the ``retrain-trigger`` Lambda imports this.
"""

from __future__ import annotations

from typing import Any

from driftline.control_items import STEP_RECORD_MAX_BYTES, DecisionKind, RetrainStep, now_iso
from driftline.control_items import RetrainDecision as Decision
from driftline.control_items import RetrainLock as LockState
from driftline.control_store import ControlStore

__all__ = [
    "INVALID_MODEL_KEY",
    "STEP_RECORD_MAX_BYTES",
    "ControlTable",
    "Decision",
    "DecisionKind",
    "LockState",
    "now_iso",
]

INVALID_MODEL_KEY = "_invalid"
"""Decision-log partition for events too malformed to name a model."""


class ControlTable:
    """The retraining view of the control table: lock, decision log, step records.

    The items and their reads and writes are :mod:`driftline.control_items` and
    :class:`~driftline.control_store.ControlStore`; this keeps the names the trigger, the workflow
    steps and the CLI call.
    """

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        """
        Parameters
        ----------
        table_name:
            The control table.
        client:
            A botocore DynamoDB client; ``aws.client("dynamodb")`` on first use when omitted.
        """
        self.table = table_name
        self.store = ControlStore(table_name, client)

    @classmethod
    def from_env(cls, client: Any | None = None) -> ControlTable:
        from driftline import aws

        return cls(aws.env("CONTROL_TABLE"), client)

    # ------------------------------------------------------------ lock
    def lock(self, model: str) -> LockState:
        return self.store.lock(model)

    def try_acquire(
        self, model: str, holder: str, holder_name: str, now: float, cooldown_seconds: int | None
    ) -> LockState | None:
        """Take the model's lock if it is free (and, for automatic triggers, the cooldown has passed).

        ``cooldown_seconds`` is None for manual triggers (no cooldown, and the automatic-start clock is
        left alone). Returns the lock as it was before (to undo), or None if the condition failed.
        """
        return self.store.try_acquire_lock(model, holder, holder_name, now, cooldown_seconds)

    def release(
        self, model: str, holder: str, restore_last_auto_start: float | None = None, restore: bool = False
    ) -> bool:
        """Free the lock if ``holder`` still holds it. With ``restore``, put ``last_auto_start`` back
        (undoing an acquisition whose run never started). Returns False if someone else holds it."""
        return self.store.release_lock(model, holder, restore_last_auto_start, restore)

    # ------------------------------------------------------------ decision log and step records
    def record_decision(self, d: Decision) -> None:
        self.store.put_decision(d)

    def record_step(
        self,
        model: str,
        execution_id: str,
        action: str,
        *,
        payload_in: Any,
        payload_out: Any,
        duration_ms: float,
        error: str | None = None,
    ) -> None:
        """The input and output of one workflow step (lineage), next to the decision that started the run."""
        self.store.put_step(
            RetrainStep.of(
                model,
                execution_id,
                action,
                payload_in=payload_in,
                payload_out=payload_out,
                duration_ms=duration_ms,
                error=error,
            )
        )

    def history(self, model: str, limit: int = 50, kind: str | None = None) -> list[dict[str, Any]]:
        """Newest first: decisions and step records of a model (``kind`` filters to one of them)."""
        return self.store.retrain_history(model, limit, kind)
