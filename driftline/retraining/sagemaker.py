"""Training on SageMaker for a model whose ``training.compute`` asks for it (or ``auto`` decides so).

The retraining workflow's ``Train`` step (the ``train`` Lambda) decides where the model trains
(:func:`choose_compute`). For SageMaker it builds and stores the point-in-time training set as it
does for itself, writes the job description (``job.json``: the model's configuration, feature set
name and fingerprint) next to the job's output prefix, and starts a training job running the
``train`` Lambda's own image with the entry point :mod:`driftline.training.sagemaker_entry`
(:func:`start_job`). The workflow then polls (Wait → ``training_job_status`` → Choice: moto's
interpreter has no ``.sync`` for SageMaker, and the loop is the same on AWS), restarts a job a spot
interruption ended (``restart_training_job``, up to ``training.spot_retries`` times), and hands the
finished job to ``register_training_job`` (the ``train`` Lambda again), which reads ``model.tar.gz``
back and registers through :func:`driftline.training.publish.register_result`, the function the
Lambda path registers with. A failed or stopped job registers a ``rejected`` version with
SageMaker's ``FailureReason`` and the workflow's failure path runs.

Stopping: a step of the loop that fails (or a job running past its deadline: the configured wait
bound times the attempts, plus a margin) is caught by the definition, whose ``StopTrainingJob``
step stops the job before ``RecordFailure``. An execution stopped from the console or the API runs
no Catch: the job then ends by itself at its ``MaxRuntimeInSeconds`` (``MaxWaitTimeInSeconds`` for
spot), which is why both are always set.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from driftline.config import ModelConfig

__all__ = [
    "AWS_POLL_SECONDS",
    "DEADLINE_MARGIN_SECONDS",
    "ENTRYPOINT",
    "IMAGE_TASK_ROOT",
    "JOB_NAME_INFIX",
    "LOCAL_POLL_SECONDS",
    "SPOT_INTERRUPTED",
    "TRAINING_JOBS_PREFIX",
    "CuratedEstimate",
    "SageMakerTarget",
    "TrainingJobError",
    "TrainingJobTimeoutError",
    "choose_compute",
    "current_job",
    "estimate_curated",
    "job_name",
    "job_name_prefix",
    "job_request",
    "job_status",
    "restart_job",
    "start_job",
    "stop_job",
]

TRAINING_JOBS_PREFIX = "training-jobs"
"""Artifacts-bucket prefix of everything a training job reads or writes: ``<prefix>/<model>/<run>/job/``
(its description) and ``<prefix>/<model>/`` (SageMaker's output path; it adds ``<job>/output/model.tar.gz``)."""
JOB_NAME_INFIX = "train"
"""Training jobs are named ``<platform prefix>-train-...``: the IAM scope ``training-job/<that>-*``."""
ENTRYPOINT = ("python3", "-m", "driftline.training.sagemaker_entry")
IMAGE_TASK_ROOT = "/var/task"
"""Where the ``train`` image holds the code, feature sets and trainers (docker/train.Dockerfile)."""
AWS_POLL_SECONDS = 60
LOCAL_POLL_SECONDS = 1
DEADLINE_MARGIN_SECONDS = 900
"""Added to a job's own bound before the workflow stops it: provisioning, image pull and upload."""
SPOT_INTERRUPTED = frozenset({"Interrupted", "MaxWaitTimeExceeded"})
"""Secondary statuses of a job that ended because spot capacity was taken back or never came."""
_NAME_BAD = re.compile(r"[^a-zA-Z0-9-]+")
_FOOTER_BYTES = 8


class TrainingJobError(RuntimeError):
    """A training-job step cannot proceed (malformed state, unknown job); the workflow's Catch stops the job."""


class TrainingJobTimeoutError(TrainingJobError):
    """The job ran past its deadline; the workflow's Catch stops it and records the failure."""


@dataclass(frozen=True)
class SageMakerTarget:
    """Where training jobs run: the execution role, the training image and the job name prefix."""

    role_arn: str
    image_uri: str
    name_prefix: str
    artifacts_bucket: str
    poll_seconds: int = AWS_POLL_SECONDS

    @classmethod
    def from_env(cls, artifacts_bucket: str) -> SageMakerTarget | None:
        """From ``SAGEMAKER_ROLE_ARN``, ``TRAINING_IMAGE_URI`` and ``TRAINING_JOB_PREFIX`` (the platform
        definition's); None when the function was deployed without them."""
        env = os.environ
        role, image, prefix = (
            env.get(k, "") for k in ("SAGEMAKER_ROLE_ARN", "TRAINING_IMAGE_URI", "TRAINING_JOB_PREFIX")
        )
        if not role or not image or not prefix:
            return None
        local = env.get("DRIFTLINE_LOCAL") == "1"
        return cls(
            role_arn=role,
            image_uri=image,
            name_prefix=prefix,
            artifacts_bucket=artifacts_bucket,
            poll_seconds=LOCAL_POLL_SECONDS if local else AWS_POLL_SECONDS,
        )


def job_name_prefix(platform_prefix: str) -> str:
    return f"{platform_prefix}-{JOB_NAME_INFIX}"


def job_name(prefix: str, model: str, run_id: str, attempt: int) -> str:
    """``<prefix>-<model>-<hash of the run>-a<attempt>``: at most 63 characters, unique per run and attempt."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
    tail = f"-{digest}-a{attempt}"
    head = _NAME_BAD.sub("-", f"{prefix}-{model}").strip("-")
    return head[: 63 - len(tail)].rstrip("-") + tail


# ---------------------------------------------------------------- where to train
@dataclass(frozen=True)
class CuratedEstimate:
    """The curated data's size from metadata only: one S3 listing and one Parquet footer."""

    objects: int
    bytes: int
    rows: int

    def to_dict(self) -> dict[str, int]:
        return {"objects": self.objects, "bytes": self.bytes, "rows": self.rows}


def _footer_rows(s3: Any, bucket: str, key: str, size: int) -> int:
    """Row count from the object's Parquet footer (two range reads, the data is never read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tail = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={size - _FOOTER_BYTES}-")["Body"].read()
    if len(tail) != _FOOTER_BYTES or tail[4:] != b"PAR1":
        raise TrainingJobError(f"s3://{bucket}/{key} is not a Parquet file (no footer)")
    length = struct.unpack("<I", tail[:4])[0]
    footer = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={size - _FOOTER_BYTES - length}-")["Body"].read()
    return int(pq.read_metadata(pa.BufferReader(b"PAR1" + footer)).num_rows)


def estimate_curated(feature_set: str, bucket: str, s3: Any) -> CuratedEstimate:
    """Objects and bytes of the feature set's curated Parquet files; rows scaled from the largest one's footer.

    An estimate on purpose: reading every footer of a large feature set would cost what the decision
    is meant to avoid; curated files share one writer and compression, so rows per byte carry over.
    """
    from driftline.contracts import curated_root

    listed: list[tuple[str, int]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=curated_root(feature_set)):
        listed += [(o["Key"], int(o["Size"])) for o in page.get("Contents", []) if o["Key"].endswith(".parquet")]
    total = sum(n for _, n in listed)
    if not listed or total == 0:
        return CuratedEstimate(len(listed), total, 0)
    key, size = max(listed, key=lambda kv: kv[1])
    rows = _footer_rows(s3, bucket, key, size)
    return CuratedEstimate(len(listed), total, round(rows * total / size))


def choose_compute(cfg: ModelConfig, bucket: str, s3: Any) -> tuple[str, dict[str, Any]]:
    """``lambda`` or ``sagemaker`` for this run, and why (the estimate for ``auto``)."""
    t = cfg.training
    if t.compute != "auto":
        return t.compute, {"configured": t.compute}
    est = estimate_curated(cfg.feature_set, bucket, s3)
    by_rows = t.auto_rows is not None and est.rows >= t.auto_rows
    by_bytes = t.auto_bytes is not None and est.bytes >= t.auto_bytes
    why = {"configured": "auto", "estimate": est.to_dict(), "auto_rows": t.auto_rows, "auto_bytes": t.auto_bytes}
    return ("sagemaker" if by_rows or by_bytes else "lambda"), why


# ---------------------------------------------------------------- starting a job
def job_request(
    cfg: ModelConfig,
    target: SageMakerTarget,
    *,
    name: str,
    train_uri: str,
    job_uri: str,
    hyperparameters: Mapping[str, str],
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """The ``CreateTrainingJob`` parameters (JSON-serializable: the workflow keeps them for a restart)."""
    t = cfg.training
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": t.max_runtime_seconds}
    if t.spot:
        stopping["MaxWaitTimeInSeconds"] = t.wait_seconds
    resources: dict[str, Any] = {"InstanceType": t.instance_type, "InstanceCount": 1, "VolumeSizeInGB": t.volume_gb}
    if t.warm_pool_seconds:
        resources["KeepAlivePeriodInSeconds"] = t.warm_pool_seconds
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": target.image_uri,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": list(ENTRYPOINT),
        },
        "RoleArn": target.role_arn,
        "HyperParameters": dict(hyperparameters),
        "InputDataConfig": [
            _channel("train", train_uri),
            _channel("job", job_uri),
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{target.artifacts_bucket}/{TRAINING_JOBS_PREFIX}/{cfg.name}"},
        "ResourceConfig": resources,
        "StoppingCondition": stopping,
        "EnableManagedSpotTraining": t.spot,
        "Environment": {
            "FEATURE_SETS_DIR": f"{IMAGE_TASK_ROOT}/feature_sets",
            "TRAINERS_DIR": f"{IMAGE_TASK_ROOT}/trainers",
            "PYTHONPATH": IMAGE_TASK_ROOT,
        },
        "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
    }
    return request


def _channel(name: str, uri: str) -> dict[str, Any]:
    """An S3 channel; a prefix naming one object (the training set) selects just that object."""
    source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}, "InputMode": "File"}


def _hyperparameters(overrides: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {"seed": str(int(overrides.get("seed") or 0))}
    if overrides.get("algorithm"):
        out["algorithm"] = str(overrides["algorithm"])
    if overrides.get("params") is not None:
        out["params"] = json.dumps(overrides["params"], sort_keys=True)
    if overrides.get("validation_fraction") is not None:
        out["validation_fraction"] = str(overrides["validation_fraction"])
    return out


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds")


def _deadline(cfg: ModelConfig, started: datetime, attempts: int) -> str:
    return _iso(started + timedelta(seconds=cfg.training.wait_seconds * attempts + DEADLINE_MARGIN_SECONDS))


def start_job(
    cfg: ModelConfig,
    fs: Any,
    target: SageMakerTarget,
    *,
    run_id: str,
    trigger: str,
    training_set: Mapping[str, Any],
    overrides: Mapping[str, Any],
    s3: Any,
    sagemaker: Any,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Write the job description and start attempt 1; returns what the workflow polls with."""
    job_key = f"{TRAINING_JOBS_PREFIX}/{cfg.name}/{run_id}/job/"
    doc = {
        "model_config": cfg.model_dump(mode="json"),
        "feature_set": fs.name,
        "feature_set_fingerprint": fs.fingerprint,
    }
    s3.put_object(
        Bucket=target.artifacts_bucket,
        Key=job_key + "job.json",
        Body=json.dumps(doc, sort_keys=True).encode(),
        ContentType="application/json",
    )
    name = job_name(target.name_prefix, cfg.name, run_id, 1)
    request = job_request(
        cfg,
        target,
        name=name,
        train_uri=str(training_set["uri"]),
        job_uri=f"s3://{target.artifacts_bucket}/{job_key}",
        hyperparameters=_hyperparameters(overrides),
        tags={"driftline:model": cfg.name, "driftline:run": run_id[:256], "driftline:trigger": trigger[:256]},
    )
    sagemaker.create_training_job(**request)
    started = clock()
    attempts = 1 + (cfg.training.spot_retries if cfg.training.spot else 0)
    return {
        "name": name,
        "attempt": 1,
        "max_attempts": attempts,
        "request": request,
        "started_at": _iso(started),
        "deadline_at": _deadline(cfg, started, attempts),
        "poll_seconds": target.poll_seconds,
    }


# ---------------------------------------------------------------- polling, restarting, stopping
def current_job(state: Mapping[str, Any]) -> dict[str, Any]:
    """The job the run is on: the last poll's (a restart replaces it), else the one the Train step started."""
    polled = state.get("training_job")
    if isinstance(polled, Mapping) and isinstance(polled.get("value"), Mapping):
        job = polled["value"].get("job")
        if isinstance(job, Mapping):
            return dict(job)
    candidate = state.get("candidate")
    if isinstance(candidate, Mapping) and isinstance(candidate.get("value"), Mapping):
        job = candidate["value"].get("training_job")
        if isinstance(job, Mapping):
            return dict(job)
    raise TrainingJobError(f"the workflow state has no training job (keys: {sorted(state)})")


def _job_of(event: Mapping[str, Any]) -> dict[str, Any]:
    state = event.get("state")
    if not isinstance(state, Mapping):
        raise TrainingJobError(f"'state' must be an object, got {type(state).__name__}")
    job = current_job(state)
    for key, kind in (
        ("name", str),
        ("attempt", int),
        ("max_attempts", int),
        ("request", Mapping),
        ("deadline_at", str),
    ):
        if not isinstance(job.get(key), kind):
            raise TrainingJobError(f"the training job record lacks {key!r} ({kind.__name__})")
    return job


def job_status(event: Mapping[str, Any], *, sagemaker: Any, clock: Callable[[], datetime]) -> dict[str, Any]:
    """Describe the current job; ``state``: running, completed, retry (a spot interruption with attempts
    left) or failed."""
    job = _job_of(event)
    d = sagemaker.describe_training_job(TrainingJobName=job["name"])
    status, secondary = str(d.get("TrainingJobStatus")), str(d.get("SecondaryStatus", ""))
    out: dict[str, Any] = {
        "job": job,
        "status": status,
        "secondary_status": secondary,
        "failure_reason": d.get("FailureReason"),
        "artifact": (d.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        "billable_seconds": d.get("BillableTimeInSeconds"),
    }
    if status in ("InProgress", "Stopping"):
        if clock() > datetime.fromisoformat(job["deadline_at"]):
            raise TrainingJobTimeoutError(
                f"training job {job['name']} is still {status} ({secondary}) past its deadline {job['deadline_at']}"
            )
        out["state"] = "running"
    elif status == "Completed":
        out["state"] = "completed"
    elif secondary in SPOT_INTERRUPTED and job["attempt"] < job["max_attempts"]:
        out["state"] = "retry"
    else:
        out["state"] = "failed"
    return out


def restart_job(event: Mapping[str, Any], *, sagemaker: Any) -> dict[str, Any]:
    """Start the next attempt of a job a spot interruption ended (same request, new name)."""
    job = _job_of(event)
    if job["attempt"] >= job["max_attempts"]:
        raise TrainingJobError(f"training job {job['name']} has used all {job['max_attempts']} attempts")
    attempt = job["attempt"] + 1
    name = re.sub(r"-a\d+$", f"-a{attempt}", job["name"])
    request = {**job["request"], "TrainingJobName": name}
    sagemaker.create_training_job(**request)
    return {"job": {**job, "name": name, "attempt": attempt, "request": request}, "state": "running"}


def stop_job(event: Mapping[str, Any], *, sagemaker: Any) -> dict[str, Any]:
    """Stop the current job if it still runs (the Catch path of the poll loop); tolerant of a finished job."""
    try:
        job = _job_of(event)
    except TrainingJobError as e:
        return {"stopped": False, "reason": str(e)}
    status = str(sagemaker.describe_training_job(TrainingJobName=job["name"]).get("TrainingJobStatus"))
    if status != "InProgress":
        return {"stopped": False, "name": job["name"], "status": status}
    sagemaker.stop_training_job(TrainingJobName=job["name"])
    return {"stopped": True, "name": job["name"], "status": "Stopping"}
