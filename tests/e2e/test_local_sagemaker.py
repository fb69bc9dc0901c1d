"""Training on SageMaker on the local platform, with every real handler: a labeled upload triggers
retraining of two models of one feature set, one trained by the ``train`` function and one by a
SageMaker training job (the emulator runs the entry point in a worker process); both end promoted,
with the same ONNX model, and the job's version records the job."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from driftline import aws as aws_mod
from driftline.config import PlatformConfig
from driftline.datasets.credit_default import generate
from driftline.local.runtime import LocalOptions, LocalPlatform
from driftline.platform import LOCAL_TRAINING_IMAGE, build_platform
from driftline.registry.artifacts import read_verified
from driftline.registry.store import Registry, UnknownModelError
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _model(name: str, compute: str) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": name,
        "feature_set": "credit_default",
        "params": {"max_iter": 30},
        "gate": {"min_metrics": {"roc_auc": 0.6}},
        "deploy": {"mode": "direct"},
        "retrain": {"on_drift": False, "cooldown_minutes": 0, "min_training_rows": 200},
    }
    if compute != "lambda":
        m["training"] = {"compute": compute, "max_runtime_seconds": 600}
    return m


@pytest.fixture(scope="module")
def local(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[LocalPlatform]:
    cfg = PlatformConfig.model_validate(
        {"env_name": "e2esm", "models": [_model("by-lambda", "lambda"), _model("by-sagemaker", "sagemaker")]}
    )
    options = LocalOptions(
        config_path=ROOT / "cdk.json",
        state_dir=Path(tempfile.mkdtemp(prefix="driftline-e2e-sagemaker-")),
        port=free_port(),
        api_port=free_port(),
        persist=False,
        echo_function_logs=False,
    )
    from moto.core.config import default_user_config

    before = (os.environ.get("MOTO_PORT"), default_user_config.get("stepfunctions"))
    lp = LocalPlatform(build_platform(cfg), options, out=lambda _: None)
    lp.start()
    monkeypatch_module.setenv("AWS_ENDPOINT_URL", lp.endpoint)
    aws_mod.reset_clients()
    try:
        yield lp
    finally:
        lp.stop()
        aws_mod.reset_clients()
    # The platform's process-wide moto settings are put back: left executing, the interpreter made every
    # later in-process moto test in this worker run its state machines (test_retraining_triggers failed in CI).
    assert (os.environ.get("MOTO_PORT"), default_user_config.get("stepfunctions")) == before


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _champion(registry: Registry, model: str) -> int | None:
    try:
        return registry.aliases(model, consistent=True).champion
    except UnknownModelError:
        return None


def test_labeled_upload_retrains_through_a_training_job(local: LocalPlatform) -> None:
    p = local.platform
    s3 = local.client("s3")
    buf = io.BytesIO()
    pq.write_table(generate(3000, "2026-01-01", "2026-04-01", seed=11), buf)
    features = p.bucket_name("features", local.account, local.region)
    s3.put_object(Bucket=features, Key="incoming/credit_default/labeled.parquet", Body=buf.getvalue())

    registry = Registry(p.name("registry"))
    deadline = time.monotonic() + 420
    while not all(_champion(registry, m) == 1 for m in ("by-lambda", "by-sagemaker")):
        if time.monotonic() > deadline:
            sfn = local.client("stepfunctions")
            machine = f"arn:aws:states:{local.region}:{local.account}:stateMachine:{p.name('retrain')}"
            runs = sfn.list_executions(stateMachineArn=machine)["executions"]
            raise AssertionError(f"not promoted in time; runs: {[(r['name'], r['status']) for r in runs]}")
        time.sleep(1.0)

    by_job = registry.get_version("by-sagemaker", 1)
    by_fn = registry.get_version("by-lambda", 1)
    job = by_job.lineage["training_job"]
    assert job["status"] == "Completed" and job["image"] == LOCAL_TRAINING_IMAGE
    assert job["name"].startswith(f"{p.prefix}-train-by-sagemaker-")
    assert "training_job" not in by_fn.lineage
    # one feature set, one curated upload: the same training rows, the same deterministic fit
    assert by_job.lineage["training_set"]["sha256"] == by_fn.lineage["training_set"]["sha256"]
    digests = {hashlib.sha256(read_verified(v.artifacts["onnx"])).hexdigest() for v in (by_job, by_fn)}
    assert len(digests) == 1 and by_job.metrics == by_fn.metrics
    described = local.client("sagemaker").describe_training_job(TrainingJobName=job["name"])
    assert described["TrainingJobStatus"] == "Completed"
    tar = described["ModelArtifacts"]["S3ModelArtifacts"]
    assert tar.endswith(f"/training-jobs/by-sagemaker/{job['name']}/output/model.tar.gz")
    assert json.dumps(by_job.metrics) == json.dumps(by_fn.metrics)
