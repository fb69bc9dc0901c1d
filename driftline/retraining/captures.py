"""Read inference captures and feedback labels for a time window (the canary's evidence).

Layout (docs/architecture.md): ``captures/model=<m>/YYYY/MM/DD/HH/<object>`` and
``feedback/model=<m>/YYYY/MM/DD/HH/<uuid>.jsonl``, JSON lines. Only the hour prefixes overlapping the
window are listed, and reading stops at ``max_records`` so a busy model cannot exhaust the Lambda's
memory (the canary then judges a large sample instead of everything). Delivery is at-least-once, so
records are de-duplicated on (request_id, role). Standard library and boto3 only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from driftline import aws
from driftline.contracts import CAPTURES_PREFIX, FEEDBACK_PREFIX, hour_prefixes, record_time
from driftline.serving.labels import Labels

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORDS = 200_000
DEFAULT_MAX_FEEDBACK_OBJECTS = 5_000
"""Feedback objects one read opens at most: a flood of tiny label objects must not stall a canary
evaluation until its step times out (which would roll the challenger back)."""


def _lines(bucket: str, prefix: str, budget: list[int] | None = None) -> Iterator[dict[str, Any]]:
    """JSON lines of the objects under ``prefix``; ``budget[0]`` (objects left to open) is decremented."""
    s3 = aws.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if budget is not None:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            for n, line in enumerate(body.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("s3://%s/%s line %d is not JSON; skipped", bucket, obj["Key"], n)
                    continue
                if isinstance(rec, dict):
                    yield rec


def read_captures(bucket: str, model: str, start: datetime, end: datetime, versions: set[int], *,
                  max_records: int = DEFAULT_MAX_RECORDS) -> list[dict[str, Any]]:
    """Capture records of ``versions`` with ``start <= ts <= end``, de-duplicated on (request_id, role)."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    for prefix in hour_prefixes(CAPTURES_PREFIX, model, start, end):
        for rec in _lines(bucket, prefix):
            ts = record_time(rec.get("ts"))
            if ts is None or not start <= ts <= end or rec.get("version") not in versions:
                continue
            key = (str(rec.get("request_id")), str(rec.get("role")))
            if key in seen:
                continue
            seen.add(key)
            out.append(rec)
            if len(out) >= max_records:
                log.warning("read_captures stopped at %d records for %s", max_records, model)
                return out
    return out


def read_feedback(bucket: str, model: str, start: datetime, end: datetime, *, labelers: Iterable[str] = (),
                  max_objects: int = DEFAULT_MAX_FEEDBACK_OBJECTS) -> Labels:
    """Feedback stored between ``start`` and ``end``, as :class:`~driftline.serving.labels.Labels`: a label
    counts only for its submitter's own predictions or when the submitter is one of ``labelers``, and the
    first label that counts wins.

    At most ``max_objects`` objects are read (a warning says when the rest were left out).
    """
    labels = Labels(labelers)
    budget = [max_objects]
    for prefix in hour_prefixes(FEEDBACK_PREFIX, model, start, end):
        for rec in _lines(bucket, prefix, budget):
            labels.add(rec)
        if budget[0] <= 0:
            log.warning("read_feedback stopped after %d objects for %s; later labels were not read", max_objects,
                        model)
            break
    return labels
