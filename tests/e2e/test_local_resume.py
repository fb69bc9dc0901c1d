"""A retraining run waiting for a manual approval survives ``local down`` + ``local up`` as an interrupted
execution: ``status`` lists it with the version it waits on, its dead task token is refused with the way
out, ``local resume`` asks again through a new run of the unchanged workflow (gate re-run on the stored
candidate, fresh token), and approving that one promotes the version."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, run_cli, start_platform, stop_platform
from tests.e2e.test_local_walkthrough import MODEL, activated, champion, edit_model, finished, ingest, labels_run

pytestmark = pytest.mark.e2e


def _waiting(table: str, arn: str | None = None, timeout: float = 240.0) -> tuple[int, str]:
    """(version, execution ARN) of the approval a run of ``MODEL`` waits on (not ``arn``'s, when given)."""
    from driftline.retraining.approvals import pending_approvals

    deadline = time.monotonic() + timeout
    while True:
        for p in pending_approvals(table, MODEL):
            if p.execution_arn != arn:
                return p.version, p.execution_arn
        assert time.monotonic() < deadline, "no run asked for an approval"
        time.sleep(0.5)


@pytest.fixture
def manual_config() -> Iterator[Path]:
    """cdk.json with the model's approval manual (next to it: functions run from the config's folder)."""
    path = ROOT / f".cdk-resume-{uuid.uuid4().hex[:8]}.json"
    path.write_text((ROOT / "cdk.json").read_text())
    edit_model(path, lambda m: m.update(approval="manual", approvers=["alice"]))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def pending(config: Path) -> list[dict[str, Any]]:
    """`driftline models pending --json` (in this process, whose AWS clients point at the platform)."""
    from typer.testing import CliRunner

    from driftline.cli.main import app

    out = CliRunner().invoke(app, ["models", "pending", "--json", "--config", str(config)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    rows: list[dict[str, Any]] = json.loads(out.output)
    return rows


def test_an_approval_interrupted_by_a_restart_is_listed_resumed_and_approved(
    tmp_path: Path, manual_config: Path
) -> None:
    from driftline.retraining.approvals import ApprovalNotWaitingError, resolve_approval

    cfg = ("--config", str(manual_config))
    handle = start_platform(tmp_path, None, *cfg)
    try:
        with activated(handle):
            since = datetime.now(UTC).isoformat()
            ingest(handle)
            first = labels_run(handle, since)  # the labeled upload starts the training run, which waits
            assert first is not None
            version, waiting_arn = _waiting(handle.name("control"))
            assert waiting_arn == first
    finally:
        stop_platform(handle)
    name = first.rsplit(":", 1)[-1]

    handle = start_platform(tmp_path, None, *cfg)
    try:
        log = (tmp_path / "local.log").read_text()
        assert f"Step Functions execution {first} was running when the platform stopped" in log
        assert f"driftline local resume {name} --state-dir" in log  # the ready message, this instance's flag
        status = run_cli("status", "--json", state_dir=tmp_path)
        assert status.returncode == 0, status.stderr
        (listed,) = json.loads(status.stdout)["interrupted"]
        assert (listed["arn"], listed["name"], listed["model"], listed["version"]) == (first, name, MODEL, version)
        assert listed["where"] == f"waiting for approval of {MODEL} v{version}" and listed["resumable"] is True
        text = run_cli("status", state_dir=tmp_path)
        assert f"waiting for approval of {MODEL} v{version}" in text.stdout
        assert f"driftline local resume {name} --state-dir" in text.stdout

        with activated(handle):
            from driftline import config as config_mod

            config = config_mod.load(manual_config)
            assert config.model(MODEL).approval == "manual"
            (request,) = pending(manual_config)  # the approval request is still listed, its run flagged
            assert (request["version"], request["run"], request["run_status"]) == (version, name, "MISSING")
            with pytest.raises(ApprovalNotWaitingError, match=f"driftline local resume {name}"):
                resolve_approval(MODEL, version, True, "alice", "ok", config=config)  # the dead token
            # still listed, still resumable (its step records say where it was)
            again = json.loads(run_cli("status", "--json", state_dir=tmp_path).stdout)["interrupted"]
            assert [i["resumable"] for i in again] == [True]

            unknown = run_cli("resume", "nope", state_dir=tmp_path)
            assert unknown.returncode == 1 and f"interrupted executions: {name}" in unknown.stderr
            resumed = run_cli("resume", name, state_dir=tmp_path)
            assert resumed.returncode == 0, resumed.stderr
            assert f"Resumed {name}" in resumed.stdout
            assert json.loads(run_cli("status", "--json", state_dir=tmp_path).stdout)["interrupted"] == []

            again_version, second = _waiting(handle.name("control"), first)
            assert again_version == version and second != first
            (request,) = pending(manual_config)
            assert (request["run"], request["run_status"]) == (second.rsplit(":", 1)[-1], "RUNNING")
            out = resolve_approval(MODEL, version, True, "alice", "reviewed after the restart", config=config)
            assert out["execution_arn"] == second
            run, status_ = finished(second)
            assert status_ == "SUCCEEDED", run.entered()
            entered = run.entered()
            assert "UseRegistered" in entered and "Gate" in entered and "Train" not in entered, entered
            assert champion(handle) == version
    finally:
        stop_platform(handle)
