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
from driftline.retraining.sagemaker import SageMakerTarget, choose_compute, start_job
from driftline.training.core import TrainedModel, validation_fraction_of
from driftline.training.errors import TrainingRejectedError
from driftline.training.publish import current_champion, register_result, train_and_register, training_lineage
from driftline.training.sources import TrainingDataError, training_table

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
    clients: Callable[[str], Any] = aws.client
    sagemaker: SageMakerTarget | None = None
    """Where SageMaker training jobs run; None in a deployment without them (refused for such models)."""

    @classmethod
    def from_env(cls) -> TrainContext:
        artifacts = aws.env("ARTIFACTS_BUCKET")
        config = PlatformConfig.model_validate_json(aws.env("PLATFORM_CONFIG"))
        return cls(
            config=config,
            feature_sets=FeatureSetCatalog(os.environ.get("FEATURE_SETS_DIR", "feature_sets")),
            registry=Registry.from_env(),
            features_bucket=aws.env("FEATURES_BUCKET"),
            artifacts_bucket=artifacts,
            source=feature_store_source(config),
            sagemaker=SageMakerTarget.from_env(artifacts),
        )


def feature_store_source(config: PlatformConfig) -> DataSource:
    """The feature-store source honouring each model's ``training.join`` (Athena names from the
    function's environment, set when some model may join on Athena), plus the model's feedback rows
    when ``training.feedback`` is on (captures bucket from ``CAPTURES_BUCKET``): the Lambda and the
    SageMaker paths both read the table this returns."""
    workgroup, database = os.environ.get("ATHENA_WORKGROUP"), os.environ.get("GLUE_DATABASE")
    athena = (database, workgroup) if workgroup and database else None

    def source(fs: FeatureSet, bucket: str, model: str, run_id: str) -> tuple[Any, dict[str, Any]]:
        cfg = config.model(model)
        t = cfg.training
        return training_table(
            fs,
            bucket,
            model=model,
            run_id=run_id,
            feedback=t.feedback,
            labelers=cfg.labelers,
            captures_bucket=os.environ.get("CAPTURES_BUCKET"),
            clients=aws.client,
            join=t.join,
            join_auto_bytes=t.join_auto_bytes,
            athena=athena,
        )

    return source


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
    compute: str = "lambda"
    decision: dict[str, Any] = {}
    if cfg.training.compute != "lambda":  # decided before any data is read (estimate from metadata for auto)
        compute, decision = choose_compute(cfg, ctx.features_bucket, ctx.clients("s3"))
        if compute == "sagemaker" and ctx.sagemaker is None:
            raise InvalidTrainingRequestError(
                f"model {cfg.name!r} trains on SageMaker (training.compute {cfg.training.compute}) but this "
                "deployment has no training role and image (SAGEMAKER_ROLE_ARN, TRAINING_IMAGE_URI); redeploy"
            )
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
            **({"compute": decision} if decision else {}),
        }
    if compute == "sagemaker":
        assert ctx.sagemaker is not None
        overrides = {k: kwargs[k] for k in ("algorithm", "params", "seed", "validation_fraction")}
        job = start_job(
            cfg,
            fs,
            ctx.sagemaker,
            run_id=run_id,
            trigger=trigger,
            training_set=lineage,
            overrides=overrides,
            s3=ctx.clients("s3"),
            sagemaker=ctx.clients("sagemaker"),
        )
        return {
            "model": cfg.name,
            "status": "training",
            "compute": decision,
            "training_job": job,
            "training_set": lineage,
            "overrides": overrides,
            "trigger": trigger,
            "execution_id": execution_id,
            "created_by": kwargs["created_by"],
        }
    outcome = train_and_register(table, fs, cfg, training_set=lineage, **kwargs)
    return {**outcome.to_dict(), **({"compute": decision} if decision else {})}  # auto: what it decided and why


def _node(state: Mapping[str, Any], key: str) -> dict[str, Any]:
    node = state.get(key)
    if not isinstance(node, Mapping) or not isinstance(node.get("value"), Mapping):
        raise InvalidTrainingRequestError(f"the workflow state has no {key!r} result (keys: {sorted(state)})")
    return dict(node["value"])


def _job_result(
    polled: Mapping[str, Any], fs: FeatureSet, s3: Any
) -> tuple[TrainedModel | TrainingRejectedError, dict[str, Any] | None]:
    """The finished job's model directory, or the rejection its failure (or unusable output) stands for."""
    from driftline.registry.artifacts import split_s3_uri
    from driftline.training.model_dir import ModelDirError, read_model_dir, read_model_tar

    job = polled.get("job")
    name = job.get("name") if isinstance(job, Mapping) else None
    if polled.get("state") != "completed":
        status = f"{polled.get('status')} ({polled.get('secondary_status')})"
        reason = polled.get("failure_reason") or "no failure reason reported"
        return TrainingRejectedError(f"SageMaker training job {name} ended {status}: {reason}"[:1000]), None
    try:
        bucket, key = split_s3_uri(str(polled.get("artifact") or ""))
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return read_model_dir(read_model_tar(body), fs)
    except (ModelDirError, ValueError) as e:
        return TrainingRejectedError(f"SageMaker training job {name} left unusable output: {e}"[:1000]), None


def register_training_job(event: Mapping[str, Any], ctx: TrainContext) -> dict[str, Any]:
    """The ``register_training_job`` phase: register what a finished SageMaker job produced (or why it failed)
    through :func:`driftline.training.publish.register_result`, as the Lambda path does.

    Output: the train step's usual result plus ``compute``, ``training_job_name`` and ``job_failed`` (a
    failed or stopped job, or unusable output: the workflow then runs its failure path).
    """
    state = event.get("state")
    if not isinstance(state, Mapping):
        raise InvalidTrainingRequestError("the register_training_job phase needs the workflow 'state'")
    request, started, polled = _node(state, "request"), _node(state, "candidate"), _node(state, "training_job")
    try:
        cfg = ctx.config.model(str(request.get("model")))
        fs = ctx.feature_sets.get(cfg.feature_set)
    except (ConfigError, FeatureSetError) as e:
        raise InvalidTrainingRequestError(str(e)) from None
    overrides = started.get("overrides") if isinstance(started.get("overrides"), Mapping) else {}
    assert isinstance(overrides, Mapping)
    result, doc = _job_result(polled, fs, ctx.clients("s3"))
    parent = current_champion(ctx.registry, cfg.name)
    try:
        fraction: float | None = validation_fraction_of(
            cfg, overrides.get("validation_fraction"), overrides.get("params")
        )
    except TrainingRejectedError:
        fraction = None
    lineage = training_lineage(
        fs,
        cfg,
        training_set=dict(started.get("training_set") or {}),
        parent=parent,
        trigger=str(started.get("trigger") or "manual"),
        execution_id=str(started.get("execution_id") or "") or None,
        seed=seed if isinstance(seed := overrides.get("seed"), int) and not isinstance(seed, bool) else 0,
        validation_fraction=fraction,
    )
    job = polled.get("job") if isinstance(polled.get("job"), Mapping) else {}
    assert isinstance(job, Mapping)
    request_doc = job.get("request") if isinstance(job.get("request"), Mapping) else {}
    assert isinstance(request_doc, Mapping)
    lineage["training_job"] = {
        "name": job.get("name"),
        "attempt": job.get("attempt"),
        "status": polled.get("status"),
        "secondary_status": polled.get("secondary_status"),
        "billable_seconds": polled.get("billable_seconds"),
        "instance_type": (request_doc.get("ResourceConfig") or {}).get("InstanceType"),
        "spot": bool(request_doc.get("EnableManagedSpotTraining")),
        "image": (request_doc.get("AlgorithmSpecification") or {}).get("TrainingImage"),
    }
    if doc is not None:  # the code that trained is the image's
        lineage["code_version"] = doc.get("code_version", lineage["code_version"])
        lineage["libraries"] = doc.get("libraries", lineage["libraries"])
    outcome = register_result(
        result,
        fs,
        cfg,
        registry=ctx.registry,
        artifacts_bucket=ctx.artifacts_bucket,
        lineage=lineage,
        parent=parent,
        trigger=str(started.get("trigger") or "manual"),
        created_by=str(started.get("created_by") or "workflow"),
        algorithm=overrides.get("algorithm"),
        params=overrides.get("params"),
    )
    return {
        **outcome.to_dict(),
        "compute": "sagemaker",
        "training_job_name": job.get("name"),
        "job_failed": polled.get("state") != "completed" or doc is None,
    }
