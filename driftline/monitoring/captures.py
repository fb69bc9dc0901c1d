"""Read one window of inference captures (and feedback labels) into columns for the drift engine.

Layout (docs/architecture.md): ``captures/model=<m>/YYYY/MM/DD/HH/<object>`` and
``feedback/model=<m>/YYYY/MM/DD/HH/<uuid>.jsonl`` in the captures bucket, JSON lines. Firehose files
records under the hour they *arrive*, so the hours from the window start to a little after its
end are listed and records are then filtered on their own ``ts``. Only the champion's records of
the monitored version count (shadow/challenger records describe other models). Delivery is
at-least-once, so records are de-duplicated on ``request_id``. Reading stops at ``max_records``
(the result says so) to bound the Lambda's memory. Standard library, numpy and boto3.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from driftline import aws
from driftline.contracts import CAPTURES_PREFIX, FEEDBACK_PREFIX, hour_prefixes, record_time
from driftline.monitoring.window import Window
from driftline.retraining.captures import DEFAULT_MAX_FEEDBACK_OBJECTS
from driftline.serving.labels import CAPTURE_CALLER, Labels

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORDS = 1_000_000
DELIVERY_LAG = timedelta(minutes=20)
"""How long after a record's ``ts`` Firehose may still deliver it (buffering is at most 15 minutes)."""


@dataclass
class WindowData:
    """Columns of the champion's captured requests in a window, in arrival order."""

    columns: dict[str, list[Any]]
    predictions: list[dict[str, Any]] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    callers: list[str | None] = field(default_factory=list)
    """Who made each prediction (capture field ``caller``): whose labels count for it."""
    n_lines: int = 0
    n_bad_lines: int = 0
    n_other: int = 0
    """Records of other versions or roles (shadow, challenger) in the window, not checked."""
    n_duplicates: int = 0
    truncated: bool = False
    present: set[str] = field(default_factory=set)
    """Feature names that appeared in at least one record (absent ones are reported as missing)."""

    @property
    def n_rows(self) -> int:
        return len(self.request_ids)

    def frame(
        self, numerical: Sequence[str], categorical: Sequence[str], prediction: str | None = None
    ) -> dict[str, np.ndarray]:
        """The engine's input: numeric columns as float arrays (object arrays when values are not
        numbers, which the engine reports as the wrong type), categorical columns as object arrays."""
        out: dict[str, np.ndarray] = {}
        for name in numerical:
            if name != prediction and (name in self.present or not self.n_rows):
                out[name] = _numeric(self.columns.get(name, []))
        for name in categorical:
            if name in self.present or not self.n_rows:
                out[name] = np.asarray(self.columns.get(name, []), dtype=object)
        if prediction is not None:
            values = [p.get("probability", p.get("value")) for p in self.predictions]
            out[prediction] = _numeric(values)
        return out


def _numeric(values: list[Any]) -> np.ndarray:
    if any(isinstance(v, str | bool) for v in values):
        return np.asarray(values, dtype=object)
    try:
        return np.asarray(values, dtype=np.float64)  # None -> NaN
    except (TypeError, ValueError):
        return np.asarray(values, dtype=object)


def _objects(bucket: str, prefixes: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    s3 = aws.client("s3")
    for prefix in prefixes:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"], s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()


def read_window(
    bucket: str,
    model: str,
    window: Window,
    version: int,
    features: Sequence[str],
    *,
    max_records: int = DEFAULT_MAX_RECORDS,
) -> WindowData:
    """The champion captures of ``version`` with ``window.start <= ts < window.end``."""
    data = WindowData(columns={f: [] for f in features})
    seen: set[str] = set()
    cols = data.columns
    prefixes = hour_prefixes(CAPTURES_PREFIX, model, window.start, window.end + DELIVERY_LAG)
    for key, body in _objects(bucket, prefixes):
        for line in body.splitlines():
            if not line.strip():
                continue
            data.n_lines += 1
            try:
                rec = json.loads(line)
            except ValueError:
                data.n_bad_lines += 1
                continue
            if not isinstance(rec, dict):
                data.n_bad_lines += 1
                continue
            ts = record_time(rec.get("ts"))
            if ts is None or not window.contains(ts):
                continue
            if rec.get("role", "champion") != "champion" or rec.get("version") != version:
                data.n_other += 1
                continue
            rid = str(rec.get("request_id"))
            if rid in seen:
                data.n_duplicates += 1
                continue
            seen.add(rid)
            feats = rec.get("features")
            feats = feats if isinstance(feats, dict) else {}
            data.present.update(feats)
            for f in features:
                cols[f].append(feats.get(f))
            pred = rec.get("prediction")
            data.predictions.append(pred if isinstance(pred, dict) else {})
            data.request_ids.append(rid)
            caller = rec.get(CAPTURE_CALLER)
            data.callers.append(caller if isinstance(caller, str) else None)
            if len(seen) >= max_records:
                data.truncated = True
                log.warning("stopped reading captures of %s at %d records (%s)", model, max_records, key)
                return data
    if data.n_bad_lines:
        log.warning("%d capture lines of %s were not JSON objects and were skipped", data.n_bad_lines, model)
    return data


def read_labels(bucket: str, model: str, start: datetime, end: datetime, *, labelers: Iterable[str] = (),
                max_objects: int = DEFAULT_MAX_FEEDBACK_OBJECTS) -> Labels:
    """Feedback stored from ``start`` through ``end``: a label counts only for its submitter's own
    predictions or when the submitter is one of ``labelers``; the first label that counts wins
    (:class:`~driftline.serving.labels.Labels`). At most ``max_objects`` objects are opened, as for the
    canary: a flood of tiny label objects must not stall the check."""
    labels = Labels(labelers)
    opened = 0
    for key, body in _objects(bucket, hour_prefixes(FEEDBACK_PREFIX, model, start, end)):
        if opened >= max_objects:
            log.warning("read_labels stopped after %d objects for %s (%s and later not read)", max_objects, model, key)
            break
        opened += 1
        for line in body.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                labels.add(rec)
    return labels
