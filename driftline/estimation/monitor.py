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

from driftline.estimation.artifact import EstimatorFormatError, FittedEstimator
from driftline.estimation.estimate import EstimateResult, default_metric, estimate_window
from driftline.registry.artifacts import ArtifactIntegrityError, ArtifactNotFoundError, ArtifactRef, read_verified

__all__ = ["ESTIMATOR_ARTIFACT", "alarm_line", "estimate_for_segments", "estimate_for_version", "load_estimator"]

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
) -> EstimateResult | None:
    """One window's estimate for a registry ``version`` under ``drift.estimated_performance`` ``settings``;
    None when estimates are disabled for the model."""
    if not settings.enabled:
        return None
    estimator, why = load_estimator(version.artifacts or {})
    return _estimate(estimator, why, version, settings, predictions, columns)


def estimate_for_segments(
    version: Any,
    settings: Any,
    predictions: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Sequence[Any]],
    segments: Mapping[str, Sequence[int]],
) -> dict[str, EstimateResult]:
    """Each segment's estimate (segment -> the window's row indices in it), with the estimator loaded once;
    a segment below ``settings.min_rows`` is ``insufficient_data`` (no alarm), like a small window. Empty
    when estimates are disabled for the model."""
    if not settings.enabled:
        return {}
    estimator, why = load_estimator(version.artifacts or {})
    out = {}
    for segment, rows in segments.items():
        preds = [predictions[i] for i in rows]
        cols = {name: [values[i] for i in rows] for name, values in columns.items()}
        out[segment] = _estimate(estimator, why, version, settings, preds, cols)
    return out


def _estimate(
    estimator: FittedEstimator | None,
    why: str,
    version: Any,
    settings: Any,
    predictions: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Sequence[Any]],
) -> EstimateResult:
    task = "regression" if (version.input_schema or {}).get("label", {}).get("task") == "regression" else ""
    metric = settings.metric or default_metric(estimator.task if estimator else task or "classification")
    try:
        res = estimate_window(
            estimator,
            predictions,
            columns,
            version.input_schema or {},
            metric=metric,
            tolerance=settings.tolerance,
            min_rows=settings.min_rows,
        )
    except Exception as e:  # onnxruntime's own error types, a loss model of another width: never lose the window
        log.warning("estimated performance failed: %s", e)
        res = EstimateResult("unavailable", None, len(predictions), settings.min_rows, metric, settings.tolerance)
        res.message = f"the estimate could not be computed ({type(e).__name__}: {str(e)[:300]})"
        return res
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
