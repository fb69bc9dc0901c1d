"""The train function's register_training_job phase on moto: a failed job and unusable output become a
rejected version with the reason, and hostile workflow states get precise errors, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from driftline import aws as aws_mod
from driftline.config import PlatformConfig
from driftline.features.schema import FeatureSetCatalog
from driftline.registry.store import Registry
from driftline.training.task import (
    InvalidTrainingRequestError,
    TrainContext,
    feature_store_source,
    register_training_job,
    run_training,
)
from tests.conftest import FEATURE_SETS


def _ctx(env: dict[str, str]) -> TrainContext:
    config = PlatformConfig.model_validate(
        {"models": [{"name": "m", "feature_set": "credit_default", "training": {"compute": "sagemaker"}}]}
    )
    return TrainContext(
        config=config,
        feature_sets=FeatureSetCatalog(FEATURE_SETS),
        registry=Registry(env["REGISTRY_TABLE"]),
        features_bucket=env["FEATURES_BUCKET"],
        artifacts_bucket=env["ARTIFACTS_BUCKET"],
        source=feature_store_source(config),
        clients=aws_mod.client,
    )


def _state(polled: Any, started: Any = None) -> dict[str, Any]:
    return {
        "state": {
            "request": {"value": {"model": "m"}},
            "candidate": {"value": started if started is not None else {"training_set": {"uri": "s3://f/t.parquet"}}},
            "training_job": {"value": polled},
        }
    }


def test_failed_job_and_bad_output_are_rejected_versions(aws: dict[str, str]) -> None:
    ctx = _ctx(aws)
    failed = {
        "state": "failed",
        "status": "Failed",
        "secondary_status": "Failed",
        "failure_reason": "AlgorithmError: boom",
        "job": {"name": "dev-driftline-train-m-x-a1", "request": {"ResourceConfig": {"InstanceType": "ml.m5.large"}}},
    }
    out = register_training_job(_state(failed), ctx)
    assert (out["status"], out["job_failed"], out["version"]) == ("rejected", True, 1)
    assert (
        out["reason"] == "SageMaker training job dev-driftline-train-m-x-a1 ended Failed (Failed): AlgorithmError: boom"
    )
    mv = ctx.registry.get_version("m", 1)
    assert mv.status == "rejected" and mv.lineage["training_job"]["instance_type"] == "ml.m5.large"

    aws_mod.client("s3").put_object(
        Bucket=aws["ARTIFACTS_BUCKET"], Key="training-jobs/m/j/output/model.tar.gz", Body=b"x"
    )
    completed = {
        "state": "completed",
        "status": "Completed",
        "artifact": f"s3://{aws['ARTIFACTS_BUCKET']}/training-jobs/m/j/output/model.tar.gz",
        "job": "not an object",
    }
    out = register_training_job(_state(completed, {"overrides": {"seed": "x"}}), ctx)
    assert out["status"] == "rejected" and out["job_failed"] is True
    assert "left unusable output: model.tar.gz cannot be read" in out["reason"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "needs the workflow 'state'"),
        ({"state": {"request": {"value": {"model": "m"}}}}, "has no 'candidate' result"),
        (
            {
                "state": {
                    "request": {"value": {"model": "nope"}},
                    "candidate": {"value": {}},
                    "training_job": {"value": {}},
                }
            },
            "unknown model 'nope'",
        ),
    ],
)
def test_hostile_states_get_precise_errors(aws: dict[str, str], event: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidTrainingRequestError, match=message):
        register_training_job(event, _ctx(aws))


def test_auto_below_its_threshold_trains_in_the_function_and_says_why(aws: dict[str, str]) -> None:
    from driftline.datasets.credit_default import generate

    ctx = _ctx(aws)
    auto = ctx.config.models[0].model_copy(
        update={"training": ctx.config.models[0].training.model_copy(update={"compute": "auto", "auto_rows": 10**6})}
    )
    ctx.config = ctx.config.model_copy(update={"models": (auto.model_copy(update={"params": {"max_iter": 20}}),)})
    table = generate(1200, "2026-01-01", "2026-04-01", seed=5)
    ctx.source = lambda fs, bucket, model, run_id: (table, {"uri": "memory://test"})
    out = run_training({"request": {"model": "m"}, "execution_id": "x"}, ctx)
    assert out["status"] == "candidate" and "training_job" not in out
    assert out["compute"] == {
        "configured": "auto",
        "estimate": {"objects": 0, "bytes": 0, "rows": 0},  # nothing curated in this bucket
        "auto_rows": 10**6,
        "auto_bytes": None,
    }
