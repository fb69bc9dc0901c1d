"""Uploads that did not finish, and processing them again (``driftline features redrive``).

An upload is unfinished when its ingest record says ``failed`` (an error the retries did not cure,
or a bug since fixed) or is stuck ``processing``/``committing`` longer than the ingest function
can run (its attempt died: kill, timeout, out of memory), or when its S3 event sits in the data
dead-letter queue (Lambda gave up; the record may not even exist if the control table was down).

Redriving sends the ingest function the upload's original S3 event, with its event time (so the
upload id, and with it every key the upload writes, is the same: the commit rolls forward instead of
duplicating) plus :data:`~driftline.features.ingest.REDRIVE_FIELD` (a fresh idempotency key, so a
stored ``failed`` result is not replayed). The function runs with its own role and code, on AWS and
on the local platform alike; dead-letter messages are deleted only after their upload was processed.

An upload over ``max_file_mb`` goes through the parts path the same way: the ingest function hands
it to the ingest-parts workflow again, under an execution named with the redrive's marker. Its
record stays ``processing`` (mode ``parts``) for as long as that workflow runs, which may be far
longer than the ingest function's timeout, so such a record counts as stalled only when no execution
of the upload is running (:func:`running_parts_executions`): redriving it while one runs would start
a second validation of the same upload beside the first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

from driftline.contracts import INCOMING_PREFIX, ingest_parts_execution_name, record_time
from driftline.control_items import IngestRecord
from driftline.control_store import ControlStore
from driftline.features.ingest import IN_FLIGHT, REDRIVE_FIELD, parse_s3_event

__all__ = [
    "RedriveOutcome",
    "Unfinished",
    "dead_lettered",
    "merge",
    "parts_running",
    "redrive",
    "redrive_event",
    "running_parts_executions",
    "unfinished_uploads",
]

DLQ_BATCH = 10
"""SQS's maximum messages per receive."""


@dataclass
class Unfinished:
    """One upload to process again, from its ingest record and/or its dead-letter messages."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    event_time: str | None
    status: str
    """The record's status, or ``dead-lettered`` when only the DLQ knows the upload."""
    reason: str
    upload_id: str | None = None
    receipts: list[str] = field(default_factory=list)
    """Receipt handles of this upload's dead-letter messages (deleted once it is processed)."""

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def identity(self) -> tuple[str, str, str]:
        return self.bucket, self.key, self.version_id or self.etag or ""


def unfinished_uploads(
    control_table: str,
    feature_sets: Iterable[str],
    *,
    stalled_after: timedelta,
    client: Any | None = None,
    now: datetime | None = None,
    upload_ids: Iterable[str] = (),
    running_executions: Collection[str] = (),
) -> list[Unfinished]:
    """Uploads whose newest record is ``failed``, or ``processing``/``committing`` for longer than
    ``stalled_after`` (the ingest function's timeout: a live attempt is never redriven under it).

    A retryable ``failed`` record younger than ``stalled_after`` is left to Lambda's own retries.
    ``upload_ids`` restricts the result to those uploads, whatever their age or status. An in-flight
    upload of the parts path with an execution in ``running_executions`` (names of the ingest-parts
    workflow's running executions) is still being validated and is never returned, even when named.

    Parameters
    ----------
    control_table : str
        The control table holding ``INGEST#<feature set>`` records.
    feature_sets : iterable of str
        Feature sets to look at.
    stalled_after : timedelta
        How old an in-flight record must be to count as dead.
    client : botocore DynamoDB client, optional
        Default: ``aws.client("dynamodb")``.
    now : datetime, optional
        The current time (tests).
    upload_ids : iterable of str
        Only these uploads (any status but committed ones).
    running_executions : collection of str
        Names of the ingest-parts workflow's running executions (:func:`running_parts_executions`).

    Returns
    -------
    list of Unfinished
        Oldest first.
    """
    now = now or datetime.now(UTC)
    wanted = set(upload_ids)
    out: list[tuple[str, Unfinished]] = []
    store = ControlStore(control_table, client)
    for name in feature_sets:
        for rec in store.ingest_records(name):
            if rec.status in IN_FLIGHT and parts_running(rec.result, running_executions):
                continue  # its workflow is validating it now
            got = _from_record(rec, now=now, stalled_after=stalled_after, wanted=wanted)
            if got is not None:
                out.append((rec.sk, got))
    out.sort(key=lambda p: p[0])
    return [u for _, u in out]


def running_parts_executions(client: Any, state_machine_arn: str) -> frozenset[str]:
    """Names of the ingest-parts workflow's running executions (none when the workflow is not deployed).

    ``client`` is Step Functions'. One listing for the whole redrive, not one call per upload.
    """
    names: set[str] = set()
    try:
        pages = client.get_paginator("list_executions").paginate(
            stateMachineArn=state_machine_arn, statusFilter="RUNNING"
        )
        for page in pages:
            names.update(str(e["name"]) for e in page.get("executions", []))
    except client.exceptions.StateMachineDoesNotExist:
        return frozenset()
    return frozenset(names)


def parts_running(record: dict[str, Any], running_executions: Collection[str]) -> bool:
    """Whether ``record`` (an ingest record's result) is a parts-path upload with a running execution:
    ``ingest-<upload id>``, or ``ingest-<upload id>-<marker>`` when a redrive started it."""
    uid = str(record.get("upload_id") or "")
    if record.get("mode") != "parts" or not uid or not running_executions:
        return False
    base = ingest_parts_execution_name(uid)
    return any(name == base or name.startswith(f"{base}-") for name in running_executions)


def _from_record(rec: IngestRecord, *, now: datetime, stalled_after: timedelta, wanted: set[str]) -> Unfinished | None:
    record = rec.result
    status = rec.status
    uid = str(record.get("upload_id") or "")
    recorded = record_time(rec.recorded_at)
    age = now - recorded if recorded else stalled_after
    if wanted:
        if uid not in wanted or status in ("accepted", "partial", "skipped"):
            return None
    elif status in IN_FLIGHT or (status == "failed" and record.get("retryable")):
        if age < stalled_after:
            return None
    elif status != "failed":
        return None
    source = str(record.get("source") or "")
    if not source.startswith("s3://") or "/" not in source[5:]:
        return None
    bucket, key = source[5:].split("/", 1)
    return Unfinished(
        bucket=bucket,
        key=key,
        version_id=record.get("version_id"),
        etag=record.get("etag"),
        size=record.get("size_bytes"),
        event_time=record.get("event_time"),
        status=status,
        reason=str(record.get("reason") or ""),
        upload_id=uid or None,
    )


def dead_lettered(queue_url: str, bucket: str, *, client: Any, max_messages: int = 1000) -> list[Unfinished]:
    """Uploads of ``bucket`` whose S3 events are in the dead-letter queue at ``queue_url``.

    Messages that are not upload events (other functions share the queue) are made visible again
    at once and left alone. The uploads' messages stay invisible for the queue's visibility timeout
    while the redrive runs; :func:`redrive` deletes them once their upload is processed.
    """
    found: dict[tuple[str, str, str], Unfinished] = {}
    seen = 0
    while seen < max_messages:
        resp = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=DLQ_BATCH, MessageAttributeNames=["All"], WaitTimeSeconds=0
        )
        messages = resp.get("Messages", [])
        if not messages:
            break
        for m in messages:
            seen += 1
            try:
                event = json.loads(m["Body"])
                objects = parse_s3_event(event) if isinstance(event, dict) else []
            except (ValueError, KeyError, TypeError, AttributeError):
                objects = []
            objects = [o for o in objects if o.bucket == bucket and o.key.startswith(f"{INCOMING_PREFIX}/")]
            if not objects:
                client.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
                continue
            why = (
                m.get("MessageAttributes", {}).get("ErrorMessage", {}).get("StringValue")
                or "Lambda gave up after its retries"
            )
            for o in objects:
                u = Unfinished(
                    bucket=o.bucket,
                    key=o.key,
                    version_id=o.version_id,
                    etag=o.etag,
                    size=o.size,
                    event_time=o.event_time,
                    status="dead-lettered",
                    reason=str(why),
                )
                found.setdefault(u.identity, u).receipts.append(m["ReceiptHandle"])
    return list(found.values())


def merge(*groups: Iterable[Unfinished]) -> list[Unfinished]:
    """One entry per object version; a record's entry keeps the DLQ receipts of the same upload."""
    out: dict[tuple[str, str, str], Unfinished] = {}
    for group in groups:
        for u in group:
            if u.identity in out:
                out[u.identity].receipts.extend(u.receipts)
            else:
                out[u.identity] = u
    return list(out.values())


def redrive_event(upload: Unfinished, marker: str) -> dict[str, Any]:
    """The upload's S3 notification as S3 sends it (URL-encoded key), marked as a redrive."""
    obj: dict[str, Any] = {"key": quote_plus(upload.key)}
    if upload.version_id:
        obj["versionId"] = upload.version_id
    if upload.etag:
        obj["eTag"] = upload.etag
    if upload.size is not None:
        obj["size"] = upload.size
    return {
        REDRIVE_FIELD: marker,
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "eventTime": upload.event_time or datetime.now(UTC).isoformat(),
                "s3": {"bucket": {"name": upload.bucket}, "object": obj},
            }
        ],
    }


@dataclass(frozen=True)
class RedriveOutcome:
    upload: Unfinished
    status: str
    """The new ingest status, or ``error`` when the function failed again."""
    detail: str


def redrive(
    uploads: Iterable[Unfinished],
    invoke: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    delete_message: Callable[[str], None],
    release_message: Callable[[str], None] = lambda _: None,
    marker: str | None = None,
) -> list[RedriveOutcome]:
    """Send each upload to the ingest function; delete its DLQ messages when it was processed.

    ``invoke`` runs the function synchronously and returns its response; it raises (or returns
    ``{"errorMessage": ...}``) when the function failed, and the messages are then released
    (visible again at once, for the next redrive).
    """
    marker = marker or datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    out: list[RedriveOutcome] = []
    for u in uploads:
        try:
            resp = invoke(redrive_event(u, marker))
        except Exception as e:  # reported per upload; the rest still run
            resp = {"errorMessage": f"{type(e).__name__}: {e}"}
        results = resp.get("results") if isinstance(resp, dict) else None
        if not results:
            detail = resp.get("errorMessage") if isinstance(resp, dict) else None
            for receipt in u.receipts:
                release_message(receipt)
            out.append(RedriveOutcome(u, "error", str(detail or resp)[:500]))
            continue
        result = results[0]
        for receipt in u.receipts:
            delete_message(receipt)
        out.append(RedriveOutcome(u, str(result.get("status")), str(result.get("reason") or "")))
    return out
