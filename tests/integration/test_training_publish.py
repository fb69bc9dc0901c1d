"""Training -> artifacts on S3 -> registry, against moto (real boto3 calls)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

from driftline import aws as aws_mod
from driftline.config import ModelConfig
from driftline.estimation import FittedEstimator
from driftline.features.schema import FeatureSet
from driftline.registry.artifacts import ArtifactIntegrityError, read_verified
from driftline.registry.store import Registry
from driftline.training.onnx_export import OnnxModel
from driftline.training.publish import train_and_register


@pytest.fixture(scope="module")
def table() -> pa.Table:
    from driftline.datasets.credit_default import generate

    return generate(1500, "2026-01-01", "2026-04-01", seed=5)


def _cfg(**kw: Any) -> ModelConfig:
    return ModelConfig(
        name="credit-default",
        feature_set="credit_default",
        params={"max_iter": 25},
        retrain={"min_training_rows": 300},  # type: ignore[arg-type]
        **kw,
    )  # type: ignore[arg-type]  # pydantic coerces


def _train(aws: dict[str, str], table: pa.Table, fs: FeatureSet, **kw: Any) -> Any:
    return train_and_register(
        table, fs, _cfg(), registry=Registry.from_env(), artifacts_bucket=aws["ARTIFACTS_BUCKET"], **kw
    )


def test_first_training_registers_a_candidate_with_lineage_and_verified_artifacts(
    aws: dict[str, str], table: pa.Table, credit_fs: FeatureSet
) -> None:
    out = _train(
        aws,
        table,
        credit_fs,
        trigger="manual",
        execution_id="run-1",
        training_set={
            "uri": "s3://features/training-sets/credit-default/run-1.parquet",
            "object_versions": {"curated/a.parquet": "v1"},
        },
    )
    assert (out.version, out.status, out.reason) == (1, "candidate", "")
    assert out.champion_version is None and out.champion_metrics is None
    d = out.to_dict()
    assert set(d) >= {"model", "version", "status", "metrics", "champion_version", "champion_metrics", "reason"}
    json.dumps(d)  # the Step Functions payload must be JSON

    mv = Registry.from_env().get_version("credit-default", 1)
    assert mv.status == "candidate" and mv.metrics == out.metrics and mv.metrics["roc_auc"] > 0.6
    assert mv.input_schema == credit_fs.input_schema()
    assert mv.feature_set_fingerprint == credit_fs.fingerprint
    lin = mv.lineage
    assert lin["training_set"]["uri"].endswith("run-1.parquet")
    assert lin["training_set"]["object_versions"] == {"curated/a.parquet": "v1"}
    assert len(lin["training_set"]["sha256"]) == 64
    assert lin["feature_set"] == {"name": "credit_default", "version": 1, "fingerprint": credit_fs.fingerprint}
    assert lin["parent_version"] is None and lin["trigger"] == "manual" and lin["execution_id"] == "run-1"
    assert lin["code_version"] and lin["libraries"]["scikit-learn"]
    assert mv.params["max_iter"] == 25 and mv.params["random_state"] == 0

    assert set(mv.artifacts) == {"onnx", "skops", "profile", "metrics", "estimator"}
    for name, ref in mv.artifacts.items():
        assert ref.uri.startswith(f"s3://{aws['ARTIFACTS_BUCKET']}/models/credit-default/v1/")
        assert ref.version_id, name
        read_verified(ref)
    onnx = OnnxModel(read_verified(mv.artifacts["onnx"]))
    assert onnx.outputs == ["label", "probabilities"]
    profile = json.loads(read_verified(mv.artifacts["profile"]))
    assert profile["metadata"]["model"] == "credit-default" and profile["metadata"]["version"] == 1
    assert json.loads(read_verified(mv.artifacts["metrics"]))["metrics"] == out.metrics
    estimator = FittedEstimator.from_json(read_verified(mv.artifacts["estimator"]))
    assert (estimator.kind, estimator.model, estimator.version) == ("cbpe", "credit-default", 1)
    assert estimator.reference["roc_auc"] == pytest.approx(out.metrics["roc_auc"], abs=1e-6)


def test_next_training_is_compared_with_the_champion(
    aws: dict[str, str], table: pa.Table, credit_fs: FeatureSet
) -> None:
    first = _train(aws, table, credit_fs)
    reg = Registry.from_env()
    reg.approve("credit-default", first.version, "alice", "good")
    reg.promote("credit-default", first.version, "alice", "first champion")
    second = _train(aws, table, credit_fs, trigger="drift")
    assert second.version == first.version + 1 and second.status == "candidate"
    assert second.champion_version == first.version
    # same data, same seed, same split: the champion scores exactly what it scored as a candidate
    assert second.champion_metrics == first.metrics
    assert reg.get_version("credit-default", second.version).lineage["parent_version"] == first.version


def test_a_tampered_champion_artifact_is_refused_not_scored(
    aws: dict[str, str], table: pa.Table, credit_fs: FeatureSet
) -> None:
    first = _train(aws, table, credit_fs)
    reg = Registry.from_env()
    reg.approve("credit-default", first.version, "alice", "good")
    reg.promote("credit-default", first.version, "alice", "champion")
    ref = reg.get_version("credit-default", first.version).artifacts["onnx"]
    # tamper: replace the object in place (same key, no version pin) and point the registry at "latest"
    aws_mod.client("s3").put_object(Bucket=ref.bucket, Key=ref.key, Body=b"not the model")
    ddb = aws_mod.client("dynamodb")
    item_key = {"pk": {"S": "MODEL#credit-default"}, "sk": {"S": f"VERSION#{first.version:06d}"}}
    arts = json.loads(ddb.get_item(TableName=aws["REGISTRY_TABLE"], Key=item_key)["Item"]["artifacts"]["S"])
    arts["onnx"]["version_id"] = None
    ddb.update_item(
        TableName=aws["REGISTRY_TABLE"],
        Key=item_key,
        UpdateExpression="SET artifacts = :a",
        ExpressionAttributeValues={":a": {"S": json.dumps(arts)}},
    )
    with pytest.raises(ArtifactIntegrityError, match="failed its integrity check"):
        read_verified(reg.get_version("credit-default", first.version).artifacts["onnx"])
    second = _train(aws, table, credit_fs)
    assert second.status == "candidate" and second.champion_metrics is None
    assert second.champion_error is not None and "integrity check" in second.champion_error


BAD_INPUTS: list[tuple[str, Any, str]] = [
    ("no labels", lambda t: t.drop_columns(["defaulted"]), "no labels"),
    ("too few rows", lambda t: t.slice(0, 100), "at least 300 are required"),
    (
        "one class",
        lambda t: t.set_column(
            t.schema.get_field_index("defaulted"), "defaulted", pa.array([0] * t.num_rows, pa.int64())
        ),
        "one class only",
    ),
    (
        "all-null feature",
        lambda t: t.set_column(t.schema.get_field_index("income"), "income", pa.nulls(t.num_rows, pa.float64())),
        "income are null in all",
    ),
]


def test_bad_input_is_registered_as_rejected_with_the_reason(
    aws: dict[str, str], table: pa.Table, credit_fs: FeatureSet
) -> None:
    """One moto platform for all cases (provisioning it is the slow part)."""
    reg = Registry.from_env()
    for case, mutate, reason in BAD_INPUTS:
        out = _train(aws, mutate(table), credit_fs)
        assert out.status == "rejected" and reason in out.reason, case
        mv = reg.get_version("credit-default", out.version)
        assert mv.status == "rejected" and reason in mv.reason and mv.artifacts == {}, case
    out = _train(aws, table, credit_fs, algorithm="prophet")
    assert out.status == "rejected" and "unknown model type 'prophet'" in out.reason
    assert reg.get_version("credit-default", out.version).algorithm == "prophet"
    assert [v.status for v in reg.list_versions("credit-default")] == ["rejected"] * 5
    listed = aws_mod.client("s3").list_objects_v2(Bucket=aws["ARTIFACTS_BUCKET"], Prefix="models/")
    assert listed.get("KeyCount", 0) == 0
