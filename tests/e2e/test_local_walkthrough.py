"""Issue 18's "done when", as one user story on one kept state dir, with the real handlers:

ingest a dataset, train and promote a model, predict (answer A); ``local down`` + ``local up``: the same
champion answers the same A; edit the model's gate in cdk.json, ``local reload``: the next retraining
run's gate result uses the new threshold and every upload is still there; remove one permission from a
function's declaration (``tests/fixtures/revoked_platform.py``, the test-only hook): the next run fails
with AccessDenied at the call the deployed function would be denied (its first registry read).

The pieces are tested on their own elsewhere (tests/e2e/test_local_persistence.py, test_local_reload.py,
tests/integration/test_local_iam.py); the value here is the chain in one story.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    ROOT,
    LocalPlatformHandle,
    free_port,
    run_cli,
    start_platform,
    stop_platform,
    wait_for,
)

pytestmark = pytest.mark.e2e

MODEL = "credit-default"
REFERENCE = ("2026-01-01", "2026-04-01")
RUN_TIMEOUT_S = 300.0


@contextmanager
def activated(handle: LocalPlatformHandle) -> Iterator[None]:
    """This process's ``driftline.aws`` clients talk to the platform's emulator (root credentials)."""
    from driftline import aws
    from driftline.demo.local import ENDPOINT_ENV

    saved = {k: os.environ.get(k) for k in ENDPOINT_ENV}
    for k in ENDPOINT_ENV:
        os.environ.pop(k, None)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": handle.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": handle.region,
            "AWS_DEFAULT_REGION": handle.region,
        }
    )
    aws.reset_clients()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        aws.reset_clients()


def ingest(handle: LocalPlatformHandle, rows: int = 1500, seed: int = 7) -> tuple[str, str]:
    """Upload a labeled credit-default dataset to incoming/ and wait until ingest accepted it: (key, version id)."""
    import pyarrow.parquet as pq

    from driftline.contracts import incoming_key
    from driftline.datasets.credit_default import FEATURE_SET, generate
    from driftline.features.ingest import IN_FLIGHT, recent_uploads

    buf = io.BytesIO()
    pq.write_table(generate(rows, REFERENCE[0], REFERENCE[1], seed=seed), buf)
    bucket = handle.bucket("features")
    key = incoming_key(FEATURE_SET, f"walkthrough-{uuid.uuid4().hex[:8]}.parquet")
    version = handle.client("s3").put_object(Bucket=bucket, Key=key, Body=buf.getvalue())["VersionId"]
    uri = f"s3://{bucket}/{key}"

    def done() -> dict[str, Any] | None:
        for rec in recent_uploads(handle.name("control"), [FEATURE_SET], limit=25):
            if rec.get("source") == uri and rec.get("status") not in IN_FLIGHT and not rec.get("retryable"):
                return rec
        return None

    rec = wait_for(done, timeout=120, interval=0.3, what=f"the ingest record of {uri}")
    assert rec["status"] == "accepted", rec
    return key, str(version)


def start_run(handle: LocalPlatformHandle, *, require_approval: bool = False, version: int | None = None) -> str:
    """A manual RetrainRequested through the bus (as `driftline retrain`); the started run's ARN.

    Right after a restart the lock may still name a run that ended before ``down`` and that the emulator
    no longer knows: the retrain-trigger takes it over at once (its start is in the decision log), so
    this is never skipped as "in progress".
    """
    from driftline.retraining.requests import request_retrain, wait_for_decision

    event_id = request_retrain(
        handle.platform, MODEL, "walkthrough", "e2e", require_approval=require_approval, version=version
    )
    decision = wait_for_decision(handle.platform, MODEL, event_id, timeout_s=120)
    assert decision is not None and decision["decision"] == "started", decision
    return str(decision["execution_arn"])


def labels_run(handle: LocalPlatformHandle, since: str) -> str | None:
    """The run the retrain-trigger started for an accepted labeled upload (``retrain.on_new_labels``), or
    None when it decided not to start one; waits for that decision."""
    from driftline.retraining.control import ControlTable

    control = ControlTable(handle.name("control"))

    def decided() -> dict[str, Any] | None:
        for rec in control.history(MODEL, limit=50, kind="decision"):
            if rec.get("trigger") == "labels" and str(rec.get("at", "")) >= since:
                return rec
        return None

    rec = wait_for(decided, timeout=120, interval=0.3, what="the retrain-trigger's decision on the upload")
    return str(rec["execution_arn"]) if rec["decision"] == "started" else None


def edit_model(path: Path, change: Any) -> None:
    """Apply ``change`` to the model's entry in the cdk.json at ``path``."""
    doc = json.loads(path.read_text())
    ctx = doc["context"]
    env = ctx["driftline:environments"][ctx["driftline:env"]]
    change(next(m for m in env["models"] if m["name"] == MODEL))
    path.write_text(json.dumps(doc, indent=1))


def finished(arn: str) -> Any:
    from driftline.demo.runs import RunFollower

    run = RunFollower(arn)
    status = run.wait_end(RUN_TIMEOUT_S)
    return run, status


def object_versions(handle: LocalPlatformHandle, logical: str) -> set[tuple[str, str]]:
    """(key, version id) of every object version in a bucket of the platform."""
    pages = handle.client("s3").get_paginator("list_object_versions").paginate(Bucket=handle.bucket(logical))
    return {(v["Key"], v["VersionId"]) for page in pages for v in page.get("Versions", [])}


def entered_input(run: Any, state: str) -> dict[str, Any]:
    """The execution state ``state`` was entered with (its first entry)."""
    for e in run.events:
        d = e.get("stateEnteredEventDetails")
        if d and d.get("name") == state:
            doc = json.loads(d.get("input") or "{}")
            return doc if isinstance(doc, dict) else {}
    raise AssertionError(f"the run never entered {state}: {run.entered()}")


def champion(handle: LocalPlatformHandle) -> int | None:
    from driftline.registry.store import Registry

    return Registry(handle.name("registry")).aliases(MODEL, consistent=True).champion


def predictions(handle: LocalPlatformHandle) -> bytes:
    """The serving API's predictions for fixed records, as canonical JSON bytes (request ids left out)."""
    from driftline.datasets.credit_default import FEATURES, generate
    from driftline.demo.traffic import predict

    records = generate(5, REFERENCE[0], REFERENCE[1], seed=99).select(list(FEATURES)).to_pylist()

    def answered() -> Any:
        a = predict(handle.api_url, MODEL, records)
        return a if a.status == 200 else None

    answer = wait_for(answered, timeout=60, interval=0.5, what="the serving API to answer")
    # each prediction carries its own request id (new per call): everything else must match byte for byte
    answers = [{k: v for k, v in p.items() if k != "request_id"} for p in answer.body["predictions"]]
    return json.dumps(answers, sort_keys=True).encode()


@pytest.fixture
def config_copy() -> Iterator[Path]:
    # next to cdk.json: the platform runs the functions from the config's folder (the project root)
    path = ROOT / f".cdk-walkthrough-{uuid.uuid4().hex[:8]}.json"
    path.write_text((ROOT / "cdk.json").read_text())
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def start_revoked(
    state_dir: Path, config: Path, function: str, kind: str, logical: str
) -> tuple[LocalPlatformHandle, subprocess.Popen[bytes]]:
    """``driftline local up`` (foreground, in its own process) with one grant removed from ``function``'s
    declared access by the test-only hook; returns once it is ready."""
    from driftline import config as config_mod
    from driftline.local.state import read_state
    from driftline.platform import build_platform

    env = {**os.environ, "COLUMNS": "200"}
    env.pop("AWS_ENDPOINT_URL", None)
    args = ["up", "--port", str(free_port()), "--api-port", str(free_port()), "--config", str(config)]
    log = (state_dir / "revoked.log").open("w")  # the child writes to its own copy of the descriptor
    hook = [sys.executable, "-m", "tests.fixtures.revoked_platform", function, kind, logical, "--", "local"]
    proc = subprocess.Popen(
        [*hook, *args, "--state-dir", str(state_dir)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()

    def ready() -> Any:
        assert proc.poll() is None, (state_dir / "revoked.log").read_text()[-3000:]
        s = read_state(state_dir)
        return s if s is not None and s.status == "ready" and s.pid == proc.pid else None

    state = wait_for(ready, timeout=180, interval=0.3, what="the platform with a revoked grant to be ready")
    handle = LocalPlatformHandle(
        state_dir,
        state.endpoint,
        state.api_url,
        state.pid,
        state.pgid,
        build_platform(config_mod.load(config)),
        state.account,
        state.region,
        state.token,
    )
    return handle, proc


def test_the_done_when_walkthrough(tmp_path: Path, config_copy: Path) -> None:
    state_dir = tmp_path / "state"
    cfg = ("--config", str(config_copy))

    # 1. ingest, train and promote v1, predict: answer A
    handle = start_platform(state_dir, None, *cfg)
    try:
        with activated(handle):
            since = datetime.now(UTC).isoformat()
            key, upload_version = ingest(handle)
            # the labeled upload starts the first training itself (retrain.on_new_labels); else ask for one
            run, status = finished(labels_run(handle, since) or start_run(handle))
            assert status == "SUCCEEDED", run.entered()
            v1 = champion(handle)
            assert v1 is not None
            answer_a = predictions(handle)
    finally:
        stop_platform(handle)

    # 2. down + up on the same state dir: the same champion answers the same A, byte for byte
    handle = start_platform(state_dir, None, *cfg)
    try:
        with activated(handle):
            assert champion(handle) == v1
            assert predictions(handle) == answer_a

            # 3. a stricter gate in cdk.json, `local reload`: the next run is judged by it; uploads stay
            versions_before = object_versions(handle, "features")
            edit_model(config_copy, lambda m: m["gate"].update(min_metrics={"roc_auc": 0.999}))
            reloaded = run_cli("reload", state_dir=state_dir, timeout=120)
            assert reloaded.returncode == 0, reloaded.stderr
            assert f"~ function {handle.name('workflow')}" in reloaded.stdout
            run, status = finished(start_run(handle))
            gate = (run.exited_output("Gate") or {}).get("gate", {}).get("value", {})
            assert gate.get("passed") is False, gate
            assert "0.999" in json.dumps(gate), gate  # the reloaded threshold, in the run's own gate result
            assert "Deploy" not in run.entered() and champion(handle) == v1
            # every upload is still there: the one this story made (ingest moved it to curated/, leaving a
            # delete marker over it) and every object version in the features bucket before the reload
            kept = handle.client("s3").get_object(Bucket=handle.bucket("features"), Key=key, VersionId=upload_version)
            assert kept["VersionId"] == upload_version
            assert versions_before and versions_before <= object_versions(handle, "features")
    finally:
        stop_platform(handle)

    # 4. the workflow function's declaration loses its registry grant: the next run is denied at its first
    #    registry call (Validate reads the model's aliases) with AccessDenied, as the deployed role would be
    handle, proc = start_revoked(state_dir, config_copy, "workflow", "table", "registry")
    try:
        with activated(handle):
            assert champion(handle) == v1  # the platform's own (root) clients are not checked
            run, _ = finished(start_run(handle))
            entered = run.entered()
            assert entered[:2] == ["Validate", "RecordFailure"] and "Train" not in entered, entered
            error = json.dumps(entered_input(run, "RecordFailure").get("error"))
            role = f"assumed-role/{handle.name('workflow')}-fn-role/"
            assert "AccessDeniedException" in error and "dynamodb:GetItem" in error and role in error, error
            assert "in validate" in error and "aliases" in error, error  # Validate's read of the champion
            assert champion(handle) == v1
    finally:
        stop_platform(handle)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
