"""Ingest one uploaded object: read, validate, curate, quarantine, update the online store, record.

An upload commits like a log-structured table: the ingest record in the control table is the
commit. The order of effects:

1. ``processing`` record: written before anything else, so an attempt that dies (kill -9, timeout,
   out of memory) leaves a record saying so, which ``driftline features redrive`` finds.
2. Stage: read, validate and encode everything in memory (curated Parquet per day, the online
   rows, the quarantine). Nothing is visible yet.
3. Quarantine (rejected rows or a copy of the whole file, plus ``report.json``).
4. ``committing`` record listing every curated key the commit writes (the intent), and the
   upload's pending marker ``curated/<feature set>/_pending/<upload id>``
   (:data:`~driftline.features.curated.PENDING_DIR`).
5. Commit: curated Parquet, then the online store (newest-wins conditional writes).
6. Only when every row was accepted, the original is deleted (a delete marker: the version itself
   is kept).
7. The pending marker is deleted: from here the upload's curated files count. Readers of the
   curated data (training sets) skip files of pending uploads, so half a commit is never read.
   Then the final record (``accepted``/``partial``/…).
8. The ``FeatureDataAccepted`` event. If it cannot be published the invocation fails and the
   retry redoes everything idempotently from the object version.

Recovery rolls forward: every key is derived from the upload id, and the upload id from the
object version, so a retry or a redrive rewrites exactly the same objects and items. An attempt
that fails on an AWS error records ``failed`` (retryable, with the error) before Lambda retries
it; one that fails on anything else records ``failed`` with a report and is not retried.

Every key written is derived from the upload id, which is derived from the object's identity
(bucket, key, version, ETag) and the event time, so re-processing the same event overwrites the
same objects and the same record instead of duplicating them. A crash anywhere leaves the
original in ``incoming/``.

An upload larger than the feature set's ``ingest.max_file_mb`` is not read here: with a parts
starter (``start_parts``, the ingest function's), it is recorded ``processing`` (mode ``parts``) and
handed to the ingest-parts workflow, whose commit step (:mod:`driftline.features.parts.commit`) runs
steps 4 to 8 through :meth:`Ingestor.commit` and :meth:`Ingestor.finish`, so both paths commit alike.

pyarrow, numpy, pydantic, pyyaml and boto3 only (the ingest Lambda's layer): no pandas.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import quote, unquote_plus

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from driftline import aws
from driftline.contracts import FEATURE_DATA_ACCEPTED, S3_OBJECT_CREATED, record_time
from driftline.control_items import ContentRecord, IngestRecord
from driftline.control_store import ControlStore
from driftline.event_bus import EventBus
from driftline.features.curated import (
    INCOMING_PREFIX,
    curated_day,
    curated_files,
    curated_root,
    parquet_bytes,
    pending_key,
    quarantine_prefix,
)
from driftline.features.online import OnlineRow, OnlineStore, entity_key
from driftline.features.readers import UnreadableFileError, check_size, read_bytes, suffix_format
from driftline.features.schema import FeatureSet, FeatureSetCatalog
from driftline.features.validation import ValidationResult, validate

log = logging.getLogger(__name__)

Status = Literal[
    "accepted", "partial", "rejected", "unreadable", "too_large", "skipped", "failed", "processing", "committing"
]
QUARANTINED: frozenset[str] = frozenset({"partial", "rejected", "unreadable", "too_large"})
COMMITTED: frozenset[str] = frozenset({"accepted", "partial"})
"""Statuses whose curated files count: the upload's commit finished."""
IN_FLIGHT: frozenset[str] = frozenset({"processing", "committing"})
"""Statuses of an attempt still running, or one that died (stalled): redrive finishes those."""
RECORDED_KEYS = 50
"""Curated keys spelled out in an ingest record (all of them are in its ``curated_days``)."""
REDRIVE_FIELD = "driftline_redrive"
"""Top-level event field set by ``driftline features redrive``: a fresh idempotency key, same upload id."""


@dataclass(frozen=True)
class S3Object:
    """The identity of an uploaded object as an S3 event names it (key already URL-decoded)."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    event_time: str | None = None
    redrive: str | None = None
    """Set by a redrive: part of the idempotency key (a stored result is not replayed), not of the upload id."""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def identity(self) -> dict[str, str]:
        """What idempotency is keyed on: the same object version is processed once."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id or "",
            "etag": (self.etag or "").strip('"'),
        }


def parse_s3_event(event: dict[str, Any]) -> list[S3Object]:
    """Objects named by an S3 notification (``Records``) or an EventBridge ``Object Created`` event.

    Notification keys are URL-encoded (spaces arrive as ``+``): they are decoded here, once.
    Records that are not object-created events are left out.
    """
    out: list[S3Object] = []
    redrive = event.get(REDRIVE_FIELD)
    redrive = redrive[:64] if isinstance(redrive, str) and redrive else None
    for rec in event.get("Records") or []:
        if not isinstance(rec, dict) or "s3" not in rec:
            continue
        if not str(rec.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
            continue
        s3 = rec["s3"]
        obj = s3.get("object", {})
        out.append(
            S3Object(
                bucket=s3["bucket"]["name"],
                key=unquote_plus(obj["key"]),
                version_id=obj.get("versionId"),
                etag=obj.get("eTag"),
                size=obj.get("size"),
                event_time=rec.get("eventTime"),
                redrive=redrive,
            )
        )
    if event.get("detail-type") == S3_OBJECT_CREATED and isinstance(event.get("detail"), dict):
        d = event["detail"]
        obj = d.get("object", {})
        out.append(
            S3Object(
                bucket=d["bucket"]["name"],
                key=obj["key"],
                version_id=obj.get("version-id"),
                etag=obj.get("etag"),
                size=obj.get("size"),
                event_time=event.get("time"),
                redrive=redrive,
            )
        )
    return out


def route(key: str) -> tuple[str | None, str | None]:
    """(feature set name, None) for ``incoming/<fs>/<file>``, else (None, reason to skip)."""
    parts = key.split("/")
    if parts[0] != INCOMING_PREFIX:
        return None, (
            f"key {key!r} is outside {INCOMING_PREFIX}/; uploads belong under {INCOMING_PREFIX}/<feature_set>/"
        )
    if len(parts) < 3 or not parts[1]:
        return None, (f"key {key!r} has no feature set folder; upload to {INCOMING_PREFIX}/<feature_set>/<file>")
    if key.endswith("/"):
        return None, f"key {key!r} is a folder marker, not a file"
    return parts[1], None


def upload_id(obj: S3Object) -> str:
    """``<event time, UTC, to the second>-<12 hex of the object identity>``: sortable and stable."""
    when = _parse_time(obj.event_time) or datetime.now(UTC)
    digest = hashlib.sha256(json.dumps(obj.identity(), sort_keys=True).encode()).hexdigest()[:12]
    return f"{when.strftime('%Y%m%dT%H%M%SZ')}-{digest}"


def _parse_time(text: str | None) -> datetime | None:
    """An S3 event time in UTC (the upload id and the record key are built from it), else None."""
    dt = record_time(text)
    return dt.astimezone(UTC) if dt else None


@dataclass(frozen=True)
class IngestTargets:
    """Where results go (names from the platform definition's environment variables)."""

    bucket: str
    online_table: str
    control_table: str
    event_bus: str | None = None
    alerts_topic_arn: str | None = None

    @classmethod
    def from_env(cls) -> IngestTargets:
        import os

        return cls(
            bucket=aws.env("FEATURES_BUCKET"),
            online_table=aws.env("ONLINE_TABLE"),
            control_table=aws.env("CONTROL_TABLE"),
            event_bus=os.environ.get("EVENT_BUS_NAME") or None,
            alerts_topic_arn=os.environ.get("ALERTS_TOPIC_ARN") or None,
        )


@dataclass
class IngestResult:
    """What happened to one object; stored as the ingest record and returned by the handler."""

    status: Status
    source: str
    reason: str = ""
    feature_set: str | None = None
    feature_set_version: int | None = None
    upload_id: str | None = None
    version_id: str | None = None
    etag: str | None = None
    size_bytes: int | None = None
    content_sha256: str | None = None
    format: str | None = None
    rows_total: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    has_labels: bool = False
    curated_keys: list[str] = field(default_factory=list)
    quarantine_prefix: str | None = None
    report_uri: str | None = None
    online_written: int = 0
    online_stale: int = 0
    original_deleted: bool = False
    event_time: str | None = None
    retryable: bool = False
    """A failure Lambda retries (an AWS error); once retries are exhausted, ``driftline features redrive``."""
    checks: list[dict[str, Any]] = field(default_factory=list)
    """Summary of failed checks: check, column, severity, failed_rows."""
    mode: Literal["single", "parts"] = "single"
    """``parts``: larger than ``ingest.max_file_mb``, validated in parts by the ingest-parts workflow."""
    parts: int = 0
    """How many parts a ``parts`` upload was split into (0 until planned)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def quarantined(self) -> bool:
        return self.status in QUARANTINED


def _ascii(value: str) -> str:
    """S3 user metadata travels as HTTP headers and must be ASCII: a key may hold any character."""
    return quote(value, safe="/:@=+,;~._-")


PartsStarter = Callable[[S3Object, FeatureSet, "IngestResult"], str]
"""Starts the ingest-parts workflow for an upload over the single-function limit; answers what was started."""


class Ingestor:
    """Processes S3 objects for the feature sets of a catalog. Clients are injectable for tests.

    ``start_parts``: when set, an upload larger than the feature set's ``ingest.max_file_mb`` is handed to
    it (the ingest-parts workflow) instead of being refused as ``too_large``.
    """

    def __init__(
        self,
        catalog: FeatureSetCatalog,
        targets: IngestTargets,
        client: Callable[[str], Any] = aws.client,
        *,
        start_parts: PartsStarter | None = None,
    ) -> None:
        self.catalog = catalog
        self.targets = targets
        self._client = client
        self.start_parts = start_parts
        self.online = OnlineStore(targets.online_table, client("dynamodb"))
        self.control = ControlStore(targets.control_table, client("dynamodb"))

    @property
    def s3(self) -> Any:
        return self._client("s3")

    # ------------------------------------------------------------------------------------------
    def process(self, obj: S3Object) -> IngestResult:
        """Ingest ``obj``. Client mistakes end in a result (skip or quarantine), never an exception.

        AWS errors that survive the client's retries propagate, so the invocation fails, its
        idempotency record is released and Lambda's bounded async retries take over.
        """
        fs_name, why = route(obj.key)
        if fs_name is None:
            return IngestResult("skipped", obj.uri, reason=why or "")
        if fs_name not in self.catalog:
            known = ", ".join(self.catalog.names()) or "none"
            why = f"unknown feature set {fs_name!r} (folder {INCOMING_PREFIX}/{fs_name}/); known: {known}"
            return IngestResult("skipped", obj.uri, feature_set=fs_name, reason=why)
        fs = self.catalog.get(fs_name)
        uid = upload_id(obj)
        result = IngestResult(
            "failed",
            obj.uri,
            feature_set=fs.name,
            feature_set_version=fs.version,
            upload_id=uid,
            version_id=obj.version_id,
            etag=(obj.etag or "").strip('"') or None,
            size_bytes=obj.size,
            event_time=obj.event_time,
            format=suffix_format(obj.key),
        )
        if self.start_parts is not None and obj.size is not None and obj.size > fs.ingest.max_file_mb * 1024 * 1024:
            return self._hand_to_parts(obj, fs, result, self.start_parts)
        # before any effect: an attempt that dies from here on leaves this record for redrive to find
        self.record(fs, replace(result, status="processing", reason="an ingest attempt started"))
        try:
            self._process(obj, fs, result)
        except UnreadableFileError as e:
            self.quarantine_unreadable(obj, fs, result, e)
        except Exception as e:  # anything else: record it, keep the original
            from botocore.exceptions import BotoCoreError, ClientError

            if isinstance(e, (ClientError, BotoCoreError)):  # AWS trouble: Lambda retries; say so first
                self.record_retryable(fs, result, e)
                raise
            log.exception("ingest failed for %s", obj.uri)
            result.status = "failed"
            result.reason = (
                f"internal error while ingesting ({type(e).__name__}: {e}); the upload is kept "
                f"in {INCOMING_PREFIX}/; after the problem is fixed: driftline features redrive "
                f"--upload {uid}"
            )
            self.failure_report(obj, fs, result)
        self.finish(fs, result)
        return result

    def finish(self, fs: FeatureSet, result: IngestResult) -> None:
        """The final record, then ``FeatureDataAccepted`` for committed rows, then the alert for a bad upload."""
        self.record(fs, result)
        if result.rows_accepted and result.status in ("accepted", "partial"):
            self._publish_accepted(fs, result)
        self._alert(result)

    def _hand_to_parts(self, obj: S3Object, fs: FeatureSet, result: IngestResult, start: PartsStarter) -> IngestResult:
        """Record ``processing`` (mode ``parts``) first, then start the workflow, whose commit writes the outcome."""
        result = replace(
            result,
            status="processing",
            mode="parts",
            reason=(
                f"the file is {(obj.size or 0) / 1024 / 1024:,.1f} MB, over the single-function limit of "
                f"{fs.ingest.max_file_mb} MB: validated in parts by the ingest-parts workflow"
            ),
        )
        self.record(fs, result)
        try:
            started = start(obj, fs, result)
        except Exception as e:
            from botocore.exceptions import BotoCoreError, ClientError

            if isinstance(e, (ClientError, BotoCoreError)):
                self.record_retryable(fs, result, e)
            raise
        result.reason = f"{result.reason} ({started})"
        return result

    # ------------------------------------------------------------------------------------------
    def _process(self, obj: S3Object, fs: FeatureSet, result: IngestResult) -> None:
        if obj.size is not None:
            check_size(obj.size, fs)  # too large: refuse before downloading a byte
        data = self._download(obj, result)
        if data is None:
            return
        if fs.ingest.on_duplicate_content == "skip":
            earlier = self.same_content(fs, result)
            if earlier is not None:
                result.status = "skipped"
                result.reason = (
                    f"the same bytes (SHA-256 {result.content_sha256}) were already ingested from "
                    f"{earlier.source or '?'} (upload {earlier.upload_id or '?'}); skipped so "
                    f"no row counts twice (ingest.on_duplicate_content: accept to ingest it again)"
                )
                return
        read = read_bytes(data, PurePosixPath(obj.key).name, fs)
        result.format = read.format
        others = [o for o in self.catalog if o.name != fs.name]
        validation = validate(read.table, fs, others=others)
        accepted = validation.accepted_table(decode=False)  # curated_files writes categories from their codes
        result.rows_total = validation.rows_total
        result.rows_accepted = accepted.num_rows
        result.rows_rejected = validation.rows_total - accepted.num_rows
        result.status = validation.status()
        result.checks = [
            {k: c[k] for k in ("check", "column", "severity", "failed_rows")} for c in validation.report()["checks"]
        ]
        result.has_labels = (
            any(accepted.column(lb.name).null_count < accepted.num_rows for lb in fs.labels)
            if accepted.num_rows
            else False
        )
        if result.status == "accepted":
            result.reason = f"all {result.rows_total} rows accepted"
        else:
            result.reason = (
                f"{result.rows_accepted} of {result.rows_total} rows accepted; "
                f"{result.rows_rejected} rejected, see {{report}}"
            )

        # stage: everything the commit writes, in memory; nothing visible yet
        files = curated_files(accepted, fs.name, fs.timestamp, result.upload_id or "")
        result.curated_keys = [k for k, _ in files]
        online_rows = list(latest_rows(accepted, fs))
        if result.rows_rejected:
            self._quarantine_rows(obj, fs, validation, result)
        self.commit(obj, fs, result, lambda: self._write_curated(files, result), online_rows)

    def commit(
        self,
        obj: S3Object,
        fs: FeatureSet,
        result: IngestResult,
        write_curated: Callable[[], None],
        online_rows: list[OnlineRow],
    ) -> None:
        """Steps 4 to 7 for a staged upload whose ``result.curated_keys`` ``write_curated`` writes.

        Shared by the single-function path and the parts commit
        (:mod:`driftline.features.parts.commit`), so both commit the same way. Ends before the
        final record: :meth:`finish` writes it.
        """
        # the intent: which keys this commit writes (a dead attempt's files are found from here)
        self.record(
            fs,
            replace(
                result,
                status="committing",
                reason=f"writing {len(result.curated_keys)} curated files and {len(online_rows)} online rows",
            ),
        )
        pending = pending_key(fs.name, result.upload_id or "")
        if result.curated_keys:
            self.put(pending, b"", "application/octet-stream", result)
        write_curated()
        if online_rows:
            stats = self.online.put_latest(fs.name, fs.version, online_rows)
            result.online_written, result.online_stale = stats.written, stats.stale
        if result.rows_accepted:
            self._remember_content(fs, result)
        if result.status == "accepted":
            result.original_deleted = self._delete_original(obj, result)
        if result.curated_keys:  # the commit point for readers of curated/
            self.s3.delete_object(Bucket=self.targets.bucket, Key=pending)

    def _download(self, obj: S3Object, result: IngestResult) -> bytes | None:
        kwargs: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.version_id:
            kwargs["VersionId"] = obj.version_id
        try:
            resp = self.s3.get_object(**kwargs)
        except self.s3.exceptions.NoSuchKey:
            result.status = "skipped"
            result.reason = "the object no longer exists (already processed and removed, or deleted)"
            return None
        except Exception as e:
            code = getattr(e, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchVersion", "InvalidArgument", "404"):
                result.status = "skipped"
                result.reason = f"the object version no longer exists ({code})"
                return None
            raise
        data: bytes = resp["Body"].read()
        result.version_id = resp.get("VersionId") or result.version_id
        result.etag = (resp.get("ETag") or "").strip('"') or result.etag
        result.size_bytes = len(data)
        result.content_sha256 = hashlib.sha256(data).hexdigest()
        return data

    def put(self, key: str, body: bytes, content_type: str, result: IngestResult) -> None:
        self.s3.put_object(
            Bucket=self.targets.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            Metadata=self.metadata(result),
        )

    def metadata(self, result: IngestResult) -> dict[str, str]:
        """The user metadata of every object an upload writes: where it came from (ASCII: HTTP headers)."""
        return {
            "upload-id": result.upload_id or "",
            "source": _ascii(result.source)[:1024],
            "source-version": result.version_id or "",
            "source-sha256": result.content_sha256 or "",
        }

    def _write_curated(self, files: list[tuple[str, bytes]], result: IngestResult) -> None:
        def put(kb: tuple[str, bytes]) -> None:
            self.put(kb[0], kb[1], "application/vnd.apache.parquet", result)

        if len(files) > 1:
            with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
                list(pool.map(put, files))
        elif files:
            put(files[0])

    def write_report(self, fs: FeatureSet, result: IngestResult, report: dict[str, Any]) -> None:
        prefix = quarantine_prefix(fs.name, result.upload_id or "")
        result.quarantine_prefix = f"s3://{self.targets.bucket}/{prefix}"
        result.report_uri = f"s3://{self.targets.bucket}/{prefix}report.json"
        if "{report}" in result.reason:
            result.reason = result.reason.replace("{report}", result.report_uri)
        body = json.dumps(report, indent=2, default=str).encode()
        self.put(prefix + "report.json", body, "application/json", result)

    def report_context(self, obj: S3Object, result: IngestResult) -> dict[str, Any]:
        return {
            "source": obj.uri,
            "source_version_id": result.version_id,
            "content_sha256": result.content_sha256,
            "size_bytes": result.size_bytes,
            "format": result.format,
            "upload_id": result.upload_id,
            "processed_at": datetime.now(UTC).isoformat(),
        }

    def _quarantine_rows(
        self, obj: S3Object, fs: FeatureSet, validation: ValidationResult, result: IngestResult
    ) -> None:
        prefix = quarantine_prefix(fs.name, result.upload_id or "")
        report = validation.report(**self.report_context(obj, result))
        if result.rows_accepted == 0:
            report["quarantined"] = self.copy_original(obj, prefix, result)
            report["original_kept_at"] = obj.uri
        else:
            self.put(
                prefix + "rejected.parquet",
                parquet_bytes(validation.rejected_table()),
                "application/vnd.apache.parquet",
                result,
            )
            report["quarantined"] = f"s3://{self.targets.bucket}/{prefix}rejected.parquet"
            report["original_kept_at"] = obj.uri
        report["curated"] = [f"s3://{self.targets.bucket}/{k}" for k in result.curated_keys]
        self.write_report(fs, result, report)

    def copy_original(self, obj: S3Object, prefix: str, result: IngestResult) -> str:
        name = PurePosixPath(obj.key).name
        ext = ".csv.gz" if name.lower().endswith(".csv.gz") else (PurePosixPath(name).suffix or ".bin")
        key = f"{prefix}original{ext}"
        source: dict[str, str] = {"Bucket": obj.bucket, "Key": obj.key}
        if result.version_id:
            source["VersionId"] = result.version_id
        aws.s3_copy(self.s3, source, self.targets.bucket, key)
        return f"s3://{self.targets.bucket}/{key}"

    def failure_report(self, obj: S3Object, fs: FeatureSet, result: IngestResult) -> None:
        """``report.json`` for an upload that failed for good: the record's reason, where it can be read."""
        report = {
            "feature_set": fs.name,
            "feature_set_version": fs.version,
            **self.report_context(obj, result),
            "status": result.status,
            "reason": result.reason,
            "original_kept_at": obj.uri,
            "curated_uncommitted": [f"s3://{self.targets.bucket}/{k}" for k in result.curated_keys],
        }
        try:
            self.write_report(fs, result, report)
        except Exception:  # the record (written next) still says why
            log.warning("could not write the failure report for %s", obj.uri, exc_info=True)

    def record_retryable(self, fs: FeatureSet, result: IngestResult, err: Exception) -> None:
        """A ``failed`` record for an AWS error Lambda will retry; a successful retry overwrites it."""
        code = getattr(err, "response", {}).get("Error", {}).get("Code") or type(err).__name__
        failed = replace(
            result,
            status="failed",
            retryable=True,
            reason=(
                f"AWS error {code}: {str(err)[:300]}; Lambda retries this upload; if every "
                f"retry fails its event goes to the dead-letter queue and `driftline features "
                f"redrive` processes it again"
            ),
        )
        try:
            self.record(fs, failed)
        except Exception:  # AWS is failing: the DLQ message and the processing record remain
            log.warning("could not record the failed attempt for %s", result.source, exc_info=True)

    def quarantine_unreadable(
        self, obj: S3Object, fs: FeatureSet, result: IngestResult, err: UnreadableFileError
    ) -> None:
        result.status = "too_large" if err.check == "file_too_large" else "unreadable"
        result.rows_accepted = 0
        result.checks = [{"check": err.check, "column": None, "severity": "error", "failed_rows": None}]
        prefix = quarantine_prefix(fs.name, result.upload_id or "")
        report: dict[str, Any] = {
            "feature_set": fs.name,
            "feature_set_version": fs.version,
            **self.report_context(obj, result),
            "status": result.status,
            "policy": fs.ingest.on_partial_failure,
            "rows_total": None,
            "rows_accepted": 0,
            "rows_rejected": None,
            "checks": [
                {
                    "check": err.check,
                    "column": None,
                    "severity": "error",
                    "failed_rows": None,
                    "message": err.message,
                    "hint": err.hint,
                }
            ],
            "original_kept_at": obj.uri,
        }
        if result.status == "too_large":
            report["quarantined"] = None  # not copied: it stays in incoming/ until it is split
        else:
            report["quarantined"] = self.copy_original(obj, prefix, result)
        result.reason = f"{err.message}; {err.hint}"
        self.write_report(fs, result, report)

    def _publish_accepted(self, fs: FeatureSet, result: IngestResult) -> None:
        if not self.targets.event_bus:
            return
        detail = {
            "feature_set": fs.name,
            "feature_set_version": fs.version,
            "upload_id": result.upload_id,
            "rows_accepted": result.rows_accepted,
            "has_labels": result.has_labels,
            "curated_uri": f"s3://{self.targets.bucket}/{curated_root(fs.name)}",
            "curated_keys": result.curated_keys[:200],
        }
        EventBus(self.targets.event_bus, self._client("events")).publish(FEATURE_DATA_ACCEPTED, detail)

    def _delete_original(self, obj: S3Object, result: IngestResult) -> bool:
        """Delete the upload (a delete marker when versioned) unless a newer upload replaced it."""
        try:
            head = self.s3.head_object(Bucket=obj.bucket, Key=obj.key)
        except Exception as e:
            if getattr(e, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        same = (
            (head.get("VersionId") == result.version_id)
            if result.version_id
            else ((head.get("ETag") or "").strip('"') == result.etag)
        )
        if not same:
            return False
        self.s3.delete_object(Bucket=obj.bucket, Key=obj.key)
        return True

    def same_content(self, fs: FeatureSet, result: IngestResult) -> ContentRecord | None:
        """The earlier upload with these exact bytes (another upload, not a retry of this one), if any."""
        got = self.control.content(fs.name, str(result.content_sha256))
        if got is None or got.upload_id == result.upload_id:
            return None
        return got

    def _remember_content(self, fs: FeatureSet, result: IngestResult) -> None:
        """The content hash of an ingested upload, so the same bytes under another key are recognised."""
        self.control.put_content(
            ContentRecord(fs.name, str(result.content_sha256), upload_id=str(result.upload_id), source=result.source)
        )

    def recorded(self, fs: FeatureSet, result: IngestResult) -> IngestRecord | None:
        """The upload's ingest record as stored now (what :meth:`record` last wrote), if any."""
        when = _parse_time(result.event_time)
        if when is None or result.upload_id is None:
            return None
        return self.control.ingest_record(fs.name, when.isoformat(), str(result.upload_id))

    def record(self, fs: FeatureSet, result: IngestResult) -> None:
        """The ingest record (lineage and ``driftline features uploads``); re-delivery overwrites it."""
        when = (_parse_time(result.event_time) or datetime.now(UTC)).isoformat()
        data = result.to_dict()
        # an upload spanning decades has thousands of files: the item (400 KB at most) holds their days
        # (10 bytes each; the keys follow from day and upload id) and only the first keys spelled out
        data["curated_days"] = [curated_day(k) for k in result.curated_keys]
        data["curated_keys"] = result.curated_keys[:RECORDED_KEYS]
        self.control.put_ingest(
            IngestRecord(fs.name, when, str(result.upload_id), data, curated_files=len(result.curated_keys))
        )

    def _alert(self, result: IngestResult) -> None:
        if not (result.quarantined or result.status == "failed") or not self.targets.alerts_topic_arn:
            return
        subject = f"Driftline ingest {result.status}: {result.feature_set}"[:100]
        message = "\n".join(
            [
                f"{result.source}: {result.status}",
                result.reason,
                f"report: {result.report_uri}" if result.report_uri else "",
            ]
        ).strip()
        try:
            self._client("sns").publish(TopicArn=self.targets.alerts_topic_arn, Subject=subject, Message=message)
        except Exception:  # an alert is best effort; the record and report are the source of truth
            log.warning("could not publish the ingest alert for %s", result.source, exc_info=True)


def latest_rows(accepted: pa.Table, fs: FeatureSet) -> Iterator[OnlineRow]:
    """Per entity, the row with the newest event timestamp (vectorized pick, then one dict per entity).

    Request-time features are left out: the caller supplies them with each prediction.
    """
    if accepted.num_rows == 0:
        return
    keys = [accepted.column(e) for e in fs.entity]
    key = keys[0] if len(keys) == 1 else pc.binary_join_element_wise(*keys, "|")
    ts = pc.cast(accepted.column(fs.timestamp), pa.int64())
    order = pc.sort_indices(pa.table({"k": key, "t": ts}), sort_keys=[("k", "ascending"), ("t", "descending")])
    sorted_keys = key.take(order)
    first = np.ones(len(sorted_keys), dtype=bool)
    if len(sorted_keys) > 1:
        first[1:] = np.asarray(
            pc.not_equal(sorted_keys.slice(1), sorted_keys.slice(0, len(sorted_keys) - 1)).to_numpy(
                zero_copy_only=False
            ),
            dtype=bool,
        )
    pick = order.filter(pa.array(first))
    names = [f.name for f in fs.features if not f.request_time]
    latest = accepted.select(names).take(pick)
    entity_values = [accepted.column(e).take(pick).to_pylist() for e in fs.entity]
    ts_values = ts.take(pick).to_pylist()
    timestamp_cols = {f.name for f in fs.features if f.type == "timestamp"}
    for i, values in enumerate(latest.to_pylist()):
        for c in timestamp_cols:
            if values[c] is not None:
                values[c] = values[c].isoformat()
        yield OnlineRow(entity_key([col[i] for col in entity_values]), int(ts_values[i]), values)


def recent_uploads(
    control_table: str, feature_sets: list[str], *, limit: int = 20, client: Callable[[str], Any] = aws.client
) -> list[dict[str, Any]]:
    """The newest ingest records of the given feature sets (merged, newest first).

    Each is the record's ingest result with its ``recorded_at``. ``client`` builds a client by service
    name (default :func:`driftline.aws.client`).
    """
    store = ControlStore(control_table, client("dynamodb"))
    found: list[tuple[str, dict[str, Any]]] = []
    for name in feature_sets:
        for rec in store.ingest_records(name, newest_first=True, limit=limit):
            found.append((rec.sk, {**rec.result, "recorded_at": rec.recorded_at}))
    found.sort(key=lambda p: p[0], reverse=True)
    return [r for _, r in found[:limit]]
