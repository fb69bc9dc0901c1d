"""Where training data comes from: the feature store's point-in-time training set.

Kept apart from the training core so the core can be tested on plain tables.
"""

from __future__ import annotations

from typing import Any


class TrainingDataError(LookupError):
    """The training set cannot be built from the feature store (no data, or no builder)."""


def from_feature_store(fs: Any, bucket: str, *, model: str, run_id: str) -> tuple[Any, dict[str, Any]]:
    """Build (and persist) the point-in-time training set; returns the table and its lineage.

    Lineage: ``uri`` of the persisted training set, ``sha256``, ``rows`` and the curated objects'
    S3 ``object_versions`` it was built from.
    """
    try:
        from driftline.features.training_set import build_training_set
    except ModuleNotFoundError as e:
        if e.name not in ("driftline.features.training_set",):
            raise
        raise TrainingDataError("this build has no feature-store training-set builder "
                                "(driftline.features.training_set); pass --data with a local table") from None
    result = build_training_set(fs, bucket, model=model, run_id=run_id)
    return _table_and_lineage(result)


def _table_and_lineage(result: Any) -> tuple[Any, dict[str, Any]]:
    if isinstance(result, tuple) and len(result) == 2:
        return result[0], dict(result[1] or {})
    table = getattr(result, "table", result)
    lineage: dict[str, Any] = {}
    for key in ("uri", "sha256", "rows", "object_versions"):
        value = getattr(result, key, None)
        if value is not None:
            lineage[key] = value
    to_dict = getattr(result, "lineage", None)
    if callable(to_dict):
        lineage.update(to_dict())
    elif isinstance(to_dict, dict):
        lineage.update(to_dict)
    return table, lineage
