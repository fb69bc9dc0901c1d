"""One window of inference captures (and its feedback labels) as columns for the drift engine.

Reading (listing, parsing, de-duplication, budgets, label binding) is :mod:`driftline.captures_store`,
shared with canary evaluation; this module decides what a scheduled check reads. Firehose files
records under the hour they *arrive*, so the hours from the window start to :data:`DELIVERY_LAG`
after its end are listed. Only the champion's records of the monitored version count
(shadow/challenger records describe other models); the others are counted, as are test-traffic
records, which the reader leaves out. Reading stops at
``max_records`` (the result says so) to bound the Lambda's memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from driftline.captures_store import DEFAULT_MAX_FEEDBACK_OBJECTS, DELIVERY_LAG, CapturesStore, ReadStats
from driftline.monitoring.window import Window
from driftline.serving.labels import CAPTURE_CALLER, Labels

__all__ = [
    "DEFAULT_MAX_FEEDBACK_OBJECTS",
    "DEFAULT_MAX_RECORDS",
    "DELIVERY_LAG",
    "WindowData",
    "read_labels",
    "read_window",
]

DEFAULT_MAX_RECORDS = 1_000_000


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
    n_test: int = 0
    """Rows in the window marked as test traffic (``X-Driftline-Test``), never checked."""
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


def read_window(
    bucket: str,
    model: str,
    window: Window,
    version: int,
    features: Sequence[str],
    *,
    max_records: int = DEFAULT_MAX_RECORDS,
    client: Any | None = None,
    list_until: datetime | None = None,
) -> WindowData:
    """The champion captures of ``version`` with ``window.start <= ts < window.end``, as columns.

    Parameters
    ----------
    bucket, model:
        The captures bucket and the monitored model.
    window:
        The half-open window checked; hours up to :data:`DELIVERY_LAG` past its end are listed.
    version:
        The champion version monitored (other versions and roles are counted, not read).
    features:
        The feature columns to collect.
    max_records:
        Captures read at most (``WindowData.truncated`` says when the window holds more).
    client:
        An S3 client (default ``aws.client("s3")``).
    list_until:
        The last hour to list when later than :data:`DELIVERY_LAG` past the end (a re-check after
        late captures arrived).

    Returns
    -------
    WindowData
        The columns, predictions, request ids and callers, with what the read skipped.
    """
    data = WindowData(columns={f: [] for f in features})
    cols = data.columns
    stats = ReadStats()

    def champion_of_version(rec: Mapping[str, Any]) -> bool:
        return rec.get("role", "champion") == "champion" and rec.get("version") == version

    for rec in CapturesStore(bucket, client).captures(
        model,
        window.start,
        window.end,
        stats=stats,
        max_records=max_records,
        include_end=False,
        list_until=max(window.end + DELIVERY_LAG, list_until or window.end),
        keep=champion_of_version,
    ):
        feats = rec.get("features")
        feats = feats if isinstance(feats, dict) else {}
        data.present.update(feats)
        for f in features:
            cols[f].append(feats.get(f))
        pred = rec.get("prediction")
        data.predictions.append(pred if isinstance(pred, dict) else {})
        data.request_ids.append(str(rec.get("request_id")))
        caller = rec.get(CAPTURE_CALLER)
        data.callers.append(caller if isinstance(caller, str) else None)
    data.n_lines, data.n_bad_lines, data.n_other = stats.n_lines, stats.n_bad_lines, stats.n_other
    data.n_duplicates, data.n_test, data.truncated = stats.n_duplicates, stats.n_test, stats.truncated
    return data


def read_labels(
    bucket: str,
    model: str,
    start: datetime,
    end: datetime,
    *,
    labelers: Iterable[str] = (),
    max_objects: int = DEFAULT_MAX_FEEDBACK_OBJECTS,
    client: Any | None = None,
) -> Labels:
    """Feedback stored from ``start`` through ``end`` (:meth:`CapturesStore.labels`: bound to callers,
    first label that counts wins, at most ``max_objects`` objects opened, as for the canary).

    Parameters
    ----------
    bucket, model:
        The captures bucket and the monitored model.
    start, end:
        The hours to read (the check looks a little past its window for late labels).
    labelers:
        Principals whose labels count for every prediction.
    max_objects:
        Label objects opened at most.
    client:
        An S3 client (default ``aws.client("s3")``).

    Returns
    -------
    Labels
        The labels by request id.
    """
    return CapturesStore(bucket, client).labels(model, start, end, labelers=labelers, max_objects=max_objects)
