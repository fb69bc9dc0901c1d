"""`driftline models pending` lists the runs waiting for a manual approval, and says when the run behind an
approval request no longer exists (on the local platform: interrupted by a restart, `local resume`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from driftline.retraining.approvals import store_token

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(ROOT / "cdk.json")]


def run(*args: str) -> Any:
    from driftline.cli.main import app

    return CliRunner().invoke(app, [*args], catch_exceptions=False, env={"COLUMNS": "250"})


def test_pending_lists_waiting_runs_and_flags_the_interrupted_ones(aws: dict[str, str], monkeypatch: Any) -> None:
    from driftline.cli.common import console

    # The console measured the terminal when it was imported (COLUMNS below comes too late): a wide one
    # keeps the table's cells whole, whatever terminal runs the tests.
    monkeypatch.setattr(console, "_width", 250)
    empty = run("models", "pending", *CONFIG)
    assert empty.exit_code == 0 and "no retraining run is waiting" in empty.output
    assert json.loads(run("models", "pending", "--json", *CONFIG).output) == []
    store_token(
        aws["CONTROL_TABLE"],
        "credit-default",
        4,
        task_token="tok",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:dev-driftline-retrain:gone-run",
        requested_at="2026-12-01T10:00:00+00:00",
        timeout_seconds=3600,
        summary="v4 passed the gate",
    )
    (row,) = json.loads(run("models", "pending", "--json", "--model", "credit-default", *CONFIG).output)
    assert (row["model"], row["version"], row["run"], row["run_status"]) == ("credit-default", 4, "gone-run", "MISSING")
    text = run("models", "pending", *CONFIG)
    assert text.exit_code == 0, text.output
    said = " ".join(text.output.split())
    assert (
        "v4" in said
        and "interrupted by a restart of the local platform: driftline local resume gone-run" in said
        and "v4 passed the gate" in said
    )
