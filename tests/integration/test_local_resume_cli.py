"""`driftline local dismiss|resume` against the platform's control table (moto in-process) and a stand-in
for the running platform's control endpoints: what is removed, what is refused, what is recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from driftline.control_store import ControlStore
from driftline.local import state as st
from driftline.retraining.approvals import store_token
from driftline.retraining.control import ControlTable

ROOT = Path(__file__).resolve().parents[2]
MODEL = "credit-default"
ARN = "arn:aws:states:us-east-1:123456789012:execution:dev-driftline-retrain:manual-1"


class Platform:
    """The running platform's status and ``interrupted`` endpoints, as the CLI sees them."""

    def __init__(self) -> None:
        self.listed = [
            {"arn": ARN, "machine": ARN.rsplit(":", 1)[0], "name": "manual-1", "started": 1.0, "interrupted": 2.0}
            | {"input": json.dumps({"model": MODEL})}
        ]
        self.resolved: list[dict[str, Any]] = []

    def __call__(
        self, endpoint: str, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> tuple[int, dict[str, Any]]:
        if (method, path) == ("GET", "status"):
            return 200, {"status": "ready", "interrupted": self.listed}
        assert (method, path) == ("POST", "interrupted") and body is not None
        self.resolved.append(body)
        self.listed = [e for e in self.listed if e["arn"] != body["arn"]]
        return 200, {"arn": body["arn"], "ended": True, "resolution": body["resolution"]}


@pytest.fixture
def platform(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Platform:
    from driftline.cli import local

    fake = Platform()
    state = st.PlatformState(
        pid=1, pgid=1, host="127.0.0.1", port=1, api_port=2, started_at=0.0, status="ready", env="dev",
        config=str(ROOT / "cdk.json"), region="us-east-1", account="123456789012", prefix="dev-driftline",
    )  # fmt: skip
    monkeypatch.setattr(local, "control_request", fake)
    monkeypatch.setattr(local, "_require_running", lambda state_dir, command: state)
    monkeypatch.setattr(local, "_activate", lambda state: None)  # moto in-process already answers
    return fake


def run(*args: str) -> Any:
    from driftline.cli.main import app

    return CliRunner().invoke(app, ["local", *args], catch_exceptions=False, env={"COLUMNS": "250"})


def _waiting(aws: dict[str, str]) -> None:
    store_token(
        aws["CONTROL_TABLE"],
        MODEL,
        3,
        task_token="dead",
        execution_arn=ARN,
        requested_at="2026-12-01T00:00:00+00:00",
        timeout_seconds=3600,
        summary="passed",
    )
    assert ControlTable(aws["CONTROL_TABLE"]).try_acquire(MODEL, ARN, "manual-1", 0.0, None) is not None


def test_dismiss_removes_the_dead_request_and_the_lock_and_stops_the_listing(
    aws: dict[str, str], platform: Platform
) -> None:
    _waiting(aws)
    out = run("dismiss", "manual-1")
    assert out.exit_code == 0, out.output
    assert f"Dismissed manual-1 (waiting for approval of {MODEL} v3)" in out.output
    assert ControlStore(aws["CONTROL_TABLE"]).approval(MODEL, 3) is None
    assert ControlTable(aws["CONTROL_TABLE"]).lock(MODEL).holder is None
    assert platform.resolved == [{"arn": ARN, "resolution": "dismissed", "detail": ""}]
    again = run("dismiss", "manual-1")
    assert again.exit_code == 1 and "no interrupted execution 'manual-1'" in " ".join(again.output.split())


def test_resume_of_a_run_that_was_not_waiting_is_refused_and_changes_nothing(
    aws: dict[str, str], platform: Platform
) -> None:
    ControlTable(aws["CONTROL_TABLE"]).try_acquire(MODEL, ARN, "manual-1", 0.0, None)
    out = run("resume", ARN)  # by ARN as well as by name
    said = " ".join(out.output.split())
    assert out.exit_code == 1 and "was before its first recorded step" in said, said
    assert "only a run waiting for a manual approval can be resumed" in said
    assert "`driftline local dismiss manual-1`" in said
    assert platform.resolved == [] and ControlTable(aws["CONTROL_TABLE"]).lock(MODEL).holder == ARN
