"""The train Lambda handler with the Step Functions payload, against moto."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest

from driftline.registry.store import Registry
from driftline.training import task
from driftline.training.sources import TrainingDataError


@dataclass
class FakeContext:
    function_name: str = "dev-driftline-train"
    memory_limit_in_mb: int = 4096
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:dev-driftline-train"
    aws_request_id: str = "req-1"


@pytest.fixture
def handler(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from driftline.datasets.credit_default import generate

    table = generate(1200, "2026-01-01", "2026-04-01", seed=11)
    calls: list[tuple[str, str, str]] = []

    def source(fs: Any, bucket: str, model: str, run_id: str) -> tuple[pa.Table, dict[str, Any]]:
        calls.append((bucket, model, run_id))
        if model == "empty":
            raise TrainingDataError("no curated data")
        return table, {"uri": f"s3://{bucket}/training-sets/{model}/{run_id}.parquet", "object_versions": {}}

    monkeypatch.setattr(task, "feature_store_source", lambda config: source)
    import lambdas.train as mod

    mod._context.cache_clear()
    yield lambda event: mod.handler(event, FakeContext())  # type: ignore[arg-type]
    mod._context.cache_clear()


EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:dev-driftline-retrain:drift-abc"


def test_handler_trains_and_returns_the_gate_payload(handler: Any, aws: dict[str, str]) -> None:
    out = handler(
        {
            "request": {"model": "credit-default", "trigger": "drift", "params": {"max_iter": 20}},
            "execution_id": EXECUTION,
        }
    )
    assert set(out) >= {"model", "version", "status", "metrics", "champion_version", "champion_metrics", "reason"}
    assert (out["model"], out["version"], out["status"]) == ("credit-default", 1, "candidate")
    assert out["metrics"]["roc_auc"] > 0.6 and out["champion_version"] is None
    mv = Registry.from_env().get_version("credit-default", 1)
    assert mv.trigger == "drift" and mv.created_by == "workflow:drift-abc"
    assert mv.lineage["execution_id"] == EXECUTION
    assert mv.lineage["training_set"]["uri"].endswith("training-sets/credit-default/drift-abc.parquet")


def test_missing_training_data_is_a_rejected_version(
    handler: Any, monkeypatch: pytest.MonkeyPatch, aws: dict[str, str]
) -> None:
    def nothing(*_: Any) -> Any:
        raise TrainingDataError("the features bucket has no curated data for credit_default")

    monkeypatch.setattr(task, "feature_store_source", lambda config: nothing)
    import lambdas.train as mod

    mod._context.cache_clear()
    out = handler({"request": {"model": "credit-default"}, "execution_id": EXECUTION})
    assert out["status"] == "rejected" and "no curated data" in out["reason"]
    assert Registry.from_env().get_version("credit-default", out["version"]).status == "rejected"


def test_unknown_model_is_an_error_not_a_version(handler: Any) -> None:
    with pytest.raises(task.InvalidTrainingRequestError, match="unknown model 'nope'"):
        handler({"request": {"model": "nope"}, "execution_id": EXECUTION})
    with pytest.raises(task.InvalidTrainingRequestError, match="'request' object"):
        handler({"execution_id": EXECUTION})
    with pytest.raises(task.InvalidTrainingRequestError, match="wrong type"):
        handler({"request": {"model": "credit-default", "seed": "x"}})


def test_handler_trains_on_the_point_in_time_training_set(aws: dict[str, str]) -> None:
    """The real source: curated Parquet in the features bucket -> training-sets/<model>/<run>.parquet."""
    pytest.importorskip("driftline.features.training_set")
    from driftline import aws as aws_mod
    from driftline.datasets.credit_default import generate
    from driftline.features.curated import curated_key, parquet_bytes, split_by_day

    s3 = aws_mod.client("s3")
    bucket = aws["FEATURES_BUCKET"]
    table = generate(1500, "2026-01-01", "2026-03-01", seed=13)
    for day, rows in split_by_day(table, "event_timestamp"):
        s3.put_object(Bucket=bucket, Key=curated_key("credit_default", day, "up-1"), Body=parquet_bytes(rows))
    import lambdas.train as mod

    mod._context.cache_clear()
    out = mod.handler(
        {
            "request": {"model": "credit-default", "trigger": "new_labels", "params": {"max_iter": 20}},
            "execution_id": EXECUTION,
        },
        FakeContext(),
    )  # type: ignore[arg-type]
    mod._context.cache_clear()
    assert out["status"] == "candidate", out
    lin = Registry.from_env().get_version("credit-default", out["version"]).lineage["training_set"]
    assert lin["uri"] == f"s3://{bucket}/training-sets/credit-default/drift-abc.parquet"
    assert lin["version_id"] and len(lin["sha256"]) == 64 and lin["rows"] > 1000
    assert {o["key"].split("/")[1] for o in lin["object_versions"]} == {"credit_default"}
    assert all(o["version_id"] for o in lin["object_versions"])
    head = s3.head_object(Bucket=bucket, Key="training-sets/credit-default/drift-abc.parquet")
    assert head["Metadata"]["sha256"] == lin["sha256"]
