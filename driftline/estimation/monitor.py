"""The scheduled check's side of estimated performance: load the version's estimator, estimate a window.

Kept out of :mod:`driftline.monitoring.check` so the check only calls one function: the estimator is
read by its pinned S3 version and verified by SHA-256 (:func:`~driftline.registry.artifacts.read_verified`)
before use; a version without one, or one whose artifact fails verification, gets an ``unavailable``
result saying why, and the drift check itself goes on (an estimate is an aid, never a reason to lose
the window's drift verdict).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from driftline.estimation.artifact import EstimatorFormatError, FittedEstimator
from driftline.estimation.estimate import EstimateResult, default_metric, estimate_rows, window_rows
from driftline.estimation.rows import EstimationRows, order_keys
from driftline.registry.artifacts import ArtifactIntegrityError, ArtifactNotFoundError, ArtifactRef, read_verified

__all__ = [
    "ESTIMATOR_ARTIFACT",
    "alarm_line",
    "compute_error",
    "estimate_for_segments",
    "estimate_for_version",
    "estimate_from_rows",
    "load_estimator",
    "window_estimator",
]

log = logging.getLogger(__name__)

ESTIMATOR_ARTIFACT = "estimator"
"""The key of the estimator among a model version's ``artifacts`` (``estimator.json``)."""


def load_estimator(artifacts: Mapping[str, Any]) -> tuple[FittedEstimator | None, str]:
    """The verified estimator of a version, or None and why there is none."""
    ref = artifacts.get(ESTIMATOR_ARTIFACT)
    if ref is None:
        return None, "the model version has no estimator artifact (trained before estimates existed, or disabled)"
    try:
        ref = ref if isinstance(ref, ArtifactRef) else ArtifactRef.from_dict(ref)
        return FittedEstimator.from_json(read_verified(ref), source=ref.uri), ""
    except (ArtifactNotFoundError, ArtifactIntegrityError, EstimatorFormatError, ValueError) as e:
        return None, f"the estimator artifact cannot be used: {e}"


def estimate_for_version(
    version: Any,
    settings: Any,
    predictions: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Sequence[Any]],
    *,
    row_ids: Sequence[str] | None = None,
) -> EstimateResult | None:
    """One window's estimate for a registry ``version`` under ``drift.estimated_performance`` ``settings``;
    None when estimates are disabled for the model. With ``row_ids`` the rows are estimated in canonical
    order (:mod:`driftline.estimation.rows`), as the scale-out reduce step estimates them."""
    if not settings.enabled:
        return None
    estimator, why = load_estimator(version.artifacts or {})
    rows, error = _rows(estimator, version, predictions, columns, row_ids)
    return estimate_from_rows(estimator, why, version, settings, rows.ordered() if rows else None, error)


def estimate_for_segments(
    version: Any,
    settings: Any,
    predictions: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Sequence[Any]],
    segments: Mapping[str, Sequence[int]],
    *,
    row_ids: Sequence[str] | None = None,
) -> dict[str, EstimateResult]:
    """Each segment's estimate (segment -> the window's row indices in it), with the estimator loaded and
    the rows' inputs computed once; a segment below ``settings.min_rows`` is ``insufficient_data`` (no
    alarm), like a small window. Each segment's rows are taken in canonical order when ``row_ids`` are
    given (as the reduce step takes them). Empty when estimates are disabled for the model."""
    if not settings.enabled:
        return {}
    estimator, why = load_estimator(version.artifacts or {})
    rows, error = _rows(estimator, version, predictions, columns, row_ids)
    order = np.argsort(rows.keys, kind="stable") if rows is not None else None
    out = {}
    for segment, members in segments.items():
        sub = None
        if rows is not None and order is not None:
            inside = np.zeros(rows.n_rows, dtype=bool)
            inside[np.asarray(members, dtype=np.int64)] = True
            sub = rows.take(order[inside[order]])
        out[segment] = estimate_from_rows(estimator, why, version, settings, sub, error, n_rows=len(members))
    return out


def window_estimator(version: Any, settings: Any) -> tuple[FittedEstimator | None, str] | None:
    """The version's verified estimator and why there is none, or None when estimates are disabled."""
    return load_estimator(version.artifacts or {}) if settings.enabled else None


def _rows(
    estimator: FittedEstimator | None,
    version: Any,
    predictions: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Sequence[Any]],
    row_ids: Sequence[str] | None,
) -> tuple[EstimationRows | None, str]:
    """The rows' estimation inputs in arrival order (keyed for the canonical order), or None and why not."""
    if estimator is None or estimator.kind == "unavailable":
        return None, ""
    keys = order_keys(row_ids) if row_ids is not None and len(row_ids) == len(predictions) else None
    try:
        return window_rows(estimator, predictions, columns, version.input_schema or {}, keys=keys), ""
    except Exception as e:  # onnxruntime's own error types, a loss model of another width: never lose the window
        return None, compute_error(e)


def compute_error(e: BaseException) -> str:
    """How an estimate that could not be computed says why (the same words on both paths)."""
    log.warning("estimated performance failed: %s", e)
    return f"the estimate could not be computed ({type(e).__name__}: {str(e)[:300]})"


def estimate_from_rows(
    estimator: FittedEstimator | None,
    why: str,
    version: Any,
    settings: Any,
    rows: EstimationRows | None,
    error: str = "",
    *,
    n_rows: int | None = None,
) -> EstimateResult:
    """The estimate from rows already in canonical order (the in-process check's, or the rows the
    scale-out shards wrote): ``why`` the estimator is missing, ``error`` why the rows could not be computed."""
    task = "regression" if (version.input_schema or {}).get("label", {}).get("task") == "regression" else ""
    metric = settings.metric or default_metric(estimator.task if estimator else task or "classification")
    count = n_rows if n_rows is not None else rows.n_rows if rows is not None else 0
    if error:
        res = EstimateResult("unavailable", None, count, settings.min_rows, metric, settings.tolerance)
        res.message = error
        return res
    try:
        res = estimate_rows(estimator, rows, metric=metric, tolerance=settings.tolerance, min_rows=settings.min_rows)
    except Exception as e:  # a calibration of another width: never lose the window
        res = EstimateResult("unavailable", None, count, settings.min_rows, metric, settings.tolerance)
        res.message = compute_error(e)
        return res
    res.n_rows = count
    if estimator is None:
        res.message = why
    elif res.status == "ok" and res.metric not in res.metrics:
        res.message = (
            f"drift.estimated_performance.metric {res.metric!r} is not estimated for this model "
            f"(estimated: {', '.join(sorted(res.metrics))}); nothing alarms on it"
        )
    return res


def alarm_line(estimated: Mapping[str, Any] | None) -> str | None:
    """The alert's sentence about a degraded estimate (None when it is not degraded)."""
    if not estimated or not estimated.get("degraded"):
        return None
    method, message = estimated.get("method"), estimated.get("message")
    return f"Estimated prediction quality dropped (no labels needed, {method}): {message}."
