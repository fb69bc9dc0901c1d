"""The real ``retrain.asl.json`` for a model with ``training.compute: sagemaker`` on moto's Step Functions
interpreter, with the emulator's SageMaker running the training entry point in a worker process
(driftline.local.sagemaker_hook) and the train and workflow functions' code running in-process.

Covers: trigger → training job → registered candidate → promoted, with the same ONNX bytes the Lambda
path registers on the same data; a failing job and a job past its max runtime (version ``rejected`` with
SageMaker's reason, the failure path, champion untouched); a job past the workflow's deadline (the Catch
path stops it); the Lambda path of the same definition unchanged (no training-job state visited).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from driftline import aws as aws_mod
from driftline.config import PlatformConfig
from driftline.datasets.credit_default import generate
from driftline.features.ingest import Ingestor, IngestTargets, S3Object
from driftline.features.schema import FeatureSetCatalog
from driftline.local.sagemaker_hook import SageMakerDelegate, install_sagemaker
from driftline.platform import LOCAL_TRAINING_IMAGE, build_platform
from driftline.registry.artifacts import read_verified
from driftline.registry.store import Registry
from driftline.retraining import sagemaker as sm_mod
from driftline.retraining.control import ControlTable
from driftline.retraining.sagemaker import SageMakerTarget
from driftline.retraining.steps import StepContext, run_step
from driftline.training.task import TrainContext, feature_store_source, register_training_job, run_training

ACCOUNT, REGION = "123456789012", "us-east-1"
FEATURE_SETS = Path(__file__).resolve().parents[2] / "examples" / "feature_sets"
MODELS = ("sm-ok", "sm-fail", "sm-slow", "sm-late", "sm-spot", "sm-spot-out", "lam-ok")


def _config() -> PlatformConfig:
    def model(name: str, compute: str) -> dict[str, Any]:
        m: dict[str, Any] = {
            "name": name,
            "feature_set": "credit_default",
            "params": {"max_iter": 20},
            "gate": {"min_metrics": {"roc_auc": 0.6}, "max_regression": 0.02},
            "deploy": {"mode": "direct"},
            "retrain": {"min_training_rows": 200},
        }
        if compute != "lambda":
            m["training"] = {"compute": compute, "max_runtime_seconds": 600}
        if name.startswith("sm-spot"):
            m["training"] |= {"spot": True, "spot_retries": 1}
        return m

    return PlatformConfig.model_validate(
        {"models": [model(n, "lambda" if n.startswith("lam") else "sagemaker") for n in MODELS]}
    )


class World:
    """Moto with the platform's data resources, the retrain state machine and the local SageMaker."""

    def __init__(self, env: dict[str, str], config: PlatformConfig, hook: SageMakerDelegate, sm_arn: str) -> None:
        self.env, self.config, self.hook, self.sm_arn = env, config, hook, sm_arn
        self.platform = build_platform(config)
        self.registry = Registry(env["REGISTRY_TABLE"])
        self.calls: list[str] = []
        self.step_ctx = StepContext(
            config=config,
            registry=self.registry,
            control=ControlTable(env["CONTROL_TABLE"]),
            feature_sets={"credit_default"},
            captures_bucket=env["CAPTURES_BUCKET"],
            approvals_topic=env["APPROVALS_TOPIC_ARN"],
            clients=aws_mod.client,
        )
        self.train_ctx = TrainContext(
            config=config,
            feature_sets=FeatureSetCatalog(FEATURE_SETS),
            registry=self.registry,
            features_bucket=env["FEATURES_BUCKET"],
            artifacts_bucket=env["ARTIFACTS_BUCKET"],
            source=feature_store_source(config),
            clients=aws_mod.client,
            sagemaker=SageMakerTarget(
                role_arn=self.platform.arn("training_role", "", ACCOUNT, REGION),
                image_uri=LOCAL_TRAINING_IMAGE,
                name_prefix=sm_mod.job_name_prefix(self.platform.prefix),
                artifacts_bucket=env["ARTIFACTS_BUCKET"],
                poll_seconds=1,
            ),
        )

    def invoke(self, fn: Any, event: Any = None) -> tuple[str, bool, str]:
        payload = json.loads(event) if isinstance(event, (str, bytes)) else event
        try:
            if fn.function_name.endswith("-train"):
                phase = payload.get("phase") or "train"
                self.calls.append(phase)
                if phase == "register_training_job":
                    out = register_training_job(payload, self.train_ctx)
                else:
                    out = run_training(payload, self.train_ctx)
            else:
                self.calls.append(payload["action"])
                out = run_step(payload, self.step_ctx)
        except Exception as e:
            return json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}), True, ""
        return json.dumps(out), False, ""

    def run(self, model: str, name: str, timeout: float = 120.0) -> dict[str, Any]:
        sfn = aws_mod.client("stepfunctions")
        body = {"model": model, "trigger": "manual", "reason": "test", "requested_by": "tester"}
        arn = sfn.start_execution(stateMachineArn=self.sm_arn, name=name, input=json.dumps(body))["executionArn"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = sfn.describe_execution(executionArn=arn)
            if d["status"] != "RUNNING":
                return dict(d)
            time.sleep(0.2)
        raise AssertionError(f"execution {name} still running; steps so far: {self.calls}")


def _ingest(env: dict[str, str]) -> None:
    table = generate(1200, "2026-01-01", "2026-04-01", seed=5)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    key = "incoming/credit_default/all.parquet"
    resp = aws_mod.client("s3").put_object(Bucket=env["FEATURES_BUCKET"], Key=key, Body=buf.getvalue())
    ingestor = Ingestor(FeatureSetCatalog(FEATURE_SETS), IngestTargets.from_env())
    obj = S3Object(
        env["FEATURES_BUCKET"], key, resp.get("VersionId"), resp["ETag"], len(buf.getvalue()), "2026-11-26T00:00:00Z"
    )
    assert ingestor.process(obj).status == "accepted"


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    from moto import mock_aws
    from moto.awslambda.models import LambdaFunction

    from driftline.local.provision import provision_data
    from tests.integration.test_retraining_workflow import provision_workflow

    config = _config()
    platform = build_platform(config)
    holder: dict[str, World] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        aws_mod.reset_clients()
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            env = provision_data(platform, aws_mod.client, REGION).env(platform)
            env["FEATURE_SETS_DIR"] = str(FEATURE_SETS)
            for k, v in env.items():
                mp.setenv(k, v)
            mp.setattr(LambdaFunction, "_invoke_lambda", lambda fn, event=None: holder["w"].invoke(fn, event))
            sm_arn = provision_workflow(platform, env)
            _ingest(env)
            with install_sagemaker(
                lambda: aws_mod.client("s3"), image_env={"FEATURE_SETS_DIR": str(FEATURE_SETS)}
            ) as hook:
                holder["w"] = World(env, config, hook, sm_arn)
                yield holder["w"]
        aws_mod.reset_clients()


def _onnx_sha(w: World, model: str, version: int) -> str:
    ref = w.registry.get_version(model, version).artifacts["onnx"]
    return hashlib.sha256(read_verified(ref)).hexdigest()


def test_sagemaker_run_registers_and_promotes_the_same_model_as_the_lambda(world: World) -> None:
    world.calls.clear()
    d = world.run("sm-ok", "sm-ok-1")
    assert d["status"] == "SUCCEEDED", (d, world.calls)
    assert world.calls[:2] == ["validate", "train"]
    assert "training_job_status" in world.calls and "register_training_job" in world.calls
    assert world.calls[-2:] == ["deploy", "promote"]
    mv = world.registry.get_version("sm-ok", 1)
    assert mv.status == "approved" and world.registry.aliases("sm-ok").champion == 1
    job = mv.lineage["training_job"]
    assert job["status"] == "Completed" and job["name"].startswith(f"{world.platform.prefix}-train-sm-ok-")
    assert job["image"] == LOCAL_TRAINING_IMAGE and mv.lineage["training_set"]["uri"].endswith(".parquet")
    assert set(mv.artifacts) >= {"onnx", "profile", "metrics", "skops"}

    world.calls.clear()  # the Lambda path of the same definition, on the same curated data
    d = world.run("lam-ok", "lam-ok-1")
    assert d["status"] == "SUCCEEDED", d
    assert world.calls == ["validate", "train", "gate", "deploy", "promote"]
    lam = world.registry.get_version("lam-ok", 1)
    assert "training_job" not in lam.lineage
    # training is deterministic (fixed seed, one fit thread): the very same ONNX graph and metrics
    assert lam.lineage["training_set"]["sha256"] == mv.lineage["training_set"]["sha256"]
    assert _onnx_sha(world, "lam-ok", 1) == _onnx_sha(world, "sm-ok", 1)
    assert lam.metrics == mv.metrics


def test_failed_job_rejects_the_version_and_runs_the_failure_path(world: World, credit_fs: Any) -> None:
    reg = world.registry  # a champion serving before the run
    v = reg.next_version("sm-fail")
    reg.register(
        "sm-fail",
        version=v,
        metrics={"roc_auc": 0.7},
        input_schema=credit_fs.input_schema(),
        feature_set="credit_default",
    )
    reg.approve("sm-fail", v, "tester", "seed")
    reg.promote("sm-fail", v, "tester", "seed")
    world.hook.image_env["FEATURE_SETS_DIR"] = "/nonexistent/feature_sets"  # the image lacks the feature sets
    try:
        d = world.run("sm-fail", "sm-fail-1")
    finally:
        world.hook.image_env["FEATURE_SETS_DIR"] = str(FEATURE_SETS)
    assert d["status"] == "FAILED", d
    assert world.calls[-2:] == ["register_training_job", "record_failure"]
    mv = reg.get_version("sm-fail", 2)
    assert mv.status == "rejected"
    assert "ended Failed (Failed): FeatureSetError" in mv.reason and "feature set directory not found" in mv.reason
    aliases = reg.aliases("sm-fail", consistent=True)
    assert (aliases.champion, aliases.challenger) == (1, None)


def test_job_past_max_runtime_is_rejected(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = world.config.model("sm-slow")
    quick = cfg.model_copy(update={"training": cfg.training.model_copy(update={"max_runtime_seconds": 1})})
    models = tuple(quick if m.name == "sm-slow" else m for m in world.config.models)
    monkeypatch.setattr(world.train_ctx, "config", world.config.model_copy(update={"models": models}))
    d = world.run("sm-slow", "sm-slow-1")
    assert d["status"] == "FAILED", d
    mv = world.registry.get_version("sm-slow", 1)
    assert mv.status == "rejected" and "Stopped (MaxRuntimeExceeded)" in mv.reason, mv.reason


def test_job_past_the_workflow_deadline_is_stopped(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # the deadline is the job's bound plus a margin; a negative margin puts it a second after the start
    monkeypatch.setattr(sm_mod, "DEADLINE_MARGIN_SECONDS", -599)
    world.calls.clear()
    d = world.run("sm-late", "sm-late-1")
    assert d["status"] == "FAILED", d
    assert world.calls[-2:] == ["stop_training_job", "record_failure"], world.calls
    jobs = aws_mod.client("sagemaker").list_training_jobs(NameContains="sm-late")["TrainingJobSummaries"]
    name = jobs[0]["TrainingJobName"]
    world.hook.wait(30)
    status = aws_mod.client("sagemaker").describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
    assert status == "Stopped"
    history = aws_mod.client("stepfunctions").get_execution_history(executionArn=d["executionArn"])["events"]
    causes = [e for e in history if e["type"] == "TaskFailed"]
    assert any("TrainingJobTimeoutError" in json.dumps(e, default=str) for e in causes)


def test_spot_interruption_is_retried_per_config(world: World) -> None:
    world.hook.interrupt_next = 1  # the first attempt loses its spot capacity
    world.calls.clear()
    d = world.run("sm-spot", "sm-spot-1")
    assert d["status"] == "SUCCEEDED", (d, world.calls)
    assert world.calls.count("restart_training_job") == 1
    job = world.registry.get_version("sm-spot", 1).lineage["training_job"]
    assert job["attempt"] == 2 and job["name"].endswith("-a2") and job["spot"] is True


def test_spot_interruptions_beyond_the_retries_fail_the_run(world: World) -> None:
    world.hook.interrupt_next = 2  # spot_retries 1: two attempts, both interrupted
    try:
        d = world.run("sm-spot-out", "sm-spot-out-1")
    finally:
        world.hook.interrupt_next = 0
    assert d["status"] == "FAILED", d
    mv = world.registry.get_version("sm-spot-out", 1)
    assert mv.status == "rejected" and "Stopped (Interrupted): Spot capacity was reclaimed" in mv.reason
    assert mv.lineage["training_job"]["attempt"] == 2
