"""The control table's data access: every read and write of its items, through one injected client.

The control table (``CONTROL_TABLE``) holds the platform's operational records; their kinds and
encodings are in :mod:`driftline.control_items`, their key layouts in
:data:`driftline.contracts.CONTROL_PREFIXES`. The modules that decide what to write
(``features.ingest``, ``features.redrive``, ``retraining.control``, ``retraining.approvals``,
``monitoring.history``) call :class:`ControlStore` and never build an item or a DynamoDB client
themselves, so a test can hand them any client (moto, a stub) and a change of layout is made here.

The client is injected (``client=``; ``aws.client("dynamodb")`` is built on first use when omitted), so
constructing a store costs nothing. Standard library and botocore only: the ingest, trigger,
workflow and drift Lambdas import this.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from driftline.contracts import (
    DRIFT_RUNNING,
    approval_pk,
    content_key,
    drift_history_pk,
    drift_lease_key,
    ingest_pk,
    lock_key,
    retrain_pk,
)
from driftline.control_items import (
    ApprovalRequest,
    ContentRecord,
    DriftCheck,
    IngestRecord,
    RetrainDecision,
    RetrainLock,
    RetrainStep,
    approval_key,
    decode_retrain_item,
)
from driftline.dynamo_attrs import num, text

__all__ = ["ControlStore"]


class ControlStore:
    """Reads and writes of one control table. Cheap to construct; thread-safe as its client is."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        """
        Parameters
        ----------
        table_name:
            The control table (``CONTROL_TABLE``).
        client:
            A botocore DynamoDB client; ``aws.client("dynamodb")`` on first use when omitted.
        """
        self.table_name = table_name
        self._client = client

    @classmethod
    def from_env(cls, client: Any | None = None) -> ControlStore:
        """The store of the table named by ``CONTROL_TABLE`` (what the functions receive).

        Raises
        ------
        RuntimeError
            When ``CONTROL_TABLE`` is not set.
        """
        from driftline import aws

        return cls(aws.env("CONTROL_TABLE"), client)

    @property
    def client(self) -> Any:
        if self._client is None:
            from driftline import aws

            self._client = aws.client("dynamodb")
        return self._client

    def _query(
        self,
        pk: str,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        consistent: bool = False,
        sk_below: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Items of one partition in sort-key order, page after page, at most ``limit`` of them."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": text(pk)},
            "ScanIndexForward": not newest_first,
        }
        if sk_below is not None:
            kwargs["KeyConditionExpression"] += " AND sk < :below"
            kwargs["ExpressionAttributeValues"][":below"] = text(sk_below)
        if consistent:
            kwargs["ConsistentRead"] = True
        if limit is not None:
            kwargs["Limit"] = min(limit, 1000)
        seen = 0
        while True:
            resp = self.client.query(**kwargs)
            for item in resp.get("Items", []):
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            if not resp.get("LastEvaluatedKey") or (limit is not None and seen >= limit):
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # ---- INGEST# ---------------------------------------------------------------------------------
    def put_ingest(self, record: IngestRecord) -> None:
        """Write an upload's ingest record (a retry or redrive of the same upload overwrites it)."""
        self.client.put_item(TableName=self.table_name, Item=record.to_item())

    def ingest_records(
        self, feature_set: str, *, newest_first: bool = False, limit: int | None = None
    ) -> list[IngestRecord]:
        """Ingest records of ``feature_set`` in event-time order.

        Parameters
        ----------
        feature_set:
            The feature set.
        newest_first:
            Newest event time first (default: oldest first).
        limit:
            At most this many (default: all of them).

        Returns
        -------
        list of IngestRecord
            The records.
        """
        return [
            IngestRecord.from_item(i)
            for i in self._query(ingest_pk(feature_set), newest_first=newest_first, limit=limit)
        ]

    def ingest_record(self, feature_set: str, when: str, upload_id: str) -> IngestRecord | None:
        """One upload's ingest record (consistent read), or None.

        Parameters
        ----------
        feature_set:
            The feature set.
        when:
            The ISO time its sort key starts with (the upload's event time).
        upload_id:
            The upload.

        Returns
        -------
        IngestRecord or None
            The record, None when the upload has none.
        """
        key = {"pk": {"S": ingest_pk(feature_set)}, "sk": {"S": f"{when}#{upload_id}"}}
        got = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
        return IngestRecord.from_item(got) if got else None

    # ---- CONTENT# --------------------------------------------------------------------------------
    def content(self, feature_set: str, sha256: str) -> ContentRecord | None:
        """The upload that ingested these bytes into ``feature_set`` (consistent read), if any."""
        got = self.client.get_item(
            TableName=self.table_name, Key=content_key(feature_set, sha256), ConsistentRead=True
        ).get("Item")
        return ContentRecord.from_item(got) if got else None

    def put_content(self, record: ContentRecord) -> None:
        self.client.put_item(TableName=self.table_name, Item=record.to_item())

    # ---- LOCK# -----------------------------------------------------------------------------------
    def lock(self, model: str) -> RetrainLock:
        """The model's retraining lock as it is now (consistent read; an absent item is a free lock)."""
        item = self.client.get_item(TableName=self.table_name, Key=lock_key(model), ConsistentRead=True).get("Item", {})
        return RetrainLock.from_item(item)

    def try_acquire_lock(
        self, model: str, holder: str, holder_name: str, now: float, cooldown_seconds: int | None
    ) -> RetrainLock | None:
        """Take the model's lock if it is free (and, for automatic triggers, the cooldown has passed).

        Parameters
        ----------
        model:
            The model.
        holder, holder_name:
            ARN and name of the execution taking the lock.
        now:
            Epoch seconds.
        cooldown_seconds:
            None for manual triggers (no cooldown; the automatic-start clock is left alone).

        Returns
        -------
        RetrainLock or None
            The lock as it was before (to undo with :meth:`release_lock`), or None when the lock is
            held or the cooldown has not passed.
        """
        cond = "attribute_not_exists(holder)"
        sets = ["holder = :h", "holder_name = :n", "acquired_at = :now"]
        values: dict[str, Any] = {":h": text(holder), ":n": text(holder_name), ":now": num(float(now))}
        if cooldown_seconds is not None:
            sets.append("last_auto_start = :now")
            if cooldown_seconds > 0:
                cond += " AND (attribute_not_exists(last_auto_start) OR last_auto_start <= :cutoff)"
                values[":cutoff"] = num(float(now - cooldown_seconds))
        ddb = self.client
        try:
            resp = ddb.update_item(
                TableName=self.table_name,
                Key=lock_key(model),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=cond,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return None
        return RetrainLock.from_item(resp.get("Attributes", {}))

    def release_lock(
        self, model: str, holder: str, restore_last_auto_start: float | None = None, restore: bool = False
    ) -> bool:
        """Free the lock if ``holder`` still holds it.

        Parameters
        ----------
        model, holder:
            The model, and the execution ARN expected to hold its lock.
        restore_last_auto_start, restore:
            With ``restore``, put ``last_auto_start`` back to this value (removed when None): undoes an
            acquisition whose run never started.

        Returns
        -------
        bool
            False when someone else holds the lock (nothing changed).
        """
        expr = "REMOVE holder, holder_name, acquired_at"
        values: dict[str, Any] = {":h": text(holder)}
        if restore:
            if restore_last_auto_start is None:
                expr += ", last_auto_start"
            else:
                expr = "SET last_auto_start = :l " + expr
                values[":l"] = num(float(restore_last_auto_start))
        ddb = self.client
        try:
            ddb.update_item(
                TableName=self.table_name,
                Key=lock_key(model),
                UpdateExpression=expr,
                ConditionExpression="holder = :h",
                ExpressionAttributeValues=values,
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    # ---- RETRAIN# --------------------------------------------------------------------------------
    def put_decision(self, decision: RetrainDecision) -> None:
        """Append a decision to the model's log (never overwrites one)."""
        self.client.put_item(
            TableName=self.table_name, Item=decision.to_item(), ConditionExpression="attribute_not_exists(sk)"
        )

    def put_step(self, step: RetrainStep) -> None:
        self.client.put_item(TableName=self.table_name, Item=step.to_item())

    def retrain_history(self, model: str, limit: int = 50, kind: str | None = None) -> list[dict[str, Any]]:
        """Newest first: decisions and step records of a model (``kind`` filters to one of them).

        Parameters
        ----------
        model:
            The model.
        limit:
            At most this many records.
        kind:
            ``decision`` or ``step`` (default: both).

        Returns
        -------
        list of dict
            Records as :func:`~driftline.control_items.decode_retrain_item` decodes them.
        """
        out: list[dict[str, Any]] = []
        for item in self._query(retrain_pk(model), newest_first=True, consistent=True):
            rec = decode_retrain_item(item)
            if kind is None or rec.get("kind") == kind:
                out.append(rec)
                if len(out) >= limit:
                    break
        return out

    # ---- APPROVAL# -------------------------------------------------------------------------------
    def put_approval(self, request: ApprovalRequest) -> None:
        """Remember a waiting run's task token (a re-invoked step overwrites it with the newer token)."""
        self.client.put_item(TableName=self.table_name, Item=request.to_item())

    def approval(self, model: str, version: int) -> ApprovalRequest | None:
        """The run waiting on ``model`` v``version`` (consistent read), if any."""
        item = self.client.get_item(
            TableName=self.table_name, Key=approval_key(model, version), ConsistentRead=True
        ).get("Item")
        return ApprovalRequest.from_item(item) if item else None

    def delete_approval(self, model: str, version: int) -> None:
        self.client.delete_item(TableName=self.table_name, Key=approval_key(model, version))

    def approvals(self, model: str) -> list[ApprovalRequest]:
        """Every run of ``model`` waiting for a decision (consistent read), in sort-key order."""
        return [ApprovalRequest.from_item(i) for i in self._query(approval_pk(model), consistent=True)]

    # ---- DRIFT# ----------------------------------------------------------------------------------
    def put_drift_check(self, check: DriftCheck) -> None:
        """Write one checked window (a re-run of the same window overwrites it)."""
        self.client.put_item(TableName=self.table_name, Item=check.to_item())

    def put_drift_check_if_late_rows(self, check: DriftCheck, seen_late_rows: int) -> bool:
        """Write one checked window only while its stored ``late_rows`` is still ``seen_late_rows`` (or the
        item is absent): a look-back that added late rows after the writer read the item makes this
        return False, nothing written, so the writer re-reads and merges instead of losing them."""
        ddb = self.client
        cond = "attribute_not_exists(sk) OR late_rows = :seen"
        if not seen_late_rows:
            cond += " OR attribute_not_exists(late_rows)"
        try:
            ddb.put_item(
                TableName=self.table_name,
                Item=check.to_item(),
                ConditionExpression=cond,
                ExpressionAttributeValues={":seen": num(seen_late_rows)},
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def claim_drift_window(self, check: DriftCheck) -> bool:
        """Write a window handed to the scale-out workflow (``status: running``) unless a running check of
        it is already recorded (False: nothing written), so two dispatches never both take it."""
        ddb = self.client
        try:
            ddb.put_item(
                TableName=self.table_name,
                Item=check.to_item(),
                ConditionExpression="attribute_not_exists(sk) OR #s <> :running",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":running": text(DRIFT_RUNNING)},
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def drift_check(self, model: str, window_end: str) -> DriftCheck | None:
        """The checked window ending at ``window_end`` (consistent read), or None."""
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": text(drift_history_pk(model)), "sk": text(window_end)},
            ConsistentRead=True,
        ).get("Item")
        return DriftCheck.from_item(item) if item else None

    def fail_running_drift_check(
        self, model: str, window_end: str, execution_arn: str, status: str, message: str, checked_at: str
    ) -> bool:
        """Mark a running window ``status`` (failed) with ``message``, only while it is still running under
        ``execution_arn`` (False: its reduce step or another run got there first; nothing changed)."""
        ddb = self.client
        try:
            ddb.update_item(
                TableName=self.table_name,
                Key={"pk": text(drift_history_pk(model)), "sk": text(window_end)},
                UpdateExpression="SET #s = :status, message = :m, checked_at = :at",
                ConditionExpression="#s = :running AND execution_arn = :arn",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":status": text(status),
                    ":m": text(message),
                    ":at": text(checked_at),
                    ":running": text(DRIFT_RUNNING),
                    ":arn": text(execution_arn),
                },
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def try_acquire_drift_lease(self, model: str, holder: str, now: float, lease_seconds: float) -> str | None:
        """Take the model's drift-check lease when it is free or its holder's lease ran out.

        Parameters
        ----------
        model, holder:
            The model, and an id of the run taking the lease.
        now, lease_seconds:
            Epoch seconds, and how long the lease lasts (longer than a check can run).

        Returns
        -------
        str or None
            The late-capture scan mark stored with the lease ("" before the first scan), or None when
            another run holds the lease.
        """
        ddb = self.client
        try:
            resp = ddb.update_item(
                TableName=self.table_name,
                Key=drift_lease_key(model),
                UpdateExpression="SET holder = :h, lease_until = :until",
                ConditionExpression="attribute_not_exists(holder) OR lease_until < :now",
                ExpressionAttributeValues={
                    ":h": text(holder),
                    ":until": num(float(now + lease_seconds)),
                    ":now": num(float(now)),
                },
                ReturnValues="ALL_NEW",
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return None
        return str(resp.get("Attributes", {}).get("late_mark", {}).get("S", ""))

    def release_drift_lease(self, model: str, holder: str) -> bool:
        """Free the model's drift-check lease if ``holder`` still holds it (False: nothing changed)."""
        ddb = self.client
        try:
            ddb.update_item(
                TableName=self.table_name,
                Key=drift_lease_key(model),
                UpdateExpression="REMOVE holder, lease_until",
                ConditionExpression="holder = :h",
                ExpressionAttributeValues={":h": text(holder)},
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def record_late_rows(self, model: str, holder: str, old_mark: str, new_mark: str, counts: dict[str, int]) -> bool:
        """Add late rows to checked windows and move the scan mark, all or nothing.

        One transaction, conditional on ``holder`` holding the lease and the mark still being
        ``old_mark``: a retried or overlapping scan of the same objects cannot add them twice.

        Parameters
        ----------
        model, holder:
            The model, and the run holding its lease.
        old_mark, new_mark:
            The scan mark read with the lease ("" when none), and the one to store.
        counts:
            Late rows per window end (the DRIFT# sort key); at most 99 windows.

        Returns
        -------
        bool
            False when the condition failed (nothing was written).
        """
        mark_cond = "attribute_not_exists(late_mark)" if not old_mark else "late_mark = :old"
        values: dict[str, Any] = {":h": text(holder), ":new": text(new_mark)}
        if old_mark:
            values[":old"] = text(old_mark)
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": drift_lease_key(model),
                    "UpdateExpression": "SET late_mark = :new",
                    "ConditionExpression": f"holder = :h AND {mark_cond}",
                    "ExpressionAttributeValues": values,
                }
            }
        ]
        for window_end, n in counts.items():
            items.append(
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": {"pk": text(drift_history_pk(model)), "sk": text(window_end)},
                        "UpdateExpression": "ADD late_rows :n",
                        "ConditionExpression": "attribute_exists(sk)",
                        "ExpressionAttributeValues": {":n": num(n)},
                    }
                }
            )
        ddb = self.client
        try:
            ddb.transact_write_items(TransactItems=items)
        except ddb.exceptions.TransactionCanceledException:
            return False
        return True

    def set_drift_streak(self, model: str, window_end: str, streak: int, alarm: bool) -> None:
        """Rewrite one checked window's streak and alarm (after an earlier window was checked again)."""
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": text(drift_history_pk(model)), "sk": text(window_end)},
            UpdateExpression="SET streak = :s, alarm = :a",
            ConditionExpression="attribute_exists(sk)",
            ExpressionAttributeValues={":s": num(streak), ":a": {"BOOL": alarm}},
        )

    def drift_checks(self, model: str, limit: int = 24, *, before: str | None = None) -> list[DriftCheck]:
        """The model's most recent checks, newest first.

        Parameters
        ----------
        model:
            The model.
        limit:
            At most this many.
        before:
            Only windows that ended before this ISO time.

        Returns
        -------
        list of DriftCheck
            The checks.
        """
        items = self._query(drift_history_pk(model), newest_first=True, limit=limit, sk_below=before)
        return [DriftCheck.from_item(i) for i in items]
