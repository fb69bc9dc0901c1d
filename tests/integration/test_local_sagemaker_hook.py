"""The emulator's CreateTrainingJob runs the entry point in a worker process (driftline.local.sagemaker_hook):
InProgress while it runs, Completed with model.tar.gz at the output path, Failed with the failure file's
text, Stopped on StopTrainingJob and on MaxRuntimeInSeconds."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from driftline.config import ModelConfig
from driftline.local.sagemaker_hook import SageMakerDelegate, install_sagemaker
from driftline.training.model_dir import read_model_dir, read_model_tar

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "sm-local"
ROLE = "arn:aws:iam::123456789012:role/sm"
ENTRY = ["python3", "-m", "driftline.training.sagemaker_entry"]


@pytest.fixture
def sm(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, SageMakerDelegate]]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        image_env = {"FEATURE_SETS_DIR": str(ROOT / "examples" / "feature_sets")}
        with install_sagemaker(
            lambda: boto3.client("s3", region_name="us-east-1"),
            image_env=image_env,
            entry_prefixes=("driftline.", "tests.fixtures."),
        ) as hook:
            yield s3, boto3.client("sagemaker", region_name="us-east-1"), hook


def _put_inputs(s3: Any, table: pa.Table | None, fs: Any) -> None:
    cfg = ModelConfig(
        name="credit-default",
        feature_set="credit_default",
        params={"max_iter": 20},
        retrain={"min_training_rows": 200},  # type: ignore[arg-type]
    )
    if table is not None:
        buf = io.BytesIO()
        pq.write_table(table, buf)
        s3.put_object(Bucket=BUCKET, Key="training-sets/credit-default/run-1.parquet", Body=buf.getvalue())
    job = {
        "model_config": cfg.model_dump(mode="json"),
        "feature_set": fs.name,
        "feature_set_fingerprint": fs.fingerprint,
    }
    s3.put_object(Bucket=BUCKET, Key="jobs/run-1/job.json", Body=json.dumps(job).encode())


def _create(
    client: Any, name: str, entry: list[str] = ENTRY, env: dict[str, str] | None = None, runtime: int = 600
) -> None:
    client.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={
            "TrainingImage": "local/driftline-train",
            "TrainingInputMode": "File",
            "ContainerEntrypoint": entry,
        },
        RoleArn=ROLE,
        HyperParameters={"seed": "0"},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/training-sets/credit-default/run-1.parquet",
                    }
                },
            },
            {
                "ChannelName": "job",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/jobs/run-1/"}},
            },
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/training-jobs"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": runtime},
        Environment=env or {},
    )


def _wait(client: Any, name: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        d: dict[str, Any] = client.describe_training_job(TrainingJobName=name)
        if d["TrainingJobStatus"] not in ("InProgress", "Stopping") or time.monotonic() > deadline:
            return d
        time.sleep(0.1)


def test_job_runs_the_entry_point_and_uploads_model_tar(sm: tuple[Any, Any, SageMakerDelegate], credit_fs: Any) -> None:
    from driftline.datasets.credit_default import generate

    s3, client, _ = sm
    _put_inputs(s3, generate(1200, "2026-01-01", "2026-04-01", seed=5), credit_fs)
    _create(client, "dl-credit-1")
    first = client.describe_training_job(TrainingJobName="dl-credit-1")
    assert first["TrainingJobStatus"] == "InProgress" and "ModelArtifacts" not in first
    done = _wait(client, "dl-credit-1")
    assert (done["TrainingJobStatus"], done["SecondaryStatus"]) == ("Completed", "Completed"), done.get("FailureReason")
    assert done["BillableTimeInSeconds"] >= 1 and done["TrainingTimeInSeconds"] == done["BillableTimeInSeconds"]
    uri = done["ModelArtifacts"]["S3ModelArtifacts"]
    assert uri == f"s3://{BUCKET}/training-jobs/dl-credit-1/output/model.tar.gz"
    body = s3.get_object(Bucket=BUCKET, Key="training-jobs/dl-credit-1/output/model.tar.gz")["Body"].read()
    trained, _doc = read_model_dir(read_model_tar(body), credit_fs)
    assert not isinstance(trained, Exception) and trained.metrics["roc_auc"] > 0.6
    with pytest.raises(ClientError, match="must be unique"):
        _create(client, "dl-credit-1")


def test_failing_entry_point_reports_the_failure_file(sm: tuple[Any, Any, SageMakerDelegate], credit_fs: Any) -> None:
    s3, client, _ = sm
    _put_inputs(s3, None, credit_fs)  # no training set: the train channel is empty
    _create(client, "dl-credit-2")
    done = _wait(client, "dl-credit-2")
    assert (done["TrainingJobStatus"], done["SecondaryStatus"]) == ("Failed", "Failed")
    assert done["FailureReason"].startswith("EntryError: channel 'train' has no Parquet file")
    assert "ModelArtifacts" not in done
    _create(client, "dl-credit-3", ["python3", "-m", "tests.fixtures.sagemaker_entries"], {"EXIT_CODE": "3"})
    assert _wait(client, "dl-credit-3")["FailureReason"].startswith("AlgorithmError: exit code 3")


def test_max_runtime_and_stop(sm: tuple[Any, Any, SageMakerDelegate], credit_fs: Any) -> None:
    s3, client, _ = sm
    _put_inputs(s3, None, credit_fs)
    sleeper = ["python3", "-m", "tests.fixtures.sagemaker_entries"]
    _create(client, "dl-slow", sleeper, {"SLEEP_SECONDS": "30"}, runtime=1)
    done = _wait(client, "dl-slow", timeout=20)
    assert (done["TrainingJobStatus"], done["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert "MaxRuntimeInSeconds" in done["FailureReason"]
    _create(client, "dl-stopped", sleeper, {"SLEEP_SECONDS": "30"})
    time.sleep(0.5)
    client.stop_training_job(TrainingJobName="dl-stopped")
    done = _wait(client, "dl-stopped", timeout=20)
    assert (done["TrainingJobStatus"], done["SecondaryStatus"]) == ("Stopped", "Stopped")
    with pytest.raises(ClientError, match="not in progress"):
        client.stop_training_job(TrainingJobName="dl-stopped")
    with pytest.raises(ClientError, match="Could not find training job"):
        client.stop_training_job(TrainingJobName="nope")


def test_foreign_entry_points_are_refused(sm: tuple[Any, Any, SageMakerDelegate], credit_fs: Any) -> None:
    s3, client, _ = sm
    _put_inputs(s3, None, credit_fs)
    for entry in (["/bin/sh", "-c", "rm -rf /"], ["python3", "-m", "os"], ["python3", "-m", "driftline.x;y"]):
        with pytest.raises(ClientError, match="ContainerEntrypoint"):
            _create(client, "dl-foreign", entry)


def test_a_job_the_platform_lost_is_reported_failed(sm: tuple[Any, Any, SageMakerDelegate], credit_fs: Any) -> None:
    s3, client, hook = sm
    _put_inputs(s3, None, credit_fs)
    _create(client, "dl-orphan", ["python3", "-m", "tests.fixtures.sagemaker_entries"], {"SLEEP_SECONDS": "0"})
    hook.wait(30)
    (key,) = [k for k in hook.runs if k[2] == "dl-orphan"]
    del hook.runs[key]  # as after a restart: the job is stored (persistence) but no process runs it
    from moto.sagemaker.models import sagemaker_backends

    sagemaker_backends[key[0]][key[1]].training_jobs["dl-orphan"].training_job_status = "InProgress"
    d = client.describe_training_job(TrainingJobName="dl-orphan")
    assert d["TrainingJobStatus"] == "Failed" and "local platform stopped while this job ran" in d["FailureReason"]
