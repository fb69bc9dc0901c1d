"""The training-job loop's pieces without Step Functions: names, the CreateTrainingJob request, the poll's
states (spot retries, deadline), restart and stop, and the auto decision from curated metadata."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from driftline.config import ModelConfig
from driftline.retraining import sagemaker as sm
from driftline.retraining.sagemaker import SageMakerTarget, TrainingJobError, TrainingJobTimeoutError

T0 = datetime(2026, 12, 1, tzinfo=UTC)
TARGET = SageMakerTarget("arn:aws:iam::1:role/r", "img:1", "dev-driftline-train", "artifacts", 60)


def _cfg(**training: Any) -> ModelConfig:
    return ModelConfig(name="credit_default", feature_set="credit_default", training=training)  # type: ignore[arg-type]


class FakeSageMaker:
    def __init__(self, *described: dict[str, Any]) -> None:
        self.described = list(described)
        self.created: list[dict[str, Any]] = []
        self.stopped: list[str] = []

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        return self.described.pop(0) if len(self.described) > 1 else self.described[0]

    def create_training_job(self, **request: Any) -> dict[str, str]:
        self.created.append(request)
        return {"TrainingJobArn": "arn"}

    def stop_training_job(self, TrainingJobName: str) -> None:
        self.stopped.append(TrainingJobName)


def test_job_names_fit_sagemaker_and_the_iam_scope() -> None:
    name = sm.job_name("dev-driftline-train", "a_very_long_model_name_for_this_test_0123456789", "run-1", 3)
    assert len(name) <= 63 and name.startswith("dev-driftline-train-a-very-long") and name.endswith("-a3")
    assert sm.job_name("p", "m", "run-1", 1) != sm.job_name("p", "m", "run-2", 1)


def test_request_carries_spot_warm_pool_and_the_entry_point() -> None:
    spot = sm.job_request(
        _cfg(
            compute="sagemaker", spot=True, max_runtime_seconds=600, max_wait_seconds=900, instance_type="ml.c5.xlarge"
        ),
        TARGET,
        name="n",
        train_uri="s3://f/training-sets/m/r.parquet",
        job_uri="s3://artifacts/training-jobs/m/r/job/",
        hyperparameters={"seed": "0"},
        tags={"driftline:model": "m"},
    )
    assert spot["StoppingCondition"] == {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 900}
    assert spot["EnableManagedSpotTraining"] is True and spot["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert spot["AlgorithmSpecification"]["ContainerEntrypoint"] == list(sm.ENTRYPOINT)
    assert spot["OutputDataConfig"]["S3OutputPath"] == "s3://artifacts/training-jobs/credit_default"
    assert [c["ChannelName"] for c in spot["InputDataConfig"]] == ["train", "job"]
    warm = sm.job_request(
        _cfg(compute="sagemaker", warm_pool_seconds=300),
        TARGET,
        name="n",
        train_uri="s3://a/b",
        job_uri="s3://a/c",
        hyperparameters={},
        tags={},
    )
    assert (
        warm["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 300
        and "MaxWaitTimeInSeconds" not in warm["StoppingCondition"]
    )


def _event(attempt: int = 1, max_attempts: int = 3, deadline: datetime = T0 + timedelta(hours=1)) -> dict[str, Any]:
    job = {
        "name": f"dev-driftline-train-m-abc-a{attempt}",
        "attempt": attempt,
        "max_attempts": max_attempts,
        "request": {"TrainingJobName": f"dev-driftline-train-m-abc-a{attempt}", "RoleArn": "r"},
        "deadline_at": deadline.isoformat(),
        "poll_seconds": 60,
    }
    return {"state": {"candidate": {"value": {"training_job": job}}}}


@pytest.mark.parametrize(
    ("described", "attempt", "expected"),
    [
        ({"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"}, 1, "running"),
        (
            {
                "TrainingJobStatus": "Completed",
                "SecondaryStatus": "Completed",
                "ModelArtifacts": {"S3ModelArtifacts": "s3://a/m.tar.gz"},
            },
            1,
            "completed",
        ),
        ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "Interrupted"}, 1, "retry"),
        ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxWaitTimeExceeded"}, 2, "retry"),
        ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "Interrupted"}, 3, "failed"),  # attempts used up
        (
            {"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "FailureReason": "AlgorithmError: x"},
            1,
            "failed",
        ),
        ({"TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxRuntimeExceeded"}, 1, "failed"),
    ],
)
def test_poll_states(described: dict[str, Any], attempt: int, expected: str) -> None:
    out = sm.job_status(_event(attempt), sagemaker=FakeSageMaker(described), clock=lambda: T0)
    assert out["state"] == expected
    assert out["failure_reason"] == described.get("FailureReason")


def test_a_job_past_its_deadline_raises_for_the_catch_path() -> None:
    running = FakeSageMaker({"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"})
    with pytest.raises(TrainingJobTimeoutError, match="past its deadline"):
        sm.job_status(_event(deadline=T0 - timedelta(seconds=1)), sagemaker=running, clock=lambda: T0)


def test_restart_renames_the_attempt_and_stops_after_the_last() -> None:
    fake = FakeSageMaker({})
    polled = _event(1)
    polled["state"]["training_job"] = {"value": {"job": polled["state"]["candidate"]["value"]["training_job"]}}
    out = sm.restart_job(polled, sagemaker=fake)
    assert out["job"]["attempt"] == 2 and out["job"]["name"].endswith("-a2")
    assert fake.created[0]["TrainingJobName"] == out["job"]["name"] and fake.created[0]["RoleArn"] == "r"
    with pytest.raises(TrainingJobError, match="used all 3 attempts"):
        sm.restart_job(_event(3), sagemaker=fake)


def test_stop_is_tolerant() -> None:
    running = FakeSageMaker({"TrainingJobStatus": "InProgress"})
    assert sm.stop_job(_event(), sagemaker=running)["stopped"] is True and running.stopped
    done = FakeSageMaker({"TrainingJobStatus": "Completed"})
    assert sm.stop_job(_event(), sagemaker=done) == {
        "stopped": False,
        "name": "dev-driftline-train-m-abc-a1",
        "status": "Completed",
    }
    assert sm.stop_job({"state": {}}, sagemaker=done)["stopped"] is False  # failed before any job started


@pytest.mark.parametrize("event", [{"state": "x"}, {"state": {"candidate": {"value": {"training_job": {"name": 1}}}}}])
def test_malformed_state_is_a_precise_error(event: dict[str, Any]) -> None:
    with pytest.raises(TrainingJobError):
        sm.job_status(event, sagemaker=FakeSageMaker({}), clock=lambda: T0)


def test_auto_decides_from_listing_and_one_footer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="features")
        for i, n in enumerate((1000, 3000)):
            buf = io.BytesIO()
            pq.write_table(pa.table({"x": list(range(n))}), buf)
            s3.put_object(
                Bucket="features", Key=f"curated/credit_default/date=2026-01-0{i + 1}/u{i}.parquet", Body=buf.getvalue()
            )
        s3.put_object(Bucket="features", Key="curated/credit_default/_pending/u9", Body=b"")
        est = sm.estimate_curated("credit_default", "features", s3)
        assert est.objects == 2 and 3500 <= est.rows <= 4500  # scaled from the larger file's footer
        assert sm.choose_compute(_cfg(compute="auto", auto_rows=3000), "features", s3)[0] == "sagemaker"
        compute, why = sm.choose_compute(_cfg(compute="auto", auto_rows=10_000), "features", s3)
        assert compute == "lambda" and why["estimate"]["objects"] == 2
        assert sm.choose_compute(_cfg(compute="auto", auto_rows=None, auto_bytes=1), "features", s3)[0] == "sagemaker"
        assert sm.estimate_curated("nothing", "features", s3).rows == 0
        s3.put_object(Bucket="features", Key="curated/bad/date=2026-01-01/u.parquet", Body=b"not parquet at all")
        with pytest.raises(TrainingJobError, match="not a Parquet file"):
            sm.estimate_curated("bad", "features", s3)
