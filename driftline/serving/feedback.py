"""Ground-truth labels by request id, stored next to the captures for concept-drift monitoring.

Body: ``{"labels": [{"request_id": "<id from a prediction>", "label": 1}, ...]}``. Labels are checked
against the champion's label definition (``input_schema["label"]``: a class value for classifiers,
a finite number for regression) and written as one JSON-lines object per request to
``feedback/model=<model>/YYYY/MM/DD/HH/<uuid>.jsonl`` in the captures bucket (``contracts.feedback_key``,
written by :class:`driftline.captures_store.CapturesStore`, which also reads it back).
Each label line carries the submitter API Gateway authenticated (``by``), so readers count it only for
that caller's own predictions or when the submitter is a configured labeler (:mod:`driftline.serving.labels`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from driftline.captures_store import CapturesStore
from driftline.serving.errors import ServingError, unprocessable
from driftline.serving.validation import describe

MAX_FEEDBACK_LABELS = 10_000
MAX_REQUEST_ID_CHARS = 256


def _label_problem(label: Any, classes: list[Any], regression: bool) -> tuple[str, str] | None:
    """(expected, got) when ``label`` is not a valid label of the champion's definition, else None."""
    if classes:
        if label is True or label is False or label not in classes or type(label) is float:
            return f"one of {', '.join(json.dumps(c) for c in classes)}", describe(label)
    elif regression:
        if type(label) not in (int, float) or not math.isfinite(label):
            return "a finite number", describe(label)
    elif not (type(label) in (int, str) or (type(label) is float and math.isfinite(label))):
        return "a class value or a number", describe(label)
    return None


def _labels_list(body: Any) -> list[Any]:
    """The body's ``labels`` array, or the 422/413 for a body of the wrong shape."""
    if not isinstance(body, dict) or "labels" not in body:
        got = describe(body) if not isinstance(body, dict) else "an object without 'labels'"
        raise unprocessable(
            f'the body must be a JSON object {{"labels": [{{"request_id": ..., "label": ...}}]}}, got {got}',
            code="invalid_body",
        )
    extra = [k for k in body if k != "labels"]
    if extra:
        raise unprocessable(
            f"unknown top-level field(s) {', '.join(map(repr, extra))}; the body takes only 'labels'",
            code="invalid_body",
        )
    items = body["labels"]
    if not isinstance(items, list) or not items:
        raise unprocessable(f"'labels' must be a non-empty array, got {describe(items)}", code="invalid_body")
    if len(items) > MAX_FEEDBACK_LABELS:
        raise ServingError(
            413,
            "too_many_labels",
            f"{len(items):,} labels in one request; at most {MAX_FEEDBACK_LABELS:,} are accepted (split the request)",
        )
    return items


def check_labels(body: Any, label_spec: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The validated ``labels`` list, or a 422/413 naming each bad entry."""
    items = _labels_list(body)
    classes = list(label_spec.get("classes") or ()) if label_spec else []
    regression = bool(label_spec) and label_spec.get("task") == "regression"  # type: ignore[union-attr]
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):

        def bad(field: str | None, expected: str, got: str, i: int = i) -> None:
            where = f"labels[{i}]" + (f".{field}" if field else "")
            problems.append(
                {
                    "row": i,
                    "field": field,
                    "expected": expected,
                    "got": got,
                    "message": f"{where}: expected {expected}, got {got}",
                }
            )

        if not isinstance(item, dict):
            bad(None, "an object with 'request_id' and 'label'", describe(item))
            continue
        for k in item:
            if k not in ("request_id", "label"):
                bad(k, "no such field (only 'request_id' and 'label')", describe(item[k]))
        rid = item.get("request_id")
        if not isinstance(rid, str) or not rid or len(rid) > MAX_REQUEST_ID_CHARS:
            bad(
                "request_id",
                f"the request id of a prediction (1-{MAX_REQUEST_ID_CHARS} characters)",
                describe(rid) if "request_id" in item else "nothing (the field is missing)",
            )
        elif rid in seen:
            bad("request_id", "each request id once per body", f"a repeat of labels[{seen[rid]}]")
        else:
            seen[rid] = i
        if "label" not in item:
            bad("label", "the observed label", "nothing (the field is missing)")
            continue
        label = item["label"]
        problem = _label_problem(label, classes, regression)
        if problem is not None:
            bad("label", *problem)
        out.append({"request_id": rid, "label": label})
    if problems:
        raise unprocessable(f"{len(problems)} problem(s) in 'labels'; see 'details'", problems, code="invalid_labels")
    return out


def store_feedback(
    bucket: str,
    model: str,
    labels: list[dict[str, Any]],
    now: datetime | None = None,
    *,
    by: str | None = None,
    client: Any | None = None,
) -> str:
    """Write the labels as one JSON-lines object, each naming its submitter ``by`` (the caller API Gateway
    authenticated; omitted when unauthenticated): :meth:`CapturesStore.put_feedback`, the one writer of
    the layout the readers bind labels with.

    Parameters
    ----------
    bucket, model:
        The captures bucket and the model labeled.
    labels:
        The entries :func:`check_labels` returned.
    now:
        The storage time (default: now, UTC).
    by:
        The authenticated submitter, if any.
    client:
        An S3 client (default ``aws.client("s3")``).

    Returns
    -------
    str
        The object's ``s3://`` URI.
    """
    return CapturesStore(bucket, client).put_feedback(model, labels, by=by, now=now)
