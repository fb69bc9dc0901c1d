"""The ``train`` step of the retraining workflow, independent of Lambda.

Input (from Step Functions): ``{"request": {"model", "trigger", ...}, "execution_id": ...}``, where
``request`` is the ``validate`` step's output (it may also carry ``algorithm``, ``params``, ``seed``
and ``validation_fraction`` overrides). Output: ``{"model", "version", "status", "metrics",
"champion_version", "champion_metrics", "reason", "champion_error"}``.

Data and model problems end as a ``rejected`` version with the reason (returned, not raised);
a request that names no configured model raises :class:`InvalidTrainingRequestError`, and AWS errors
propagate so the workflow's Retry applies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from driftline import aws
from driftline.config import ConfigError, PlatformConfig
from driftline.features.schema import FeatureSet, FeatureSetCatalog, FeatureSetError
from driftline.registry.store import Registry
from driftline.training.publish import current_champion, train_and_register
from driftline.training.sources import TrainingDataError, from_feature_store

DataSource = Callable[[FeatureSet, str, str, str], tuple[Any, dict[str, Any]]]
"""(feature set, features bucket, model, run id) -> (table, training-set lineage)."""


class InvalidTrainingRequestError(ValueError):
    """The request cannot be acted on (unknown model, malformed fields); nothing is registered."""


@dataclass
class TrainContext:
    config: PlatformConfig
    feature_sets: FeatureSetCatalog
    registry: Registry
    features_bucket: str
    artifacts_bucket: str
    source: DataSource

    @classmethod
    def from_env(cls) -> TrainContext:
        return cls(
            config=PlatformConfig.model_validate_json(aws.env("PLATFORM_CONFIG")),
            feature_sets=FeatureSetCatalog(os.environ.get("FEATURE_SETS_DIR", "feature_sets")),
            registry=Registry.from_env(),
            features_bucket=aws.env("FEATURES_BUCKET"),
            artifacts_bucket=aws.env("ARTIFACTS_BUCKET"),
            source=_feature_store,
        )


def _feature_store(fs: FeatureSet, bucket: str, model: str, run_id: str) -> tuple[Any, dict[str, Any]]:
    return from_feature_store(fs, bucket, model=model, run_id=run_id)


def _field(request: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = request.get(name, default)
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        raise InvalidTrainingRequestError(f"request field {name!r} has the wrong type: {value!r}")
    return value


def run_training(event: Mapping[str, Any], ctx: TrainContext) -> dict[str, Any]:
    request = event.get("request")
    if not isinstance(request, Mapping):
        raise InvalidTrainingRequestError(
            f"the train step needs a 'request' object, got {type(request).__name__} (keys: {sorted(event)})"
        )
    model = _field(request, "model", str)
    if not model:
        raise InvalidTrainingRequestError("request field 'model' is required")
    try:
        cfg = ctx.config.model(model)
        fs = ctx.feature_sets.get(cfg.feature_set)
    except (ConfigError, FeatureSetError) as e:
        raise InvalidTrainingRequestError(str(e)) from None
    execution_id = str(event.get("execution_id") or request.get("execution_id") or "")
    run_id = str(request.get("execution_name") or execution_id.rsplit(":", 1)[-1] or "manual")
    trigger = _field(request, "trigger", str, "manual")
    params = _field(request, "params", Mapping)
    kwargs: dict[str, Any] = {
        "registry": ctx.registry,
        "artifacts_bucket": ctx.artifacts_bucket,
        "trigger": trigger,
        "created_by": f"workflow:{run_id}",
        "execution_id": execution_id or None,
        "algorithm": _field(request, "algorithm", str),
        "params": dict(params) if params is not None else None,
        "seed": _field(request, "seed", int, 0),
        "validation_fraction": _field(request, "validation_fraction", (int, float)),
    }
    try:
        table, lineage = ctx.source(fs, ctx.features_bucket, cfg.name, run_id)
    except TrainingDataError as e:
        reason = f"no training data: {e}"
        mv = ctx.registry.register(
            cfg.name,
            status="rejected",
            reason=reason,
            created_by=kwargs["created_by"],
            algorithm=kwargs["algorithm"] or cfg.algorithm,
            params=cfg.params,
            input_schema=fs.input_schema(),
            feature_set=fs.name,
            feature_set_version=fs.version,
            feature_set_fingerprint=fs.fingerprint,
            lineage={"trigger": trigger, "execution_id": execution_id},
            trigger=trigger,
        )
        champion = current_champion(ctx.registry, cfg.name)
        return {
            "model": cfg.name,
            "version": mv.version,
            "status": "rejected",
            "metrics": {},
            "champion_version": champion,
            "champion_metrics": None,
            "reason": reason,
            "champion_error": None,
        }
    outcome = train_and_register(table, fs, cfg, training_set=lineage, **kwargs)
    return outcome.to_dict()
