"""The captures bucket: the one writer of feedback labels and the one reader of captures and labels.

Layout (:mod:`driftline.contracts`, docs/architecture.md): ``captures/model=<m>/YYYY/MM/DD/HH/<object>``
(JSON lines delivered by the model's Firehose stream, written by :mod:`driftline.serving.capture`; one
record per request and role in formats v3 (columns) and v2 (rows), one per row in v1:
:mod:`driftline.capture_format`) and
``feedback/model=<m>/YYYY/MM/DD/HH/<id>.jsonl`` (one labels request, JSON lines, written here).

Monitoring (drift and performance checks) and canary evaluation read through :class:`CapturesStore`,
so the rules that decide what a window contains are written once:

- listing: only the hour prefixes overlapping the window are listed, and records are then kept on
  their own ``ts`` (Firehose files a record under the hour it *arrives*);
- parsing: one JSON object per line; a line that is not a JSON object, or a v2/v3 record that is
  malformed (:func:`driftline.capture_format.expand`), is counted and skipped, so one corrupt object
  never hides the rest of a window;
- one view for every format: a v2 or v3 record is expanded into the per-row records v1 wrote (the
  row's id ``<request_id>:<i>``, ``features``, ``prediction`` and the request's fields), so monitoring
  and canary code read one shape, and a window may mix all three versions;
- test traffic: records marked as test (:func:`driftline.capture_format.is_test`, the
  ``X-Driftline-Test`` request header) are left out of every read by default and counted
  (``ReadStats.n_test``), so test requests never reach a drift window, a canary evaluation or a label join;
- de-duplication: delivery is at-least-once, so a v1 capture is kept once per (``request_id``,
  ``role``) (:func:`delivery_key`) and a v2/v3 record once per (``request_id``, ``role``, ``part``);
- budgets: a read stops at ``max_records`` captured rows, and at ``max_objects`` label objects
  (:data:`DEFAULT_MAX_FEEDBACK_OBJECTS`), so a busy model or a flood of tiny label objects cannot
  exhaust a Lambda's memory or time;
- label binding: a label counts only for its submitter's own predictions or when the submitter is a
  configured labeler, and the first label that counts wins (:class:`~driftline.serving.labels.Labels`,
  applied to a capture by :func:`label_for`).

Data access takes an injected S3 client (``client=``; ``aws.client("s3")`` is built on first use), so
the logic above is tested against any client. Standard library only beyond :mod:`driftline.aws`: the
serving function imports the writer.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from driftline.capture_format import expand, is_request_record, is_test, record_key
from driftline.contracts import CAPTURES_PREFIX, FEEDBACK_PREFIX, feedback_key, hour_prefixes, record_time
from driftline.serving.labels import CAPTURE_CALLER, FEEDBACK_BY, Labels

__all__ = [
    "DEFAULT_MAX_FEEDBACK_OBJECTS",
    "DELIVERY_LAG",
    "CapturesStore",
    "ReadStats",
    "delivery_key",
    "label_for",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_FEEDBACK_OBJECTS = 5_000
"""Feedback objects one read opens at most: a flood of tiny label objects must not stall a canary
evaluation until its step times out (which would roll the challenger back), nor a scheduled check."""
DELIVERY_LAG = timedelta(minutes=20)
"""How long after a record's ``ts`` Firehose may still deliver it (buffering is at most 15 minutes):
a read that must see every record of a window lists this much past its end (``list_until``)."""


@dataclass
class ReadStats:
    """What one read saw besides the records it returned (reports and notes quote these)."""

    n_objects: int = 0
    """Objects opened."""
    n_lines: int = 0
    """Non-blank lines read."""
    n_bad_lines: int = 0
    """Lines that were not JSON objects, or malformed v2/v3 records (skipped)."""
    n_other: int = 0
    """Captured rows in the time window that the caller's filter left out (other versions or roles)."""
    n_duplicates: int = 0
    """Captured rows delivered more than once (kept once)."""
    n_test: int = 0
    """Captured rows in the time window marked as test traffic (left out unless asked for)."""
    truncated: bool = False
    """The read stopped at its record or object budget; the window may hold more."""
    first_bad: str = ""
    """``<key> line <n>`` of the first bad line, to find it."""


def delivery_key(record: Mapping[str, Any]) -> tuple[str, str]:
    """The identity of one capture: (``request_id``, ``role``; a record without a role is the champion's).

    Parameters
    ----------
    record:
        A capture record.

    Returns
    -------
    tuple[str, str]
        Equal for the redeliveries of one prediction, different for the champion's and a shadow's
        answer to the same request.
    """
    return str(record.get("request_id")), str(record.get("role", "champion"))


def label_for(labels: Labels, capture: Mapping[str, Any]) -> tuple[bool, Any]:
    """The label that counts for one capture record: the first from its caller or a labeler.

    Parameters
    ----------
    labels:
        The labels read for the window (:meth:`CapturesStore.labels`).
    capture:
        A capture record (its ``request_id`` and ``caller`` are used).

    Returns
    -------
    tuple[bool, Any]
        ``(found, label)``; ``(False, None)`` when no label counts for it.
    """
    return labels.for_capture(capture.get("request_id"), capture.get(CAPTURE_CALLER))


def _in_window(ts: datetime, start: datetime, end: datetime, include_end: bool) -> bool:
    return start <= ts <= end if include_end else start <= ts < end


class CapturesStore:
    """Reads and writes of one captures bucket. Cheap to construct; thread-safe as its client is."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        """
        Parameters
        ----------
        bucket:
            The captures bucket (``CAPTURES_BUCKET``).
        client:
            An S3 client; ``aws.client("s3")`` on first use when omitted.
        """
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from driftline import aws

            self._client = aws.client("s3")
        return self._client

    # ---- the feedback writer ---------------------------------------------------------------------
    def put_feedback(
        self, model: str, labels: Sequence[Mapping[str, Any]], *, by: str | None = None, now: datetime | None = None
    ) -> str:
        """Write one labels request as one JSON-lines object under the hour it is stored.

        Each line carries the server's ``ts`` and the submitter ``by`` (omitted when unauthenticated),
        which is what the label binding (:class:`~driftline.serving.labels.Labels`) judges.

        Parameters
        ----------
        model:
            The model the labels are for.
        labels:
            Validated ``{"request_id", "label"}`` entries (``driftline.serving.feedback.check_labels``).
        by:
            The principal API Gateway authenticated, if any.
        now:
            The storage time (default: now, UTC).

        Returns
        -------
        str
            The object's ``s3://`` URI.
        """
        now = now or datetime.now(UTC)
        ts = now.isoformat(timespec="microseconds")
        key = feedback_key(model, now, uuid.uuid4().hex)
        who = {FEEDBACK_BY: by} if by else {}
        body = "".join(
            json.dumps({"request_id": r["request_id"], "label": r["label"], "ts": ts, **who}, separators=(",", ":"))
            + "\n"
            for r in labels
        )
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body.encode(), ContentType="application/x-ndjson")
        return f"s3://{self.bucket}/{key}"

    # ---- readers ---------------------------------------------------------------------------------
    def captures(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        stats: ReadStats,
        max_records: int,
        include_end: bool = True,
        list_until: datetime | None = None,
        keep: Callable[[Mapping[str, Any]], bool] | None = None,
        modified: tuple[datetime, datetime] | None = None,
        include_test: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """The captured rows of ``model`` stamped in the window, once each, in arrival order (v1 records
        as they are, v2 and v3 records expanded into the same per-row shape).

        Parameters
        ----------
        model:
            The model whose captures are read.
        start, end:
            The window on the records' own ``ts`` (``start <= ts <= end``, or ``< end`` when not
            ``include_end``).
        stats:
            Updated as records are read (lines, bad lines, filtered, duplicates, truncation).
        max_records:
            Rows returned at most; ``stats.truncated`` is set when the read stops there.
        include_end:
            Whether a record stamped exactly ``end`` belongs to the window.
        list_until:
            The last hour to list (default ``end``): a later hour when records arrive late.
        keep:
            Which rows of the window the caller wants (others are counted in ``stats.n_other``).
        modified:
            ``(after, until]``: open only the objects S3 dates in this range (whole seconds, as S3
            dates them): the records that arrived after a check, which late counting looks for.
        include_test:
            Also return rows marked as test traffic (their views carry ``test: true``); by default they
            are counted in ``stats.n_test`` and left out.

        Returns
        -------
        Iterator[dict[str, Any]]
            The rows, de-duplicated on :func:`delivery_key` (v1) or per record (v2, v3).
        """
        seen: set[tuple[str, str]] = set()
        seen_v2: set[tuple[str, str, int]] = set()
        n = 0
        prefixes = hour_prefixes(CAPTURES_PREFIX, model, start, list_until or end)
        for key, line_no, rec in self._records(prefixes, stats, modified=modified):
            ts = record_time(rec.get("ts"))
            v2 = is_request_record(rec)  # v2 or v3: one record per request
            rows = expand(rec) if v2 else [rec]
            if rows is None:
                self._bad_line(stats, key, line_no)
                continue
            if ts is None or not _in_window(ts, start, end, include_end):
                continue
            if v2:
                identity = record_key(rec)
                if identity in seen_v2:
                    stats.n_duplicates += len(rows)
                    continue
                seen_v2.add(identity)
            elif (identity_v1 := delivery_key(rec)) in seen:
                stats.n_duplicates += 1
                continue
            else:
                seen.add(identity_v1)
            if not include_test and is_test(rec):
                stats.n_test += len(rows)
                continue
            for row in rows:
                if keep is not None and not keep(row):
                    stats.n_other += 1
                    continue
                yield row
                n += 1
                if n >= max_records:
                    stats.truncated = True
                    log.warning("stopped reading captures of %s at %d rows", model, max_records)
                    return
        self._report_bad_lines("capture", model, stats)

    def labels(
        self,
        model: str,
        start: datetime,
        end: datetime,
        *,
        labelers: Iterable[str] = (),
        max_objects: int = DEFAULT_MAX_FEEDBACK_OBJECTS,
        stats: ReadStats | None = None,
    ) -> Labels:
        """The feedback stored from ``start`` through ``end``, bound to callers.

        Parameters
        ----------
        model:
            The model whose feedback is read.
        start, end:
            The hours to list (every label stored in them is taken).
        labelers:
            Principals whose labels count for every prediction (``ModelConfig.labelers``).
        max_objects:
            Objects opened at most; a warning names where the read stopped.
        stats:
            Updated as objects are read, when given.

        Returns
        -------
        Labels
            The labels by request id; :func:`label_for` gives the one that counts for a capture.
        """
        stats = stats if stats is not None else ReadStats()
        labels = Labels(labelers)
        prefixes = hour_prefixes(FEEDBACK_PREFIX, model, start, end)
        for _, _, rec in self._records(prefixes, stats, max_objects=max_objects):
            labels.add(rec)
        if stats.truncated:
            log.warning("feedback of %s: stopped after %d objects; later labels were not read", model, max_objects)
        self._report_bad_lines("feedback", model, stats)
        return labels

    # ---- listing and parsing ---------------------------------------------------------------------
    def _objects(
        self,
        prefixes: Sequence[str],
        stats: ReadStats,
        max_objects: int | None = None,
        modified: tuple[datetime, datetime] | None = None,
    ) -> Iterator[tuple[str, bytes]]:
        """(key, body) of every object under ``prefixes`` (dated in ``modified``, when given); stops
        before the object past ``max_objects``."""
        for prefix in prefixes:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if modified and not modified[0] < obj["LastModified"].replace(microsecond=0) <= modified[1]:
                        continue
                    if max_objects is not None and stats.n_objects >= max_objects:
                        stats.truncated = True
                        return
                    stats.n_objects += 1
                    yield obj["Key"], self.client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()

    def _records(
        self,
        prefixes: Sequence[str],
        stats: ReadStats,
        max_objects: int | None = None,
        modified: tuple[datetime, datetime] | None = None,
    ) -> Iterator[tuple[str, int, dict[str, Any]]]:
        """(key, line number, object) for the JSON-object lines of the objects under ``prefixes``;
        blank lines ignored, others counted."""
        for key, body in self._objects(prefixes, stats, max_objects, modified):
            for n, line in enumerate(body.splitlines(), 1):
                if not line.strip():
                    continue
                stats.n_lines += 1
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError):  # bytes that are not UTF-8 JSON, absurd nesting
                    rec = None
                if not isinstance(rec, dict):
                    self._bad_line(stats, key, n)
                    continue
                yield key, n, rec

    @staticmethod
    def _bad_line(stats: ReadStats, key: str, line_no: int) -> None:
        stats.n_bad_lines += 1
        stats.first_bad = stats.first_bad or f"{key} line {line_no}"

    def _report_bad_lines(self, what: str, model: str, stats: ReadStats) -> None:
        if stats.n_bad_lines:
            log.warning(
                "%d %s lines of %s were not JSON objects and were skipped (first: s3://%s/%s)",
                stats.n_bad_lines,
                what,
                model,
                self.bucket,
                stats.first_bad,
            )
