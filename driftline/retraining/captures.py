"""The canary's evidence: the captures and feedback labels of a bake window.

Reading (listing, parsing, de-duplication on (request_id, role), budgets, label binding) is
:mod:`driftline.captures_store`, shared with monitoring; this module decides what a canary evaluation
reads: every capture of the champion and challenger versions stamped in ``[start, end]``, up to
``max_records`` (the canary then judges a large sample instead of everything), and the labels stored
in those hours. Test traffic (requests sent with the ``X-Driftline-Test`` header) is left out by the
reader, so a smoke test against a canary never promotes or rolls it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from driftline.captures_store import DEFAULT_MAX_FEEDBACK_OBJECTS, CapturesStore, ReadStats
from driftline.serving.labels import Labels

__all__ = ["DEFAULT_MAX_FEEDBACK_OBJECTS", "DEFAULT_MAX_RECORDS", "read_captures", "read_feedback"]

DEFAULT_MAX_RECORDS = 200_000


def read_captures(
    bucket: str,
    model: str,
    start: datetime,
    end: datetime,
    versions: set[int],
    *,
    max_records: int = DEFAULT_MAX_RECORDS,
    client: Any | None = None,
) -> list[dict[str, Any]]:
    """Capture records of ``versions`` with ``start <= ts <= end``, once each.

    Parameters
    ----------
    bucket, model:
        The captures bucket and the model under canary.
    start, end:
        The bake window (both ends included).
    versions:
        The champion and challenger versions (other versions' records are left out).
    max_records:
        Records returned at most.
    client:
        An S3 client (default ``aws.client("s3")``).

    Returns
    -------
    list[dict[str, Any]]
        The records in arrival order.
    """

    def of_versions(rec: Mapping[str, Any]) -> bool:
        return rec.get("version") in versions

    return list(
        CapturesStore(bucket, client).captures(
            model, start, end, stats=ReadStats(), max_records=max_records, keep=of_versions
        )
    )


def read_feedback(
    bucket: str,
    model: str,
    start: datetime,
    end: datetime,
    *,
    labelers: Iterable[str] = (),
    max_objects: int = DEFAULT_MAX_FEEDBACK_OBJECTS,
    client: Any | None = None,
) -> Labels:
    """Feedback stored between ``start`` and ``end``, bound to callers (:meth:`CapturesStore.labels`).

    Parameters
    ----------
    bucket, model:
        The captures bucket and the model under canary.
    start, end:
        The hours to read.
    labelers:
        Principals whose labels count for every prediction.
    max_objects:
        Label objects opened at most (a warning says when the rest were left out).
    client:
        An S3 client (default ``aws.client("s3")``).

    Returns
    -------
    Labels
        The labels by request id.
    """
    return CapturesStore(bucket, client).labels(model, start, end, labelers=labelers, max_objects=max_objects)
