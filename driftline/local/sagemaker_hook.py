"""The emulator's SageMaker runs training jobs: ``CreateTrainingJob`` starts the job's entry point in a
worker process on this machine (no container), as SageMaker would run it in the training image.

moto 5.2.5 stores a training job and reports it ``Completed`` at once; nothing runs, no artifact is
written, and it has no ``StopTrainingJob``. Guarded replacements, in the style of
:mod:`driftline.local.moto_hooks` (pinned moto, refuse to start when a hook point is gone):

- ``SageMakerResponse.create_training_job`` refuses a name already used (as SageMaker does), records
  the job through moto, then starts it: the channels' S3 objects are downloaded from the emulator
  into a temporary ``/opt/ml``-like tree, the hyperparameters written, and the entry point
  (``ContainerEntrypoint`` ``python3 -m <module>``, a ``driftline.`` module) run with the job's
  ``Environment`` plus the checkout's paths for what the image holds (``image_env``);
- ``SageMakerModelBackend.describe_training_job`` reports the run's state: ``InProgress``
  (``Downloading``/``Training``/``Uploading``), then ``Completed`` with ``model.tar.gz`` uploaded to
  ``<S3OutputPath>/<job>/output/``, ``Failed`` with the failure file's text (or the exit status) as
  ``FailureReason``, ``Stopped`` with ``MaxRuntimeExceeded`` when ``MaxRuntimeInSeconds`` passed (the
  process is killed), or ``Stopped`` after ``StopTrainingJob``;
- ``SageMakerResponse.stop_training_job`` (absent from moto) kills the process.

Not emulated (AWS only): the image pull, instance provisioning, spot capacity and interruptions,
warm pools, the job's CloudWatch logs and metrics.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "FAILURE_LIMIT",
    "SAGEMAKER_HOOK_POINTS",
    "SOURCE_ROOT",
    "JobRun",
    "SageMakerDelegate",
    "install_sagemaker",
    "sagemaker_hook_points",
]

SAGEMAKER_HOOK_POINTS = (
    ("SageMakerResponse", "create_training_job"),
    ("SageMakerModelBackend", "describe_training_job"),
)
SOURCE_ROOT = Path(__file__).resolve().parents[2]
FAILURE_LIMIT = 1024
"""SageMaker keeps this many characters of the failure file."""


def sagemaker_hook_points() -> list[tuple[Any, str]]:
    """(owner, attribute) of every moto method the hook replaces, for ``check_moto``."""
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    owners = {"SageMakerResponse": SageMakerResponse, "SageMakerModelBackend": SageMakerModelBackend}
    return [(owners[o], name) for o, name in SAGEMAKER_HOOK_POINTS]


def _validation(message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError

    return JsonRESTError("ValidationException", message)


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise _validation(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


@dataclass
class JobRun:
    """One job's local run: its state as DescribeTrainingJob reports it."""

    name: str
    status: str = "InProgress"
    secondary: str = "Starting"
    failure_reason: str | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended: datetime | None = None
    artifact: str | None = None
    process: subprocess.Popen[bytes] | None = None
    stop_requested: bool = False
    thread: threading.Thread | None = None

    def finish(self, status: str, secondary: str, reason: str | None = None) -> None:
        self.status, self.secondary, self.failure_reason = status, secondary, reason
        self.ended = datetime.now(UTC)


class SageMakerDelegate:
    """The replacements; ``s3`` makes an S3 client of the emulator, ``image_env`` maps the image's paths."""

    def __init__(
        self,
        s3: Callable[[], Any],
        *,
        image_env: Mapping[str, str] | None = None,
        work_dir: str | Path | None = None,
        originals: Mapping[str, Any] | None = None,
        entry_prefixes: tuple[str, ...] = ("driftline.",),
    ) -> None:
        self.s3 = s3
        self.entry_prefixes = entry_prefixes
        self.image_env = dict(image_env or {})
        self.work_dir = Path(work_dir) if work_dir else None
        self.originals = dict(originals or {})
        self.runs: dict[tuple[str, str, str], JobRun] = {}
        self._lock = threading.Lock()
        self.interrupt_next = 0
        """Simulate spot interruptions: the next this many managed-spot jobs end ``Stopped``/``Interrupted``
        after their download, as SageMaker reports a job whose spot capacity was reclaimed (tests of the
        workflow's restart path; capacity is never really reclaimed locally)."""

    # ---- moto entry points ----
    def response_create_training_job(self, response: Any) -> Any:
        backend = response.sagemaker_backend
        name = response._get_param("TrainingJobName")
        if name in backend.training_jobs:
            arn = backend.training_jobs[name].arn
            raise _validation(f"Training job names must be unique within an AWS account and region, and {arn} exists")
        spec = response._get_param("AlgorithmSpecification") or {}
        module = self._entry_module(spec)
        result = self.originals["create"](response)
        job = backend.training_jobs[name]
        job.training_end_time = None
        job.model_artifacts = None
        run = JobRun(name)
        self._set(job, run)
        with self._lock:
            self.runs[(backend.account_id, backend.region_name, name)] = run
        environment = response._get_param("Environment") or {}
        run.thread = threading.Thread(
            target=self._run, args=(run, job, module, dict(environment)), name=f"sagemaker-{name}", daemon=True
        )
        run.thread.start()
        return result

    def describe_training_job(self, backend: Any, name: str) -> dict[str, Any]:
        run = self.runs.get((backend.account_id, backend.region_name, name))
        job = backend.training_jobs.get(name)
        if run is None and job is not None and job.training_job_status in ("InProgress", "Stopping"):
            # started before this platform started (restored state): its process died with the old one
            run = JobRun(name, started=job.training_start_time or datetime.now(UTC))
            run.finish(
                "Failed", "Failed", "the local platform stopped while this job ran (local jobs do not survive it)"
            )
            with self._lock:
                self.runs[(backend.account_id, backend.region_name, name)] = run
        if run is not None and job is not None:
            self._set(job, run)
        out: dict[str, Any] = self.originals["describe"](backend, name)
        if run is not None and run.status != "Completed":
            out.pop("ModelArtifacts", None)
            out.pop("FinalMetricDataList", None)
        return out

    def response_stop_training_job(self, response: Any) -> Any:
        from moto.core.responses import ActionResult, EmptyResult

        backend = response.sagemaker_backend
        name = response._get_param("TrainingJobName")
        if name not in backend.training_jobs:
            arn = f"arn:aws:sagemaker:{backend.region_name}:{backend.account_id}:training-job/{name}"
            raise _validation(f"Could not find training job '{arn}'.")
        run = self.runs.get((backend.account_id, backend.region_name, name))
        if run is None or run.status != "InProgress":
            raise _validation(f"The training job {name} is not in progress and cannot be stopped")
        run.stop_requested = True
        run.secondary = "Stopping"
        if run.process is not None:
            run.process.kill()
        return ActionResult(EmptyResult())

    # ---- the run ----
    def _entry_module(self, spec: Mapping[str, Any]) -> str:
        entry = list(spec.get("ContainerEntrypoint") or [])
        if len(entry) == 3 and Path(str(entry[0])).name.startswith("python") and entry[1] == "-m":
            module = str(entry[2])
            if module.startswith(self.entry_prefixes) and all(p.isidentifier() for p in module.split(".")):
                return module
        raise _validation(
            "the local platform runs training jobs whose ContainerEntrypoint is ['python3', '-m', "
            f"'driftline.<module>'] (the training image's entry point); got {entry!r}"
        )

    @staticmethod
    def _set(job: Any, run: JobRun) -> None:
        job.training_job_status = run.status
        job.secondary_status = run.secondary
        job.failure_reason = run.failure_reason
        job.training_start_time = run.started
        job.training_end_time = run.ended
        job.last_modified_time = run.ended or run.started
        if run.ended is not None:  # the instance time a job is billed for (here: the local run's)
            seconds = max(1, round((run.ended - run.started).total_seconds()))
            job.training_time_in_seconds = job.billable_time_in_seconds = seconds
        if run.status == "Completed":
            job.model_artifacts = {"S3ModelArtifacts": run.artifact}

    def _download(self, job: Any, root: Path) -> None:
        s3 = self.s3()
        for channel in job.input_data_config or []:
            name = str(channel.get("ChannelName") or "")
            if not name.isidentifier():
                raise ValueError(f"channel name {name!r} is not allowed")
            uri = str(((channel.get("DataSource") or {}).get("S3DataSource") or {}).get("S3Uri") or "")
            bucket, prefix = _split_s3(uri)
            target = root / "input" / "data" / name
            target.mkdir(parents=True, exist_ok=True)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(prefix) :].lstrip("/") or Path(obj["Key"]).name
                    dest = (target / rel).resolve()
                    if not dest.is_relative_to(target.resolve()):
                        raise ValueError(f"object key {obj['Key']!r} escapes the channel directory")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        config = root / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(job.hyper_parameters or {}))
        (root / "model").mkdir(parents=True, exist_ok=True)
        (root / "output").mkdir(parents=True, exist_ok=True)

    def _upload(self, job: Any, root: Path) -> str:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for p in sorted((root / "model").iterdir()):
                tar.add(p, arcname=p.name)
        bucket, prefix = _split_s3(str(job.output_data_config["S3OutputPath"]))
        key = "/".join(p for p in (prefix.rstrip("/"), job.training_job_name, "output", "model.tar.gz") if p)
        self.s3().put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        return f"s3://{bucket}/{key}"

    def _env(self, environment: Mapping[str, str], root: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
        env.update({str(k): str(v) for k, v in environment.items()})
        env.update(self.image_env)  # the image's paths (feature sets, trainers) are the checkout's here
        env["DRIFTLINE_ML_ROOT"] = str(root)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def _run(self, run: JobRun, job: Any, module: str, environment: Mapping[str, str]) -> None:
        try:
            with tempfile.TemporaryDirectory(prefix=f"sm-{run.name}-", dir=self.work_dir) as tmp:
                self._run_in(run, job, module, environment, Path(tmp))
        except Exception as e:  # whatever breaks here is the job's failure, reported like SageMaker's
            if run.status == "InProgress":
                run.finish("Failed", "Failed", f"ClientError: {type(e).__name__}: {e}"[:FAILURE_LIMIT])

    def _run_in(self, run: JobRun, job: Any, module: str, environment: Mapping[str, str], root: Path) -> None:
        run.secondary = "Downloading"
        self._download(job, root)
        if run.stop_requested:
            run.finish("Stopped", "Stopped")
            return
        if job.enable_managed_spot_training and self._take_interruption():
            run.finish("Stopped", "Interrupted", "Spot capacity was reclaimed (simulated by the local platform)")
            return
        limit = float((job.stopping_condition or {}).get("MaxRuntimeInSeconds") or 86400)
        run.secondary = "Training"
        run.process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=str(SOURCE_ROOT),
            env=self._env(environment, root),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        remaining = limit - (datetime.now(UTC) - run.started).total_seconds()
        try:
            _, stderr = run.process.communicate(timeout=max(remaining, 0.001))
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.communicate()
            run.finish(
                "Stopped", "MaxRuntimeExceeded", f"Training job runtime exceeded MaxRuntimeInSeconds ({limit:g} s)"
            )
            return
        if run.stop_requested:
            run.finish("Stopped", "Stopped")
            return
        if run.process.returncode != 0:
            failure = root / "output" / "failure"
            text = failure.read_text(errors="replace").strip() if failure.exists() else ""
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:] if stderr else []
            reason = text or f"AlgorithmError: exit code {run.process.returncode}: {' '.join(tail)}".strip()
            run.finish("Failed", "Failed", reason[:FAILURE_LIMIT])
            return
        run.secondary = "Uploading"
        run.artifact = self._upload(job, root)
        run.finish("Completed", "Completed")

    def _take_interruption(self) -> bool:
        with self._lock:
            if self.interrupt_next <= 0:
                return False
            self.interrupt_next -= 1
            return True

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for every started run to end (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        for run in list(self.runs.values()):
            if run.thread is not None:
                run.thread.join(max(0.0, deadline - time.monotonic()))

    def shutdown(self) -> None:
        """Kill every running job (the emulator is going down; SageMaker would keep them running)."""
        for run in list(self.runs.values()):
            if run.process is not None and run.process.poll() is None:
                run.stop_requested = True
                run.process.kill()
        self.wait(10.0)


@contextmanager
def install_sagemaker(
    s3: Callable[[], Any],
    *,
    image_env: Mapping[str, str] | None = None,
    work_dir: str | Path | None = None,
    entry_prefixes: tuple[str, ...] = ("driftline.",),
) -> Iterator[SageMakerDelegate]:
    """Run moto's training jobs locally while the context is open."""
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse

    from driftline.local.moto_hooks import UnsupportedMotoError, check_moto

    check_moto()
    if hasattr(SageMakerResponse, "stop_training_job"):
        raise UnsupportedMotoError(
            "this moto implements StopTrainingJob, which the local SageMaker hook adds itself; "
            "the local platform supports moto 5.2.5 exactly"
        )
    saved = {(owner, name): getattr(owner, name) for owner, name in sagemaker_hook_points()}
    hook = SageMakerDelegate(
        s3,
        image_env=image_env,
        work_dir=work_dir,
        entry_prefixes=entry_prefixes,
        originals={
            "create": saved[(SageMakerResponse, "create_training_job")],
            "describe": saved[(SageMakerModelBackend, "describe_training_job")],
        },
    )
    SageMakerResponse.create_training_job = _unbound(hook.response_create_training_job)  # type: ignore[method-assign]
    SageMakerModelBackend.describe_training_job = _unbound(hook.describe_training_job)  # type: ignore[method-assign]
    SageMakerResponse.stop_training_job = _unbound(hook.response_stop_training_job)  # type: ignore[attr-defined]
    try:
        yield hook
    finally:
        for (owner, name), fn in saved.items():
            setattr(owner, name, fn)
        delattr(SageMakerResponse, "stop_training_job")
        hook.shutdown()


def _unbound(method: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function moto's class can hold: ``self`` (the backend or response) passed on."""

    def replacement(owner_self: Any, *args: Any, **kwargs: Any) -> Any:
        return method(owner_self, *args, **kwargs)

    return replacement
